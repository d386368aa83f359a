"""Sink API calls per 1,000 documents: Sluice's sinks (the real ``KnowledgeBaseSink`` in both modes and
``KendraSink``, driven through ``run_batch`` as the sink function drives them) against the naive ways
of keeping a knowledge base or a Kendra index in step with a bucket.

Everything runs in memory and in virtual time, on the tests' fakes of the ports (tests/support): the
real ``IngestService`` turns 1,000 Markdown files into registry records, chunk files and bus events;
each bus event goes to each sink's queue, which is drained in SQS batches of up to 100 (the sink's own
delayed status checks and job polls included, in the order their delays put them) until it is empty.
The service fakes record every call with its item count and answer as the services do: an ingested
chunk is STARTING, then INDEXED when asked; a job is COMPLETE when it is first polled; a Kendra
document is INDEXED once put. Call counts are deterministic: nothing here is timed.

Run alone with ``.venv/tools/bench/bin/python bench/sinks.py``; ``make bench`` includes it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "layers" / "sluice", ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sluice.bus import SOURCE, DocumentEvent  # noqa: E402
from sluice.ingest import IngestService, IngestSettings, ObjectEvent  # noqa: E402
from sluice.pipeline.files import chunk_key, document_id, s3_uri  # noqa: E402
from sluice.registry import Status  # noqa: E402
from sluice.sinks import SinkStatus  # noqa: E402
from sluice.sinks.diff import DiffSink  # noqa: E402
from sluice.sinks.kendra import KendraSink  # noqa: E402
from sluice.sinks.knowledge_base import JobConflictError, KbDocument, KnowledgeBaseSink  # noqa: E402
from sluice.sinks.runner import run_batch  # noqa: E402
from support.fakes import (  # noqa: E402
    FakeBucketReader,
    FakeBucketWriter,
    FakeBus,
    FakeObjectReader,
    FakeQueue,
    FakeRegistry,
    FakeSinkStates,
)
from support.sinkfakes import FakeKendra, FakeKnowledgeBase  # noqa: E402

DOCUMENTS = 1000
EDITED = 10  # 1 % of the corpus
SEED = 1729
RAW_BUCKET = "raw"
PROCESSED_BUCKET = "processed"
SQS_BATCH = 100  # the sink functions' BatchSize (template.yaml)
SQS_WINDOW = 10  # their MaximumBatchingWindowInSeconds
MAX_RETRIES = 1000  # the fakes never fail here: a retry loop would be a bug
PER_CALL = 10  # documents per Ingest/Delete/GetKnowledgeBaseDocuments and Kendra batch call

# The fakes' names for the calls → the services' own operation names, in the order the tables show them.
KB_OPERATIONS = {
    "ingest": "IngestKnowledgeBaseDocuments",
    "delete": "DeleteKnowledgeBaseDocuments",
    "get": "GetKnowledgeBaseDocuments",
    "start_job": "StartIngestionJob",
    "get_job": "GetIngestionJob",
}
KENDRA_OPERATIONS = {
    "put": "BatchPutDocument",
    "delete": "BatchDeleteDocument",
    "status": "BatchGetDocumentStatus",
    "describe": "DescribeIndex",
}
KB_OPS = tuple(KB_OPERATIONS.values())
KENDRA_OPS = tuple(KENDRA_OPERATIONS.values())


# -- virtual time, the service fakes' calls ---------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class VirtualSqs:
    """A sink's SQS queue in virtual time around the queue port's fake: what the sink sends (its
    delayed checks and polls) becomes visible after its delay, and batches of up to 100 are handed
    out, gathered over the batching window, earliest first."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.port = FakeQueue()  # what the sink and run_batch send to
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.port.send(body, delay_seconds)

    def receive(self) -> list[tuple[str, str]]:
        for body, delay in self.port.sent:
            heapq.heappush(self._heap, (self.clock.now + min(max(delay, 0), 900), next(self._seq), body))
        self.port.sent.clear()
        if not self._heap:
            return []
        self.clock.now = max(self.clock.now, self._heap[0][0])
        batch = []
        while self._heap and len(batch) < SQS_BATCH and self._heap[0][0] <= self.clock.now + SQS_WINDOW:
            _, seq, body = heapq.heappop(self._heap)
            batch.append((f"m{seq}", body))
        return batch


@dataclass
class CachingKendra(FakeKendra):
    """The Kendra fake with the index description read once and counted, as the real client reads
    and caches it per container (the fake answers it without a call)."""

    described: bool = False

    def declared_fields(self) -> dict[str, str]:
        if not self.described:
            self.calls.append(("describe", 0))
            self.described = True
        return super().declared_fields()


