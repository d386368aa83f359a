"""In-memory adapters for the core's ports: what the unit tests drive the ingestion service and the
reconciler with. They keep the ports' contracts (versions, leases, all-or-nothing publishing, pages
that resume) so the services' behaviour under them is the behaviour under AWS."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice import sinks
from sluice.backfill import Counts, Plan, Progress
from sluice.bus import DocumentEvent
from sluice.errors import DocumentBusyError, LeaseLostError, TransientError
from sluice.ingest import IngestService, IngestSettings, ObjectEvent
from sluice.reconcile import PassBusyError, Report
from sluice.reconcile.ports import SavedPass
from sluice.registry import DocumentRecord, Status
from sluice.storage import ListedObject, ObjectHead, ObjectPage
from support.sinkfakes import FakeKnowledgeBase


@dataclass
class _Version:
    version_id: str
    data: bytes
    metadata: dict[str, str]


class FakeObjectReader:
    """A versioned bucket (or several)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], list[_Version | None]] = {}
        self._ids = itertools.count(1)
        self.gets = 0

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        version = f"v{next(self._ids)}"
        self.objects.setdefault((bucket, key), []).append(_Version(version, data, metadata or {}))
        return version

    def delete(self, bucket: str, key: str) -> None:
        self.objects.setdefault((bucket, key), []).append(None)  # a delete marker

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        versions = self.objects.get((bucket, key))
        if not versions or versions[-1] is None:
            return None
        v = versions[-1]
        return ObjectHead(
            bucket, key, len(v.data), hashlib.md5(v.data).hexdigest(), v.version_id, None, dict(v.metadata)
        )

    def get(self, head: ObjectHead) -> bytes:
        self.gets += 1
        for v in self.objects[(head.bucket, head.key)]:
            if v is not None and v.version_id == head.version_id:
                return v.data
        raise TransientError("version vanished")


class FakeBucketWriter:
    def __init__(self, bucket: str = "processed") -> None:
        self.bucket = bucket
        self.files: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.deletes: list[str] = []

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.files[key] = body
        self.puts.append(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.files if k.startswith(prefix))

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.files.pop(key, None)
            self.deletes.append(key)


class FakeBucketReader:
    """A FakeBucketWriter's files read back through the ObjectReader port (the Kendra sink reads the
    cleaned text this way)."""

    def __init__(self, store: FakeBucketWriter) -> None:
        self.store = store

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        data = self.store.files.get(key)
        return None if data is None else ObjectHead(bucket, key, len(data), "etag")

    def get(self, head: ObjectHead) -> bytes:
        return self.store.files[head.key]


@dataclass
class _Item:
    record: DocumentRecord | None = None
    lease_owner: str | None = None
    lease_expires: float = 0.0


class FakeRegistry:
    def __init__(self) -> None:
        self.items: dict[str, _Item] = {}
        self.commits = 0

    def acquire(self, doc_id: str, owner: str, now: float, lease_seconds: float) -> DocumentRecord | None:
        item = self.items.setdefault(doc_id, _Item())
        if item.lease_owner is not None and item.lease_expires >= now:
            raise DocumentBusyError(doc_id)
        item.lease_owner, item.lease_expires = owner, now + lease_seconds
        return item.record

    def commit(self, record: DocumentRecord, owner: str, *, keep_lease_until: float | None) -> None:
        item = self.items.setdefault(record.doc_id, _Item())
        if item.lease_owner != owner:
            raise LeaseLostError(record.doc_id)
        item.record = record
        self.commits += 1
        if keep_lease_until is None:
            item.lease_owner, item.lease_expires = None, 0.0
        else:
            item.lease_expires = keep_lease_until

    def release(self, doc_id: str, owner: str) -> None:
        item = self.items.get(doc_id)
        if item is not None and item.lease_owner == owner:
            if item.record is None:
                del self.items[doc_id]
            else:
                item.lease_owner, item.lease_expires = None, 0.0

    def get(self, doc_id: str) -> DocumentRecord | None:
        item = self.items.get(doc_id)
        return item.record if item else None

    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]:
        for item in self.items.values():
            if item.record is not None and (status is None or item.record.status is status):
                yield item.record


