"""The loop every sink shares: for each document, compare the registry (desired) with the sink's
recorded state (held), let the sink turn the differences into batched API calls, and record the
new states with optimistic concurrency.

The recorded state always says what the index holds, even when only part of a document's calls
succeeded: the state records that part and the document is retried, so the next attempt sends the
rest (and a document deleted meanwhile has exactly what was sent removed). When another worker
recorded a state first, the calls already made are folded into its state (``after_conflict``), so
the retry corrects whatever order the two workers' calls reached the index in.

Status checks follow a document in a chain of delayed messages, each naming the state version it
was scheduled for; a change starts a new chain and the old one finds its version stale and stops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sluice.errors import TransientError
from sluice.registry import DocumentRecord, Registry, Status
from sluice.sinks import SinkState, SinkStateStore, SinkStatus, StateConflictError, SyncResult
from sluice.timestamps import epoch, iso

log = logging.getLogger(__name__)
FIRST_CHECK_SECONDS = 20  # then doubling, up to SQS's longest message delay
MAX_CHECK_SECONDS = 900
MAX_CHECKS = 12


@dataclass
class Work:
    """One document's part in a sync: what the registry wants, what the sink holds, and what the
    sink's calls decided."""

    doc_id: str
    record: DocumentRecord | None
    state: SinkState | None  # as stored: its version guards the write
    resend: frozenset[str] = frozenset()  # items the index refused, to send again (an operator's redrive)
    failed: str | None = None  # set by the sink when a call for this document failed transiently
    new_state: SinkState | None = None  # set by the sink when the document's state changes
    added: list[str] = field(default_factory=list)  # items this run put in the index
    removed: list[str] = field(default_factory=list)  # items this run took out of it
    lost: list[str] = field(default_factory=list)  # items sent whose answer never came: maybe in the index

    @property
    def present(self) -> bool:
        """Should the index hold this document?"""
        return self.record is not None and self.record.status is Status.PROCESSED

    def held(self) -> tuple[str, ...]:
        return self.state.held if self.state is not None else ()

    def maybe(self) -> tuple[str, ...]:
        """Items sent earlier whose answer never came: the index may hold them."""
        return self.state.maybe if self.state is not None else ()


