"""`make faults`: the whole pipeline on the local stack while throttling, 5xx answers, timeouts (some
after the request took effect) and per-entry failures are injected at every AWS call the functions
make: S3, DynamoDB, EventBridge, SQS, the Bedrock knowledge base and Kendra (see
sluice_local.faults). A generated corpus is uploaded, then edited, re-described, deleted,
resurrected, broken and mended, interleaved with the ingestion of the first uploads. Then the faults
stop, the stack drains (dead letters moved back with `sluice redrive`'s own function), and RawBucket,
the registry, ProcessedBucket and both indexes must agree exactly.

Knobs: SLUICE_FAULT_RATE (chance that one attempt fails, default 0.15), SLUICE_FAULT_OUTAGE (chance
that a whole call fails at every attempt, so the application sees it; default 0.01), SLUICE_FAULT_DOCS
(default 300), SLUICE_FAULT_SEED, SLUICE_FAULT_CONCURRENCY (workers per queue-fed function, default
2), SLUICE_FAULT_CONVERGE_SECONDS (default 1200), SLUICE_FAULT_SWITCH_MODES (1: the stack is deployed
again with KnowledgeBaseSyncMode=ingestion-job before the second wave of changes and with direct
before the third, documents in flight each time; default 0, direct throughout: a job can index a
chunk file an edit is about to delete, which only the next job or reconciliation's kb-index pass
removes, and this drain runs neither, so the run ends with about one such stray chunk).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from sluice.pipeline.files import document_id, s3_uri
from sluice.registry import Status
from sluice_local import faults
from sluice_local.stack import LocalStack
from soak import corpus, harness
from soak.corpus import Doc
from soak.harness import say

pytestmark = pytest.mark.soak

RATE = float(os.environ.get("SLUICE_FAULT_RATE", "0.15"))
OUTAGE = float(os.environ.get("SLUICE_FAULT_OUTAGE", "0.01"))
DOCS = int(os.environ.get("SLUICE_FAULT_DOCS", "300"))
SEED = int(os.environ.get("SLUICE_FAULT_SEED", "20261128"))
CONCURRENCY = int(os.environ.get("SLUICE_FAULT_CONCURRENCY", "2"))
CONVERGE_SECONDS = float(os.environ.get("SLUICE_FAULT_CONVERGE_SECONDS", "1200"))
SWITCH_MODES = os.environ.get("SLUICE_FAULT_SWITCH_MODES", "0") == "1"
WAVE_MODES = ("direct", "ingestion-job", "direct")  # the knowledge base's sync mode during each wave


class Corpus:
    """What the suite wrote, and so what RawBucket must hold: the current version of every key."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.current: dict[str, Doc | None] = {}
        self.keys: set[str] = set()
        self.ops: Counter[str] = Counter()

    def put(self, doc: Doc, op: str) -> None:
        previous = self.current.get(doc.key)
        if previous is not None and previous.sidecar is not None and doc.sidecar is None:
            self.stack.client("s3").delete_object(Bucket=self.stack.outputs()["RawBucketName"], Key=doc.sidecar_key)
            self.ops["s3 deletes"] += 1
        self.ops["s3 puts"] += harness.put(self.stack, doc)
        self.current[doc.key] = doc
        self.keys |= {doc.key, doc.sidecar_key}
        self.ops[op] += 1

    def delete(self, doc: Doc) -> None:
        self.ops["s3 deletes"] += harness.delete(self.stack, doc)
        self.current[doc.key] = None
        self.ops["deletes"] += 1

    def reasons(self) -> dict[str, str]:
        return {k: d.reason for k, d in self.current.items() if d is not None and d.reason is not None}

    def live(self) -> list[Doc]:
        return [d for d in self.current.values() if d is not None]


