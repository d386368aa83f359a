"""DOCX, CSV and JSON extraction, through process_document so the chunks are checked too."""

from __future__ import annotations

import json

from sluice.model import BlockKind, Kind
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.detect import detect
from sluice.pipeline.extract.docx import extract_docx
from sluice.pipeline.extract.records import extract_csv, extract_json, extract_jsonl
from sluice.pipeline.process import PipelineSettings, process_document
from sluice.pipeline.tokens import count_tokens
from support.docxwriter import Docx


def _kinds(doc):  # type: ignore[no-untyped-def]
    return [(b.kind.value, b.level, b.text) for b in doc.blocks]


def test_docx_headings_paragraphs_lists_and_tables_in_order() -> None:
    data = (
        Docx(title="Field manual")
        .heading("Overview", 1)
        .paragraph("Sluice reads Word documents.")
        .bullet("first item")
        .bullet("second item")
        .heading("Limits", 2)
        .table([["Setting", "Default"], ["MaxTokens", "512"], ["Pipes | inside", "ok"]])
        .paragraph("After the table.")
        .build()
    )
    assert detect(data, "manual.docx") is Kind.DOCX
    doc = extract_docx(data)
    assert doc.title == "Field manual"
    assert _kinds(doc) == [
        ("heading", 1, "Overview"),
        ("paragraph", 0, "Sluice reads Word documents."),
        ("paragraph", 0, "- first item"),
        ("paragraph", 0, "- second item"),
        ("heading", 2, "Limits"),
        ("preformatted", 0, "Setting | Default\nMaxTokens | 512\nPipes \\| inside | ok"),
        ("paragraph", 0, "After the table."),
    ]


def test_docx_skips_deleted_text_and_field_codes() -> None:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = (
        f'<w:document xmlns:w="{w}"><w:body><w:p><w:r><w:t>kept</w:t></w:r>'
        "<w:del><w:r><w:delText>deleted</w:delText></w:r></w:del>"
        "<w:r><w:instrText>HYPERLINK x</w:instrText></w:r><w:r><w:tab/><w:t>tail</w:t></w:r></w:p></w:body></w:document>"
    )
    assert extract_docx(Docx().build(document_xml=body)).blocks[0].text == "kept\ttail"


def test_csv_rows_are_chunked_under_a_repeated_header() -> None:
    rows = ["id,name,notes"] + [f'{i},Customer {i},"Likes, commas and ""quotes"" {i}"' for i in range(400)]
    data = ("\n".join(rows) + "\n").encode()
    assert detect(data, "customers.csv") is Kind.CSV
    doc = process_document(data, "customers.csv", PipelineSettings(chunking=ChunkSettings(max_tokens=200)))
    assert len(doc.chunks) > 5
    header = "| id | name | notes |\n|---|---|---|"
    for chunk in doc.chunks:
        assert chunk.text.startswith(header + "\n|")
        assert chunk.tokens == count_tokens(chunk.text) <= 200
    assert '| 7 | Customer 7 | Likes, commas and "quotes" 7 |' in doc.chunks[0].text
    assert doc.notes["rows"] == "400" and doc.notes["columns"] == "3"


def test_csv_sniffs_semicolons_and_tabs() -> None:
    assert extract_csv(b"a;b\n1;2\n").blocks[0].text.endswith("| 1 | 2 |")
    assert extract_csv(b"a\tb\n1\t2\n").blocks[0].text.endswith("| 1 | 2 |")


def test_json_records_and_sections() -> None:
    records = [
        {"id": 1, "name": "Ada", "tags": ["math", "engines"], "address": {"city": "London"}},
        {"id": 2, "name": "Grace"},
    ]
    doc = extract_json(json.dumps(records).encode())
    assert [b.text for b in doc.blocks] == [
        "id: 1\nname: Ada\ntags: math, engines\naddress.city: London",
        "id: 2\nname: Grace",
    ]
    doc = extract_json(json.dumps({"title": "Config", "limits": {"max": 5}, "owners": [{"name": "x"}]}).encode())
    assert doc.title == "Config"
    assert _kinds(doc) == [
        ("heading", 2, "title"),
        ("preformatted", 0, "Config"),
        ("heading", 2, "limits"),
        ("preformatted", 0, "max: 5"),
        ("heading", 2, "owners"),
        ("preformatted", 0, "[].name: x"),
    ]


def test_jsonl_one_record_per_line() -> None:
    doc = extract_jsonl(b'{"q": "What?", "a": "This."}\n\n{"q": "Why?", "a": "Because."}\n')
    assert [b.text for b in doc.blocks] == ["q: What?\na: This.", "q: Why?\na: Because."]
    assert all(b.kind is BlockKind.PREFORMATTED for b in doc.blocks)


def test_json_without_extension_is_sniffed() -> None:
    assert detect(b'  {"a": 1}', "export") is Kind.JSON
