"""PDF with pypdf: text per page, page numbers kept, headings recovered from the outline and from
type size, running headers, footers and page numbers dropped.

pypdf reports every piece of text it emits together with its font, size and text matrix; Sluice
rebuilds lines from those pieces, so the text is exactly pypdf's and the layout facts are its own.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError

from sluice.errors import QuarantineError, Reason
from sluice.model import Block, BlockKind, ExtractedDocument, Kind

_BOLD = re.compile(r"bold|black|heavy|semibold|demi|cmbx", re.I)
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?[\divxlc]{1,6}(?:\s*(?:/|of)\s*\d{1,6})?\s*$", re.I)
_DIGITS = re.compile(r"\d+")
_BAD_TITLES = re.compile(r"^(?:untitled|microsoft word - .*|document\d*|slide \d+)$", re.I)


@dataclass(slots=True)
class _Line:
    text: str
    size: float
    y: float
    bold: bool
    page: int


@dataclass(frozen=True, slots=True)
class PdfLimits:
    max_pages: int = 2000
    max_chars: int = 5_000_000
    max_stream_bytes: int = 75_000_000


def _open(data: bytes) -> tuple[pypdf.PdfReader, dict[str, str]]:
    notes: dict[str, str] = {}
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # Owner-password-only files open with the empty user password.
        if not reader.decrypt(""):
            raise QuarantineError(Reason.ENCRYPTED, "the PDF needs a password to open")
        notes["encrypted_owner_only"] = "true"
    return reader, notes


def _page_lines(page: Any, number: int) -> list[_Line]:
    pieces: list[tuple[str, float, float, bool]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if not text:
            return
        # Combined text rendering matrix: scale and position of this piece on the page.
        d = tm[2] * cm[1] + tm[3] * cm[3]
        c = tm[2] * cm[0] + tm[3] * cm[2]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = (c * c + d * d) ** 0.5 or 1.0
        name = str(font.get("/BaseFont", "")) if font else ""
        pieces.append((text, size * scale, y, bool(_BOLD.search(name))))

    page.extract_text(visitor_text=visit)
    lines: list[_Line] = []
    parts: list[str] = []
    sizes: Counter[float] = Counter()
    bold_chars = 0
    y: float | None = None

    def end_line() -> None:
        nonlocal bold_chars, y
        text = "".join(parts)
        if text.strip():
            size = sizes.most_common(1)[0][0] if sizes else 0.0
            letters = sum(sizes.values())
            lines.append(_Line(text.strip(), size, y or 0.0, letters > 0 and bold_chars >= letters, number))
        parts.clear()
        sizes.clear()
        bold_chars = 0
        y = None

    for text, size, piece_y, bold in pieces:
        segments = text.split("\n")
        for i, segment in enumerate(segments):
            if i:
                end_line()
            if segment:
                parts.append(segment)
                weight = len(segment.strip())
                if weight:
                    sizes[round(size * 2) / 2] += weight
                    bold_chars += weight if bold else 0
                    if y is None:
                        y = piece_y
    end_line()
    return lines


def _outline_titles(reader: pypdf.PdfReader) -> dict[tuple[int, str], int]:
    """(page number, normalised title) → heading level, from the document outline (bookmarks)."""
    found: dict[tuple[int, str], int] = {}

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                if depth < 6:
                    walk(item, depth + 1)
                continue
            try:
                index = reader.get_destination_page_number(item)
            except Exception:  # noqa: BLE001 - a broken bookmark only loses a heading hint
                continue
            if index is not None:
                found[(index + 1, _norm(str(item.title)))] = min(depth + 1, 6)

    try:
        walk(reader.outline, 0)
    except (PdfReadError, RecursionError, LimitReachedError, KeyError, ValueError, TypeError):
        return {}
    return found


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _repeated_margins(pages: list[list[_Line]], body: float) -> set[tuple[int, int]]:
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
        keys = [(i, _DIGITS.sub("#", _norm(lines[i].text))) for i in idx]
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


def _blocks(pages: list[list[_Line]], outline: dict[tuple[int, str], int]) -> list[Block]:
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

    def heading_level(line: _Line) -> int:
        level = outline.get((line.page, _norm(line.text)))
        if level:
            return level
        if line.size in level_of and re.search(r"[^\W\d_]{2}", line.text):
            return level_of[line.size]
        if (
            line.bold
            and abs(line.size - body) <= 0.5
            and len(line.text) <= 80
            and not line.text.endswith((".", ",", ";"))
            and re.search(r"[^\W\d_]{2}", line.text)
        ):
            return min(len(heading_sizes) + 1, 6)
        return 0

    blocks: list[Block] = []
    para: list[_Line] = []

    def flush() -> None:
        if para:
            blocks.append(Block(BlockKind.PARAGRAPH, "\n".join(ln.text for ln in para), page=para[0].page))
            para.clear()

    previous: _Line | None = None
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


def extract_pdf(data: bytes, limits: PdfLimits) -> ExtractedDocument:
    parser = f"pypdf@{pypdf.__version__}"
    try:
        with pypdf.apply_configuration(
            zlib_maximum_output_length=limits.max_stream_bytes,
            lzw_maximum_output_length=limits.max_stream_bytes,
            run_length_maximum_output_length=limits.max_stream_bytes,
        ):
            reader, notes = _open(data)
            count = len(reader.pages)
            if count > limits.max_pages:
                raise QuarantineError(Reason.TOO_MANY_PAGES, f"{count} pages; the limit is {limits.max_pages}")
            pages: list[list[_Line]] = []
            failed: list[str] = []
            chars = 0
            for number, page in enumerate(reader.pages, start=1):
                try:
                    lines = _page_lines(page, number)
                except (LimitReachedError, QuarantineError):
                    raise
                except Exception:  # noqa: BLE001 - one unreadable page is recorded, not fatal
                    failed.append(str(number))
                    lines = []
                chars += sum(len(line.text) for line in lines)
                if chars > limits.max_chars:
                    raise QuarantineError(
                        Reason.TOO_LARGE, f"more than {limits.max_chars} characters of text by page {number}"
                    )
                pages.append(lines)
            if failed and len(failed) == count:
                raise QuarantineError(Reason.MALFORMED, "no page of the PDF could be read")
            blocks = _blocks(pages, _outline_titles(reader))
            title = _metadata_title(reader)
    except QuarantineError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise QuarantineError(Reason.ENCRYPTED, f"cannot decrypt: {exc}") from exc
    except LimitReachedError as exc:
        raise QuarantineError(Reason.DECOMPRESSION_OR_SIZE_LIMIT, str(exc)) from exc
    except RecursionError as exc:
        raise QuarantineError(Reason.NESTING_TOO_DEEP, "objects nested too deeply") from exc
    except Exception as exc:
        raise QuarantineError(Reason.MALFORMED, f"{type(exc).__name__}: {exc}"[:500]) from exc
    if not any(block.text.strip() for block in blocks):
        raise QuarantineError(Reason.NO_TEXT, f"no extractable text in {count} pages (scanned images need OCR)")
    if failed:
        notes["pages_unreadable"] = ",".join(failed)
    if title is None:
        title = next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), None)
    return ExtractedDocument(Kind.PDF, title, blocks, page_count=count, parser=parser, notes=notes)


def _metadata_title(reader: pypdf.PdfReader) -> str | None:
    try:
        meta = reader.metadata
        title = str(meta.title).strip() if meta and meta.title else ""
    except Exception:  # noqa: BLE001 - a broken Info dictionary only loses the title
        return None
    return title if title and not _BAD_TITLES.match(title) else None