def test_the_pipeline_converges_through_injected_faults(tmp_path: Path) -> None:
    plan_path = tmp_path / "faults" / "plan.json"
    plan = faults.FaultPlan(rate=RATE, outage=OUTAGE, seed=SEED)
    faults.write_plan(plan_path, plan)
    rng = random.Random(SEED)
    started = time.monotonic()
    with LocalStack(
        harness.ROOT,
        port=0,
        stack_name="sluice-faults",  # moto's state outlives a server in this process: names of its own
        state_dir=tmp_path / "local",
        environment={faults.ENV: str(plan_path)},
        concurrency=CONCURRENCY,
    ) as stack:
        deliveries = harness.Deliveries()
        deliveries.watch(stack)
        written = Corpus(stack)
        docs = corpus.small_mix(SEED, DOCS)
        say(
            f"\nfaults: rate {RATE} an attempt, outage {OUTAGE} a call, kinds {dict(plan.kinds)}, "
            f"{CONCURRENCY} workers per queue-fed function, {len(docs)} documents"
        )
        # 1. Everything uploaded.
        for doc in docs:
            written.put(doc, "uploads")
        uploaded = time.monotonic()
        say(f"  uploaded {len(docs)} documents in {uploaded - started:.1f} s")
        # 2. While the first uploads are still being ingested: three waves of changes.
        good = [d for d in docs if d.reason is None]
        rng.shuffle(good)
        edited, described, deleted = good[: len(good) * 3 // 10], good[-len(good) // 20 :], good[len(good) // 2 :]
        deleted = deleted[: len(good) // 5]
        waves: list[list[tuple[str, Doc]]] = [[], [], []]
        for doc in edited:
            waves[rng.randrange(3)].append(("edits", corpus.edit(rng, doc)))
        for doc in described:
            waves[rng.randrange(3)].append(
                ("sidecar changes", replace(doc, sidecar=corpus.sidecar(rng, "Re-described")))
            )
        for doc in deleted:
            waves[rng.randrange(1, 3)].append(("deletes", doc))
        for doc in deleted[: len(deleted) // 6]:  # back again, with new content
            waves[2].append(("resurrections", corpus.edit(rng, doc)))
        broken_now = edited[:2]  # good documents broken on purpose, in the last wave
        waves[2] += [("broken on purpose", replace(d, body=b"", reason="empty")) for d in broken_now]
        mend = next(d for d in docs if d.key.endswith("truncated.pdf"))
        pdf = corpus.pdf(rng, "Mended after all", 2000)
        waves[2].append(("mended", replace(mend, body=pdf, reason=None)))
        for n, wave in enumerate(waves):
            # Each wave once a third more of the uploads has been handled (or 90 s have passed), so
            # that edits and deletes meet documents in every state: processed, in flight, not yet read.
            harness.wait_for_records(stack, len(docs) * (n + 1) // 4, timeout=90)
            if SWITCH_MODES and n and WAVE_MODES[n] != WAVE_MODES[n - 1]:
                stack.redeploy({"KnowledgeBaseSyncMode": WAVE_MODES[n]})  # a deploy, documents in flight
                deliveries.watch(stack)  # the new instances
                say(f"  deployed again with KnowledgeBaseSyncMode={WAVE_MODES[n]}")
            for op, doc in wave:
                if op == "deletes":
                    written.delete(doc)
                else:
                    written.put(doc, op)
            say(f"  wave {n + 1}: {dict(Counter(op for op, _ in wave))}")
        changed = time.monotonic()
        # 3. Faults stop once the queues have been through it all once.
        stack.wait_idle(timeout=600, settle=3)
        faults.write_plan(plan_path, replace(plan, rate=0.0, outage=0.0))
        time.sleep(2 * faults.RELOAD_SECONDS + 1)
        stopped = time.monotonic()
        say(f"  faults stopped {stopped - started:.1f} s after the first upload; draining")
        check = lambda: harness.verify(stack, written.keys, written.reasons())  # noqa: E731
        drained = harness.drain(stack, check, timeout=CONVERGE_SECONDS, log=say)
        finished = time.monotonic()
        memory = harness.memory(stack)
        held_back = harness.held_back(stack)
    counts = faults.read_counts(plan_path.parent)
    report(written, counts, deliveries, drained, memory, started, uploaded, changed, stopped, finished)
    say(
        "errors that held deliveries back (traceback lines in the function logs, from invocations that failed whole): "
        + (", ".join(f"{n:,} {error}" for error, n in held_back.most_common()) or "none")
    )
    assert drained.converged, "did not converge:\n  " + "\n  ".join(
        (drained.verdict.problems if drained.verdict else ["never idle:", *drained.busy])[:40]
    )


def report(
    written: Corpus,
    counts: Counter[tuple[str, str, str, str]],
    deliveries: harness.Deliveries,
    drained: harness.Drain,
    memory: list[tuple[str, int, float]],
    started: float,
    uploaded: float,
    changed: float,
    stopped: float,
    finished: float,
) -> None:
    verdict = drained.verdict
    say("\n== Fault injection: summary ==")
    if verdict is not None:
        say(
            f"documents: {len({k for k in written.keys if not k.endswith('.metadata.json')}):,} keys written; at the end "
            f"{verdict.live:,} processed ({verdict.chunks:,} chunks, {verdict.tokens:,} tokens), "
            f"{verdict.quarantined} quarantined on purpose, {verdict.deleted} deleted "
            f"({verdict.never_recorded} of them before any of their events was handled, so never recorded)"
        )
    say("operations: " + ", ".join(f"{n:,} {op}" for op, n in sorted(written.ops.items())))
    by_kind: Counter[str] = Counter()
    surfaced: Counter[str] = Counter()
    rows = []
    services = sorted({(s, o) for (e, s, o, _) in counts if e == "call"})
    for service, operation in services:
        calls = counts[("call", service, operation, "")]
        retries = counts[("retry", service, operation, "")]
        injected = {k: counts[("fault", service, operation, k)] for k in faults.KINDS}
        up = sum(counts[("surfaced", service, operation, k)] for k in faults.KINDS)
        for k in faults.KINDS:
            by_kind[k] += injected[k]
            surfaced[k] += counts[("surfaced", service, operation, k)]
        rows.append((service, operation, calls, *injected.values(), retries, up))
    say("\nfaults injected, by service and operation (calls made by the function workers):")
    say(harness.table(["service", "operation", "calls", *faults.KINDS, "botocore retries", "surfaced"], rows))
    total, up = sum(by_kind.values()), sum(surfaced.values())
    say(
        "\nfaults by kind: "
        + ", ".join(f"{k} {by_kind[k]:,} ({surfaced[k]:,} surfaced)" for k in faults.KINDS)
        + f"; {total:,} in all, {total - up:,} absorbed by botocore's retries, {up:,} reached the application"
    )
    retries = sum(n for (e, *_), n in counts.items() if e == "retry")
    say(f"retries observed: {retries:,} botocore retries; SQS deliveries, per function:")
    say(
        harness.table(
            ["function", "invocations", "raised", "records", "redelivered", "failed records", "busy s"],
            deliveries.rows(),
        )
    )
    say(
        "dead letters moved back by `sluice redrive`: "
        + (", ".join(f"{q} {n:,}" for q, n in sorted(drained.moved.items())) or "none")
        + "; failed sink documents queued again: "
        + (", ".join(f"{q} {n:,}" for q, n in sorted(drained.requeued.items())) or "none")
        + f"; {drained.rounds} drain rounds"
    )
    say(
        f"wall time: {finished - started:.1f} s in all: uploads {uploaded - started:.1f} s, changes until "
        f"{changed - started:.1f} s, faults stopped at {stopped - started:.1f} s, "
        f"{'converged' if drained.converged else 'NOT converged'} {drained.seconds:.1f} s after that"
    )
    say("peak memory (MiB): " + ", ".join(f"{name.strip()} {mb:.0f}" for name, _, mb in memory))


LOST = ("IngestKnowledgeBaseDocuments", "BatchPutDocument")


def test_an_index_call_whose_answer_is_lost_then_a_delete_leaves_nothing_indexed(tmp_path: Path) -> None:
    """Both sinks' writes take effect in the index, but every attempt's answer is lost (read timeouts
    until botocore gives up). Before the retry, the document is deleted. Each sink must have recorded
    what it sent as possibly held, so that the retry deletes it rather than finding nothing to remove
    (found by the fault run: the deleted document stayed searchable)."""
    plan_path = tmp_path / "faults" / "plan.json"
    faults.write_plan(plan_path, faults.FaultPlan(outage=1.0, kinds={"read-timeout": 1.0}, operations=LOST))
    with LocalStack(
        harness.ROOT,
        port=0,
        stack_name="sluice-lost",
        state_dir=tmp_path / "local",
        environment={faults.ENV: str(plan_path)},
    ) as stack:
        written = Corpus(stack)
        doc = corpus.make(random.Random(SEED), 1, "md", 3000, "lost")
        written.put(doc, "uploads")
        raw = stack.outputs()["RawBucketName"]
        doc_id = document_id(s3_uri(raw, doc.key))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until both indexes hold it: the lost calls took effect
            world = harness.read_world(stack)
            if any(f"/chunks/{doc_id}/" in u for u in world.kb) and s3_uri(raw, doc.key) in world.kendra:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the indexes never received the document")
        written.delete(doc)
        harness.wait_for_status(stack, doc_id, Status.DELETED, timeout=60)
        faults.write_plan(plan_path, faults.FaultPlan())
        check = lambda: harness.verify(stack, written.keys, {})  # noqa: E731
        drained = harness.drain(stack, check, timeout=300, stuck=45, log=say)
        counts = faults.read_counts(plan_path.parent)
    lost = {o: counts[("fault", s, o, "read-timeout")] for (e, s, o, _) in counts if e == "call" and o in LOST}
    say(f"answers lost: {lost}; drained: {drained.converged}")
    assert drained.converged, "left behind:\n  " + "\n  ".join(drained.verdict.problems if drained.verdict else [])
