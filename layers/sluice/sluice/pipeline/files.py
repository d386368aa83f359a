"""Where processed files live in ProcessedBucket, what their sidecars say, and how chunks are named.

    documents/{doc_id}.txt                         the cleaned document (Kendra indexes whole documents)
    chunks/{doc_id}/{chunk_hash}.txt               one chunk (the knowledge base's data source prefix)
    chunks/{doc_id}/{chunk_hash}.txt.metadata.json its Bedrock metadata sidecar

``doc_id`` comes from the source's identity, never from its content. ``chunk_hash`` covers the chunk
file and its sidecar, so an unchanged hash means nothing a sink holds needs to change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sluice.access import ALLOW, DENY, allowed
from sluice.errors import QuarantineError, Reason
from sluice.model import Chunk, ProcessedDocument
from sluice.pipeline.metadata import MAX_LIST, SIDECAR_SUFFIX, DocumentMetadata

CHUNK_PREFIX = "chunks/"
DOCUMENT_PREFIX = "documents/"

MAX_SIDECAR_BYTES = 10 * 1024  # Bedrock ignores larger metadata files
MAX_STRING = 1024
MAX_LIST_ITEMS = 10
# 80 bits: unique within a document beyond doubt, and short enough that a 4,000-chunk manifest fits
# a DynamoDB item (400 KB) three times over (current chunks plus the pending diff).
CHUNK_HASH_CHARS = 20


def document_id(source_uri: str) -> str:
    """Stable id of a source object: the same key is the same document across versions."""
    return hashlib.sha256(source_uri.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``s3://bucket/key`` → (bucket, key); None when ``uri`` is not of that form."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        return None
    bucket, key = uri[5:].split("/", 1)
    return (bucket, key) if bucket and key else None


def text_key(doc_id: str) -> str:
    return f"{DOCUMENT_PREFIX}{doc_id}.txt"


def chunk_prefix(doc_id: str) -> str:
    return f"{CHUNK_PREFIX}{doc_id}/"


def chunk_key(doc_id: str, chunk_hash: str) -> str:
    return f"{chunk_prefix(doc_id)}{chunk_hash}.txt"


def chunk_uri(bucket: str, doc_id: str, chunk_hash: str) -> str:
    """The chunk file's S3 URI: the knowledge base names the chunk by it."""
    return s3_uri(bucket, chunk_key(doc_id, chunk_hash))


def processed_owner(key: str) -> tuple[str, str | None] | None:
    """Whose processed file ``key`` is: (doc_id, chunk hash) for a chunk or its sidecar, (doc_id,
    None) for a cleaned text, None for anything else in the bucket."""
    if key.startswith(CHUNK_PREFIX):
        doc_id, _, name = key[len(CHUNK_PREFIX) :].partition("/")
        chunk_hash = name.split(".", 1)[0]
        return (doc_id, chunk_hash) if doc_id and chunk_hash and "/" not in name else None
    if key.startswith(DOCUMENT_PREFIX) and key.endswith(".txt"):
        doc_id = key[len(DOCUMENT_PREFIX) : -len(".txt")]
        return (doc_id, None) if doc_id and "/" not in doc_id else None
    return None


def sidecar_key(key: str) -> str:
    return f"{key}{SIDECAR_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Source:
    """What the sidecars say about where a document came from, and who may read it."""

    uri: str  # s3://bucket/key, or the original URL for connector items
    doc_id: str
    metadata: DocumentMetadata = field(default_factory=DocumentMetadata)


@dataclass(frozen=True, slots=True)
class ChunkFile:
    hash: str
    text: str
    sidecar: bytes
    tokens: int
    dropped: tuple[str, ...] = ()  # optional sidecar fields left out to fit the limits


@dataclass(frozen=True, slots=True)
class VectorLimits:
    """How much of a chunk's custom metadata the vector store keeps. Bedrock with Amazon S3 Vectors
    keeps at most 1 KB (filterable and non-filterable together) and 35 keys per vector, and refuses
    the chunk at ingestion otherwise."""

    max_bytes: int = 1024
    max_keys: int = 35


S3_VECTORS = VectorLimits()
# Sluice's own fields a chunk can do without, left out in this order until its sidecar fits. Never
# left out: source_uri and doc_id (citations, reconciliation), acl_allow / acl_deny (who may read
# it) and the document's own attributes (the filters its owner relies on): a document whose
# required fields cannot fit is refused (metadata_too_large).
OPTIONAL_FIELDS = ("headings", "heading_path", "title", "tokens", "content_type", "page_end", "page_start")


def _string(value: str) -> dict[str, Any]:
    return {"type": "STRING", "stringValue": value[:MAX_STRING]}


def _attr(value: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "includeForEmbedding": False}


def _typed(value: str | float | bool | list[str]) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "BOOLEAN", "booleanValue": value}
    if isinstance(value, float | int):
        return {"type": "NUMBER", "numberValue": value}
    if isinstance(value, list):
        return {"type": "STRING_LIST", "stringListValue": value}
    return _string(value)


