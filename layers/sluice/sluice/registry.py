"""The document registry: one record per source object, the single source of truth about what
Sluice holds for it, plus a lease that serialises work on one document."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol


class Status(StrEnum):
    PROCESSED = "PROCESSED"  # chunks written; announced to the sinks
    QUARANTINED = "QUARANTINED"  # the file cannot be read; reason recorded
    DELETED = "DELETED"  # the source object is gone; processed files removed


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    doc_id: str
    source_uri: str
    bucket: str
    key: str
    status: Status
    updated_at: str
    sequencer: str | None = None  # the newest S3 event sequencer applied
    version_id: str | None = None
    etag: str | None = None
    size: int = 0
    raw_sha256: str | None = None
    text_sha256: str | None = None
    fingerprint: str | None = None  # pipeline settings that produced the chunks
    metadata_etag: str | None = None  # the ETag of the document's .metadata.json, when it has one
    kind: str | None = None
    title: str | None = None
    page_count: int | None = None
    parser: str | None = None
    chunks: tuple[str, ...] = ()  # chunk hashes, in document order
    token_count: int = 0
    reason: str | None = None
    detail: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    doc_metadata: dict[str, Any] = field(default_factory=dict)  # custom attributes and access list
    # The outbox: an event committed with this state but not yet published, and the chunk diff it
    # announces. A retry publishes it before doing anything else.
    pending_event: str | None = None
    pending_added: tuple[str, ...] = ()
    pending_removed: tuple[str, ...] = ()

    def evolve(self, **changes: object) -> DocumentRecord:
        return replace(self, **changes)  # type: ignore[arg-type]


class Registry(Protocol):
    def acquire(self, doc_id: str, owner: str, now: float, lease_seconds: float) -> DocumentRecord | None:
        """Take the document's lease and return its record (None for a document never seen).
        Raises DocumentBusyError while another owner's lease is live."""

    def commit(self, record: DocumentRecord, owner: str, *, keep_lease_until: float | None) -> None:
        """Write the record if ``owner`` still holds the lease (else LeaseLostError); keep the lease
        until the given time, or release it (None)."""

    def release(self, doc_id: str, owner: str) -> None:
        """Give the lease back without changing the record."""

    def get(self, doc_id: str) -> DocumentRecord | None: ...

    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]: ...
