"""The pypdfium2 (PDFium) backend: the fast path. Lines come from PDFium's text page with the type
size, weight and position of each line's first character."""

from __future__ import annotations

import ctypes

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from sluice.errors import QuarantineError, Reason
from sluice.pipeline.extract.pdf_layout import (
    BOLD_HEADING_CHARS,
    BackendError,
    Line,
    ParseLimits,
    PdfPages,
    norm,
    usable_title,
)

VERSION = f"pypdfium2@{pdfium.version.PYPDFIUM_INFO.version}"
# PDFium joins a word hyphenated across a line end and marks the join with U+FFFE; give the hyphen
# and the line break back, so the cleaner decides (it keeps the hyphen of real compounds).
_SOFT_HYPHEN_JOIN = "\ufffe"


def _page_lines(textpage: pdfium.PdfTextPage, number: int) -> list[Line]:
    text = textpage.get_text_range()
    handle = textpage.raw
    x, y = ctypes.c_double(), ctypes.c_double()
    x_ref, y_ref = ctypes.byref(x), ctypes.byref(y)
    font_size, font_weight, origin = (
        pdfium_raw.FPDFText_GetFontSize, pdfium_raw.FPDFText_GetFontWeight, pdfium_raw.FPDFText_GetCharOrigin
    )  # fmt: skip
    lines = []
    index = 0
    for raw_line in text.split("\r\n"):
        stripped = raw_line.strip()
        if stripped:
            first = index + (len(raw_line) - len(raw_line.lstrip()))
            origin(handle, first, x_ref, y_ref)
            text_line = stripped.replace(_SOFT_HYPHEN_JOIN, "-\n") if _SOFT_HYPHEN_JOIN in stripped else stripped
            size = round(font_size(handle, first) * 2) / 2
            # Only a short line can be a bold heading (pdf_layout): spare the call for the others.
            bold = len(stripped) <= BOLD_HEADING_CHARS and font_weight(handle, first) >= 600
            lines.append(Line(text_line, size, y.value, bold, number))
        index += len(raw_line) + 2
    return lines


def _outline(pdf: pdfium.PdfDocument) -> dict[tuple[int, str], int]:
    found: dict[tuple[int, str], int] = {}
    try:
        for item in pdf.get_toc(max_depth=6):
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None:
                found[(index + 1, norm(item.get_title()))] = min(item.level + 1, 6)
    except (pdfium.PdfiumError, ValueError, RecursionError):
        return {}
    return found


def read_pdfium(data: bytes, limits: ParseLimits) -> PdfPages:
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise QuarantineError(Reason.ENCRYPTED, "the PDF needs a password to open") from exc
        raise BackendError(f"PDFium: {exc}") from exc
    try:
        notes = {}
        if pdfium_raw.FPDF_GetSecurityHandlerRevision(pdf) != -1:
            notes["encrypted_owner_only"] = "true"  # opened with the empty user password
        count = len(pdf)
        limits.check_pages(count)
        pages = []
        chars = 0
        for number in range(1, count + 1):
            page = pdf[number - 1]
            textpage = page.get_textpage()
            try:
                lines = _page_lines(textpage, number)
            finally:
                textpage.close()
                page.close()
            chars += sum(len(line.text) for line in lines)
            limits.check_chars(chars, number)
            pages.append(lines)
        title = usable_title(str(pdf.get_metadata_dict().get("Title", "")))
        return PdfPages(pages, _outline(pdf), title, count, notes, VERSION)
    except pdfium.PdfiumError as exc:
        raise BackendError(f"PDFium: {exc}") from exc
    finally:
        pdf.close()
