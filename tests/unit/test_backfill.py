"""The backfill (sluice.backfill) on in-memory adapters: a bucket written while notifications were off
is rechecked exactly where reconciliation would recheck it, a repeated batch does nothing, a dry run
queues nothing, the run is paced (a simulated run on a fake clock), and the plan reports every problem."""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.backfill import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_RATE,
    MIN_RATE,
    PACE_BUDGET_SECONDS,
    Backfill,
    BackfillInputError,
    BackfillSettings,
    Plan,
    Refusal,
    Skip,
    pace,
)
from sluice.ingest import IngestSettings, ObjectEvent
from sluice.pipeline.files import document_id, s3_uri
from sluice.reconcile import Reconciler, ReconcileSettings
from sluice.s3events import parse_message
from support.fakes import FakeDocumentsTable, FakePassStore, FakeProgressStore, FakeQueues, IngestedBucket

RAW, PROCESSED, QUEUE = "raw", "processed", "ingest-queue"
DOCS = {
    "notes/estuary.md": "# Estuary\n\nThe estuary tide table.\n",
    "notes/harbour.md": "# Harbour\n\nThe harbour tide table.\n",
    "notes/weir.md": "# Weir\n\nThe weir tide table.\n",
    "notes/lock.md": "# Lock\n\nThe lock keeper's log.\n",
}
LOCK_SIDECAR = "notes/lock.md.metadata.json"
HOSTILE = [
    {"Key": "x" * 1025, "Etag": '"0"'},  # longer than any S3 key
    {"Key": "notes/\udcff.md", "Etag": '"0"'},  # a lone surrogate: not UTF-8
    {"Etag": '"0"'},  # no key
    "notes/weir.md",  # not an entry at all
]


class World(IngestedBucket):
    """RawBucket and the registry, in step: each of DOCS (and lock.md's sidecar) ingested by the real
    ingestion service on a notification; then written to behind its back."""

    def __init__(self) -> None:
        super().__init__(RAW, PROCESSED)
        self.progress = FakeProgressStore()
        self.put(LOCK_SIDECAR, json.dumps({"metadataAttributes": {"department": "locks"}}), notify=False)
        for key, body in DOCS.items():
            self.put(key, body)

    def listing(self, prefix: str = "") -> list[dict[str, Any]]:
        """RawBucket as the Distributed Map's ListObjectsV2 reader gives it (``Etag`` in quotes)."""
        return [
            {
                "Key": key,
                "Etag": f'"{hashlib.md5(data).hexdigest()}"',
                "LastModified": int(written),
                "Size": len(data),
                "StorageClass": "STANDARD",
            }
            for (bucket, key), (data, written) in sorted(self.s3.objects.items())
            if bucket == RAW and key.startswith(prefix)
        ]

    def backfill(self, *, timer: Any = None, queues: Any = None, holds: Any = None) -> Backfill:
        return Backfill(
            BackfillSettings(raw_bucket=RAW, ingest_queue_url=QUEUE, inventory_bucket="inventories"),
            registry=self.table,
            objects=self.s3,
            queues=queues or self.queues,
            progress=self.progress,
            holds=holds,
            clock=lambda: self.now,
            timer=timer or (lambda: self.now),
        )

    def rechecks(self, run: str) -> list[str]:
        """The keys the ingest queue was asked to read again for this run."""
        messages = [json.loads(body) for body in self.queues.sent.get(QUEUE, [])]
        return sorted(m["key"] for m in messages if m["trigger"] == f"backfill:{run}")

    def deliver(self) -> None:
        """The ingest function takes every queued message, as Lambda would."""
        for body in self.queues.sent.pop(QUEUE, []):
            for event in parse_message(body):
                self.ingest.handle(event)

    def reconciliation(self) -> dict[str, set[str]]:
        """What a dry reconciliation pass finds in RawBucket: the URIs of each kind of drift."""
        settings = ReconcileSettings(RAW, PROCESSED, "documents", QUEUE, IngestSettings().pipeline.fingerprint())
        reconciler = Reconciler(
            settings,
            objects=self.s3,
            listing=self.s3,
            processed=self.s3.bucket(PROCESSED),
            registry=self.table,
            states=self.table,
            queues=FakeQueues(),
            passes=FakePassStore(),
            clock=lambda: self.now,
        )
        report = reconciler.run(dry_run=True)
        return {kind: set(report.examples.get(kind, [])) for kind in ("unrecorded", "stale")}


