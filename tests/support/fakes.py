"""In-memory adapters for the core's ports: what the unit tests drive the ingestion service with.
They keep the ports' contracts (versions, leases, all-or-nothing publishing) so the service's
behaviour under them is the behaviour under AWS."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sluice.bus import DocumentEvent
from sluice.errors import DocumentBusyError, LeaseLostError, TransientError
from sluice.registry import DocumentRecord, Status
from sluice.storage import ObjectHead


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

    def count(self, sink, status) -> int:  # type: ignore[no-untyped-def]
        return sum(1 for s in self.items.values() if s.sink == sink and s.status is status)

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
