"""Bytes to structured text: one extractor per kind, one entry point, one set of limits.

Each extractor is imported when it is first needed, so the ingest function's own process (which
hands parsing to the sandbox) never loads them."""

from __future__ import annotations

from sluice.errors import QuarantineError, Reason
from sluice.model import ExtractedDocument, Kind
from sluice.pipeline.extract.pdf_layout import ParseLimits

__all__ = ["ParseLimits", "extract"]


def _read(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    if kind is Kind.PDF:
        from sluice.pipeline.extract.pdf import extract_pdf

        return extract_pdf(data, limits)
    if kind is Kind.HTML:
        from sluice.pipeline.extract.html import extract_html

        return extract_html(data)
    if kind is Kind.MARKDOWN:
        from sluice.pipeline.extract.markdown import extract_markdown

        return extract_markdown(data)
    if kind is Kind.DOCX:
        from sluice.pipeline.extract.docx import extract_docx

        return extract_docx(data)
    if kind in (Kind.CSV, Kind.JSON, Kind.JSONL):
        from sluice.pipeline.extract import records

        reader = {Kind.CSV: records.extract_csv, Kind.JSON: records.extract_json, Kind.JSONL: records.extract_jsonl}
        return reader[kind](data)
    from sluice.pipeline.extract.text import extract_text

    return extract_text(data)


def extract(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    doc = _read(data, kind, limits)
    chars = sum(len(b.text) for b in doc.blocks)
    if chars > limits.max_chars:
        raise QuarantineError(
            Reason.TOO_LARGE, f"{chars} characters of text; the limit is {limits.max_chars}", kind.value
        )
    return doc