def _run(backfill: Backfill, items: Sequence[Any], plan: Plan) -> list[dict[str, Any]]:
    """The Map's children over ``items``, one after the other: each batch's result."""
    batch_input = {"run": plan.run, "rate": plan.rate, "dry_run": plan.dry_run, "concurrency": plan.max_concurrency}
    return [
        backfill.batch(items[i : i + plan.batch_size], batch_input).to_json()
        for i in range(0, len(items), plan.batch_size)
    ]


@pytest.fixture
def world() -> World:
    return World()


def test_a_bucket_written_without_notifications_gets_exactly_the_rechecks_reconciliation_would_ask(
    world: World,
) -> None:
    world.now += 3600
    world.put("notes/new.md", "# New\n\nA page nobody announced.\n", notify=False)  # new
    world.put("notes/estuary.md", "# Estuary\n\nThe estuary tide table, revised.\n", notify=False)  # changed
    world.put(
        "notes/harbour.md.metadata.json", '{"metadataAttributes": {"port": "north"}}', notify=False
    )  # sidecar new
    world.put(LOCK_SIDECAR, '{"metadataAttributes": {"department": "weirs"}}', notify=False)  # sidecar changed
    first = document_id(s3_uri(RAW, "notes/fresh.md"))
    world.put("notes/fresh.md", "# Fresh\n\nBeing ingested right now.\n", notify=False)
    world.table.registry.acquire(first, "a worker", world.now, 300)  # its first ingestion holds the lease
    backfill = world.backfill()
    plan = backfill.plan({}, "run-1")

    results = _run(backfill, world.listing() + HOSTILE, plan)

    queued = {"notes/new.md", "notes/estuary.md", "notes/harbour.md", "notes/lock.md"}
    assert world.rechecks("run-1") == sorted(queued)
    found = world.reconciliation()  # the same objects, the same verdicts
    assert found == {
        "unrecorded": {s3_uri(RAW, "notes/new.md")},
        "stale": {s3_uri(RAW, k) for k in ("notes/estuary.md", "notes/harbour.md", "notes/lock.md")},
    }
    totals = backfill.summary("run-1").to_json()
    assert {k: totals[k] for k in ("listed", "queued", "unchanged", "skipped", "refused")} == {
        "listed": len(world.listing()) + len(HOSTILE),
        "queued": 4,
        "unchanged": 1,  # weir.md
        "skipped": 3,  # the two sidecars, and fresh.md under way
        "refused": len(HOSTILE),
    }
    assert totals["found"] == {"unrecorded": 1, "stale": 3}
    assert totals["refused_by_reason"] == {
        Refusal.KEY_TOO_LONG.value: 1,
        Refusal.NOT_UTF8.value: 1,
        Refusal.MALFORMED.value: 2,
    }
    assert totals["skipped_by_reason"] == {Skip.SIDECAR.value: 2, Skip.UNDER_WAY.value: 1}
    assert sum(r["queued"] for r in results) == 4 and totals["batches"] == len(results)

    world.table.registry.release(first, "a worker")
    world.deliver()  # the ingest function reads them again: the registry catches up with the bucket
    world.ingest.handle(ObjectEvent(RAW, "notes/fresh.md", removed=False))
    after = world.backfill()
    _run(after, world.listing(), after.plan({}, "run-2"))
    assert world.rechecks("run-2") == [] and world.reconciliation() == {"unrecorded": set(), "stale": set()}
    assert after.summary("run-2").counts.unchanged == len(DOCS) + 2  # new.md and fresh.md too


def test_a_batch_seen_again_queues_nothing_and_counts_nothing_twice(world: World) -> None:
    world.put("notes/new.md", "# New\n\nUnannounced.\n", notify=False)
    backfill = world.backfill()
    plan = backfill.plan({"rate": 20}, "run-1")
    items = world.listing()
    batch_input = {"run": "run-1", "rate": 20, "dry_run": False, "concurrency": plan.max_concurrency}

    first = backfill.batch(items, batch_input)
    again = backfill.batch(items, batch_input)  # a redriven child, or a retried invocation

    assert first.counts.queued == 1 and not first.repeated
    assert again.repeated and again.counts.queued == 0
    assert again.wait_seconds == first.wait_seconds == 2  # a retry keeps the batch's pace: 1 x 40 / 20
    assert world.rechecks("run-1") == ["notes/new.md"]
    progress = backfill.summary("run-1")
    assert (progress.batches, progress.counts.listed, progress.counts.queued) == (1, len(items), 1)
    backfill.plan({"rate": 1}, "run-1")  # a Plan run again keeps the run's first settings and start
    assert backfill.summary("run-1").plan == plan


