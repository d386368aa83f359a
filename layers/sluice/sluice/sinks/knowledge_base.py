"""The Bedrock Knowledge Base sink.

Direct mode (the default): the chunks the registry has and the knowledge base was not given are
ingested by S3 location (with their metadata sidecars), the chunks it was given and the registry
no longer has are deleted, ten to a call, across all the documents of a batch; then each pending
chunk is checked with GetKnowledgeBaseDocuments until it is INDEXED, or recorded as failed with
the service's reason.

Ingestion-job mode (for full rebuilds, or data sources that cannot take direct ingestion): the
data source is synced with StartIngestionJob. At most one job runs per data source: a lock record
(a sink state named ``kb-job``) says which job runs; changes that arrive meanwhile mark it dirty, and
when the job ends one more starts for all of them. A ConflictException (a job started elsewhere) is
treated the same way: wait for it, then sync.

The mode decides how a change is sent, not how it is confirmed: chunks sent directly are checked
until indexed and a document marked for a job is settled by the job, whichever mode runs now, so the
mode can be switched (a deploy) with documents in flight either way. A backfill can also *hold* the
sink in a mode for as long as it runs (``ModeHolds``): the stack's mode comes back by itself once the
backfill stops renewing the hold.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Protocol

from sluice.compat import batched
from sluice.errors import RefusedError, TransientError
from sluice.pipeline.files import chunk_uri
from sluice.registry import Registry
from sluice.sinks import (
    CallCount,
    Queue,
    SinkState,
    SinkStateStore,
    SinkStatus,
    StateConflictError,
    send_in_batches,
    status_reason,
)
from sluice.sinks.diff import FIRST_CHECK_SECONDS, MAX_CHECKS, DiffSink, Work, settle
from sluice.timestamps import epoch, iso

PER_CALL = 10  # documents per Ingest/Delete/GetKnowledgeBaseDocuments call (the service model's max)


class JobConflictError(Exception):
    """An ingestion job is already running on the data source."""


@dataclass(frozen=True, slots=True)
class KbDocument:
    uri: str  # the chunk file, s3://bucket/chunks/{doc_id}/{hash}.txt
    metadata_uri: str  # its .metadata.json sidecar


@dataclass(frozen=True, slots=True)
class IngestionJob:
    job_id: str
    status: str  # STARTING | IN_PROGRESS | COMPLETE | FAILED | STOPPING | STOPPED
    statistics: dict[str, int]
    failure_reasons: tuple[str, ...] = ()


def client_token(*parts: object) -> str:
    """A request's idempotency token: the same request retried is ignored; a new one is not."""
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()  # 64 characters


class KnowledgeBaseIndex(Protocol):
    """One knowledge base's S3 data source (``sluice.adapters.aws.bedrock_agent`` is the adapter):
    direct ingestion of chunk files by S3 URI, at most PER_CALL a call, and ingestion jobs. Each
    method answers URI → (status, reason) for what the service reported."""

    ds: str  # the data source id
    calls: CallCount

    def ingest(self, documents: Sequence[KbDocument], token: str) -> dict[str, tuple[str, str]]: ...

    def delete(self, uris: Sequence[str], token: str) -> dict[str, tuple[str, str]]: ...

    def statuses(self, uris: Sequence[str]) -> dict[str, tuple[str, str]]: ...

    def listed(self, next_token: str | None, max_results: int = 1000) -> tuple[dict[str, str], str | None]:
        """One page of the data source's documents: S3 URI → status, and the next page's token."""

    def start_job(self, token: str, description: str) -> str:
        """The new ingestion job's id; JobConflictError when one is already running."""

    def job(self, job_id: str) -> IngestionJob: ...


