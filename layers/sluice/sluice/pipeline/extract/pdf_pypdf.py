"""The pypdf backend: lines of text with their type size, weight and position, per page.

pypdf reports every piece of text it emits together with its font, size and text matrix; lines
are rebuilt from those pieces, so the text is exactly pypdf's.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError

from sluice.errors import QuarantineError, Reason
from sluice.pipeline.extract.pdf_layout import BOLD, BackendError, Line, ParseLimits, PdfPages, norm, usable_title


def _open(data: bytes) -> tuple[pypdf.PdfReader, dict[str, str]]:
    notes: dict[str, str] = {}
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # Owner-password-only files open with the empty user password.
        if not reader.decrypt(""):
            raise QuarantineError(Reason.ENCRYPTED, "the PDF needs a password to open")
        notes["encrypted_owner_only"] = "true"
    return reader, notes


def _page_lines(page: Any, number: int) -> list[Line]:
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
        pieces.append((text, size * scale, y, bool(BOLD.search(name))))

    page.extract_text(visitor_text=visit)
    lines: list[Line] = []
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
            lines.append(Line(text.strip(), size, y or 0.0, letters > 0 and bold_chars >= letters, number))
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
                found[(index + 1, norm(str(item.title)))] = min(depth + 1, 6)

    try:
        walk(reader.outline, 0)
    except (PdfReadError, RecursionError, LimitReachedError, KeyError, ValueError, TypeError):
        return {}
    return found


def _metadata_title(reader: pypdf.PdfReader) -> str | None:
    try:
        meta = reader.metadata
        return usable_title(str(meta.title) if meta and meta.title else "")
    except Exception:  # noqa: BLE001 - a broken Info dictionary only loses the title
        return None


def read_pypdf(data: bytes, limits: ParseLimits) -> PdfPages:
    parser = f"pypdf@{pypdf.__version__}"
    try:
        with pypdf.apply_configuration(
            zlib_maximum_output_length=limits.max_stream_bytes,
            lzw_maximum_output_length=limits.max_stream_bytes,
            run_length_maximum_output_length=limits.max_stream_bytes,
        ):
            reader, notes = _open(data)
            count = len(reader.pages)
            limits.check_pages(count)
            pages: list[list[Line]] = []
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
                limits.check_chars(chars, number)
                pages.append(lines)
            if failed and len(failed) == count:
                raise BackendError("no page of the PDF could be read")
            if failed:
                notes["pages_unreadable"] = ",".join(failed)
            return PdfPages(pages, _outline_titles(reader), _metadata_title(reader), count, notes, parser)
    except (QuarantineError, BackendError):
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise QuarantineError(Reason.ENCRYPTED, f"cannot decrypt: {exc}") from exc
    except LimitReachedError as exc:
        raise QuarantineError(Reason.DECOMPRESSION_OR_SIZE_LIMIT, str(exc)) from exc
    except RecursionError as exc:
        raise QuarantineError(Reason.NESTING_TOO_DEEP, "objects nested too deeply") from exc
    except Exception as exc:
        raise BackendError(f"{type(exc).__name__}: {exc}"[:500]) from exc
