"""The ingestion service: one S3 object event in, the registry, ProcessedBucket and the event bus
brought in line with the object's current state.

The event is a hint, not the truth. Under the document's lease the service re-reads the object
(level-triggered), so duplicates, reordering and redrives all converge on what S3 holds now. Each
transition is committed to the registry together with the event that announces it (an outbox); the
event is published after the commit and cleared after publishing, so a crash anywhere is finished by
the retry, and nothing is announced that was not recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from sluice.bus import DOCUMENT_CHANGED, DOCUMENT_DELETED, DOCUMENT_QUARANTINED, DocumentEvent, EventBus
from sluice.errors import DocumentBusyError, QuarantineError, Reason, TransientError
from sluice.pipeline.files import (
    S3_VECTORS,
    ChunkFile,
    Source,
    VectorLimits,
    chunk_files,
    chunk_key,
    chunk_prefix,
    document_id,
    processed_owner,
    s3_uri,
    sidecar_key,
    text_key,
)
from sluice.pipeline.metadata import document_of, parse_metadata, sidecar_of
from sluice.pipeline.process import Extractor, PipelineSettings, in_process, process_document
from sluice.registry import DocumentRecord, Registry, Status
from sluice.storage import BucketWriter, ObjectHead, ObjectReader
from sluice.timestamps import iso

MAX_EVENT_DETAIL_BYTES = 200_000  # EventBridge entries are capped at 256 KB


def sequencer_order(sequencer: str) -> str:
    """S3 sequencers of one key compare as hex strings right-padded with zeros to equal length."""
    return sequencer.upper().ljust(64, "0")


def is_older(sequencer: str | None, than: str | None) -> bool:
    if not sequencer or not than:
        return False
    return sequencer_order(sequencer) < sequencer_order(than)


def newest(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return a or b
    return a if sequencer_order(a) >= sequencer_order(b) else b


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One S3 notification record, decoded (keys arrive URL-encoded)."""

    bucket: str
    key: str
    removed: bool  # ObjectRemoved:* rather than ObjectCreated:*
    sequencer: str | None = None
    version_id: str | None = None
    etag: str | None = None
    # A recheck the reconciler asked for (its pass id): no S3 stamp, so this names the request.
    trigger: str | None = None
    rebuild: bool = False  # rewrite the document's processed files and delete strays (a repair)

    @property
    def idempotency_key(self) -> str:
        """Business identity of the event: bucket, key, kind and sequencer (or version, or ETag, or
        the reconciliation pass that asked for it)."""
        stamp = self.sequencer or self.version_id or self.etag or self.trigger or ""
        kind = "removed" if self.removed else "rebuild" if self.rebuild else "created"
        return f"{self.bucket}/{self.key}#{kind}#{stamp}"


class Action(StrEnum):
    CHANGED = "changed"  # new or different content: chunks written, sinks told
    UNCHANGED = "unchanged"  # same content as recorded: nothing downstream
    DELETED = "deleted"
    QUARANTINED = "quarantined"
    STALE = "stale"  # an older event than one already applied
    IGNORED = "ignored"  # nothing to do (e.g. the delete of an object never ingested)


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    doc_id: str
    source_uri: str
    chunks: int = 0
    added: int = 0
    removed: int = 0
    tokens: int = 0
    reason: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class IngestSettings:
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    lease_seconds: float = 900.0  # at least the function timeout: a crashed worker's lease expires
    busy_wait_seconds: float = 10.0  # how long to wait for another worker's lease before retrying later
    require_acl: bool = False  # refuse (acl_unresolved) documents whose metadata names no principal
    # What the knowledge base's vector store keeps of a chunk's metadata (None: other stores, no limit).
    vector_limits: VectorLimits | None = S3_VECTORS


def _dropped_note(files: Iterable[ChunkFile]) -> dict[str, str]:
    """The record notes which optional sidecar fields some chunk left out to fit the vector store."""
    dropped = sorted({name for f in files for name in f.dropped})
    return {"sidecar_fields_dropped": ",".join(dropped)} if dropped else {}