SYNC_MODES = ("direct", "ingestion-job")
MODE_HOLD = "kb-mode"  # the sink state that holds the sync mode for a while (a backfill's), under HOLD_KEY
HOLD_KEY = "hold"
HOLD_SECONDS = 1800  # a hold not renewed for this long lapses, and the stack's mode comes back
DONE = frozenset({"INDEXED"})
GONE = frozenset({"NOT_FOUND"})
GONE_AFTER_CHECKS = 2  # NOT_FOUND right after an ingest may be the index catching up; later it is a loss
REFUSED = frozenset({"FAILED", "IGNORED", "PARTIALLY_INDEXED", "METADATA_PARTIALLY_INDEXED", "METADATA_UPDATE_FAILED"})
JOB_SINK = "kb-job"
JOB_MARK = "job"  # the pending item of a document waiting for an ingestion job
MAX_POLL_SECONDS = 300
COMPLETE_WITH_FAILURES = "COMPLETE-WITH-FAILURES"  # a job COMPLETE whose statistics count failed documents
CONFIRM_LIMIT = 100  # documents a poll asks about after such a job (4 Get calls a second: under a minute)
EARLY_POLLS = 3  # times a poll that arrived before the lock naming its chain waits for it
STALE_LOCK_SECONDS = 3600  # a job running this long without news: start a second poll chain


@dataclass(frozen=True, slots=True)
class JobOutcome:
    started: str | None = None  # a job id, when one was started
    running: str | None = None  # the job still running
    finished: str | None = None  # "job-id STATUS", when one ended
    more: bool = False  # documents the ended job covered remain to be settled


@dataclass(frozen=True, slots=True)
class ModeHold:
    mode: str
    run: str  # who holds it: a backfill run
    until: float


def _check_mode(mode: str) -> None:
    if mode not in SYNC_MODES:
        raise ValueError(f"knowledge base sync mode must be direct or ingestion-job, not {mode!r}")


def current_hold(state: SinkState | None, now: float) -> ModeHold | None:
    """The hold a ``MODE_HOLD`` state records, unless it has lapsed (or names no mode Sluice has)."""
    if state is None or not state.held or state.held[0] not in SYNC_MODES:
        return None
    try:
        until = epoch(state.failures.get("until", ""))
    except ValueError:
        return None
    return ModeHold(state.held[0], state.failures.get("run", ""), until) if until > now else None


class ModeHolds:
    """Holds on the knowledge-base sink's sync mode, kept in the sink states: a backfill holds it in
    ingestion-job mode while it runs, renewing the hold as it goes, and the sink reads it at every
    batch. A hold lapses HOLD_SECONDS after its last renewal, so a run that fails, is stopped or is
    abandoned gives the stack's own mode back by itself (a switch is safe with documents in flight)."""

    def __init__(self, states: SinkStateStore, clock: Callable[[], float] = time.time) -> None:
        self.states = states
        self.clock = clock

    def hold(self, mode: str, run: str) -> None:
        """Hold ``mode`` for HOLD_SECONDS from now; a hold of the same mode with more than half of that
        still to run is left as it is (a run's batches renew it a few times an hour, not each time)."""
        _check_mode(mode)
        now = self.clock()
        state = self.states.get(MODE_HOLD, HOLD_KEY)
        held = current_hold(state, now)
        if held is not None and held.mode == mode and held.until - now > HOLD_SECONDS / 2:
            return
        version = state.version if state is not None else None
        term = {"run": run, "until": iso(now + HOLD_SECONDS)}
        renewed = SinkState(
            MODE_HOLD, HOLD_KEY, SinkStatus.INDEXED, iso(now), (mode,), failures=term, version=(version or 0) + 1
        )
        with suppress(StateConflictError):  # another batch renewed it at the same moment
            self.states.put(renewed, expected_version=version)