def counted(
    calls: Sequence[tuple[str, int]], operations: dict[str, str], mark: int = 0
) -> tuple[Counter[str], Counter[str]]:
    """Calls and items per operation (the service's name) after ``mark`` (an earlier ``len(calls)``)."""
    per_call: Counter[str] = Counter()
    items: Counter[str] = Counter()
    for name, n in calls[mark:]:
        per_call[operations[name]] += 1
        items[operations[name]] += n
    return per_call, items


# -- the corpus ----------------------------------------------------------------------------------------------

_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out up into do any "
    "your what some about than them only could other new time these two may first then also after our well "
    "system data index document search query model storage event queue bucket record chunk version service "
    "policy access user group report review customer order invoice contract release support network security "
    "team project budget quarter market product feature design test result change process request response "
    "meeting schedule manager engineer analysis summary section table figure value number price cost "
    "region account payment delivery inventory supplier warehouse shipment training guide install "
    "configure deploy monitor alert metric log error retry backup restore migrate upgrade license compliance"
)
_WORDS = _VOCABULARY.split()


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 24))
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))


def make_corpus(n: int = DOCUMENTS, seed: int = SEED) -> dict[str, list[str]]:
    """Key → Markdown blocks (headings and paragraphs): from a few paragraphs to a few pages
    (3 to 30 paragraphs of about 90 words, log-uniformly), a heading every few paragraphs."""
    rng = random.Random(seed)
    corpus = {}
    for i in range(n):
        blocks = [f"# Document {i}: {' '.join(rng.choices(_WORDS, k=4)).title()}"]
        for p in range(round(3 * 10 ** rng.random())):
            if p and rng.random() < 0.25:
                blocks.append(f"## {' '.join(rng.choices(_WORDS, k=3)).title()}")
            blocks.append(_paragraph(rng))
        corpus[f"docs/{i // 100:02d}/doc-{i:04d}.md"] = blocks
    return corpus


def markdown(blocks: list[str]) -> bytes:
    return ("\n\n".join(blocks) + "\n").encode()


