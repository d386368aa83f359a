"""Processed-bucket layout, sidecars and content-addressed chunk ids."""

from __future__ import annotations

import json

from sluice.model import Chunk, CleaningStats, Kind, ProcessedDocument
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.files import MAX_SIDECAR_BYTES, Source, chunk_files, chunk_key, document_id, sidecar_key, text_key

SOURCE = Source(uri="s3://raw/guide.pdf", doc_id=document_id("s3://raw/guide.pdf"))


def _doc(chunks: list[Chunk], title: str = "Guide") -> ProcessedDocument:
    return ProcessedDocument(Kind.PDF, title, "text", chunks, 3, "pypdf@7", CleaningStats())


def _chunk(
    text: str = "Body text.", headings: tuple[str, ...] = ("Guide", "Intro"), pages: tuple[int, ...] = (2, 3)
) -> Chunk:
    return Chunk(text=text, tokens=3, pages=pages, headings=headings, start=0, end=len(text))


def test_document_ids_come_from_the_source_identity() -> None:
    assert document_id("s3://raw/a.pdf") == document_id("s3://raw/a.pdf") != document_id("s3://raw/b.pdf")
    assert len(document_id("s3://raw/a.pdf")) == 32


def test_keys() -> None:
    assert text_key("abc") == "documents/abc.txt"
    assert chunk_key("abc", "h1") == "chunks/abc/h1.txt"
    assert sidecar_key(chunk_key("abc", "h1")) == "chunks/abc/h1.txt.metadata.json"


def test_sidecar_carries_source_title_pages_and_headings_typed_for_bedrock() -> None:
    (f,) = chunk_files(_doc([_chunk()]), SOURCE)
    attrs = json.loads(f.sidecar)["metadataAttributes"]
    assert attrs["source_uri"]["value"] == {"type": "STRING", "stringValue": "s3://raw/guide.pdf"}
    assert attrs["title"]["value"]["stringValue"] == "Guide"
    assert attrs["page_start"]["value"] == {"type": "NUMBER", "numberValue": 2}
    assert attrs["page_end"]["value"]["numberValue"] == 3
    assert attrs["heading_path"]["value"]["stringValue"] == "Guide > Intro"
    assert attrs["headings"]["value"] == {"type": "STRING_LIST", "stringListValue": ["Guide", "Intro"]}
    assert attrs["tokens"]["value"]["numberValue"] == 3
    assert all(set(a) == {"value", "includeForEmbedding"} for a in attrs.values())


def test_sidecar_stays_under_10_kb() -> None:
    huge = tuple("h" * 3000 for _ in range(30))
    (f,) = chunk_files(_doc([_chunk(headings=huge)], title="t" * 5000), SOURCE)
    assert len(f.sidecar) <= MAX_SIDECAR_BYTES
    assert json.loads(f.sidecar)["metadataAttributes"]["source_uri"]


def test_chunk_hash_covers_text_and_metadata() -> None:
    base = chunk_files(_doc([_chunk()]), SOURCE)[0].hash
    assert chunk_files(_doc([_chunk()]), SOURCE)[0].hash == base
    assert chunk_files(_doc([_chunk(text="Other text.")]), SOURCE)[0].hash != base
    assert chunk_files(_doc([_chunk(pages=(4,))]), SOURCE)[0].hash != base
    assert chunk_files(_doc([_chunk()], title="Renamed"), SOURCE)[0].hash != base


def test_chunk_settings_defaults_scale_with_max_tokens() -> None:
    assert ChunkSettings() == ChunkSettings(max_tokens=512, overlap_tokens=64, min_tokens=128)
    assert ChunkSettings(max_tokens=100) == ChunkSettings(max_tokens=100, overlap_tokens=12, min_tokens=25)
