"""The values that flow through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """Document types Sluice can extract."""

    PDF = "pdf"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"
    DOCX = "docx"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"  # prose: line breaks inside are wrapping, not meaning
    PREFORMATTED = "preformatted"  # code, lists, tables: line breaks are kept


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit of an extracted document, in reading order."""

    kind: BlockKind
    text: str
    level: int = 0  # heading level 1..6; 0 for other blocks
    page: int | None = None  # 1-based page number, for paged formats
    # Text that must come first in any chunk that starts inside this block (a table's header row,
    # which every chunk of rows repeats). The block's own text begins with it.
    context: str | None = None


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    kind: Kind
    title: str | None
    blocks: list[Block]
    page_count: int | None = None
    parser: str = ""  # name@version of the library that read the bytes
    notes: dict[str, str] = field(default_factory=dict)  # e.g. encoding, encrypted_owner_only


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, ready to be embedded or indexed on its own."""

    text: str
    tokens: int  # len(encode_ordinary(text)), exact
    pages: tuple[int, ...]  # pages the chunk's text comes from, ascending
    headings: tuple[str, ...]  # heading path at the start of the chunk
    start: int  # offsets of the chunk's own text (overlap excluded) in the cleaned document text
    end: int
    overlap: int = 0  # characters at the start of ``text`` repeated from the previous chunk


@dataclass(frozen=True, slots=True)
class CleaningStats:
    control_chars: int = 0
    format_chars: int = 0
    dehyphenated: int = 0
    empty_blocks: int = 0


@dataclass(frozen=True, slots=True)
class ProcessedDocument:
    """Result of extract → clean → chunk for one document."""

    kind: Kind
    title: str
    text: str  # the cleaned document, the text every chunk's offsets refer to
    chunks: list[Chunk]
    page_count: int | None
    parser: str
    cleaning: CleaningStats
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def token_count(self) -> int:
        return sum(c.tokens for c in self.chunks)