def test_a_dry_run_queues_nothing_and_counts_what_it_would_queue(world: World) -> None:
    world.put("notes/new.md", "# New\n\nUnannounced.\n", notify=False)
    records = {d: i.record for d, i in world.table.registry.items.items()}
    backfill = world.backfill()
    plan = backfill.plan({"dry_run": True}, "dry-1")

    results = _run(backfill, world.listing(), plan)

    assert world.queues.sent == {}
    assert {d: i.record for d, i in world.table.registry.items.items()} == records
    assert all(r["wait_seconds"] == 0 for r in results)  # nothing queued: nothing to pace
    totals = backfill.summary("dry-1").to_json()
    assert totals["dry_run"] is True and (totals["queued"], totals["unchanged"]) == (1, len(DOCS))


def test_an_inventory_row_is_read_as_s3_writes_it(world: World) -> None:
    """CSV inventories URL-encode keys; an inventory of every version lists old ones and delete
    markers; a row without an ETag is asked of S3 (and may be gone by now)."""
    world.put("notes/My Report (2).md", "# Report\n\nQuarterly.\n", notify=False)
    etag = hashlib.md5(DOCS["notes/weir.md"].encode()).hexdigest()
    rows = [
        {"Bucket": RAW, "Key": "notes/My+Report+%282%29.md", "Size": "20"},  # no ETag column
        {"Bucket": RAW, "Key": "notes/weir.md", "ETag": etag, "IsLatest": "true", "IsDeleteMarker": "false"},
        {"Bucket": RAW, "Key": "notes/harbour.md", "ETag": "0" * 32, "IsLatest": "false"},
        {"Bucket": RAW, "Key": "notes/estuary.md", "IsLatest": "true", "IsDeleteMarker": "true"},
        {"Bucket": RAW, "Key": "notes/gone.md"},
        {"Bucket": "someone-else", "Key": "notes/weir.md", "ETag": etag},
        {"Bucket": RAW, "Key": "notes/%FF.md", "ETag": etag},  # percent-decodes to a byte that is not UTF-8
    ]
    backfill = world.backfill()
    manifest = {"bucket": "inventories", "key": f"inventory/{RAW}/all/2027-01-01T00-00Z/manifest.json"}
    plan = backfill.plan({"manifest": manifest}, "i")

    _run(backfill, rows, plan)

    assert world.rechecks("i") == ["notes/My Report (2).md"]
    counts = backfill.summary("i").counts
    assert (counts.queued, counts.unchanged) == (1, 1)
    assert counts.skipped == {Skip.NOT_CURRENT.value: 2, Skip.GONE.value: 1}
    assert counts.refused == {Refusal.OTHER_BUCKET.value: 1, Refusal.NOT_UTF8.value: 1}


def test_a_sidecar_outside_the_batch_is_asked_of_s3(world: World) -> None:
    """The batch holds lock.md but not its sidecar: its ETag comes from S3, so a changed sidecar is
    found whichever batch it fell in."""
    world.put(LOCK_SIDECAR, '{"metadataAttributes": {"department": "weirs"}}', notify=False)
    backfill = world.backfill()
    plan = backfill.plan({}, "r")
    lock = [item for item in world.listing() if item["Key"] == "notes/lock.md"]

    _run(backfill, lock, plan)

    assert world.rechecks("r") == ["notes/lock.md"]


# -- pacing -----------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _TimedQueues(FakeQueues):
    """The ingest queue, noting when (on the simulation's clock) each recheck was queued."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def send(self, queue_url: str, bodies: Sequence[str]) -> None:
        super().send(queue_url, bodies)
        self.times += [self.clock.now] * len(bodies)


class _SlowRegistry(FakeDocumentsTable):
    """The registry, taking ``seconds`` of the simulation's time for each lookup."""

    def __init__(self, table: FakeDocumentsTable, clock: _Clock, seconds: float) -> None:
        self.__dict__.update(table.__dict__)
        self.clock, self.seconds = clock, seconds

    def lookup(self, doc_ids: Any) -> Any:
        self.clock.now += self.seconds
        return super().lookup(doc_ids)


