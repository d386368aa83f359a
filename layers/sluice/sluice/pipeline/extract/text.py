"""Plain text: paragraphs are separated by blank lines; a short first line standing alone is the
title."""

from __future__ import annotations

import re

from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.decode import decode, unix_newlines

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_CODE_OR_TABLE = re.compile(r"^(?:[ \t]{4,}|\t|[ \t]*\|)")
_CONTINUATION = re.compile(r"^[ \t]{2,}\S")


def _prose(text: str) -> bool:
    """Whether a paragraph starting with ``text`` is prose for paragraph_block, told by its first line
    alone when that line is not blank (then it is the first line present): a list item, indented code
    or a table row starts with white space, "|" or a list marker (the marker never reaches past the
    line's end), and a table whose rows do not start with "|" has " | " in its first row."""
    first = text[:1]
    if not first or first.isspace() or first == "|" or _LIST_ITEM.match(text):
        return False
    end = text.find("\n")
    return " | " not in (text if end < 0 else text[:end])


def paragraph_block(lines: list[str]) -> Block:
    """A paragraph of lines as a block. List items keep one line each (their wrapped continuation
    lines joined to them); table rows (lines that start with "|" or whose cells are separated by
    " | ") and indented code keep their line breaks; prose is unwrapped."""
    if _prose(lines[0]):
        return Block(BlockKind.PARAGRAPH, "\n".join(lines))
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


def _paragraph(para: str) -> Block:
    """The paragraph's block, as paragraph_block gives it for the paragraph's lines; prose, the usual
    case, is told without splitting the paragraph into lines."""
    return Block(BlockKind.PARAGRAPH, para) if _prose(para) else paragraph_block(para.split("\n"))


def _title_line(block: Block) -> str | None:
    text = block.text.strip()
    if (
        block.kind is BlockKind.PARAGRAPH
        and "\n" not in text
        and len(text) <= 80
        and not text.endswith((".", "!", "?", ":", ";", ","))
    ):
        return text
    return None


def extract_text(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    text = unix_newlines(decoded.text)
    blocks = [_paragraph(para) for para in _BLANK_LINE.split(text) if para.strip()]
    title = _title_line(blocks[0]) if len(blocks) > 1 else None
    if title is not None:
        blocks[0] = Block(BlockKind.HEADING, title, level=1)
    return ExtractedDocument(Kind.TEXT, title, blocks, parser="sluice-text", notes=decoded.notes())