@dataclass
class FakeBus:
    events: list[DocumentEvent] = field(default_factory=list)
    fail_next: int = 0  # publish calls that fail before one succeeds

    def publish(self, events: Sequence[DocumentEvent]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("EventBridge throttled")
        self.events.extend(events)

    def of_type(self, detail_type: str) -> list[DocumentEvent]:
        return [e for e in self.events if e.detail_type == detail_type]


class FakeSinkStates:
    """Sink states with the store's optimistic concurrency."""

    def __init__(self) -> None:
        from sluice.sinks import SinkState

        self.items: dict[tuple[str, str], SinkState] = {}

    def get(self, sink: str, doc_id: str):  # type: ignore[no-untyped-def]
        return self.items.get((sink, doc_id))

    def put(self, state, *, expected_version):  # type: ignore[no-untyped-def]
        from sluice.sinks import StateConflictError

        current = self.items.get((state.sink, state.doc_id))
        if (current.version if current else None) != expected_version:
            raise StateConflictError(state.doc_id)
        self.items[(state.sink, state.doc_id)] = state

    def count(self, sink, status, since=None) -> int:  # type: ignore[no-untyped-def]
        return sum(
            1
            for s in self.items.values()
            if s.sink == sink and s.status is status and (since is None or s.updated_at >= since)
        )

    def states(self, sink, status):  # type: ignore[no-untyped-def]
        return [s for s in list(self.items.values()) if s.sink == sink and s.status is status]


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.sent.append((body, delay_seconds))

    def take(self) -> list[tuple[str, str]]:
        """The queued messages as (message id, body) records, as the sink's next batch."""
        records = [(f"m{i}", body) for i, (body, _) in enumerate(self.sent)]
        self.sent.clear()
        return records


# -- the reconciler's ports --------------------------------------------------------------------------


class FakeBuckets:
    """Unversioned buckets as the reconciler sees them: objects with ETags and the time they were
    written, listed in key order a page at a time, headed in any bucket; ``bucket(name)`` is one
    bucket's writer (the processed files)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, float]] = {}
        self.clock = clock

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.objects[(bucket, key)] = (data, self.clock())

    def remove(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        found = self.objects.get((bucket, key))
        return ObjectHead(bucket, key, len(found[0]), hashlib.md5(found[0]).hexdigest()) if found else None

    def get(self, head: ObjectHead) -> bytes:
        now = self.head(head.bucket, head.key)
        if now is None or now.etag != head.etag:
            raise TransientError("changed while it was being read")
        return self.objects[(head.bucket, head.key)][0]

    def page(self, bucket: str, *, prefix: str, start_after: str | None, limit: int) -> ObjectPage:
        keys = sorted(
            k
            for b, k in self.objects
            if b == bucket and k.startswith(prefix) and (start_after is None or k > start_after)
        )
        listed = []
        for key in keys[:limit]:
            data, written = self.objects[(bucket, key)]
            listed.append(ListedObject(key, hashlib.md5(data).hexdigest(), written))
        return ObjectPage(listed, truncated=len(keys) > limit)

    def keys_of(self, bucket: str) -> set[str]:
        return {k for b, k in self.objects if b == bucket}

    def bucket(self, name: str) -> FakeBucket:
        return FakeBucket(self, name)


class FakeBucket:
    """One of FakeBuckets' buckets, written to (the BucketWriter port)."""

    def __init__(self, buckets: FakeBuckets, bucket: str) -> None:
        self.buckets = buckets
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.buckets.put(self.bucket, key, body)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.buckets.keys_of(self.bucket) if k.startswith(prefix))

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.buckets.remove(self.bucket, key)


class FakeDocumentsTable:
    """DocumentsTable as the reconciler reads it: the registry (a FakeRegistry, lease placeholders
    and all) and the sinks' states (a Fakesinks.SinkStates) in one key order, scanned a page at a time."""

    def __init__(self) -> None:
        self.registry = FakeRegistry()
        self.states = FakeSinkStates()

    def scan_page(self, start: Any, limit: int) -> tuple[list[DocumentRecord], list[sinks.SinkState], Any]:
        rows: list[tuple[list[str], DocumentRecord | sinks.SinkState | None]] = [
            ([doc_id, ""], item.record) for doc_id, item in self.registry.items.items()
        ]
        rows += [([doc_id, sink], state) for (sink, doc_id), state in self.states.items.items()]
        after = sorted((r for r in rows if start is None or r[0] > start), key=lambda r: r[0])
        page = after[:limit]
        records = [v for _, v in page if isinstance(v, DocumentRecord)]
        states = [v for _, v in page if isinstance(v, sinks.SinkState)]
        return records, states, (page[-1][0] if len(after) > limit else None)

    def lookup(self, doc_ids: Iterable[str]) -> dict[str, DocumentRecord | None]:
        return {d: self.registry.items[d].record for d in doc_ids if d in self.registry.items}

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], sinks.SinkState]:
        return {k: self.states.items[k] for k in keys if k in self.states.items}

    def put(self, state: sinks.SinkState, *, expected_version: int | None) -> None:
        self.states.put(state, expected_version=expected_version)


