"""PDF extraction, with each backend (PDFium and pypdf), on PDFs the tests build: pages, headings,
running headers, hyphenation, encryption and damage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sluice.errors import QuarantineError, Reason
from sluice.model import BlockKind, ExtractedDocument
from sluice.pipeline.extract import ParseLimits
from sluice.pipeline.extract import pdf as pdf_module
from sluice.pipeline.extract.pdf_layout import BackendError
from support.pdfwriter import Line, document, encrypt_pdf, make_pdf

BACKEND = ["pdfium", "pypdf"]


@pytest.fixture(params=BACKEND)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def extract_pdf(data: bytes, limits: ParseLimits, backend: str = "pdfium") -> ExtractedDocument:
    return pdf_module.extract_pdf(data, replace(limits, pdf_backends=(backend,)))


SECTIONS = [
    ("Introduction", ["Sluice extracts text from documents. " * 6, "A second paragraph follows here. " * 5]),
    ("Details", ["The details section explains the approach in depth. " * 8]),
    ("Summary", ["In short, it works. " * 10]),
]


def _pdf(**kwargs: object) -> bytes:
    return make_pdf(document(SECTIONS, title="Handbook", lines_per_page=12, **kwargs), title="The Handbook")  # type: ignore[arg-type]


def test_pages_headings_and_title(backend: str) -> None:
    doc = extract_pdf(_pdf(), ParseLimits(), backend)
    assert doc.title == "The Handbook"  # from the document information dictionary
    assert doc.page_count and doc.page_count >= 2
    headings = [(b.level, b.text) for b in doc.blocks if b.kind is BlockKind.HEADING]
    assert headings == [(1, "Handbook"), (2, "Introduction"), (2, "Details"), (2, "Summary")]
    pages = [b.page for b in doc.blocks]
    assert pages == sorted(pages) and pages[0] == 1 and pages[-1] == doc.page_count
    paragraphs = [b for b in doc.blocks if b.kind is BlockKind.PARAGRAPH]
    assert len(paragraphs) == 4  # paragraph breaks come from the vertical gaps


def test_running_headers_and_page_numbers_are_removed(backend: str) -> None:
    doc = extract_pdf(
        _pdf(running_header="ACME internal - do not distribute", page_numbers=True), ParseLimits(), backend
    )
    text = "\n".join(b.text for b in doc.blocks)
    assert "ACME internal" not in text and "Page 1 of" not in text
    assert "Sluice extracts text" in text


def test_words_hyphenated_at_line_ends_are_kept_for_the_cleaner(backend: str) -> None:
    sections = [("Words", ["internationalisation " * 30])]
    doc = extract_pdf(make_pdf(document(sections, title="T", hyphenate=True)), ParseLimits(), backend)
    assert any("-\n" in b.text for b in doc.blocks)


def test_owner_password_only_opens_with_the_empty_password(backend: str) -> None:
    doc = extract_pdf(encrypt_pdf(_pdf(), user_password=""), ParseLimits(), backend)
    assert doc.notes["encrypted_owner_only"] == "true"
    assert any("Sluice extracts text" in b.text for b in doc.blocks)


def test_user_password_is_quarantined_as_encrypted(backend: str) -> None:
    with pytest.raises(QuarantineError) as info:
        extract_pdf(encrypt_pdf(_pdf(), user_password="s3cret"), ParseLimits(), backend)
    assert info.value.reason is Reason.ENCRYPTED


def test_truncated_pdf_is_malformed(backend: str) -> None:
    with pytest.raises(QuarantineError) as info:
        extract_pdf(_pdf()[:400], ParseLimits(), backend)
    assert info.value.reason is Reason.MALFORMED


def test_page_limit(backend: str) -> None:
    pages = [[Line(f"page {n} text")] for n in range(5)]
    with pytest.raises(QuarantineError) as info:
        extract_pdf(make_pdf(pages), ParseLimits(max_pages=4), backend)
    assert info.value.reason is Reason.TOO_MANY_PAGES


def test_character_limit(backend: str) -> None:
    with pytest.raises(QuarantineError) as info:
        extract_pdf(_pdf(), ParseLimits(max_chars=200), backend)
    assert info.value.reason is Reason.TOO_LARGE


def test_a_pdf_without_text_is_no_text(backend: str) -> None:
    with pytest.raises(QuarantineError) as info:
        extract_pdf(make_pdf([[Line("   ")]]), ParseLimits(), backend)
    assert info.value.reason is Reason.NO_TEXT


def test_pdfium_is_the_fast_path_and_pypdf_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _pdf()
    assert pdf_module.extract_pdf(data, ParseLimits()).parser.startswith("pypdfium2@")

    def cannot_open(data: bytes, limits: ParseLimits) -> None:
        raise BackendError("PDFium: Data format error")

    monkeypatch.setitem(pdf_module.BACKENDS, "pdfium", cannot_open)
    doc = pdf_module.extract_pdf(data, ParseLimits())
    assert doc.parser.startswith("pypdf@") and "Data format error" in doc.notes["fallback_from"]
    assert any("Sluice extracts text" in b.text for b in doc.blocks)


def test_both_backends_agree_on_the_blocks() -> None:
    data = _pdf(running_header="Header", page_numbers=True)
    fast, slow = (extract_pdf(data, ParseLimits(), b) for b in BACKEND)
    assert [(b.kind, b.level, " ".join(b.text.split())) for b in fast.blocks] == [
        (b.kind, b.level, " ".join(b.text.split())) for b in slow.blocks
    ]