class KnowledgeBaseSink(DiffSink):
    name = "kb"
    settle_limit = 2000  # documents a poll settles after a job (a poll, like any invocation, has a deadline)

    def __init__(
        self,
        *,
        api: KnowledgeBaseIndex,
        registry: Registry,
        states: SinkStateStore,
        processed_bucket: str,
        mode: str = "direct",
        queue: Queue | None = None,
        clock: Callable[[], float] | None = None,
        first_check_seconds: int = FIRST_CHECK_SECONDS,
    ) -> None:
        super().__init__(registry=registry, states=states, clock=clock, first_check_seconds=first_check_seconds)
        _check_mode(mode)
        self.api = api
        self.bucket = processed_bucket
        self.mode = mode  # the stack's; a hold may stand in for it (sync_mode)
        self.queue = queue  # the sink's own queue: the ingestion-job mode follows its jobs with it

    def _uri(self, doc_id: str, chunk: str) -> str:
        return chunk_uri(self.bucket, doc_id, chunk)

    # -- sending -------------------------------------------------------------------------------------

    def sync_mode(self) -> str:
        """The mode changes are sent in now: a backfill's hold, else the stack's."""
        hold = current_hold(self.states.get(MODE_HOLD, HOLD_KEY), self.clock())
        return hold.mode if hold is not None else self.mode

    def apply(self, work: list[Work]) -> None:
        if self.sync_mode() == "ingestion-job":
            self._apply_by_job(work)
            return
        adds: list[tuple[Work, str]] = []
        removes: list[tuple[Work, str]] = []
        for w in work:
            desired, held = self._desired(w), w.held()
            desired_set = set(desired)
            # A document waiting for an ingestion job (the mode was switched since) is left to the job,
            # unless it changed: then it is sent whole, as the chunks it kept may never be indexed if
            # that job fails, and only a job's documents learn how it ended.
            changed = desired_set != set(held) or bool(w.resend)
            held_set = set() if changed and _waits_for_job(w.state) else set(held)
            adds += [(w, c) for c in desired if c not in held_set or c in w.resend]
            removes += [(w, c) for c in (*held, *w.maybe()) if c not in desired_set]
        refused: dict[str, dict[str, str]] = {}
        self._send(adds, removes, refused)
        for w in work:
            desired, before = self._desired(w), w.held()
            if not (w.added or w.removed or set(w.lost) - set(w.maybe())):
                continue  # nothing was sent (or all of it failed as before and is retried)
            # What the index now holds: a chunk the index refused counts as given (it is not resent
            # until an operator redrives it), one that failed transiently does not, one whose answer
            # may have been lost may be there: it is sent again, or deleted if no longer wanted.
            added, removed, desired_set, before_set = set(w.added), set(w.removed), set(desired), set(before)
            now_held = [c for c in desired if c in before_set or c in added]
            now_held += [c for c in before if c not in desired_set and c not in removed]
            held_set = set(now_held)
            state = self.base_state(w)
            maybe = [c for c in dict.fromkeys([*state.maybe, *w.lost]) if c not in held_set and c not in removed]
            kept = {c: r for c, r in state.failures.items() if c in held_set and c not in added}
            failures = kept | refused.get(w.doc_id, {})
            pending = [p for p in dict.fromkeys([*state.pending, *w.added]) if p in held_set and p not in failures]
            state = state.evolve(held=tuple(now_held), maybe=tuple(maybe), checks=0)
            w.new_state = settle(state, tuple(pending), failures, present=bool(now_held))

    @staticmethod
    def _desired(w: Work) -> tuple[str, ...]:
        return w.record.chunks if w.present and w.record is not None else ()

    def _send(
        self, adds: list[tuple[Work, str]], removes: list[tuple[Work, str]], refused: dict[str, dict[str, str]]
    ) -> None:
        def ingest(batch: Sequence[tuple[Work, str]]) -> dict[str, tuple[str, str]]:
            docs = [KbDocument(self._uri(w.doc_id, c), self._uri(w.doc_id, c) + ".metadata.json") for w, c in batch]
            return self.api.ingest(docs, self._token("ingest", batch))

        for batch, answer in send_in_batches(adds, PER_CALL, ingest):
            if isinstance(answer, TransientError):
                self.fail([w for w, _ in batch], answer)
                for w, c in batch:  # a timeout's request may have taken effect (no way to tell)
                    w.lost.append(c)
                continue
            for w, c in batch:
                w.added.append(c)
                if isinstance(answer, RefusedError):
                    refused.setdefault(w.doc_id, {})[c] = str(answer)[:300]
                    continue
                status, reason = answer.get(self._uri(w.doc_id, c), ("STARTING", ""))
                if status in REFUSED:
                    refused.setdefault(w.doc_id, {})[c] = status_reason(status, reason)

        def delete(batch: Sequence[tuple[Work, str]]) -> dict[str, tuple[str, str]]:
            return self.api.delete([self._uri(w.doc_id, c) for w, c in batch], self._token("delete", batch))

        for batch, answer in send_in_batches(removes, PER_CALL, delete):
            if isinstance(answer, TransientError | RefusedError):
                self.fail([w for w, _ in batch], answer)  # retried, then dead-lettered with the reason
                continue
            for w, c in batch:
                w.removed.append(c)

    @staticmethod
    def _token(operation: str, batch: Sequence[tuple[Work, str]]) -> str:
        """The same request retried carries the same token (Bedrock ignores the repeat); a redrive,
        made from a newer state version, does not."""
        return client_token(operation, *(f"{w.doc_id}:{w.state.version if w.state else 0}:{c}" for w, c in batch))

    # -- confirming ----------------------------------------------------------------------------------

    def confirm(self, work: list[Work]) -> None:
        """Ask about the chunks sent directly, whatever the mode now (it may have been switched since
        they were sent); a document waiting for a job is settled when the job ends (see poll_job)."""
        asks = [(w, c) for w in work if w.state is not None for c in w.state.pending if _mark(c) < 0]
        answers: dict[str, tuple[str, str]] = {}
        for batch in batched(asks, PER_CALL):
            try:
                answers |= self.api.statuses([self._uri(w.doc_id, c) for w, c in batch])
            except (TransientError, RefusedError) as exc:
                self.fail([w for w, _ in batch], exc)
        for w in work:
            if w.failed is not None or w.state is None or not w.state.pending:
                continue
            pending, failures = [], dict(w.state.failures)
            for c in w.state.pending:
                if _mark(c) >= 0:
                    pending.append(c)
                    continue
                status, reason = answers.get(self._uri(w.doc_id, c), ("PENDING", ""))
                if status in REFUSED:
                    failures[c] = status_reason(status, reason)
                elif status in GONE and w.state.checks >= GONE_AFTER_CHECKS:
                    failures[c] = "NOT_FOUND: the knowledge base lost it; `sluice redrive` sends it again"
                elif status not in DONE:
                    pending.append(c)  # still processing (or not yet visible)
            checks = w.state.checks + 1
            if pending and checks >= MAX_CHECKS:
                failures |= dict.fromkeys(pending, f"not indexed after {checks} checks")
                pending = []
            present = bool(w.state.held)
            w.new_state = settle(w.state.evolve(checks=checks), tuple(pending), failures, present=present)

    # -- ingestion jobs --------------------------------------------------------------------------------
    #
    # The lock is the sink state ("kb-job", data source id): PENDING while a job runs, its ``held`` the
    # job's generation (a counter bumped at every start) and id, its ``failures`` the flag "dirty"
    # (changes arrived after the job started) and the last job's summary. A document waiting for a job
    # is PENDING with the mark "job>G": any job of a generation above G started after the document's
    # chunks were in S3, so its successful end means the document is indexed. One chain of delayed
    # poll messages follows the running job: the start queues the first, each poll the next.

    def wants_check(self, state: SinkState) -> bool:
        """Chunks sent directly are checked until indexed, in either mode; a job's documents are not."""
        return super().wants_check(state) and any(_mark(p) < 0 for p in state.pending)

    def _apply_by_job(self, work: list[Work]) -> None:
        lock = self._lock()
        generation = _generation(lock)
        waiting = False
        for w in work:
            desired = self._desired(w)
            if w.state is None and not desired:
                continue  # never had it, does not want it
            if desired == w.held() and w.state is not None and not w.resend:
                # Unchanged. It still needs a job if no job has started since it was marked.
                waiting = waiting or any(_mark(p) >= generation for p in w.state.pending if _mark(p) >= 0)
                continue
            waiting = True
            # The job makes the index what the processed bucket holds: what a direct ingest may have
            # left there (its answer lost, before a switch of mode) is then settled too.
            state = self.base_state(w).evolve(held=tuple(desired), maybe=(), failures={}, checks=0)
            w.new_state = state.evolve(status=SinkStatus.PENDING, pending=(f"{JOB_MARK}>{generation}",))
        if waiting:
            try:
                self.request_job(lock)
            except (TransientError, RefusedError, StateConflictError) as exc:
                self.fail(work, exc)

    def _lock(self) -> SinkState | None:
        return self.states.get(JOB_SINK, self.api.ds)

    def _write_lock(self, lock: SinkState | None, **changes: object) -> None:
        base = lock or SinkState(JOB_SINK, self.api.ds, SinkStatus.INDEXED, iso(self.clock()))
        version = lock.version if lock is not None else None
        self.states.put(base.evolve(**changes, version=(version or 0) + 1, updated_at=iso(self.clock())),
                        expected_version=version)  # fmt: skip

    def _follow(self, delay: int, chain: str, sent_at: float | None = None, early: int = 0) -> None:
        """Queue the chain's next poll. A new chain's first poll is sent *before* the lock names the
        chain: a poll that cannot be sent then leaves the lock as it was (the message is retried), never
        naming a chain nobody follows; the poll says when it was sent, for when it arrives first."""
        if self.queue is None:
            raise ValueError("the ingestion-job mode needs the sink's queue to follow its jobs")
        body = {"sluice": "poll-job", "chain": chain, "sent_at": self.clock() if sent_at is None else sent_at}
        self.queue.send(json.dumps(body | ({"early": early} if early else {})), delay)

    def request_job(self, lock: SinkState | None) -> JobOutcome:
        """Make sure a job will pick up the changes recorded so far: start one, or mark the running
        one dirty so that another follows it."""
        if lock is None or lock.status is not SinkStatus.PENDING:
            return self._start(lock)
        if self.clock() - epoch(lock.updated_at) > STALE_LOCK_SECONDS:
            # No news for an hour: its poll chain may be lost. A new chain replaces it.
            chain = uuid.uuid4().hex[:12]
            self._follow(0, chain)
            self._write_lock(lock, failures={**lock.failures, "dirty": "1", "chain": chain})
        elif "dirty" not in lock.failures:
            self._write_lock(lock, failures={**lock.failures, "dirty": "1"})
        return JobOutcome(running=_job_id(lock))

    def _start(self, lock: SinkState | None) -> JobOutcome:
        """Start the next job, or wait for one we did not start, with a new chain of polls. The lock
        keeps "dirty" until a job has started, so a failed start is retried by the redelivered message."""
        generation = _generation(lock) + 1
        chain = uuid.uuid4().hex[:12]
        summary = {k: v for k, v in (lock.failures if lock else {}).items() if k != "dirty"} | {"chain": chain}
        # A start that failed transiently is retried with the same token; one after a conflict, not.
        token = client_token("job", self.api.ds, generation, lock.version if lock else 0)
        try:
            job_id = self.api.start_job(token, "Sluice: sync changed chunks")
        except JobConflictError:
            # Someone else's job (or one of ours whose lock write was lost): wait for it, backing off.
            waited = (
                lock.checks + 1 if lock is not None and lock.status is SinkStatus.PENDING and not _job_id(lock) else 0
            )
            waiting = summary | {"dirty": "1"}
            self._follow(min(MAX_POLL_SECONDS, self.check_delay(waited)), chain)
            self._write_lock(
                lock, status=SinkStatus.PENDING, held=(str(generation - 1),), failures=waiting, checks=waited
            )
            return JobOutcome()
        self._follow(self.first_check_seconds, chain)
        self._write_lock(lock, status=SinkStatus.PENDING, held=(str(generation), job_id), failures=summary, checks=0)
        return JobOutcome(started=job_id)

    def poll_job(
        self, chain: str = "", limit: int | None = None, *, sent_at: float | None = None, early: int = 0
    ) -> JobOutcome:
        """One poll of the chain that follows the jobs (a delayed message; polls back off from 20 s
        to 5 minutes): record the running job's end, start the next job when changes arrived
        meanwhile, and settle the documents of ended jobs, ``limit`` at a time. A poll from a chain
        the lock no longer names is dropped, so exactly one chain lives; one sent (``sent_at``) after
        the lock was last written may have arrived before the write naming its chain, and waits for
        it, EARLY_POLLS times at most (``early``)."""
        limit = self.settle_limit if limit is None else limit
        lock = self._lock()
        if lock is None or chain != lock.failures.get("chain", ""):
            if sent_at is not None and early < EARLY_POLLS and (lock is None or epoch(lock.updated_at) <= sent_at):
                # Sent before the lock was written: the write naming this chain may not have landed yet.
                self._follow(max(1, self.first_check_seconds), chain, sent_at, early + 1)
            return JobOutcome()
        outcome = JobOutcome()
        if lock.status is SinkStatus.PENDING:
            job_id = _job_id(lock)
            if job_id is None:  # someone else's job: try to start ours
                return self._start(lock)
            job = self.api.job(job_id)
            if job.status in ("STARTING", "IN_PROGRESS", "STOPPING"):
                with suppress(StateConflictError):  # counted for the backoff; a missed count is harmless
                    self._write_lock(lock, checks=lock.checks + 1)
                more = self._settle_some(self._lock(), limit)
                self._follow(min(MAX_POLL_SECONDS, self.check_delay(lock.checks + 1)), chain)
                return JobOutcome(running=job.job_id, more=more)
            ended = self._record_end(lock, job)
            if ended is None:
                return JobOutcome()  # another poll recorded it
            outcome, lock = JobOutcome(finished=ended), self._lock()
        if lock is not None and lock.status is not SinkStatus.PENDING and "dirty" in lock.failures:
            outcome = replace(outcome, started=self._start(lock).started)  # the new chain settles too
            return replace(outcome, more=self._settle_some(self._lock(), limit))
        if self._settle_some(lock, limit):
            self._follow(0, chain)
            return replace(outcome, more=True)
        return outcome

    def _record_end(self, lock: SinkState, job: IngestionJob) -> str | None:
        """Write the ended job into the lock (keeping "dirty" and the chain, queueing its documents
        to settle); None when another poll did."""
        ended = f"{job.job_id} {job.status}"
        for _ in range(5):
            summary = {k: v for k, v in lock.failures.items() if k in ("dirty", "chain")}
            summary |= {"last_job": ended, **{k: str(v) for k, v in job.statistics.items()}}
            status = job.status
            if status == "COMPLETE" and job.statistics.get("numberOfDocumentsFailed", 0):
                status = COMPLETE_WITH_FAILURES
            summary["settle"] = " ".join([*_settle_entries(lock), f"{_generation(lock)}:{status}"])
            if job.failure_reasons:
                summary["failure_reasons"] = "; ".join(job.failure_reasons)[:1000]
            try:
                self._write_lock(lock, status=SinkStatus.INDEXED, held=(str(_generation(lock)),), failures=summary)
                return ended
            except StateConflictError:
                current = self._lock()  # a sync marked it dirty meanwhile, or another poll ended it
                if current is None or current.status is not SinkStatus.PENDING or _job_id(current) != job.job_id:
                    return None
                lock = current
        raise StateConflictError(f"the ingestion-job lock of {self.api.ds} keeps changing")

    def _settle_some(self, lock: SinkState | None, limit: int) -> bool:
        """Settle up to ``limit`` documents of the oldest ended job still to settle (oldest first, so
        a later failed job never fails what an earlier one indexed). True when some remain."""
        entries = _settle_entries(lock)
        if lock is None or not entries:
            return False
        generation, status = entries[0].split(":", 1)
        ended = status in ("COMPLETE", COMPLETE_WITH_FAILURES)
        failure = None if ended else f"ingestion job of generation {generation} ended {status}"
        if self._settle_job_documents(int(generation), failure, limit, confirm=status == COMPLETE_WITH_FAILURES):
            return True
        rest = " ".join(entries[1:])
        failures = {k: v for k, v in lock.failures.items() if k != "settle"} | ({"settle": rest} if rest else {})
        with suppress(StateConflictError):  # another poll settled it first, or a sync changed the lock
            self._write_lock(lock, failures=failures)
        return bool(rest)

    def _settle_job_documents(self, generation: int, failure: str | None, limit: int, *, confirm: bool = False) -> bool:
        """The documents waiting for a job of this generation or earlier: indexed, or failed with the
        job's reason (``sluice redrive`` sends them again). ``confirm``: the job completed but failed
        some documents, and its statistics do not say which; each document's chunks are asked about
        (GetKnowledgeBaseDocuments, CONFIRM_LIMIT documents a poll) before it is settled, so the ones
        the job failed are recorded with the service's reason. A document stays marked until its state
        is written: a poll that fails midway is retried and settles the rest. True when more remain."""
        waiting: list[SinkState] = []
        more, cap = False, min(limit, CONFIRM_LIMIT) if confirm else limit
        for state in self.states.states(self.name, SinkStatus.PENDING):
            marks = [_mark(p) for p in state.pending if _mark(p) >= 0]
            if not marks or marks[0] >= generation:
                continue
            if len(waiting) >= cap:
                more = True
                break
            waiting.append(state)
        asked = self._job_answers(waiting) if confirm and failure is None else {}
        for state in waiting:
            if failure is not None:
                done = state.evolve(status=SinkStatus.FAILED, pending=(), failures={"job": failure})
            else:
                refused = {c: r for c in state.held if (r := asked.get(self._uri(state.doc_id, c), ""))}
                done = settle(state, (), refused, present=bool(state.held))
            try:
                self.states.put(done.evolve(version=state.version + 1, updated_at=iso(self.clock())),
                                expected_version=state.version)  # fmt: skip
            except StateConflictError:
                continue  # changed again meanwhile: a later job settles it
            if done.status is not SinkStatus.FAILED:
                # Lag since the document was marked for a job (the registry is not read here: up to
                # ``settle_limit`` documents a poll), which leaves out the event's way to this sink.
                self.confirmed(state.updated_at)
        return more

    def _job_answers(self, states: list[SinkState]) -> dict[str, str]:
        """URI → why, for each chunk of these documents the knowledge base does not hold as indexed."""
        uris = [self._uri(s.doc_id, c) for s in states for c in s.held]
        answers: dict[str, tuple[str, str]] = {}
        for batch in batched(uris, PER_CALL):
            answers |= self.api.statuses(batch)
        refused = {}
        for uri in uris:
            status, reason = answers.get(uri, ("NOT_FOUND", ""))
            if status not in DONE:
                refused[uri] = status_reason(status, reason) + " (after an ingestion job that failed some documents)"
        return refused


def _settle_entries(lock: SinkState | None) -> list[str]:
    return lock.failures.get("settle", "").split() if lock is not None else []


def _mark(pending: str) -> int:
    """The generation in a "job>G" mark, or -1 for anything else."""
    prefix = f"{JOB_MARK}>"
    return int(pending[len(prefix) :]) if pending.startswith(prefix) else -1


def _waits_for_job(state: SinkState | None) -> bool:
    return state is not None and any(_mark(p) >= 0 for p in state.pending)


def _generation(lock: SinkState | None) -> int:
    return int(lock.held[0]) if lock is not None and lock.held else 0


def _job_id(lock: SinkState) -> str | None:
    return lock.held[1] if len(lock.held) > 1 else None
