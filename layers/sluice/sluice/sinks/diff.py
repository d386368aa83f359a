"""The loop every sink shares: for each document, compare the registry (desired) with the sink's
recorded state (held), let the sink turn the differences into batched API calls, and record the
new states with optimistic concurrency. A document whose calls failed transiently is retried and
its state left as it was, so the next attempt sends the same difference again."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sluice.errors import TransientError
from sluice.registry import DocumentRecord, Registry, Status
from sluice.sinks import SinkState, SinkStateStore, SinkStatus, StateConflictError, SyncResult

CHECK_DELAYS = (20, 40, 80, 160, 300, 600, 900)  # seconds between status checks; SQS delays stop at 900
MAX_CHECKS = 12


def now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Work:
    """One document's part in a sync: what the registry wants, what the sink holds, and what the
    sink's calls decided."""

    doc_id: str
    record: DocumentRecord | None
    state: SinkState | None  # as stored: its version guards the write
    failed: str | None = None  # set by the sink when a call for this document failed transiently
    new_state: SinkState | None = None  # set by the sink when the document's state changes
    sent_from: SinkState | None = None  # the state to diff against, when not the stored one

    def __post_init__(self) -> None:
        if self.sent_from is None:
            self.sent_from = self.state

    @property
    def present(self) -> bool:
        """Should the index hold this document?"""
        return self.record is not None and self.record.status is Status.PROCESSED

    def held(self) -> tuple[str, ...]:
        return self.sent_from.held if self.sent_from is not None else ()


class DiffSink(ABC):
    name: str

    def __init__(self, *, registry: Registry, states: SinkStateStore, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.states = states
        self.clock = clock

    # -- what a sink implements ----------------------------------------------------------------------

    @abstractmethod
    def apply(self, work: list[Work]) -> None:
        """Send the differences for these documents (batched); set ``new_state`` or ``failed``."""

    @abstractmethod
    def confirm(self, work: list[Work]) -> None:
        """Ask the index about the pending items of these documents; set ``new_state``."""

    # -- the shared loop ---------------------------------------------------------------------------

    def forget_failures(self, state: SinkState) -> SinkState:
        """The state as if what failed had never been sent, so that the next sync sends it again."""
        return state.evolve(held=tuple(h for h in state.held if h not in state.failures), failures={})

    def sync(self, doc_ids: Sequence[str], *, retry_failed: bool = False) -> list[SyncResult]:
        """Send each document's difference. A failure the index reported is final until an operator
        asks again (``retry_failed``, from ``sluice redrive``): resending it unasked would fail again."""
        return self._run(doc_ids, self.apply, retry_failed=retry_failed)

    def check(self, doc_ids: Sequence[str]) -> list[SyncResult]:
        return self._run(doc_ids, self.confirm)

    def _run(
        self, doc_ids: Sequence[str], step: Callable[[list[Work]], None], *, retry_failed: bool = False
    ) -> list[SyncResult]:
        work = []
        for doc_id in dict.fromkeys(doc_ids):
            state = self.states.get(self.name, doc_id)
            if retry_failed and state is not None and state.failures:
                work.append(Work(doc_id, self.registry.get(doc_id), state, sent_from=self.forget_failures(state)))
            else:
                work.append(Work(doc_id, self.registry.get(doc_id), state))
        step(work)
        return [self._record(w) for w in work]

    def _record(self, w: Work) -> SyncResult:
        if w.failed is not None:
            return SyncResult(w.doc_id, retry=w.failed)
        if w.new_state is None:
            return SyncResult(w.doc_id)
        expected = w.state.version if w.state is not None else None
        state = w.new_state.evolve(version=(expected or 0) + 1, updated_at=now_iso(self.clock))
        try:
            self.states.put(state, expected_version=expected)
        except StateConflictError as exc:
            return SyncResult(w.doc_id, retry=str(exc))
        if self.wants_check(state):
            return SyncResult(w.doc_id, check_after=CHECK_DELAYS[min(state.checks, len(CHECK_DELAYS) - 1)])
        return SyncResult(w.doc_id)

    def wants_check(self, state: SinkState) -> bool:
        """Should a status check follow this state? (The sinks give up after MAX_CHECKS.)"""
        return state.status is SinkStatus.PENDING and state.checks < MAX_CHECKS

    def base_state(self, w: Work) -> SinkState:
        return w.sent_from or SinkState(self.name, w.doc_id, SinkStatus.ABSENT, now_iso(self.clock))

    @staticmethod
    def fail(items: Sequence[Work], exc: TransientError | Exception) -> None:
        for w in items:
            w.failed = f"{type(exc).__name__}: {exc}"[:300]


def settle(state: SinkState, pending: tuple[str, ...], failures: dict[str, str], *, present: bool) -> SinkState:
    """The status that follows from what is still pending and what failed."""
    if failures:
        status = SinkStatus.FAILED
    elif pending:
        status = SinkStatus.PENDING
    else:
        status = SinkStatus.INDEXED if present else SinkStatus.ABSENT
    return state.evolve(status=status, pending=pending, failures=failures)