class IngestService:
    def __init__(
        self,
        *,
        raw: ObjectReader,
        processed: BucketWriter,
        registry: Registry,
        bus: EventBus,
        settings: IngestSettings,
        extractor: Extractor = in_process,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.extractor = extractor
        self.raw = raw
        self.processed = processed
        self.registry = registry
        self.bus = bus
        self.settings = settings
        self._clock = clock
        self._sleep = sleep

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, event: ObjectEvent, deadline: float | None = None) -> Outcome:
        """``deadline`` (time.monotonic()) is when the invocation must be done: parsing gets what is
        left, and a document that cannot finish in time is retried rather than quarantined."""
        parent = document_of(event.key)
        if parent is not None:
            # A document's .metadata.json changed: the document is re-read with it. (Its sequencer
            # orders the sidecar's writes, not the document's, so it is not carried over.)
            event = ObjectEvent(event.bucket, parent, removed=False, trigger=event.trigger, rebuild=event.rebuild)
        uri = s3_uri(event.bucket, event.key)
        doc_id = document_id(uri)
        owner = uuid.uuid4().hex
        record = self._acquire(doc_id, owner)
        try:
            return _Transition(self, event, doc_id, uri, owner, record, deadline).run()
        except BaseException:
            # The original error matters more than the release; an unreleased lease simply expires.
            with contextlib.suppress(Exception):
                self.registry.release(doc_id, owner)
            raise

    def _acquire(self, doc_id: str, owner: str) -> DocumentRecord | None:
        deadline = self._clock() + self.settings.busy_wait_seconds
        delay = 0.05
        while True:
            try:
                return self.registry.acquire(doc_id, owner, self._clock(), self.settings.lease_seconds)
            except DocumentBusyError:
                if self._clock() + delay > deadline:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 1.0)


