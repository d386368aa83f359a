"""Markdown read as text with its heading structure; never rendered to HTML (renderers are slow or
lossy on hostile nesting). Every pattern here is anchored and linear."""

from __future__ import annotations

import re

from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.decode import decode, unix_newlines
from sluice.pipeline.extract.text import paragraph_block

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$")
# What a line starts with (after at most three spaces) when any of the line patterns above matches it.
_MARKS = frozenset("`~#=-*_|")
_LEADS = _MARKS | {" "}


def _marked(line: str) -> bool:
    """Whether a line pattern could match: most lines are told apart by their first character."""
    mark = line[:1]
    if mark == " ":
        rest = line.lstrip(" ")
        mark = rest[:1] if len(line) - len(rest) <= 3 else ""
    return mark in _MARKS


def _strip_comments(text: str) -> str:
    """Drop HTML comments (hidden content must not reach the index). A scan, not a regex: an
    unterminated comment costs one pass."""
    out = []
    pos = 0
    while True:
        start = text.find("<!--", pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        end = text.find("-->", start + 4)
        if end < 0:
            return "".join(out)
        pos = end + 3


def _front_matter(lines: list[str]) -> tuple[str | None, int]:
    """Title from a leading YAML front matter block, and the index of the first line after it."""
    if not lines or lines[0].strip() != "---":
        return None, 0
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            title = None
            for line in lines[1:i]:
                match = _FRONT_MATTER_TITLE.match(line)
                if match:
                    title = match.group(1).strip("\"'")
            return title, i + 1
    return None, 0


def extract_markdown(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    text = _strip_comments(unix_newlines(decoded.text))
    lines = text.split("\n")
    title, first = _front_matter(lines)
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:  # it holds no blank line
            blocks.append(paragraph_block(para))
        para.clear()

    fence: str | None = None
    code: list[str] = []
    for line in lines[first:]:
        if fence is not None:
            if line.strip().startswith(fence):
                blocks.append(Block(BlockKind.PREFORMATTED, "\n".join(code)))
                fence, code = None, []
            else:
                code.append(line)
            continue
        if line[:1] not in _LEADS or not _marked(line):  # prose or a blank line: no pattern can match
            if line.strip():
                para.append(line)
            else:
                flush()
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            flush()
            fence = fence_match.group(1)[0] * 3
            continue
        atx = _ATX.match(line)
        if atx and (atx.group(2) or "").strip():
            flush()
            blocks.append(Block(BlockKind.HEADING, atx.group(2).strip(), level=len(atx.group(1))))
            continue
        setext = _SETEXT.match(line)
        if setext and len(para) == 1 and para[0].strip() and not _TABLE_ROW.match(para[0]):
            heading = para[0].strip()
            para.clear()
            blocks.append(Block(BlockKind.HEADING, heading, level=1 if setext.group(1)[0] == "=" else 2))
            continue
        if not line.strip() or (not para and _THEMATIC_BREAK.match(line)):
            flush()
            continue
        if _TABLE_ROW.match(line) and para and not _TABLE_ROW.match(para[-1]):
            flush()
        para.append(line)
    flush()
    if code:
        blocks.append(Block(BlockKind.PREFORMATTED, "\n".join(code)))
    if title is None:
        title = next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), None)
    return ExtractedDocument(Kind.MARKDOWN, title, blocks, parser="sluice-markdown", notes=decoded.notes())
