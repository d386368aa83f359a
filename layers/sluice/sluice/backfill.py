"""A backfill: every object RawBucket holds (under a prefix, or named by an S3 Inventory) rechecked at a
controlled rate, for a bucket that held documents before Sluice was deployed or objects written while
its notifications were off. Step Functions' Distributed Map (statemachine/backfill.asl.json) lists the
objects and hands them out in batches, one child workflow each; this module is what the backfill
function does for the state machine:

    plan      the run's settings from the execution's input (every problem reported at once), recorded
    batch     one child's items: the verdict on each (``sluice.reconcile.raw``: exactly reconciliation's),
              a recheck on the ingest queue for each new or changed one (trigger ``backfill:<run>``),
              the batch recorded with its counts, and how long the child waits before it ends
    summary   the run's totals, summed from its batches' records

Pacing: ``max_concurrency`` children run at once and each is given ``rate / max_concurrency``
rechecks a second, so a child that queued q rechecks in e seconds waits q × max_concurrency ÷ rate − e
seconds. By any time t the run has queued at most rate × t + max_concurrency × batch_size rechecks.
The batch size keeps a child's wait under PACE_BUDGET_SECONDS: an Express child must end within 5
minutes.

Resumable: a batch is recorded under its run and its first and last key once its rechecks are queued;
a batch seen again in the same run (a redriven Map Run, a retried invocation) queues nothing and counts
nothing twice. A recheck sent twice is skipped by the ingest function's idempotency (the trigger names
the run), and one that runs costs an unchanged object a registry read.

A dry run queues nothing; its batches are recorded with what they would have queued, under its own
run, so that its summary is exact.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import unquote_plus

from sluice.errors import SluiceError
from sluice.reconcile.ports import RecordLookup, RepairQueues
from sluice.reconcile.raw import judge_raw
from sluice.s3events import recheck_message
from sluice.sinks.knowledge_base import SYNC_MODES
from sluice.storage import ObjectReader
from sluice.timestamps import iso

DEFAULT_RATE = 10.0  # rechecks a second
MIN_RATE, MAX_RATE = 0.01, 1000.0
MAX_CONCURRENCY = 40  # children at once (each a Lambda invocation at a time)
# A child that queued a whole batch waits at most this long: Express workflows end within 5 minutes.
PACE_BUDGET_SECONDS = 240
# At most this many items a child: 40 ListObjectsV2 entries of 1,024-byte keys, each byte a control
# character JSON spells in 6, still fit the 256 KiB a child's input may hold.
MAX_BATCH_SIZE = 40
MAX_KEY_BYTES = 1024  # S3's longest key
INPUT_FIELDS = ("prefix", "rate", "dry_run", "manifest", "kb_sync_mode")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SHOWN_PROBLEMS = 20
MAX_EXAMPLES, MAX_EXAMPLE_CHARS = 3, 200  # refused items a batch logs


class BackfillInputError(SluiceError):
    """The execution's input (or a batch's) is wrong; the message lists every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"- {p}" for p in self.problems[:SHOWN_PROBLEMS])
        more = f"\n(and {len(self.problems) - SHOWN_PROBLEMS} more)" if len(self.problems) > SHOWN_PROBLEMS else ""
        super().__init__(f"The backfill input has {len(self.problems)} problem(s):\n{lines}{more}")


class Refusal(StrEnum):
    """Why an item cannot be an object of RawBucket (a closed set: counted, never echoed)."""

    MALFORMED = "malformed item"  # not an object with a string Key (and a string ETag, if any)
    KEY_TOO_LONG = "key longer than 1,024 bytes"
    NOT_UTF8 = "key not UTF-8"
    OTHER_BUCKET = "object of another bucket"  # an inventory of a bucket other than RawBucket


class Skip(StrEnum):
    """Why a valid item is neither queued nor unchanged."""

    SIDECAR = "sidecar (checked with its document)"
    UNDER_WAY = "first ingestion under way"
    NOT_CURRENT = "not the current version"  # an inventory of every version: older ones, delete markers
    GONE = "gone since it was listed"
    REPEATED = "listed twice in the batch"