def chunk_metadata(doc: ProcessedDocument, chunk: Chunk, source: Source) -> dict[str, Any]:
    """Bedrock's typed ``metadataAttributes`` for one chunk (filterable in Retrieve): Sluice's own,
    the document's custom attributes, and its access list as ``acl_allow`` / ``acl_deny``
    principal lists (``group:finance``, ``user:alice@example.com``; ``acl_allow`` is ``["*"]`` for an
    open document) for retrieval filters (``sluice.access``)."""
    attrs: dict[str, Any] = {name: _attr(_typed(value)) for name, value in source.metadata.attributes.items()}
    for name, principals in ((ALLOW, allowed(source.metadata.allowed())), (DENY, source.metadata.denied())):
        if len(principals) > MAX_LIST:
            raise QuarantineError(
                Reason.ACL_UNRESOLVED,
                f"{len(principals)} {name} principals; a Bedrock metadata list holds {MAX_LIST} (use groups)",
            )
        if principals:
            attrs[name] = _attr({"type": "STRING_LIST", "stringListValue": principals})
    attrs |= {
        "source_uri": _attr(_string(source.uri)),
        "doc_id": _attr(_string(source.doc_id)),
        "title": _attr(_string(doc.title)),
        "content_type": _attr(_string(doc.kind.value)),
        "tokens": _attr({"type": "NUMBER", "numberValue": chunk.tokens}),
    }
    if chunk.pages:
        attrs["page_start"] = _attr({"type": "NUMBER", "numberValue": chunk.pages[0]})
        attrs["page_end"] = _attr({"type": "NUMBER", "numberValue": chunk.pages[-1]})
    if chunk.headings:
        attrs["heading_path"] = _attr(_string(" > ".join(chunk.headings)))
        attrs["headings"] = _attr(
            {"type": "STRING_LIST", "stringListValue": [h[:MAX_STRING] for h in chunk.headings[-MAX_LIST_ITEMS:]]}
        )
    return {"metadataAttributes": attrs}


def _plain(value: dict[str, Any]) -> Any:
    return next(v for k, v in value.items() if k != "type")


def vector_metadata_bytes(attrs: dict[str, Any]) -> int:
    """What the vector store counts of a chunk's metadata, from above: the compact JSON of each key
    and its plain value (the keys' and values' own bytes plus quotes and separators)."""
    plain = {name: _plain(attr["value"]) for name, attr in attrs.items()}
    return len(json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode())


def _over(body: bytes, attrs: dict[str, Any], limits: VectorLimits | None) -> str | None:
    if len(body) > MAX_SIDECAR_BYTES:
        return f"the sidecar is {len(body)} bytes; Bedrock reads at most {MAX_SIDECAR_BYTES}"
    if limits is None:
        return None
    if len(attrs) > limits.max_keys:
        return f"{len(attrs)} metadata keys; the vector store keeps {limits.max_keys}"
    size = vector_metadata_bytes(attrs)
    if size > limits.max_bytes:
        return f"{size} bytes of metadata; the vector store keeps {limits.max_bytes}"
    return None


def _sidecar_bytes(metadata: dict[str, Any], limits: VectorLimits | None) -> tuple[bytes, tuple[str, ...]]:
    """The sidecar, with optional fields left out (OPTIONAL_FIELDS, in order) until it fits Bedrock's
    10 KB file limit and the vector store's ``limits``; and the fields left out."""
    attrs = metadata["metadataAttributes"]
    dropped: list[str] = []
    for name in (None, *OPTIONAL_FIELDS):
        if name is not None:
            if name not in attrs:
                continue
            attrs.pop(name)
            dropped.append(name)
        body = json.dumps(metadata, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        problem = _over(body, attrs, limits)
        if problem is None:
            return body, tuple(dropped)
    kept = ", ".join(f"{k} ({vector_metadata_bytes({k: v})} bytes)" for k, v in sorted(attrs.items()))
    reason = Reason.METADATA_INVALID if len(body) > MAX_SIDECAR_BYTES else Reason.METADATA_TOO_LARGE
    raise QuarantineError(reason, f"chunk metadata does not fit: {problem}, with only the required fields: {kept}")


def chunk_files(doc: ProcessedDocument, source: Source, limits: VectorLimits | None = S3_VECTORS) -> list[ChunkFile]:
    """The document's chunk files and sidecars. ``limits``: what the vector store keeps of a chunk's
    metadata (None: no limit beyond Bedrock's 10 KB sidecar file)."""
    files = []
    for chunk in doc.chunks:
        sidecar, dropped = _sidecar_bytes(chunk_metadata(doc, chunk, source), limits)
        content = chunk.text.encode("utf-8", "surrogatepass") + b"\x00" + sidecar
        digest = hashlib.sha256(content).hexdigest()[:CHUNK_HASH_CHARS]
        files.append(ChunkFile(digest, chunk.text, sidecar, chunk.tokens, dropped))
    return files