class DiffSink(ABC):
    name: str

    def __init__(
        self,
        *,
        registry: Registry,
        states: SinkStateStore,
        clock: Callable[[], float] | None = None,
        first_check_seconds: int = FIRST_CHECK_SECONDS,
    ) -> None:
        self.registry = registry
        self.states = states
        self.clock = clock or time.time
        self.first_check_seconds = first_check_seconds
        self._lags: list[float] = []

    def confirmed(self, since: str) -> None:
        """The index now holds what the registry said at ``since`` (ISO time): one sync-lag sample."""
        with contextlib.suppress(ValueError):
            self._lags.append(max(0.0, self.clock() - epoch(since)))

    def take_lags(self) -> list[float]:
        """Seconds from each change in the registry to the index confirming it, since the last take."""
        lags, self._lags = self._lags, []
        return lags

    def check_delay(self, checks: int) -> int:
        """Seconds before the next status check, after ``checks`` checks."""
        return int(min(MAX_CHECK_SECONDS, self.first_check_seconds * 2**checks))

    # -- what a sink implements ----------------------------------------------------------------------

    @abstractmethod
    def apply(self, work: list[Work]) -> None:
        """Send the differences for these documents (batched); set ``new_state`` or ``failed``."""

    @abstractmethod
    def confirm(self, work: list[Work]) -> None:
        """Ask the index about the pending items of these documents; set ``new_state``."""

    # -- the shared loop ---------------------------------------------------------------------------

    def after_conflict(self, current: SinkState, w: Work) -> SinkState:
        """``current`` (written by another worker) corrected for the calls ``w`` made: what it
        added counts as held and unconfirmed, what it removed does not count, what it lost the answer
        of may be held, so the next sync sends the difference and a check confirms what was added."""
        removed = set(w.removed)
        held = [h for h in current.held if h not in removed] + [a for a in w.added if a not in current.held]
        pending = [p for p in dict.fromkeys([*current.pending, *w.added]) if p in set(held)]
        maybe = [m for m in dict.fromkeys([*current.maybe, *w.lost]) if m not in set(held) and m not in removed]
        if (held, pending, maybe) == (list(current.held), list(current.pending), list(current.maybe)):
            return current
        state = current.evolve(held=tuple(held), maybe=tuple(maybe), checks=0)
        return settle(state, tuple(pending), current.failures, present=bool(held))

    def sync(self, doc_ids: Sequence[str], *, retry_failed: bool = False) -> list[SyncResult]:
        """Send each document's difference. A failure the index reported is final until an operator
        asks again (``retry_failed``, from ``sluice redrive``): resending it unasked would fail again."""
        return self._run(doc_ids, self.apply, retry_failed=retry_failed)

    def check(self, versions: Mapping[str, int]) -> list[SyncResult]:
        """Status checks of documents, each scheduled for a state version; a check whose document
        has changed since is stale (a newer chain of checks follows the document) and is dropped."""
        return self._run(list(versions), self.confirm, versions=versions)

    def _run(
        self,
        doc_ids: Sequence[str],
        step: Callable[[list[Work]], None],
        *,
        retry_failed: bool = False,
        versions: Mapping[str, int] | None = None,
    ) -> list[SyncResult]:
        work = []
        for doc_id in dict.fromkeys(doc_ids):
            state = self.states.get(self.name, doc_id)
            if versions is not None and (state is None or state.version != versions[doc_id]):
                continue
            resend = frozenset(state.failures) if retry_failed and state is not None else frozenset()
            work.append(Work(doc_id, self.registry.get(doc_id), state, resend=resend))
        step(work)
        return [self._record_or_retry(w) for w in work]

    def _record_or_retry(self, w: Work) -> SyncResult:
        """``_record``, one document at a time: a write that fails (DynamoDB failing past botocore's
        retries) fails only its document's message, so the others' records and next checks are kept. A
        failed batch would be redelivered whole, its checks already recorded then stale, and dropped."""
        try:
            return self._record(w)
        except Exception as exc:
            log.exception("%s state of %s not recorded", self.name, w.doc_id)
            return SyncResult(w.doc_id, retry=f"{type(exc).__name__}: {exc}"[:300])

    def _record(self, w: Work) -> SyncResult:
        if w.new_state is None:
            if w.failed is None and w.state is not None and self.wants_check(w.state):
                # Nothing to send, but unconfirmed: keep a chain of checks on it. (Its chain may have
                # been lost with a failed batch; a duplicate chain for this version is dropped as
                # stale after the first check.)
                return SyncResult(w.doc_id, check_after=self.check_delay(w.state.checks), version=w.state.version)
            return SyncResult(w.doc_id, retry=w.failed)
        expected = w.state.version if w.state is not None else None
        state = w.new_state.evolve(version=(expected or 0) + 1, updated_at=iso(self.clock()))
        try:
            self.states.put(state, expected_version=expected)
        except StateConflictError as exc:
            self._fold_into_current(w)
            return SyncResult(w.doc_id, retry=str(exc))
        if w.failed is not None:
            return SyncResult(w.doc_id, retry=w.failed)  # the part that succeeded is recorded
        if w.record is not None and self._reached_registry(w, state):
            self.confirmed(w.record.updated_at)
        if self.wants_check(state):
            return SyncResult(w.doc_id, check_after=self.check_delay(state.checks), version=state.version)
        return SyncResult(w.doc_id)

    def _fold_into_current(self, w: Work, attempts: int = 5) -> None:
        if not (w.added or w.removed or w.lost):
            return
        for _ in range(attempts):
            stored = self.states.get(self.name, w.doc_id)
            expected = stored.version if stored is not None else None
            current = stored or SinkState(self.name, w.doc_id, SinkStatus.ABSENT, iso(self.clock()))
            corrected = self.after_conflict(current, w)
            if corrected is current:
                return  # the winner's state already says what the index holds
            try:
                self.states.put(corrected.evolve(version=(expected or 0) + 1, updated_at=iso(self.clock())),
                                expected_version=expected)  # fmt: skip
                return
            except StateConflictError:
                continue
        log.error("%s state of %s kept changing; the calls just made may not be recorded", self.name, w.doc_id)

    @staticmethod
    def _reached_registry(w: Work, state: SinkState) -> bool:
        """Does this new state confirm the registry's version: the index holds the document now
        (INDEXED), or no longer (ABSENT, for one deleted or quarantined), and did not before?"""
        done = SinkStatus.INDEXED if w.present else SinkStatus.ABSENT
        before = (w.state.status, w.state.held) if w.state is not None else None
        return state.status is done and before != (state.status, state.held)

    def wants_check(self, state: SinkState) -> bool:
        """Should a status check follow this state? (The sinks give up after MAX_CHECKS.) Items whose
        answer was lost are not checked: the retry of the sync that lost it sends them again."""
        return state.status is SinkStatus.PENDING and bool(state.pending) and state.checks < MAX_CHECKS

    def base_state(self, w: Work) -> SinkState:
        return w.state or SinkState(self.name, w.doc_id, SinkStatus.ABSENT, iso(self.clock()))

    @staticmethod
    def fail(items: Sequence[Work], exc: TransientError | Exception) -> None:
        for w in items:
            w.failed = f"{type(exc).__name__}: {exc}"[:300]


def settle(state: SinkState, pending: tuple[str, ...], failures: dict[str, str], *, present: bool) -> SinkState:
    """The status that follows from what is still pending (or may be in the index) and what failed."""
    if failures:
        status = SinkStatus.FAILED
    elif pending or state.maybe:
        status = SinkStatus.PENDING
    else:
        status = SinkStatus.INDEXED if present else SinkStatus.ABSENT
    return state.evolve(status=status, pending=pending, failures=failures)