@pytest.mark.parametrize("rate", [0.5, 2.0, 10.0])
def test_a_run_queues_no_faster_than_its_rate_and_no_child_outlives_express(world: World, rate: float) -> None:
    """The Map's children on a simulated clock: max_concurrency at a time, each batch taking 0.8 s
    and then its Pace. By every moment t, at most rate × t + max_concurrency × batch_size rechecks
    were queued; no child's wait passes PACE_BUDGET_SECONDS nor its life Express's 5 minutes; and the
    pacing does not throttle the run below its rate."""
    new = 4000  # well beyond the first wave of batches (at most 1,600)
    for n in range(new):
        world.s3.put(RAW, f"new/{n:05d}.md", f"# Page {n}\n\nUnannounced.\n".encode())
    clock = _Clock()
    queues = _TimedQueues(clock)
    backfill = world.backfill(timer=clock, queues=queues)
    backfill.registry = _SlowRegistry(world.table, clock, 0.8)
    plan = backfill.plan({"rate": rate, "prefix": "new/"}, "paced")
    items = world.listing("new/")
    batch_input = {"run": plan.run, "rate": rate, "dry_run": False, "concurrency": plan.max_concurrency}

    free = [0.0] * plan.max_concurrency  # when each child slot is free again
    ends = []
    for start in range(0, len(items), plan.batch_size):
        clock.now = heapq.heappop(free)
        began = clock.now
        result = backfill.batch(items[start : start + plan.batch_size], batch_input)
        assert result.wait_seconds <= PACE_BUDGET_SECONDS
        ends.append(clock.now + result.wait_seconds)
        assert ends[-1] - began < 300  # an Express child's limit
        heapq.heappush(free, ends[-1])

    times = sorted(queues.times)
    assert len(times) == new
    burst = plan.max_concurrency * plan.batch_size
    assert all(n + 1 <= rate * t + burst for n, t in enumerate(times))
    assert burst <= PACE_BUDGET_SECONDS * rate + plan.max_concurrency  # the burst is one budget's worth
    assert max(ends) <= 1.05 * new / rate + PACE_BUDGET_SECONDS


@given(st.floats(min_value=MIN_RATE, max_value=MAX_RATE))
def test_every_rate_gets_batches_whose_wait_fits_the_budget(rate: float) -> None:
    concurrency, batch_size = pace(rate)
    assert 1 <= concurrency <= MAX_CONCURRENCY and 1 <= batch_size <= MAX_BATCH_SIZE
    assert batch_size * concurrency / rate <= PACE_BUDGET_SECONDS  # a full batch's Pace


def test_the_default_rate_runs_forty_children_of_forty_items() -> None:
    assert pace(10.0) == (40, 40)  # a full batch waits 160 s
    assert pace(1.0) == (40, 6)
    assert pace(0.01) == (2, 1)


# -- the plan ---------------------------------------------------------------------------------------------


def test_an_empty_input_takes_every_default(world: World) -> None:
    plan = world.backfill().plan({}, "console-start")
    assert plan.to_json() == {
        "run": "console-start",
        "rate": 10.0,
        "batch_size": 40,
        "max_concurrency": 40,
        "dry_run": False,
        "prefix": "",
        "manifest": None,
        "kb_sync_mode": "",
    }
    assert world.progress.runs["console-start"][1] == world.now


def test_every_problem_of_the_input_is_reported_at_once(world: World) -> None:
    with pytest.raises(BackfillInputError) as raised:
        world.backfill().plan(
            {"rate": "fast", "dry_run": "yes", "prefix": 7, "manifest": {"bucket": "Not A Bucket"}, "rates": 3}, ""
        )
    problems = raised.value.problems
    assert len(problems) == 6, problems
    for fragment in ("'rates'", "no name", "rate must", "dry_run", "prefix", "manifest must"):
        assert any(fragment in p for p in problems), fragment
    assert str(raised.value).startswith("The backfill input has 6 problem(s):\n- ")
    assert world.progress.runs == {}  # nothing recorded


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        ({"rate": 0.001}, "rate must"),
        ({"rate": math.inf}, "rate must"),
        ({"rate": True}, "rate must"),
        ({"prefix": "x" * 1025}, "prefix"),
        (
            {"manifest": {"bucket": "elsewhere", "key": f"{RAW}/all/2027-01-01T00-00Z/manifest.json"}},
            "inventories only",
        ),
        ({"manifest": {"bucket": "inventories", "key": f"{RAW}/all/data/1.csv.gz"}}, "manifest.key must be the key"),
        ({"manifest": {"bucket": "inventories", "key": "other/all/2027-01-01T00-00Z/manifest.json"}}, "of RawBucket"),
        (
            {"manifest": {"bucket": "inventories", "key": f"{RAW}/c/2027-01-01T00-00Z/manifest.json"}, "prefix": "n"},
            "listing",
        ),
    ],
)
def test_a_wrong_input_is_refused_with_its_reason(world: World, request_: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BackfillInputError, match=fragment):
        world.backfill().plan(request_, "run")


