"""What both PDF backends share: the line they report, the limits they enforce, and the layout
analysis that turns lines into blocks (headings by outline and type size, paragraphs by vertical
gaps, running headers, footers and page numbers dropped)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from sluice.errors import QuarantineError, Reason
from sluice.model import Block, BlockKind

BOLD_HEADING_CHARS = 80  # a bold line in body type this short, standing alone, is a heading
BOLD = re.compile(r"bold|black|heavy|semibold|demi|cmbx", re.I)
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?[\divxlc]{1,6}(?:\s*(?:/|of)\s*\d{1,6})?\s*$", re.I)
_DIGITS = re.compile(r"\d+")
_BAD_TITLES = re.compile(r"^(?:untitled|microsoft word - .*|document\d*|slide \d+)$", re.I)


class BackendError(Exception):
    """A PDF library could not read the file; another library may."""


@dataclass(slots=True)
class Line:
    text: str
    size: float
    y: float
    bold: bool
    page: int


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_pages: int = 2000
    max_chars: int = 5_000_000  # Kendra's limit on extracted text
    max_stream_bytes: int = 75_000_000  # pypdf's per-stream decompression limit
    pdf_backends: tuple[str, ...] = ("pdfium", "pypdf")  # in the order they are tried

    def __post_init__(self) -> None:
        object.__setattr__(self, "pdf_backends", tuple(self.pdf_backends))  # lists arrive from JSON

    def check_pages(self, count: int) -> None:
        if count > self.max_pages:
            raise QuarantineError(Reason.TOO_MANY_PAGES, f"{count} pages; the limit is {self.max_pages}")

    def check_chars(self, chars: int, page: int) -> None:
        if chars > self.max_chars:
            raise QuarantineError(Reason.TOO_LARGE, f"more than {self.max_chars} characters of text by page {page}")


@dataclass(slots=True)
class PdfPages:
    """One backend's reading of a PDF."""

    pages: list[list[Line]]
    outline: dict[tuple[int, str], int]  # (page, normalised title) → heading level
    title: str | None
    page_count: int
    notes: dict[str, str] = field(default_factory=dict)
    parser: str = ""


def usable_title(title: str) -> str | None:
    title = title.strip()
    return title if title and not _BAD_TITLES.match(title) else None


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _repeated_margins(pages: list[list[Line]], body: float) -> set[tuple[int, int]]:
    """(page, line index) of running headers and footers: the first or last two lines of a page whose
    text (digits ignored) recurs on at least half of the pages, in body type or smaller (a title in
    large type that the header repeats is kept), and bare page numbers."""
    drop: set[tuple[int, int]] = set()
    if not pages:
        return drop
    counts: Counter[str] = Counter()
    margins: list[list[tuple[int, str]]] = []
    for lines in pages:
        idx = sorted({i for i in (0, 1, len(lines) - 2, len(lines) - 1) if 0 <= i < len(lines)})
        keys = [(i, _DIGITS.sub("#", norm(lines[i].text))) for i in idx]
        margins.append(keys)
        counts.update({key for _, key in keys})
    # On every page of a short document, or on at least half (and three) of a longer one.
    threshold = len(pages) if len(pages) < 6 else max(3, (len(pages) + 1) // 2)
    for p, keys in enumerate(margins):
        for i, key in keys:
            line = pages[p][i]
            repeated = len(pages) >= 2 and counts[key] >= threshold and line.size <= body * 1.1
            if repeated or _PAGE_NUMBER.match(line.text):
                drop.add((p, i))
    return drop


def blocks_from_lines(pages: list[list[Line]], outline: dict[tuple[int, str], int]) -> list[Block]:
    weights: Counter[float] = Counter()
    for page in pages:
        for line in page:
            weights[line.size] += len(line.text)
    if not weights:
        return []
    body = weights.most_common(1)[0][0]
    drop = _repeated_margins(pages, body)
    lines = [line for p, page in enumerate(pages) for i, line in enumerate(page) if (p, i) not in drop]
    if not lines:
        return []
    heading_sizes = sorted({ln.size for ln in lines if ln.size >= body * 1.15 and len(ln.text) <= 200}, reverse=True)
    level_of = {size: min(rank + 1, 6) for rank, size in enumerate(heading_sizes)}
    gaps = [
        a.y - b.y
        for a, b in pairwise(lines)
        if a.page == b.page and a.size == b.size == body and 0 < a.y - b.y < 3 * body
    ]
    # The usual distance between lines of a paragraph: the lower quartile of body-text line gaps
    # (paragraph breaks make the larger ones).
    leading = sorted(gaps)[len(gaps) // 4] if gaps else body * 1.2

    def heading_level(line: Line) -> int:
        level = outline.get((line.page, norm(line.text))) if outline else None
        if level:
            return level
        if line.size in level_of and re.search(r"[^\W\d_]{2}", line.text):
            return level_of[line.size]
        if (
            line.bold
            and abs(line.size - body) <= 0.5
            and len(line.text) <= BOLD_HEADING_CHARS
            and not line.text.endswith((".", ",", ";"))
            and re.search(r"[^\W\d_]{2}", line.text)
        ):
            return min(len(heading_sizes) + 1, 6)
        return 0

    blocks: list[Block] = []
    para: list[Line] = []

    def flush() -> None:
        if para:
            blocks.append(Block(BlockKind.PARAGRAPH, "\n".join(ln.text for ln in para), page=para[0].page))
            para.clear()

    previous: Line | None = None
    for line in lines:
        level = heading_level(line)
        if level:
            flush()
            last = blocks[-1] if blocks else None
            if (
                last is not None
                and last.kind is BlockKind.HEADING
                and last.level == level
                and previous is not None
                and previous.page == line.page
                and 0 < previous.y - line.y < 1.6 * line.size
            ):
                blocks[-1] = Block(BlockKind.HEADING, f"{last.text} {line.text}", level=level, page=last.page)
            else:
                blocks.append(Block(BlockKind.HEADING, line.text, level=level, page=line.page))
        else:
            if para and previous is not None:
                gap = previous.y - line.y
                new_page = previous.page != line.page
                if not new_page and (abs(previous.size - line.size) > 0.5 or gap > 1.45 * leading or gap < 0):
                    flush()
            para.append(line)
        previous = line
    flush()
    return blocks
