"""Bytes to structured text: one extractor per kind, one entry point, one set of limits."""

from __future__ import annotations

from sluice.errors import QuarantineError, Reason
from sluice.extract.docx import extract_docx
from sluice.extract.html import extract_html
from sluice.extract.markdown import extract_markdown
from sluice.extract.pdf import extract_pdf
from sluice.extract.pdf_layout import ParseLimits
from sluice.extract.records import extract_csv, extract_json, extract_jsonl
from sluice.extract.text import extract_text
from sluice.model import ExtractedDocument, Kind

__all__ = ["ParseLimits", "extract"]


def extract(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    if kind is Kind.PDF:
        doc = extract_pdf(data, limits)
    elif kind is Kind.HTML:
        doc = extract_html(data)
    elif kind is Kind.MARKDOWN:
        doc = extract_markdown(data)
    elif kind is Kind.DOCX:
        doc = extract_docx(data)
    elif kind is Kind.CSV:
        doc = extract_csv(data)
    elif kind is Kind.JSON:
        doc = extract_json(data)
    elif kind is Kind.JSONL:
        doc = extract_jsonl(data)
    else:
        doc = extract_text(data)
    chars = sum(len(b.text) for b in doc.blocks)
    if chars > limits.max_chars:
        raise QuarantineError(
            Reason.TOO_LARGE, f"{chars} characters of text; the limit is {limits.max_chars}", kind.value
        )
    return doc