def test_a_stack_without_an_inventory_bucket_refuses_a_manifest(world: World) -> None:
    backfill = world.backfill()
    backfill.settings = BackfillSettings(RAW, QUEUE, inventory_bucket=None)
    with pytest.raises(BackfillInputError, match="BackfillInventoryBucket"):
        backfill.plan({"manifest": {"bucket": "inventories", "key": f"{RAW}/c/2027-01-01T00-00Z/manifest.json"}}, "run")


def test_a_batch_without_its_run_settings_is_refused(world: World) -> None:
    with pytest.raises(BackfillInputError) as raised:
        world.backfill().batch(world.listing(), {"run": "", "rate": 0, "concurrency": 1.5})
    assert len(raised.value.problems) == 4
    assert world.queues.sent == {}


def test_the_summary_of_a_run_never_planned_is_refused(world: World) -> None:
    with pytest.raises(BackfillInputError, match="no backfill run"):
        world.backfill().summary("nobody")


def test_the_eta_follows_the_pace_so_far(world: World) -> None:
    world.put("notes/new.md", "# New\n\nUnannounced.\n", notify=False)
    backfill = world.backfill()
    plan = backfill.plan({"rate": 1}, "eta")
    _run(backfill, world.listing(), plan)  # 6 listed, 1 queued, at once
    progress = backfill.summary("eta")
    assert progress.eta_seconds(world.now + 60, total=None) is None
    # 600 more to list at 6 per minute: 100 minutes; 1 in 6 of them queued at 1 a second: 100 s.
    assert progress.eta_seconds(world.now + 60, total=606) == pytest.approx(6000)
    assert progress.eta_seconds(world.now, total=606) == pytest.approx(100)


# -- holding the knowledge base's sync mode ----------------------------------------------------------------


class _Holds:
    def __init__(self) -> None:
        self.held: list[tuple[str, str]] = []

    def hold(self, mode: str, run: str) -> None:
        self.held.append((mode, run))


def _batch_input(plan: Plan) -> dict[str, Any]:
    """What the Map's ItemBatcher gives each child of this plan (statemachine/backfill.asl.json)."""
    p = plan.to_json()
    return {"run": p["run"], "rate": p["rate"], "dry_run": p["dry_run"], "concurrency": p["max_concurrency"],
            "kb_sync_mode": p["kb_sync_mode"]}  # fmt: skip


def test_a_run_holds_the_knowledge_base_in_ingestion_job_mode_from_its_plan_to_its_summary(world: World) -> None:
    holds = _Holds()
    backfill = world.backfill(holds=holds)
    plan = backfill.plan({"kb_sync_mode": "ingestion-job"}, "big-run")
    assert holds.held == [("ingestion-job", "big-run")]  # before the first recheck is queued
    listing = world.listing()
    backfill.batch(listing[:2], _batch_input(plan))
    backfill.batch(listing[2:], _batch_input(plan))
    backfill.summary("big-run")
    assert holds.held == [("ingestion-job", "big-run")] * 4  # each batch renews it, and the summary once more


def test_a_run_that_asks_nothing_of_the_sync_mode_and_a_dry_run_hold_nothing(world: World) -> None:
    holds = _Holds()
    backfill = world.backfill(holds=holds)
    for request, run in (({}, "plain"), ({"kb_sync_mode": "ingestion-job", "dry_run": True}, "dry")):
        plan = backfill.plan(request, run)
        backfill.batch(world.listing(), _batch_input(plan))
        backfill.summary(run)
    assert holds.held == []


def test_a_sync_mode_the_stack_cannot_hold_is_refused(world: World) -> None:
    with pytest.raises(BackfillInputError, match="kb_sync_mode must be one of direct, ingestion-job"):
        world.backfill(holds=_Holds()).plan({"kb_sync_mode": "nightly"}, "run")
    with pytest.raises(BackfillInputError, match="needs a stack with a knowledge base"):
        world.backfill().plan({"kb_sync_mode": "ingestion-job"}, "run")
