"""PDF: PDFium (pypdfium2) first, about fifteen times faster than pypdf with text as good; pypdf
when PDFium cannot open the file or finds no text in it. Both feed the same layout analysis
(pdf_layout), so the blocks do not depend on which library read the file."""

from __future__ import annotations

from collections.abc import Callable

from sluice.errors import QuarantineError, Reason
from sluice.model import BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.pdf_layout import BackendError, ParseLimits, PdfPages, blocks_from_lines

__all__ = ["BACKENDS", "ParseLimits", "extract_pdf"]

Backend = Callable[[bytes, ParseLimits], PdfPages]


def _pdfium(data: bytes, limits: ParseLimits) -> PdfPages:
    from sluice.pipeline.extract.pdf_pdfium import read_pdfium

    return read_pdfium(data, limits)


def _pypdf(data: bytes, limits: ParseLimits) -> PdfPages:
    from sluice.pipeline.extract.pdf_pypdf import read_pypdf

    return read_pypdf(data, limits)


BACKENDS: dict[str, Backend] = {"pdfium": _pdfium, "pypdf": _pypdf}


def extract_pdf(data: bytes, limits: ParseLimits) -> ExtractedDocument:
    """Quarantine reasons from a backend (encrypted, too many pages, too large) are final; a
    backend that cannot read the file, or reads no text, hands over to the next one."""
    failures = []
    result: ExtractedDocument | None = None
    for name in limits.pdf_backends:
        try:
            pages = BACKENDS[name](data, limits)
        except BackendError as exc:
            failures.append(f"{name}: {exc}")
            continue
        blocks = blocks_from_lines(pages.pages, pages.outline)
        title = pages.title or next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), None)
        notes = dict(pages.notes)
        if failures:
            notes["fallback_from"] = "; ".join(failures)[:500]
        result = ExtractedDocument(
            Kind.PDF, title, blocks, page_count=pages.page_count, parser=pages.parser, notes=notes
        )
        if any(b.text.strip() for b in blocks):
            return result
        failures.append(f"{name}: no text")
    if result is not None:
        raise QuarantineError(
            Reason.NO_TEXT, f"no extractable text in {result.page_count} pages (scanned images need OCR)", kind="pdf"
        )
    raise QuarantineError(Reason.MALFORMED, "; ".join(failures)[:500], kind="pdf")