# -- the plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """A run's settings, as the Plan state returns them to the state machine."""

    run: str  # the execution's name: a redrive keeps it
    rate: float
    batch_size: int
    max_concurrency: int
    dry_run: bool = False
    prefix: str = ""
    manifest: dict[str, str] | None = None  # {"bucket", "key"} of an S3 Inventory manifest.json
    kb_sync_mode: str = ""  # the knowledge base's sync mode held while the run goes on ("": the stack's)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def pace(rate: float) -> tuple[int, int]:
    """(max_concurrency, batch_size) for ``rate``: as many children as the budget allows each to carry
    at least one recheck, and batches as large as a child's wait allows."""
    concurrency = min(MAX_CONCURRENCY, max(1, math.floor(PACE_BUDGET_SECONDS * rate)))
    batch_size = max(1, min(MAX_BATCH_SIZE, math.floor(PACE_BUDGET_SECONDS * rate / concurrency)))
    return concurrency, batch_size


def pace_seconds(queued: int, concurrency: int, rate: float, elapsed: float) -> int:
    """How long a child that queued ``queued`` rechecks in ``elapsed`` seconds waits before it ends."""
    return max(0, math.ceil(queued * concurrency / rate - elapsed))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _utf8_length(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no S3 key has one
        return None


def _key_like(value: Any) -> bool:
    """Whether ``value`` could be (part of) an S3 key: a string of at most 1,024 UTF-8 bytes."""
    length = _utf8_length(value) if isinstance(value, str) else None
    return length is not None and length <= MAX_KEY_BYTES


def _tally(counts: dict[str, int], reason: str, n: int = 1) -> None:
    if n:
        counts[reason] = counts.get(reason, 0) + n


def make_plan(request: Any, execution: str, settings: BackfillSettings) -> Plan:
    """The run's settings from the execution's input (``{}`` takes every default), or
    BackfillInputError naming every problem."""
    problems: list[str] = []
    if not isinstance(request, dict):
        raise BackfillInputError([f"the input must be a JSON object, not {type(request).__name__}"])
    unknown = sorted(str(k) for k in request if k not in INPUT_FIELDS)
    if unknown:
        named = ", ".join(repr(k[:40]) for k in unknown[:5])
        named += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        problems.append(f"unknown field(s) {named}; the input takes {', '.join(INPUT_FIELDS)}")
    if not (isinstance(execution, str) and 0 < len(execution) <= 80):
        problems.append("the execution has no name (Step Functions passes $$.Execution.Name)")
    rate = _number(request.get("rate", DEFAULT_RATE))
    if rate is None or not MIN_RATE <= rate <= MAX_RATE:
        problems.append(f"rate must be a number of rechecks a second from {MIN_RATE} to {MAX_RATE:g}")
        rate = DEFAULT_RATE
    dry_run = request.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems.append("dry_run must be true or false")
    prefix = request.get("prefix", "")
    if prefix is None:
        prefix = ""
    if not _key_like(prefix):
        problems.append("prefix must be a string of at most 1,024 UTF-8 bytes (a key prefix of RawBucket)")
        prefix = ""
    kb_sync_mode = request.get("kb_sync_mode") or ""
    if kb_sync_mode not in ("", *SYNC_MODES):
        problems.append(f"kb_sync_mode must be one of {', '.join(SYNC_MODES)} (or left out: the stack's mode)")
        kb_sync_mode = ""
    manifest = _manifest(request.get("manifest"), settings, problems)
    if manifest is not None and prefix:
        problems.append("prefix applies to a listing of RawBucket; an inventory lists what its configuration chose")
    if problems:
        raise BackfillInputError(problems)
    concurrency, batch_size = pace(rate)
    return Plan(execution, rate, batch_size, concurrency, bool(dry_run), prefix, manifest, str(kb_sync_mode))


def _manifest(value: Any, settings: BackfillSettings, problems: list[str]) -> dict[str, str] | None:
    """An S3 Inventory manifest of RawBucket, in the bucket the stack may read inventories from. S3
    writes one at ``[prefix/]<source bucket>/<configuration>/<date>/manifest.json``."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"bucket", "key"}:
        problems.append('manifest must be null or {"bucket": ..., "key": ".../manifest.json"}')
        return None
    bucket, key = value["bucket"], value["key"]
    if not (isinstance(bucket, str) and _BUCKET.match(bucket)):
        problems.append("manifest.bucket must be an S3 bucket name")
    elif settings.inventory_bucket is None:
        problems.append("this stack reads no S3 Inventory: deploy it with BackfillInventoryBucket set to its bucket")
    elif bucket != settings.inventory_bucket:
        problems.append(f"this stack reads inventories in {settings.inventory_bucket} only (BackfillInventoryBucket)")
    if not (_key_like(key) and key.endswith("/manifest.json")):
        problems.append("manifest.key must be the key of an S3 Inventory's manifest.json")
    elif settings.raw_bucket not in key.split("/")[:-3]:
        problems.append(f"manifest.key must be a manifest of an inventory of RawBucket ({settings.raw_bucket})")
    return {"bucket": str(bucket), "key": str(key)}


# -- counts and progress ----------------------------------------------------------------------------------


@dataclass
class Counts:
    """What batches found: items listed, rechecks queued (a dry run: that it would queue), objects
    Sluice holds unchanged, and items skipped or refused, by reason; ``found``: the queued by kind of
    drift (``unrecorded``, ``stale``)."""

    listed: int = 0
    queued: int = 0
    unchanged: int = 0
    found: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.listed += other.listed
        self.queued += other.queued
        self.unchanged += other.unchanged
        for mine, theirs in ((self.found, other.found), (self.skipped, other.skipped), (self.refused, other.refused)):
            for reason, n in theirs.items():
                _tally(mine, reason, n)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Progress:
    """A run as its records have it: its plan, when it started, and its batches' counts summed."""

    plan: Plan
    started_at: float
    batches: int = 0
    counts: Counts = field(default_factory=Counts)

    @classmethod
    def summed(cls, plan: Plan, started_at: float, batches: Iterable[Counts]) -> Progress:
        total, n = Counts(), 0
        for counts in batches:
            total.add(counts)
            n += 1
        return cls(plan, started_at, n, total)

    def to_json(self) -> dict[str, Any]:
        """The run's totals (the state machine's output)."""
        c = self.counts
        return {
            "run": self.plan.run,
            "dry_run": self.plan.dry_run,
            "started_at": iso(self.started_at, "seconds"),
            "batches": self.batches,
            "listed": c.listed,
            "queued": c.queued,
            "unchanged": c.unchanged,
            "skipped": sum(c.skipped.values()),
            "refused": sum(c.refused.values()),
            "found": c.found,
            "skipped_by_reason": c.skipped,
            "refused_by_reason": c.refused,
        }

    def eta_seconds(self, now: float, total: int | None) -> float | None:
        """Seconds until ``total`` objects (the bucket's count, or a Map Run's item total, when the
        caller knows one) are listed and their rechecks queued, at the listing's pace so far and the
        run's rate for the share that needed a recheck; None without a total or before any batch."""
        if total is None or self.counts.listed == 0:
            return None
        remaining = max(0, total - self.counts.listed)
        listing = remaining * max(now - self.started_at, 0.0) / self.counts.listed
        queueing = remaining * self.counts.queued / self.counts.listed / self.plan.rate
        return max(listing, queueing)


@dataclass(frozen=True)
class RunStatus:
    """A run as an operator follows it: its progress, and the documents the ingest function recorded as
    processed or quarantined since the run started (by any trigger: its rechecks and new uploads alike)."""

    progress: Progress
    processed: int
    quarantined: int


class ProgressStore(Protocol):
    """Each run's plan and start, and one record per finished batch with its counts."""

    def begin(self, plan: Plan, now: float) -> None:
        """Record the run's plan and start time, unless the run is recorded already."""

    def recorded(self, run: str, batch: str) -> Counts | None:
        """The counts recorded for this batch of this run, if it was recorded."""

    def record(self, run: str, batch: str, counts: Counts, now: float) -> bool:
        """Record a finished batch, unless it was: whether this call recorded it."""

    def progress(self, run: str) -> Progress | None:
        """The run's plan, start and its batches' counts summed; None for a run never planned."""


# -- batches ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch: str  # its record's name in the run
    counts: Counts  # what this call counted (nothing for a batch recorded already)
    wait_seconds: int  # the child's Pace
    dry_run: bool = False
    repeated: bool = False  # the batch was recorded before: nothing was queued or counted
    examples: tuple[str, ...] = ()  # refused items, shortened, for the logs

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "wait_seconds": self.wait_seconds,
            "dry_run": self.dry_run,
            "repeated": self.repeated,
            "examples": list(self.examples),
            **self.counts.to_json(),
        }