def edit_one_paragraph(blocks: list[str], rng: random.Random) -> list[str]:
    """The same document with one paragraph (the middle one) rewritten."""
    paragraphs = [i for i, b in enumerate(blocks) if not b.startswith("#")]
    target = paragraphs[len(paragraphs) // 2]
    return [_paragraph(rng) if i == target else b for i, b in enumerate(blocks)]


# -- Sluice, end to end ------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One sink with its own state table, queue and service fake."""

    name: str
    sink: DiffSink
    queue: VirtualSqs
    calls: list[tuple[str, int]]  # the service fake's record of calls
    operations: dict[str, str]
    retried: int = 0


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.raw = FakeObjectReader()
        self.processed = FakeBucketWriter(PROCESSED_BUCKET)
        self.registry = FakeRegistry()
        self.bus = FakeBus()
        self.ingest = IngestService(
            raw=self.raw,
            processed=self.processed,
            registry=self.registry,
            bus=self.bus,
            settings=IngestSettings(),  # PipelineSettings() and ChunkSettings(): 512 tokens
            clock=self.clock,
        )
        self._sequencer = itertools.count(1)
        self.targets = [self._kb("Sluice KB, direct", "direct"), self._kb("Sluice KB, ingestion-job", "ingestion-job")]
        api, clock = CachingKendra(fields={}), Clock(self.clock.now)  # the documents carry no metadata
        kendra = KendraSink(
            api=api,
            registry=self.registry,
            states=FakeSinkStates(),
            processed=FakeBucketReader(self.processed),
            processed_bucket=PROCESSED_BUCKET,
            clock=clock,
        )
        self.targets.append(Target("Sluice Kendra", kendra, VirtualSqs(clock), api.calls, KENDRA_OPERATIONS))

    def _kb(self, name: str, mode: str) -> Target:
        api, clock = FakeKnowledgeBase(job_status="COMPLETE"), Clock(self.clock.now)
        queue = VirtualSqs(clock)
        sink = KnowledgeBaseSink(
            api=api,
            registry=self.registry,
            states=FakeSinkStates(),
            processed_bucket=PROCESSED_BUCKET,
            mode=mode,
            queue=queue.port,
            clock=clock,
        )
        return Target(name, sink, queue, api.calls, KB_OPERATIONS)

    def upload(self, files: dict[str, bytes]) -> tuple[list[str], list[DocumentEvent], Counter[str]]:
        """Each file put in the raw bucket and its S3 event handled by the real ingest service:
        the uploaded documents' ids, the bus events published, and the ingest outcomes."""
        mark = len(self.bus.events)
        outcomes: Counter[str] = Counter()
        doc_ids = []
        for key, data in files.items():
            version = self.raw.put(RAW_BUCKET, key, data)
            event = ObjectEvent(RAW_BUCKET, key, removed=False, sequencer=f"{next(self._sequencer):016X}",
                                version_id=version)  # fmt: skip
            outcome = self.ingest.handle(event)
            outcomes[outcome.action.value] += 1
            doc_ids.append(document_id(s3_uri(RAW_BUCKET, key)))
        return doc_ids, self.bus.events[mark:], outcomes

    def deliver(self, target: Target, events: Sequence[DocumentEvent]) -> tuple[Counter[str], Counter[str]]:
        """The bus events on the sink's queue (as EventBridge puts them there), then every batch
        the queue hands out until it is empty: the calls and items per operation this took."""
        mark = len(target.calls)
        target.queue.clock.now = max(target.queue.clock.now, self.clock.now)
        for e in events:
            target.queue.send(json.dumps({"source": SOURCE, "detail-type": e.detail_type, "detail": e.detail}))
        while batch := target.queue.receive():
            report = run_batch(target.sink, batch, target.queue.port)
            if report.malformed:
                raise RuntimeError(f"{target.name}: malformed messages {report.malformed}")
            failed = set(report.failed_message_ids)
            target.retried += len(failed)
            if target.retried > MAX_RETRIES:
                raise RuntimeError(f"{target.name}: more than {MAX_RETRIES} messages retried")
            for message_id, body in batch:  # SQS makes a failed message visible again later
                if message_id in failed:
                    target.queue.send(body, 30)
        return counted(target.calls, target.operations, mark)


def changed_events(doc_ids: Sequence[str]) -> list[DocumentEvent]:
    """Bus events naming these documents, as when every document is announced again."""
    return [DocumentEvent("Document Changed", {"doc_id": d}) for d in doc_ids]


# -- the naive baselines ------------------------------------------------------------------------------------------


def naive_job_per_upload(uploads: int) -> tuple[Counter[str], Counter[str]]:
    """One StartIngestionJob per upload event (most of them refused with ConflictException while
    another job runs; each is still a call)."""
    api = FakeKnowledgeBase()
    for n in range(uploads):
        with suppress(JobConflictError):
            api.start_job(f"upload-{n}", "sync")
    return counted(api.calls, KB_OPERATIONS)


def naive_direct(doc_ids: Sequence[str], registry: FakeRegistry) -> tuple[Counter[str], Counter[str]]:
    """Every chunk of the uploaded document ingested again on each upload, ten to a call, no diff
    (nor status checks, nor deletes of the chunks an edit replaced)."""
    api = FakeKnowledgeBase()
    for doc_id in doc_ids:
        record = registry.get(doc_id)
        assert record is not None
        uris = [f"s3://{PROCESSED_BUCKET}/{chunk_key(doc_id, c)}" for c in record.chunks]
        for i in range(0, len(uris), PER_CALL):
            api.ingest([KbDocument(u, u + ".metadata.json") for u in uris[i : i + PER_CALL]], f"{doc_id}-{i}")
    return counted(api.calls, KB_OPERATIONS)


def naive_kendra_per_upload(doc_ids: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """One BatchPutDocument (of one document) per upload event, no status checks."""
    api = FakeKendra()
    for doc_id in doc_ids:
        api.put([{"Id": doc_id}])
    return counted(api.calls, KENDRA_OPERATIONS)


# -- the benchmark -------------------------------------------------------------------------------------------------


def bench_sinks(documents: int = DOCUMENTS, edited: int = EDITED, seed: int = SEED) -> dict[str, Any]:
    start = time.perf_counter()
    rng = random.Random(seed + 1)
    corpus = make_corpus(documents, seed)
    world = World()
    scenarios = []

    def scenario(name: str, note: str, waves: list[dict[str, bytes]], *, announce_all: bool = False) -> None:
        """Each wave of uploads handled, then synced by every sink until its queue is empty; a day
        passes between waves (every job and status check long settled)."""
        counts: dict[str, tuple[Counter[str], Counter[str]]] = {}
        totals: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()

        def add(row: str, calls: Counter[str], items: Counter[str]) -> None:
            acc = counts.setdefault(row, (Counter(), Counter()))
            acc[0].update(calls)
            acc[1].update(items)

        for files in waves:
            doc_ids, published, wave_outcomes = world.upload(files)
            events = changed_events(doc_ids) if announce_all else published
            totals.update(uploads=len(files), published=len(published), delivered=len(events))
            outcomes.update(wave_outcomes)
            for target in world.targets:
                add(target.name, *world.deliver(target, events))
            add("naive KB: a job per upload", *naive_job_per_upload(len(files)))
            add("naive KB: all chunks per upload", *naive_direct(doc_ids, world.registry))
            add("naive Kendra: a put per upload", *naive_kendra_per_upload(doc_ids))
            world.clock.now += 86_400
        rows = {
            row: {"calls": dict(calls), "items": dict(items), "total": sum(calls.values())}
            for row, (calls, items) in counts.items()
        }
        scenarios.append({"name": name, "note": note, **totals, "outcomes": dict(outcomes), "rows": rows})

    scenario("initial load", "every document new", [{k: markdown(b) for k, b in corpus.items()}])
    records = [world.registry.get(document_id(s3_uri(RAW_BUCKET, k))) for k in corpus]
    chunks = sorted(len(r.chunks) for r in records if r is not None)
    words = sum(len(markdown(b).split()) for b in corpus.values())
    scenario(
        "no-change re-sync",
        "the same bytes uploaded again. The ingest service announces nothing for unchanged bytes; each "
        "document's Document Changed event is delivered all the same, as a duplicated event or a full re-sync would",
        [{k: markdown(b) for k, b in corpus.items()}],
        announce_all=True,
    )
    keys = sorted(rng.sample(sorted(corpus), 2 * edited))
    for key in keys:
        corpus[key] = edit_one_paragraph(corpus[key], rng)
    together, apart = keys[:edited], keys[edited:]
    scenario(
        "1 % edit",
        f"{edited} documents, one paragraph of each rewritten, uploaded together",
        [{k: markdown(corpus[k]) for k in together}],
    )
    scenario(
        "1 % edit, uploads apart",
        f"{edited} other documents edited the same way, uploaded far apart (each synced on its own)",
        [{k: markdown(corpus[k])} for k in apart],
    )
    return {
        "documents": documents,
        "words": words,
        "chunks": sum(chunks),
        "chunks_min": chunks[0],
        "chunks_median": chunks[len(chunks) // 2],
        "chunks_max": chunks[-1],
        "scenarios": scenarios,
        "retried": {t.name: t.retried for t in world.targets},
        "held": {t.name: _held(t, world.registry) for t in world.targets},
        "seconds": time.perf_counter() - start,
    }


def _held(target: Target, registry: FakeRegistry) -> str:
    """What the index holds at the end against what the registry says it should, and the sink
    states: a check that every sync was complete (nothing missing, stale or left pending)."""
    api = target.sink.api  # type: ignore[attr-defined]
    records = list(registry.records(Status.PROCESSED))
    if isinstance(api, FakeKendra):
        want = {r.source_uri for r in records}
        got = set(api.documents)
        held = f"{len(got)} documents in the index ({'as' if got == want else 'NOT as'} registered)"
    elif getattr(target.sink, "mode", "") == "direct":
        want = {f"s3://{PROCESSED_BUCKET}/{chunk_key(r.doc_id, c)}" for r in records for c in r.chunks}
        got = set(api.indexed)
        held = f"{len(got)} chunks in the knowledge base ({'as' if got == want else 'NOT as'} registered)"
    else:
        held = f"no job running, {len(api.jobs)} jobs run" if api.running is None else f"job {api.running} running"
    states = Counter({s.value: target.sink.states.count(target.sink.name, s) for s in SinkStatus})
    return f"{held}; sink states: {', '.join(f'{n} {s}' for s, n in sorted((+states).items()))}"


# -- the report --------------------------------------------------------------------------------------------------


def _ratio(naive: int, sluice: int) -> str:
    if sluice == 0:
        return "∞ (Sluice: 0)" if naive else "-"
    ratio = naive / sluice
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


# naive row → (the Sluice row it is compared with, the operation compared one to one)
KB_COMPARE = {
    "naive KB: a job per upload": ("Sluice KB, ingestion-job", "StartIngestionJob"),
    "naive KB: all chunks per upload": ("Sluice KB, direct", "IngestKnowledgeBaseDocuments"),
}
KENDRA_COMPARE = {"naive Kendra: a put per upload": ("Sluice Kendra", "BatchPutDocument")}
KB_WRITES = ("IngestKnowledgeBaseDocuments", "DeleteKnowledgeBaseDocuments")
KENDRA_WRITES = ("BatchPutDocument", "BatchDeleteDocument")


def _table(
    result: dict[str, Any],
    ops: tuple[str, ...],
    writes: tuple[str, ...],
    sent: str,
    rows: tuple[str, ...],
    compare: dict[str, tuple[str, str]],
) -> list[str]:
    lines = [
        f"| scenario | approach | {' | '.join(ops)} | total calls | {sent} | naive/Sluice, same operation | "
        "naive/Sluice, all calls |",
        "|---|---|" + "---:|" * (len(ops) + 4),
    ]
    for s in result["scenarios"]:
        for name in rows:
            row = s["rows"][name]
            cells = [str(row["calls"].get(op, 0)) for op in ops]
            items = sum(row["items"].get(op, 0) for op in writes)
            same = every = ""
            if name in compare:
                other, op = compare[name]
                sluice = s["rows"][other]
                same = _ratio(row["calls"].get(op, 0), sluice["calls"].get(op, 0))
                every = _ratio(row["total"], sluice["total"])
            lines.append(
                f"| {s['name']} | {name} | {' | '.join(cells)} | {row['total']} | {items} | {same} | {every} |"
            )
    return lines


def sink_report(result: dict[str, Any]) -> list[str]:
    """The section's Markdown lines (docs/benchmarks.md and the console)."""
    lines = [
        f"## Sink API calls per {result['documents']:,} documents",
        "",
        f"{result['documents']:,} Markdown documents ({result['words']:,} words; 3 to 30 paragraphs each, seeded) "
        f"through the real ingest service at the default settings (512-token chunks): {result['chunks']:,} chunks, "
        f"{result['chunks_min']} to {result['chunks_max']} a document (median {result['chunks_median']}). "
        "Each bus event goes to each sink's queue, which is drained in SQS batches of up to 100 "
        "(the template's BatchSize, gathered for up to 10 s) through `run_batch` "
        "until it is empty, the sinks' own delayed status checks and job polls included. The service fakes "
        "answer at once (a chunk or document is INDEXED at its first status check, a job COMPLETE at its first "
        "poll), so Sluice's checks and polls are the fewest it can make; the naive baselines make no checks or "
        "polls at all, and the direct one never deletes the chunks an edit replaced. Calls are counted, not timed "
        "(bench/sinks.py).",
        "",
    ]
    for s in result["scenarios"]:
        outcomes = ", ".join(f"{n} {a}" for a, n in sorted(s["outcomes"].items()))
        lines.append(
            f"- **{s['name']}**: {s['note']}. {s['uploads']} uploads ({outcomes} at ingest); the ingest service "
            f"published {s['published']} bus events; {s['delivered']} were delivered to each sink."
        )
    lines += [
        "",
        "Knowledge Base (Bedrock Agent operations). `naive/Sluice`: a job per upload against Sluice's "
        "ingestion-job mode (same operation: StartIngestionJob), all chunks per upload against its direct mode "
        "(same operation: IngestKnowledgeBaseDocuments).",
        "",
        *_table(
            result,
            KB_OPS,
            KB_WRITES,
            "chunks sent (ingested + deleted)",
            ("Sluice KB, direct", "Sluice KB, ingestion-job", *KB_COMPARE),
            KB_COMPARE,
        ),
        "",
        "Edits uploaded apart cannot share calls: Sluice's direct mode then makes three a document (ingest the new "
        "chunks, delete the replaced ones, check) where the naive one makes one ingest, leaves the replaced chunks "
        "in the knowledge base and never learns whether the new ones were indexed.",
        "",
        "Kendra. `naive/Sluice`: a put per upload against Sluice's Kendra sink (same operation: BatchPutDocument).",
        "",
        *_table(
            result,
            KENDRA_OPS,
            KENDRA_WRITES,
            "documents sent (put + deleted)",
            ("Sluice Kendra", *KENDRA_COMPARE),
            KENDRA_COMPARE,
        ),
        "",
        "At the end: " + "; ".join(f"{name}: {held}" for name, held in result["held"].items()) + ". "
        f"Messages retried: {sum(result['retried'].values())}.",
    ]
    return lines


def main() -> None:
    result = bench_sinks()
    print("\n".join(sink_report(result)))
    print(f"\n({result['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
