"""Plain text: paragraphs are separated by blank lines; a short first line standing alone is the
title."""

from __future__ import annotations

import re

from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.decode import decode

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_CODE_OR_TABLE = re.compile(r"^(?:[ \t]{4,}|\t|[ \t]*\|)")
_CONTINUATION = re.compile(r"^[ \t]{2,}\S")


def paragraph_block(lines: list[str]) -> Block:
    """A paragraph of lines as a block. List items keep one line each (their wrapped continuation
    lines joined to them); table rows (lines that start with "|" or whose cells are separated by
    " | ") and indented code keep their line breaks; prose is unwrapped."""
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
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [paragraph_block(para.split("\n")) for para in _BLANK_LINE.split(text) if para.strip()]
    title = _title_line(blocks[0]) if len(blocks) > 1 else None
    if title is not None:
        blocks[0] = Block(BlockKind.HEADING, title, level=1)
    return ExtractedDocument(Kind.TEXT, title, blocks, parser="sluice-text", notes=decoded.notes())
