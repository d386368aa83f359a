"""The front end written the straightforward way: detection's looks at the bytes, plain text and
Markdown extraction, HTML's walk, and cleaning, as they stood before they were made faster. Every
step runs on every block and every line; nothing is skipped.

This is a reference, not code the layer runs: tests/unit/test_front_end_reference.py holds the
layer's stages to it, output for output, on generated documents (tests/support/varied.py) and on
strings built to hit each shortcut's edge. The layer's code may take any shortcut that gives the same
result; a deliberate change of behaviour changes both, this module first.

What the layer's code and this module share (patterns, tables, the parser, the helpers that were
not changed) is imported, so that only the ways of computing differ.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from html.parser import HTMLParser

from sluice.model import Block, BlockKind, CleaningStats, ExtractedDocument, Kind
from sluice.pipeline.clean import _CONTROLS, _DOT_LEADER, _FORMATS, _HYPHEN_WORD, _LIGATURES
from sluice.pipeline.extract import html as _html
from sluice.pipeline.extract.decode import decode
from sluice.pipeline.extract.markdown import (
    _ATX,
    _FENCE,
    _SETEXT,
    _TABLE_ROW,
    _THEMATIC_BREAK,
    _front_matter,
    _strip_comments,
)
from sluice.pipeline.extract.text import _BLANK_LINE, _CODE_OR_TABLE, _CONTINUATION, _LIST_ITEM, _title_line

_SPACES = re.compile(r"[ \t\f\v]+")
_HYPHENATED = re.compile(r"([^\W\d_]+)-\n[ \t]*([a-zà-ÿ][^\W\d_]*)")

# -- detect ------------------------------------------------------------------------------------------


def is_blank(data: bytes) -> bool:
    return not data.strip()


def control_bytes(head: bytes) -> int:
    return sum(1 for b in head if b < 9 or (13 < b < 32 and b != 27))


# -- clean ---------------------------------------------------------------------------------------------


def clean_blocks(blocks: Iterable[Block]) -> tuple[list[Block], CleaningStats]:
    blocks = list(blocks)
    # Hyphenated compounds written elsewhere in the document keep their hyphen when rejoined.
    compounds = (
        {m.group(0).lower() for b in blocks for m in _HYPHEN_WORD.finditer(b.text)}
        if any("-\n" in b.text for b in blocks)
        else set()
    )
    controls = formats = dehyphenated = empty = 0

    def join(match: re.Match[str]) -> str:
        nonlocal dehyphenated
        head, tail = match.group(1), match.group(2)
        dehyphenated += 1
        if f"{head}-{tail}".lower() in compounds:
            return f"{head}-{tail}"
        return head + tail

    def clean(text: str, kind: BlockKind) -> str:
        nonlocal controls, formats
        text = unicodedata.normalize("NFC", text.translate(_LIGATURES))
        text, c = _CONTROLS.subn("", text)
        text, f = _FORMATS.subn("", text)
        controls, formats = controls + c, formats + f
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _HYPHENATED.sub(join, text) if "-\n" in text else text
        text = _DOT_LEADER.sub(" … ", text)
        if kind is BlockKind.PREFORMATTED:
            lines = [line.rstrip() for line in text.split("\n")]
            while lines and not lines[0].strip():
                lines.pop(0)
            return "\n".join(lines).rstrip()
        return _SPACES.sub(" ", text.replace("\n", " ")).strip()

    cleaned: list[Block] = []
    for block in blocks:
        text = clean(block.text, block.kind)
        if not text:
            empty += 1
            continue
        context = clean(block.context, block.kind) if block.context else None
        if context and not text.startswith(context + "\n"):
            context = None  # the block no longer starts with it: nothing to repeat
        cleaned.append(Block(block.kind, text, block.level, block.page, context))
    return cleaned, CleaningStats(controls, formats, dehyphenated, empty)


# -- plain text and Markdown -------------------------------------------------------------------------


def paragraph_block(lines: list[str]) -> Block:
    present = [line for line in lines if line.strip()]
    if (
        present
        and _LIST_ITEM.match(present[0])
        and all(_LIST_ITEM.match(line) or _CONTINUATION.match(line) for line in present)
    ):
        items: list[str] = []
        for line in present:
            if _LIST_ITEM.match(line) or not items:
                items.append(line.rstrip())
            else:
                items[-1] = f"{items[-1]} {line.strip()}"
        return Block(BlockKind.PREFORMATTED, "\n".join(items))
    if len(present) > 1 and all(_CODE_OR_TABLE.match(line) or " | " in line for line in present):
        return Block(BlockKind.PREFORMATTED, "\n".join(lines))
    return Block(BlockKind.PARAGRAPH, "\n".join(lines))


def extract_text(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [paragraph_block(para.split("\n")) for para in _BLANK_LINE.split(text) if para.strip()]
    title = _title_line(blocks[0]) if len(blocks) > 1 else None
    if title is not None:
        blocks[0] = Block(BlockKind.HEADING, title, level=1)
    return ExtractedDocument(Kind.TEXT, title, blocks, parser="sluice-text", notes=decoded.notes())


def extract_markdown(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    text = _strip_comments(decoded.text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = text.split("\n")
    title, first = _front_matter(lines)
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if any(line.strip() for line in para):
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


# -- HTML: the parser keeping positions, and the walk ----------------------------------------------------


class _TreeBuilder(_html._TreeBuilder):
    updatepos = HTMLParser.updatepos  # the stdlib's: line and offset of every piece counted


def _is_noise(node: _html._Node) -> bool:
    attrs = node.attrs
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if attrs.get("role", "").lower() in _html._NOISE_ROLES:
        return True
    if _html._HIDDEN_STYLE.search(attrs.get("style", "")):
        return True
    marker = f"{attrs.get('id', '')} {attrs.get('class', '')} {attrs.get('aria-label', '')}"
    return bool(_html._NOISE.search(marker))


class _Emitter:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.inline: list[str] = []
        self.rows: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.pre_depth = 0

    def text(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.inline.append(data)

    def flush(self, kind: BlockKind = BlockKind.PARAGRAPH, level: int = 0) -> None:
        text = "".join(self.inline)
        self.inline = []
        if text.strip():
            if kind is BlockKind.PARAGRAPH and self.pre_depth:
                kind = BlockKind.PREFORMATTED
            self.blocks.append(Block(kind, text.strip("\n") if self.pre_depth else text.strip(), level=level))


def _walk(roots: list[_html._Node]) -> list[Block]:
    out = _Emitter()
    # The stack holds nodes to open, and ("end", node) markers to close them.
    stack: list[object] = []
    for root in reversed(roots):
        stack.append(root)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.text(item if out.pre_depth else re.sub(r"\s+", " ", item))
            continue
        if isinstance(item, tuple):
            _close(out, item[1])
            continue
        assert isinstance(item, _html._Node)
        node = item
        if node.tag in _html._DROP or _is_noise(node):
            continue
        _open(out, node)
        stack.append(("end", node))
        stack.extend(reversed(node.children))
    out.flush()
    return out.blocks


def _open(out: _Emitter, node: _html._Node) -> None:
    tag = node.tag
    if tag == "br":
        out.text("\n")
    elif tag in _html._HEADINGS or tag in _html._BLOCK:
        if out.cell is None:
            out.flush()
        if tag == "table":
            out.rows = []
        elif tag == "tr" and out.rows is not None:
            out.rows.append([])
        elif tag in ("td", "th") and out.rows is not None:
            out.cell = []
        elif tag == "li" and out.cell is None:
            out.inline.append("- ")
        elif tag == "pre":
            out.pre_depth += 1
    elif tag in ("img",) and node.attrs.get("alt"):
        out.text(f" {node.attrs['alt']} ")


def _close(out: _Emitter, node: _html._Node) -> None:
    tag = node.tag
    if tag in _html._HEADINGS:
        out.flush(BlockKind.HEADING, _html._HEADINGS[tag])
    elif tag in ("td", "th") and out.rows is not None and out.cell is not None:
        if not out.rows:
            out.rows.append([])
        out.rows[-1].append(re.sub(r"\s+", " ", "".join(out.cell)).strip())
        out.cell = None
    elif tag == "table" and out.rows is not None:
        lines = [" | ".join(row) for row in out.rows if any(row)]
        if lines:
            out.blocks.append(Block(BlockKind.PREFORMATTED, "\n".join(lines)))
        out.rows = None
    elif tag == "pre":
        out.flush(BlockKind.PREFORMATTED)
        out.pre_depth -= 1
    elif tag in _html._BLOCK and out.cell is None:
        out.flush()


def extract_html(data: bytes) -> ExtractedDocument:
    decoded = decode(data, declared=_html._declared_charset(data))
    builder = _TreeBuilder()
    builder.feed(_html._drop_unterminated_comment(decoded.text))
    builder.close()
    blocks = _walk(_html._find_main(builder.root))
    title = re.sub(r"\s+", " ", "".join(builder.title)).strip() or None
    if title is None:
        title = next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), None)
    return ExtractedDocument(Kind.HTML, title, blocks, parser="sluice-html", notes=decoded.notes())
