"""`make load`: thousands of generated documents (a mix of Markdown, text, HTML, JSON, CSV, PDF and
Word files, from a few hundred bytes to 40 KB of text) uploaded to RawBucket on the local stack and
followed through ingestion to both sinks. Reports throughput (documents, chunks and tokens a second,
from the first upload to the moment both indexes hold everything), each stage's finishing time, the
calls the sinks made, and the peak memory and CPU time of every process; asserts that nothing was
lost: every document PROCESSED, its chunks INDEXED in the knowledge base, its text in Kendra, and
nothing else anywhere.

Knobs: SLUICE_LOAD_DOCS (default 5000), SLUICE_LOAD_SEED, SLUICE_LOAD_CONCURRENCY (worker processes
per queue-fed function, default 3; the sinks' event sources cap theirs at 2),
SLUICE_LOAD_TIMEOUT_SECONDS (default 3600).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.registry import Status
from sluice.sinks import SinkStatus
from sluice_local import emulators
from sluice_local.stack import LocalStack
from soak import corpus, harness
from soak.harness import say

pytestmark = pytest.mark.soak

DOCS = int(os.environ.get("SLUICE_LOAD_DOCS", "5000"))
SEED = int(os.environ.get("SLUICE_LOAD_SEED", "5000"))
CONCURRENCY = int(os.environ.get("SLUICE_LOAD_CONCURRENCY", "3"))
TIMEOUT = float(os.environ.get("SLUICE_LOAD_TIMEOUT_SECONDS", "3600"))
PROGRESS_SECONDS = 15.0


def test_thousands_of_documents_reach_both_indexes_and_nothing_is_lost(tmp_path: Path) -> None:
    generating = time.monotonic()
    docs = corpus.load_mix(SEED, DOCS)
    generated = time.monotonic() - generating
    size = sum(len(d.body) for d in docs)
    say(
        f"\nload: {len(docs):,} documents generated in {generated:.1f} s "
        f"({size / 2**20:.1f} MiB; {dict(Counter(d.key.rsplit('.', 1)[-1] for d in docs))}), "
        f"{CONCURRENCY} workers per queue-fed function"
    )
    with LocalStack(
        harness.ROOT, port=0, stack_name="sluice-load", state_dir=tmp_path / "local", concurrency=CONCURRENCY
    ) as stack:
        deliveries = harness.Deliveries()
        deliveries.watch(stack)
        outputs = stack.outputs()
        registry = DynamoDBRegistry(stack.client("dynamodb"), outputs["DocumentsTableName"])
        states = DynamoDBSinkStates(stack.client("dynamodb"), outputs["DocumentsTableName"])
        uploaded: list[float] = []

        def upload() -> None:
            for doc in docs:
                harness.put(stack, doc)
            uploaded.append(time.monotonic())

        started = time.monotonic()
        uploader = threading.Thread(target=upload, name="uploader", daemon=True)
        uploader.start()
        stages: dict[str, float] = {}
        deadline = started + TIMEOUT
        last = 0.0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if time.monotonic() - last < PROGRESS_SECONDS and len(stages) < 3:
                continue
            last = time.monotonic()
            counts = {
                "recorded": registry.count(Status.PROCESSED) + registry.count(Status.QUARANTINED),
                "kb": states.count("kb", SinkStatus.INDEXED),
                "kendra": states.count("kendra", SinkStatus.INDEXED),
            }
            now = time.monotonic() - started
            for stage, n in counts.items():
                if n >= len(docs) and stage not in stages:
                    stages[stage] = now
            queues = {n.removesuffix("QueueUrl"): stack.queue_depth(u) for n, u in outputs.items() if n in QUEUES}
            say(
                f"  {now:7.1f} s  uploaded {'all' if uploaded else '…'}  registry {counts['recorded']:,}  "
                f"kb {counts['kb']:,}  kendra {counts['kendra']:,}  queues {queues}"
            )
            if len(stages) == 3 and uploaded and stack.wait_idle(timeout=60, settle=2):
                break
        settled = time.monotonic()
        assert len(stages) == 3, f"not settled after {TIMEOUT:.0f} s: {stages}"
        memory = harness.memory(stack)
        cpu = {pid: harness.cpu_seconds(pid) for _, pid, _ in memory}
        verifying = time.monotonic()
        verdict = harness.verify(stack, [k for d in docs for k in (d.key, d.sidecar_key)], {})
        verified = time.monotonic() - verifying
        calls = Counter(c["operation"] for c in emulators.read_calls(stack.emulator_dir))
    wall = settled - started
    say("\n== Load: summary ==")
    say(
        f"documents: {len(docs):,} ({size / 2**20:.1f} MiB) → {verdict.live:,} processed, "
        f"{verdict.chunks:,} chunks, {verdict.tokens:,} tokens; by type {dict(verdict.kinds)}"
    )
    say(
        f"end to end (first upload → both indexes settled, queues idle): {wall:.1f} s = "
        f"{len(docs) / wall:.2f} documents/s, {verdict.chunks / wall:.1f} chunks/s, {verdict.tokens / wall:,.0f} tokens/s"
    )
    say(
        f"stages: uploads done {uploaded[0] - started:.1f} s, registry complete {stages['recorded']:.1f} s "
        f"({len(docs) / stages['recorded']:.2f} documents/s), knowledge base {stages['kb']:.1f} s, "
        f"Kendra {stages['kendra']:.1f} s (as sampled every {PROGRESS_SECONDS:.0f} s)"
    )
    say("sink calls (emulated services): " + ", ".join(f"{op} {n:,}" for op, n in sorted(calls.items())))
    say(
        harness.table(
            ["function", "invocations", "raised", "records", "redelivered", "failed records", "busy s"],
            deliveries.rows(),
        )
    )
    say(
        harness.table(
            ["process", "pid", "peak RSS MiB", "CPU s"],
            [(name, str(pid), mb, cpu.get(pid, 0.0)) for name, pid, mb in memory],
        )
    )
    say(f"verified RawBucket = registry = ProcessedBucket = knowledge base = Kendra in {verified:.1f} s")
    assert verdict.ok, "lost or extra:\n  " + "\n  ".join(verdict.problems[:40])
    assert verdict.live == len(docs)


QUEUES = {"IngestQueueUrl", "KnowledgeBaseQueueUrl", "KendraQueueUrl"}
