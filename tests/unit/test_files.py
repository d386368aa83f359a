"""Processed files: their keys, their sidecars (within what a vector keeps), content-addressed chunk ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sluice.errors import QuarantineError, Reason
from sluice.model import Chunk, CleaningStats, Kind, ProcessedDocument
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.files import (
    MAX_SIDECAR_BYTES,
    OPTIONAL_FIELDS,
    S3_VECTORS,
    ChunkFile,
    Source,
    chunk_files,
    chunk_key,
    document_id,
    sidecar_key,
    text_key,
    vector_metadata_bytes,
)
from sluice.pipeline.metadata import Access, DocumentMetadata, Principal, PrincipalType

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


# -- what a vector keeps of a chunk's metadata (S3 Vectors: 1 KB, 35 keys) ---------------------------


def _attrs(f: ChunkFile) -> dict[str, Any]:
    return dict(json.loads(f.sidecar)["metadataAttributes"])


def _source(attributes: dict[str, Any] | None = None, acl: tuple[Principal, ...] = (), uri: str = SOURCE.uri) -> Source:
    return Source(uri=uri, doc_id=document_id(uri), metadata=DocumentMetadata(attributes=attributes or {}, acl=acl))


def test_a_sidecar_that_fits_keeps_every_field_and_drops_nothing() -> None:
    (f,) = chunk_files(_doc([_chunk()]), SOURCE)
    assert f.dropped == ()
    assert vector_metadata_bytes(_attrs(f)) <= S3_VECTORS.max_bytes
    assert {"title", "heading_path", "headings", "page_start", "tokens"} <= set(_attrs(f))


def test_optional_fields_are_left_out_in_the_documented_order_until_the_sidecar_fits() -> None:
    headings = tuple(f"Section {i} " + "x" * 60 for i in range(8))
    (f,) = chunk_files(_doc([_chunk(headings=headings)], title="A title " * 20), SOURCE)
    attrs = _attrs(f)
    assert f.dropped == OPTIONAL_FIELDS[: len(f.dropped)] and "headings" in f.dropped
    assert not set(f.dropped) & set(attrs)
    assert vector_metadata_bytes(attrs) <= S3_VECTORS.max_bytes and len(attrs) <= S3_VECTORS.max_keys
    assert {"source_uri", "doc_id"} <= set(attrs)
    # Without a vector store's limits, only Bedrock's 10 KB sidecar file binds: nothing is dropped.
    (unlimited,) = chunk_files(_doc([_chunk(headings=headings)], title="A title " * 20), SOURCE, limits=None)
    assert unlimited.dropped == ()


def test_required_fields_that_cannot_fit_quarantine_the_document_with_the_reason() -> None:
    reader = Principal("readers-" + "r" * 80, PrincipalType.GROUP, Access.ALLOW)
    many = {f"field_{i}": "v" for i in range(36)}  # 36 of the owner's attributes: more keys than a vector keeps
    with pytest.raises(QuarantineError) as keys:
        chunk_files(_doc([_chunk()]), _source(many))
    assert keys.value.reason is Reason.METADATA_TOO_LARGE and "metadata keys" in keys.value.detail
    big = {"summary": "s" * 900}  # the owner's own attribute alone is near the 1 KB budget
    with pytest.raises(QuarantineError) as size:
        chunk_files(_doc([_chunk()]), _source(big, (reader,)))
    assert size.value.reason is Reason.METADATA_TOO_LARGE and "summary" in size.value.detail


def test_the_record_notes_which_fields_were_left_out() -> None:
    from sluice.ingest import _dropped_note

    headings = tuple("h" * 200 for _ in range(6))
    files = chunk_files(_doc([_chunk(headings=headings), _chunk(text="Other.")]), SOURCE)
    assert _dropped_note(files) == {"sidecar_fields_dropped": ",".join(sorted(files[0].dropped))}
    assert _dropped_note(chunk_files(_doc([_chunk()]), SOURCE)) == {}


_word = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=5, max_size=150)


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(min_size=5, max_size=400),
    headings=st.lists(st.text(min_size=10, max_size=200), max_size=12),
    pages=st.lists(st.integers(1, 100_000), max_size=3),
    attributes=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda k: not k.startswith("acl_")),
        st.one_of(_word, st.integers(-(10**9), 10**9), st.booleans(), st.lists(_word, min_size=1, max_size=4)),
        max_size=40,
    ),
    principals=st.lists(st.from_regex(r"[a-z]{10,60}", fullmatch=True), max_size=10),
    uri_tail=st.text(alphabet="abcdefghij/-._", min_size=1, max_size=300),
)
def test_no_sidecar_written_is_over_the_vector_limits(
    title: str,
    headings: list[str],
    pages: list[int],
    attributes: dict[str, Any],
    principals: list[str],
    uri_tail: str,
) -> None:
    acl = tuple(Principal(p, PrincipalType.GROUP, Access.ALLOW) for p in principals)
    source = _source(attributes, acl, uri="s3://raw/" + uri_tail)
    chunk = _chunk(headings=tuple(headings), pages=tuple(sorted(pages)))
    refused: Reason | None = None
    try:
        files = chunk_files(_doc([chunk], title=title), source)
    except QuarantineError as exc:
        refused, files = exc.reason, []
    assert refused in (None, Reason.METADATA_TOO_LARGE)  # refused for what cannot fit, never otherwise
    event(f"refused: {refused is not None}; dropped: {bool(files and files[0].dropped)}")
    for f in files:
        attrs = _attrs(f)
        assert len(f.sidecar) <= MAX_SIDECAR_BYTES
        assert len(attrs) <= S3_VECTORS.max_keys
        assert vector_metadata_bytes(attrs) <= S3_VECTORS.max_bytes
        assert set(f.dropped) <= set(OPTIONAL_FIELDS) and not set(f.dropped) & set(attrs)
        assert {"source_uri", "doc_id", *attributes, *(["acl_allow"] if acl else [])} <= set(attrs)
