"""Sinks: keeping a search index in step with the registry.

A sink never trusts the event that woke it. For each document it compares what the registry says
the document is now (the desired state) with what the sink last gave the index (its recorded
state) and sends only the difference. Duplicated, reordered or lost events therefore cannot make
an index drift, and the same code serves the events, the status checks and the reconciler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol, TypeVar

from sluice.compat import batched
from sluice.errors import RefusedError, TransientError


class SinkStatus(StrEnum):
    PENDING = "PENDING"  # sent; the index has not confirmed it yet (or the answer was lost)
    INDEXED = "INDEXED"  # the index holds exactly the registry's version
    FAILED = "FAILED"  # the index refused it; the reason is recorded
    ABSENT = "ABSENT"  # the document is gone from the index (deleted, quarantined)


@dataclass(frozen=True, slots=True)
class SinkState:
    """What one sink holds of one document."""

    sink: str
    doc_id: str
    status: SinkStatus
    updated_at: str
    held: tuple[str, ...] = ()  # the knowledge base: chunk hashes sent; Kendra: the version fingerprint
    pending: tuple[str, ...] = ()  # sent, not yet confirmed by the index
    maybe: tuple[str, ...] = ()  # sent, but the answer was lost: the index may hold them (resent or deleted)
    failures: dict[str, str] = field(default_factory=dict)  # chunk (or document) → the index's reason
    version: int = 0  # optimistic concurrency: bumped on every write
    checks: int = 0  # status checks made since the last change

    def evolve(self, **changes: object) -> SinkState:
        return replace(self, **changes)  # type: ignore[arg-type]


class StateConflictError(TransientError):
    """Another worker changed the sink state first; this record is retried."""


class SinkStateStore(Protocol):
    def get(self, sink: str, doc_id: str) -> SinkState | None: ...

    def put(self, state: SinkState, *, expected_version: int | None) -> None:
        """Write ``state`` if the stored version is ``expected_version`` (None: no state yet)."""

    def count(self, sink: str, status: SinkStatus, since: str | None = None) -> int:
        """States of ``sink`` in ``status``; with ``since`` (ISO time), only those written at or after it."""

    def states(self, sink: str, status: SinkStatus) -> Iterator[SinkState]: ...


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The outcome for one document of one sync: done, to retry (SQS redelivers the record), or to
    check again later (a delayed status check is queued)."""

    doc_id: str
    retry: str | None = None
    check_after: int | None = None  # seconds
    version: int | None = None  # the state version the check is for


@dataclass(slots=True)
class CallCount:
    """Calls made to an index's API (botocore's own retries inside one call not counted) and how many
    of them failed; whoever reports them takes the counts. A batch's checks and syncs count from two
    threads (see ``sluice.sinks.runner``)."""

    calls: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def called(self) -> None:
        with self._lock:
            self.calls += 1

    def failed(self) -> None:
        with self._lock:
            self.failures += 1

    def take(self) -> tuple[int, int]:
        """The counts so far (calls, failures), and zero again."""
        with self._lock:
            taken = (self.calls, self.failures)
            self.calls = self.failures = 0
        return taken


class Queue(Protocol):
    """The sink's own queue, for messages to itself: delayed status checks and job polls."""

    def send(self, body: str, delay_seconds: int = 0) -> None: ...


T = TypeVar("T")
R = TypeVar("R")


def status_reason(status: str, reason: str) -> str:
    """What a sink records of an index's answer: ``FAILED: why``, or the status alone without a reason."""
    return f"{status}: {reason}".strip(": ")


def send_in_batches(
    items: Sequence[T], size: int, call: Callable[[Sequence[T]], R]
) -> Iterator[tuple[Sequence[T], R | TransientError | RefusedError]]:
    """Each batch of ``items`` with the service's answer, or the error it met. A refused batch is sent
    again one item at a time, so that one bad item cannot fail its neighbours."""
    for batch in batched(items, size):
        try:
            yield batch, call(batch)
        except TransientError as exc:
            yield batch, exc
        except RefusedError as exc:
            if len(batch) == 1:
                yield batch, exc
                continue
            for item in batch:
                try:
                    yield [item], call([item])
                except (TransientError, RefusedError) as single:
                    yield [item], single