class FakeQueues:
    """Every queue's messages, by queue URL."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}

    def send(self, queue_url: str, bodies: Sequence[str]) -> None:
        if bodies:
            self.sent.setdefault(queue_url, []).extend(bodies)


class IngestedBucket:
    """RawBucket and the registry kept in step by the real ingestion service, on a clock the test moves:
    ``put`` writes an object and, unless told not to (written behind the pipeline's back), hands its
    notification to the service. The worlds of the reconciliation and backfill tests are built on it."""

    def __init__(self, raw: str, processed: str) -> None:
        self.raw = raw
        self.now = 1_800_000_000.0
        self.s3 = FakeBuckets(lambda: self.now)
        self.table = FakeDocumentsTable()
        self.queues = FakeQueues()
        self.ingest = IngestService(
            raw=self.s3,
            processed=self.s3.bucket(processed),
            registry=self.table.registry,
            bus=FakeBus(),
            settings=IngestSettings(),
            clock=lambda: self.now,
        )

    def put(self, key: str, body: str, *, notify: bool = True) -> None:
        self.s3.put(self.raw, key, body.encode())
        if notify:
            self.ingest.handle(ObjectEvent(self.raw, key, removed=False))


class FakePassStore:
    """The pass's item: its report and cursor kept as JSON (as the table keeps them), leased."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.cursor = "null"
        self.last_report: str | None = None
        self.owner: str | None = None
        self.expires = 0.0

    def acquire(self, owner: str, now: float, lease_seconds: float) -> SavedPass:
        if self.owner not in (None, owner) and self.expires >= now:
            raise PassBusyError("another reconciliation run is under way")
        self.owner, self.expires = owner, now + lease_seconds
        current = Report.from_json(json.loads(self.current)) if self.current else None
        return SavedPass(current, json.loads(self.cursor))

    def save(self, owner: str, *, current: Report | None, cursor: Any, last: Report | None, release: bool) -> None:
        if self.owner != owner:
            raise PassBusyError("the reconciliation lease was lost to another run")
        self.cursor = json.dumps(cursor)
        self.current = json.dumps(current.to_json()) if current is not None else None
        if last is not None:
            self.last_report = json.dumps(last.to_json())
        if release:
            self.owner = None

    def last(self) -> Report | None:
        return Report.from_json(json.loads(self.last_report)) if self.last_report else None


class FakeListedKnowledgeBase(FakeKnowledgeBase):
    """A knowledge base that also lists its documents, a page at a time."""

    def listed(self, next_token: str | None, max_results: int = 1000) -> tuple[dict[str, str], str | None]:
        uris = sorted(self.indexed)
        start = int(next_token or 0)
        self.calls.append(("list", len(uris[start : start + max_results])))
        more = start + max_results < len(uris)
        return dict.fromkeys(uris[start : start + max_results], "INDEXED"), str(start + max_results) if more else None


# -- a backfill's port ------------------------------------------------------------------------------------


class FakeProgressStore:
    """Backfill runs as the table keeps them: each run's plan (JSON) and start, kept from the first
    Plan, and each batch's counts (JSON), recorded once."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[str, float]] = {}
        self.batches: dict[tuple[str, str], str] = {}

    def begin(self, plan: Plan, now: float) -> None:
        self.runs.setdefault(plan.run, (json.dumps(plan.to_json()), now))

    def recorded(self, run: str, batch: str) -> Counts | None:
        counts = self.batches.get((run, batch))
        return Counts.from_json(json.loads(counts)) if counts is not None else None

    def record(self, run: str, batch: str, counts: Counts, now: float) -> bool:
        if (run, batch) in self.batches:
            return False
        self.batches[(run, batch)] = json.dumps(counts.to_json())
        return True

    def progress(self, run: str) -> Progress | None:
        if run not in self.runs:
            return None
        plan, started = self.runs[run]
        batches = (Counts.from_json(json.loads(c)) for (r, _), c in self.batches.items() if r == run)
        return Progress.summed(Plan.from_json(json.loads(plan)), started, batches)