def batch_name(items: Sequence[Any]) -> str:
    """A batch's name within its run: of its first and last key and its length (the Map hands the same
    items to a child it runs again)."""

    def key(item: Any) -> str:
        return item["Key"] if isinstance(item, dict) and isinstance(item.get("Key"), str) else repr(item)

    ends = f"{len(items)}\0{key(items[0])}\0{key(items[-1])}" if items else "0"
    return hashlib.sha256(ends.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _listed(item: Any, bucket: str) -> tuple[str, str | None] | Refusal | Skip:
    """(key, ETag or None) of a ListObjectsV2 entry (``Key``, ``Etag`` in quotes) or an S3 Inventory
    row (``Bucket``, ``Key`` URL-encoded, ``ETag`` and the versions' fields when the inventory has
    them); or why it is not an object of ``bucket`` to look at."""
    if not isinstance(item, dict) or not isinstance(item.get("Key"), str) or not item["Key"]:
        return Refusal.MALFORMED
    etag = item.get("Etag", item.get("ETag"))
    if etag is not None and not isinstance(etag, str):
        return Refusal.MALFORMED
    key = item["Key"]
    if "Bucket" in item:  # an inventory row: keys are URL-encoded in CSV inventories
        if item["Bucket"] != bucket:
            return Refusal.OTHER_BUCKET
        if str(item.get("IsLatest", "true")).lower() != "true" or str(item.get("IsDeleteMarker", "")).lower() == "true":
            return Skip.NOT_CURRENT
        try:
            key = unquote_plus(key, errors="strict")
        except UnicodeDecodeError:
            return Refusal.NOT_UTF8
    length = _utf8_length(key)
    if length is None:
        return Refusal.NOT_UTF8
    if length > MAX_KEY_BYTES:
        return Refusal.KEY_TOO_LONG
    return key, (etag.strip('"') or None) if etag is not None else None


@dataclass(frozen=True, slots=True)
class BatchInput:
    """What the Map adds to every child's input: the plan's run, rate, concurrency, dry run and the
    sync mode it holds."""

    run: str
    rate: float
    concurrency: int
    dry_run: bool
    kb_sync_mode: str = ""


def batch_input_of(data: Any) -> BatchInput:
    """The BatchInput the Map adds to every child's input (a run planned before ``kb_sync_mode``
    existed, redriven, has none)."""
    data = data if isinstance(data, dict) else {}
    run, rate, concurrency = data.get("run"), _number(data.get("rate")), _number(data.get("concurrency"))
    problems = []
    if not (isinstance(run, str) and run):
        problems.append("BatchInput.run must name the run")
    if rate is None or rate <= 0:
        problems.append("BatchInput.rate must be a positive number")
    if concurrency is None or concurrency < 1 or not concurrency.is_integer():
        problems.append("BatchInput.concurrency must be a positive whole number")
    if not isinstance(data.get("dry_run"), bool):
        problems.append("BatchInput.dry_run must be true or false")
    mode = data.get("kb_sync_mode") or ""
    if mode not in ("", *SYNC_MODES):
        problems.append(f"BatchInput.kb_sync_mode must be one of {', '.join(SYNC_MODES)} or empty")
    if problems:
        raise BackfillInputError(problems)
    return BatchInput(str(run), float(rate or 0), int(concurrency or 0), bool(data["dry_run"]), str(mode))


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    raw_bucket: str
    ingest_queue_url: str
    inventory_bucket: str | None = None  # where the stack may read S3 Inventory manifests
    threads: int = 16  # concurrent HeadObject calls in a batch


class ModeHolder(Protocol):
    """Holds the knowledge-base sink's sync mode for a while (``sluice.sinks.knowledge_base.ModeHolds``)."""

    def hold(self, mode: str, run: str) -> None:
        """Hold ``mode`` for the next half hour or so (a renewal may be skipped when one is recent)."""


class Backfill:
    def __init__(
        self,
        settings: BackfillSettings,
        *,
        registry: RecordLookup,
        objects: ObjectReader,
        queues: RepairQueues,
        progress: ProgressStore,
        holds: ModeHolder | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.objects = objects
        self.queues = queues
        self.progress = progress
        self.holds = holds
        self.clock = clock
        self.timer = timer

    def plan(self, request: Any, execution: str) -> Plan:
        plan = make_plan(request, execution, self.settings)
        if plan.kb_sync_mode and self.holds is None:
            raise BackfillInputError(["kb_sync_mode needs a stack with a knowledge base"])
        self.progress.begin(plan, self.clock())
        self._hold(plan.kb_sync_mode, plan.run, plan.dry_run)  # before the first recheck is queued
        return plan

    def _hold(self, mode: str, run: str, dry_run: bool) -> None:
        """Renew the run's hold on the knowledge base's sync mode, if it asked for one: each batch
        does, and the summary once more, for the rechecks still on their way to the sink."""
        if mode and not dry_run and self.holds is not None:
            self.holds.hold(mode, run)

    def batch(self, items: Sequence[Any], batch_input: Any) -> BatchResult:
        """Decide, queue, record and pace one child's items (see the module's docstring)."""
        started = self.timer()
        given = batch_input_of(batch_input)
        run, rate, concurrency, dry_run = given.run, given.rate, given.concurrency, given.dry_run
        self._hold(given.kb_sync_mode, run, dry_run)
        name = batch_name(items)
        done = self.progress.recorded(run, name)
        if done is not None:  # still paced: a retry may follow an attempt whose answer was lost
            wait = pace_seconds(0 if dry_run else done.queued, concurrency, rate, self.timer() - started)
            return BatchResult(name, Counts(), wait, dry_run, repeated=True)
        counts, rechecks, refused = self._decide(items)
        if rechecks and not dry_run:
            trigger = f"backfill:{run}"
            self.queues.send(
                self.settings.ingest_queue_url,
                [recheck_message(self.settings.raw_bucket, key, trigger) for key in rechecks],
            )
        recorded = self.progress.record(run, name, counts, self.clock())
        sent = 0 if dry_run else counts.queued
        wait = pace_seconds(sent, concurrency, rate, self.timer() - started)
        examples = tuple(repr(item)[:MAX_EXAMPLE_CHARS] for item in refused[:MAX_EXAMPLES])
        return BatchResult(name, counts if recorded else Counts(), wait, dry_run, not recorded, examples)

    def summary(self, run: str) -> Progress:
        progress = self.progress.progress(run)
        if progress is None:
            raise BackfillInputError([f"no backfill run is recorded under {run!r}"])
        self._hold(progress.plan.kb_sync_mode, run, progress.plan.dry_run)
        return progress

    def _decide(self, items: Sequence[Any]) -> tuple[Counts, list[str], list[Any]]:
        """The batch's counts, the keys to recheck, and the items refused."""
        counts = Counts(listed=len(items))
        etags: dict[str, str] = {}
        unknown: list[str] = []  # listed without an ETag: asked of S3
        refused: list[Any] = []
        for item in items:
            listed = _listed(item, self.settings.raw_bucket)
            if isinstance(listed, Refusal):
                _tally(counts.refused, listed.value)
                refused.append(item)
            elif isinstance(listed, Skip):
                _tally(counts.skipped, listed.value)
            elif listed[0] in etags or listed[0] in unknown:
                _tally(counts.skipped, Skip.REPEATED.value)
            elif listed[1] is None:
                unknown.append(listed[0])
            else:
                etags[listed[0]] = listed[1]
        for key, etag in self._etags(unknown).items():
            if etag is None:
                _tally(counts.skipped, Skip.GONE.value)
            else:
                etags[key] = etag
        verdicts = judge_raw(self.settings.raw_bucket, etags, self.registry, self._etags)
        _tally(counts.skipped, Skip.SIDECAR.value, len(verdicts.sidecars))
        _tally(counts.skipped, Skip.UNDER_WAY.value, len(verdicts.under_way))
        counts.unchanged = len(verdicts.current)
        counts.queued = len(verdicts.drift)
        for drift in verdicts.drift.values():
            _tally(counts.found, drift.value)
        return counts, list(verdicts.drift), refused

    def _etags(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Each object's ETag in RawBucket now (None: there is none), asked on ``threads`` threads."""
        if not keys:
            return {}
        bucket = self.settings.raw_bucket
        with ThreadPoolExecutor(min(self.settings.threads, len(keys))) as pool:
            heads = list(pool.map(lambda key: self.objects.head(bucket, key), keys))
        return {key: head.etag if head is not None else None for key, head in zip(keys, heads, strict=True)}
