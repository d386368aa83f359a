"""Bytes to structured text: one extractor per kind, one entry point."""

from __future__ import annotations

from sluice.extract.html import extract_html
from sluice.extract.markdown import extract_markdown
from sluice.extract.pdf import PdfLimits, extract_pdf
from sluice.extract.text import extract_text
from sluice.model import ExtractedDocument, Kind

__all__ = ["PdfLimits", "extract"]


def extract(data: bytes, kind: Kind, pdf_limits: PdfLimits) -> ExtractedDocument:
    if kind is Kind.PDF:
        return extract_pdf(data, pdf_limits)
    if kind is Kind.HTML:
        return extract_html(data)
    if kind is Kind.MARKDOWN:
        return extract_markdown(data)
    return extract_text(data)
