"""Bytes to structured text: one extractor per kind, one entry point."""

from __future__ import annotations

from sluice.extract.docx import extract_docx
from sluice.extract.html import extract_html
from sluice.extract.markdown import extract_markdown
from sluice.extract.pdf import PdfLimits, extract_pdf
from sluice.extract.records import extract_csv, extract_json, extract_jsonl
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
    if kind is Kind.DOCX:
        return extract_docx(data)
    if kind is Kind.CSV:
        return extract_csv(data)
    if kind is Kind.JSON:
        return extract_json(data)
    if kind is Kind.JSONL:
        return extract_jsonl(data)
    return extract_text(data)