class _Transition:
    """The work for one event on one document, done while holding its lease."""

    def __init__(
        self,
        service: IngestService,
        event: ObjectEvent,
        doc_id: str,
        uri: str,
        owner: str,
        record: DocumentRecord | None,
        deadline: float | None,
    ) -> None:
        self.deadline = deadline
        self.s = service
        self.event = event
        self.doc_id = doc_id
        self.uri = uri
        self.owner = owner
        self.record = record
        self.now = service._clock()
        self.metadata_etag: str | None = record.metadata_etag if record is not None else None

    @property
    def _lease_until(self) -> float:
        return self.now + self.s.settings.lease_seconds

    def run(self) -> Outcome:
        if self.record is not None and self.record.pending_event:
            self.record = self._finish(self.record, keep_lease=True)
        record = self.record
        if record is not None and is_older(self.event.sequencer, record.sequencer):
            self.s.registry.release(self.doc_id, self.owner)
            return Outcome(Action.STALE, self.doc_id, self.uri, chunks=len(record.chunks))
        head = self.s.raw.head(self.event.bucket, self.event.key)
        if head is None:
            return self._delete()
        return self._upsert(head)

    # -- transitions -----------------------------------------------------------------------------

    def _upsert(self, head: ObjectHead) -> Outcome:
        record = self.record
        fingerprint = self.s.settings.pipeline.fingerprint()
        meta_head = self.s.raw.head(head.bucket, sidecar_of(head.key))
        self.metadata_etag = meta_head.etag if meta_head is not None else None
        settled = (
            record is not None
            and not self.event.rebuild
            and record.status is not Status.DELETED
            and record.fingerprint == fingerprint
            and record.metadata_etag == self.metadata_etag
        )
        if settled and record is not None and (record.version_id, record.etag) == (head.version_id, head.etag):
            return self._unchanged(record, head, record.raw_sha256)
        if head.size > self.s.settings.pipeline.max_bytes:
            limit = self.s.settings.pipeline.max_bytes
            return self._quarantine(
                head, None, QuarantineError(Reason.TOO_LARGE, f"{head.size} bytes; the limit is {limit}")
            )
        data = self.s.raw.get(head)
        raw_sha = hashlib.sha256(data).hexdigest()
        if settled and record is not None and record.raw_sha256 == raw_sha:
            return self._unchanged(record, head, raw_sha)
        # Read before the try: S3 failing to answer is a retry, never a verdict on the document.
        sidecar = self.s.raw.get(meta_head) if meta_head is not None else None
        try:
            metadata = parse_metadata(sidecar, head.metadata)
            if self.s.settings.require_acl and not metadata.acl:
                raise QuarantineError(Reason.ACL_UNRESOLVED, f"no access list: add {sidecar_of(head.key)}")
            doc = process_document(
                data, self.event.key, self.s.settings.pipeline, extractor=self.s.extractor, deadline=self.deadline
            )
            doc = replace(doc, title=metadata.title or doc.title)
            source = Source(uri=metadata.source_url or self.uri, doc_id=self.doc_id, metadata=metadata)
            files = {
                f.hash: f for f in chunk_files(doc, source, self.s.settings.vector_limits)
            }  # identical chunks share one
        except QuarantineError as exc:
            return self._quarantine(head, raw_sha, exc)
        except TransientError:
            raise  # out of time in this invocation: the retry gets a fresh budget
        except Exception as exc:  # noqa: BLE001 - parsing is pure: the same bytes would fail again
            crash = QuarantineError(Reason.WORKER_CRASH, f"{type(exc).__name__} while parsing: {exc}"[:500])
            return self._quarantine(head, raw_sha, crash)

        hashes = tuple(files)
        old = set(record.chunks) if record is not None and record.status is Status.PROCESSED else set()
        # Files an earlier attempt wrote and never committed (it failed or timed out after writing) are
        # named by no record: one listing of the document's prefix finds them.
        self._sweep(keep=set(hashes) | old)
        for chunk_hash, f in files.items():
            if chunk_hash not in old or self.event.rebuild:
                key = chunk_key(self.doc_id, chunk_hash)
                self.s.processed.put(key, f.text.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8")
                self.s.processed.put(sidecar_key(key), f.sidecar, "application/json")
        text_sha = hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest()
        stale_text = record is None or record.status is not Status.PROCESSED or record.text_sha256 != text_sha
        if stale_text or self.event.rebuild:
            self.s.processed.put(
                text_key(self.doc_id), doc.text.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8"
            )

        added = tuple(h for h in hashes if h not in old)
        removed = tuple(h for h in (record.chunks if record else ()) if h not in files and h in old)
        changed = bool(added or removed) or record is None or record.status is not Status.PROCESSED
        new = self._base(head, raw_sha).evolve(
            status=Status.PROCESSED,
            text_sha256=text_sha,
            fingerprint=fingerprint,
            kind=doc.kind.value,
            title=doc.title,
            page_count=doc.page_count,
            parser=doc.parser,
            chunks=hashes,
            token_count=doc.token_count,
            notes=doc.notes | _dropped_note(files.values()),
            doc_metadata=metadata.to_json() if metadata.attributes or metadata.acl else {},
            pending_event=DOCUMENT_CHANGED if changed else None,
            pending_added=added,
            pending_removed=removed,
        )
        if not changed:
            self.s.registry.commit(new, self.owner, keep_lease_until=None)
            return Outcome(Action.UNCHANGED, self.doc_id, self.uri, chunks=len(hashes), tokens=doc.token_count)
        self.s.registry.commit(new, self.owner, keep_lease_until=self._lease_until)
        self._finish(new, keep_lease=False)
        return Outcome(
            Action.CHANGED,
            self.doc_id,
            self.uri,
            chunks=len(hashes),
            added=len(added),
            removed=len(removed),
            tokens=doc.token_count,
        )

    def _unchanged(self, record: DocumentRecord, head: ObjectHead, raw_sha: str | None) -> Outcome:
        """Same bytes as recorded: remember the newer version and sequencer, and do nothing else."""
        self.s.registry.commit(
            record.evolve(
                sequencer=newest(record.sequencer, self.event.sequencer),
                version_id=head.version_id,
                etag=head.etag,
                raw_sha256=raw_sha,
                metadata_etag=self.metadata_etag,
                updated_at=iso(self.now),
            ),
            self.owner,
            keep_lease_until=None,
        )
        return Outcome(
            Action.UNCHANGED,
            self.doc_id,
            self.uri,
            chunks=len(record.chunks),
            tokens=record.token_count,
            reason=record.reason,
        )

    def _quarantine(self, head: ObjectHead, raw_sha: str | None, exc: QuarantineError) -> Outcome:
        record = self.record
        held = record.chunks if record is not None and record.status is Status.PROCESSED else ()
        if self.event.rebuild:
            self._sweep(keep=set(held))  # what it held goes with the announcement (see _finish)
        new = self._base(head, raw_sha).evolve(
            status=Status.QUARANTINED,
            kind=exc.kind,
            fingerprint=self.s.settings.pipeline.fingerprint(),
            reason=exc.reason.value,
            detail=exc.detail[:1000],
            pending_event=DOCUMENT_QUARANTINED,
            pending_removed=held,
        )
        self.s.registry.commit(new, self.owner, keep_lease_until=self._lease_until)
        self._finish(new, keep_lease=False)
        return Outcome(
            Action.QUARANTINED, self.doc_id, self.uri, removed=len(held), reason=exc.reason.value, detail=exc.detail
        )

    def _delete(self) -> Outcome:
        record = self.record
        if self.event.rebuild or record is None:  # None: an earlier attempt may have written files
            processed = record is not None and record.status is Status.PROCESSED
            self._sweep(keep=set(record.chunks) if record is not None and processed else set(), text=not processed)
        if record is None or record.status is Status.DELETED:
            if record is None:
                self.s.registry.release(self.doc_id, self.owner)
            else:
                self.s.registry.commit(
                    record.evolve(sequencer=newest(record.sequencer, self.event.sequencer)),
                    self.owner,
                    keep_lease_until=None,
                )
            return Outcome(Action.IGNORED, self.doc_id, self.uri)
        held = record.chunks if record.status is Status.PROCESSED else ()
        new = record.evolve(
            status=Status.DELETED,
            sequencer=newest(record.sequencer, self.event.sequencer),
            # A delete notification names the delete marker; a put notification that found the
            # object gone names a version that no longer exists (possibly older than one announced).
            version_id=self.event.version_id if self.event.removed else None,
            updated_at=iso(self.now),
            chunks=(),
            token_count=0,
            reason=None,
            detail=None,
            pending_event=DOCUMENT_DELETED,
            pending_added=(),
            pending_removed=held,
        )
        self.s.registry.commit(new, self.owner, keep_lease_until=self._lease_until)
        self._finish(new, keep_lease=False)
        return Outcome(Action.DELETED, self.doc_id, self.uri, removed=len(held))

    # -- helpers ---------------------------------------------------------------------------------

    def _sweep(self, keep: set[str], *, text: bool = False) -> None:
        """Under the lease: delete the document's chunk files (and, with ``text``, its cleaned text)
        that neither its record nor this transition names. Files the record names are left to the
        transition, which deletes them only after announcing their removal."""
        keys = [
            k
            for k in self.s.processed.keys(chunk_prefix(self.doc_id))
            if (owner := processed_owner(k)) is None or owner[1] not in keep
        ]
        if text:
            keys.append(text_key(self.doc_id))
        if keys:
            self.s.processed.delete(keys)

    def _base(self, head: ObjectHead, raw_sha: str | None) -> DocumentRecord:
        """The record's identity and version fields for the object as it is now."""
        previous = self.record
        fresh = DocumentRecord(
            doc_id=self.doc_id,
            source_uri=self.uri,
            bucket=self.event.bucket,
            key=self.event.key,
            status=Status.PROCESSED,
            updated_at=iso(self.now),
        )
        return fresh.evolve(
            sequencer=newest(previous.sequencer if previous else None, self.event.sequencer),
            version_id=head.version_id,
            etag=head.etag,
            size=head.size,
            raw_sha256=raw_sha,
            metadata_etag=self.metadata_etag,
        )

    def _finish(self, record: DocumentRecord, *, keep_lease: bool) -> DocumentRecord:
        """Carry out a committed transition: remove what it dropped, publish it, clear the outbox."""
        kept = set(record.chunks)
        stale = [chunk_key(self.doc_id, h) for h in record.pending_removed if h not in kept]
        keys = [k for key in stale for k in (key, sidecar_key(key))]
        if record.status is not Status.PROCESSED:
            keys.append(text_key(self.doc_id))
        if keys:
            self.s.processed.delete(keys)
        assert record.pending_event is not None
        self.s.bus.publish([DocumentEvent(record.pending_event, self._detail(record))])
        done = record.evolve(pending_event=None, pending_added=(), pending_removed=())
        self.s.registry.commit(done, self.owner, keep_lease_until=self._lease_until if keep_lease else None)
        return done

    def _detail(self, record: DocumentRecord) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "doc_id": record.doc_id,
            "status": record.status.value,
            "source": {
                "uri": record.source_uri,
                "bucket": record.bucket,
                "key": record.key,
                "version_id": record.version_id,
                "sequencer": record.sequencer,
            },
            "title": record.title,
            "kind": record.kind,
            "updated_at": record.updated_at,
            "processed": {
                "bucket": self.s.processed.bucket,
                "text_key": text_key(record.doc_id) if record.status is Status.PROCESSED else None,
                "chunk_prefix": chunk_prefix(record.doc_id),
            },
            "chunks": {
                "count": len(record.chunks),
                "listed": True,
                "added": list(record.pending_added),
                "removed": list(record.pending_removed),
            },
            "token_count": record.token_count,
            "metadata": record.doc_metadata,  # the document's attributes and access list
            "reason": record.reason,
            "detail": record.detail,
        }
        if len(json.dumps(detail)) > MAX_EVENT_DETAIL_BYTES:
            # Too many hashes for one event: the sinks read the manifest from the registry instead.
            detail["chunks"] = {"count": len(record.chunks), "listed": False, "added": [], "removed": []}
        return detail
