"""Sink API calls per 1,000 documents: Sluice's sinks (the real ``KnowledgeBaseSink`` in both modes and
``KendraSink``, driven through ``run_batch`` as the sink function drives them) against the naive ways
of keeping a knowledge base or a Kendra index in step with a bucket.

Everything runs in memory and in virtual time: the real ``IngestService`` turns 1,000 Markdown files
into registry records, chunk files and bus events; each bus event goes to each sink's queue, which is
drained in SQS batches of up to 100 (the sink's own delayed status checks and job polls included, in the
order their delays put them) until it is empty. The service stand-ins record every call with its
item count and answer as the services do: an ingested chunk is STARTING, then INDEXED when asked;
a job is COMPLETE when it is first polled; a Kendra document is INDEXED once put. Call counts are
deterministic: nothing here is timed.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "layers" / "sluice") not in sys.path:
    sys.path.insert(0, str(ROOT / "layers" / "sluice"))

from sluice.bus import SOURCE, DocumentEvent  # noqa: E402
from sluice.errors import DocumentBusyError, LeaseLostError, TransientError  # noqa: E402
from sluice.ingest import IngestService, IngestSettings, ObjectEvent  # noqa: E402
from sluice.pipeline.files import chunk_key, document_id, s3_uri  # noqa: E402
from sluice.registry import DocumentRecord, Status  # noqa: E402
from sluice.sinks import SinkState, SinkStatus, StateConflictError  # noqa: E402
from sluice.sinks.diff import DiffSink  # noqa: E402
from sluice.sinks.kendra import KendraSink  # noqa: E402
from sluice.sinks.knowledge_base import (  # noqa: E402
    IngestionJob,
    JobConflictError,
    KbDocument,
    KnowledgeBaseSink,
)
from sluice.sinks.runner import run_batch  # noqa: E402
from sluice.storage import ObjectHead  # noqa: E402

DOCUMENTS = 1000
EDITED = 10  # 1 % of the corpus
SEED = 1729
RAW_BUCKET = "raw"
PROCESSED_BUCKET = "processed"
SQS_BATCH = 100  # the sink functions' BatchSize (template.yaml)
SQS_WINDOW = 10  # their MaximumBatchingWindowInSeconds
MAX_RETRIES = 1000  # the stand-ins never fail: a retry loop would be a bug
PER_CALL = 10  # documents per Ingest/Delete/GetKnowledgeBaseDocuments and Kendra batch call

# The services' own operation names, in the order the tables show them.
KB_OPS = (
    "IngestKnowledgeBaseDocuments",
    "DeleteKnowledgeBaseDocuments",
    "GetKnowledgeBaseDocuments",
    "StartIngestionJob",
    "GetIngestionJob",
)
KENDRA_OPS = ("BatchPutDocument", "BatchDeleteDocument", "BatchGetDocumentStatus", "DescribeIndex")


# -- virtual time and the in-memory ports ---------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class MemoryRawStore:
    """A versioned bucket: every put is a new version, as S3 with versioning gives the service."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], list[tuple[str, bytes] | None]] = {}
        self._ids = itertools.count(1)

    def put(self, bucket: str, key: str, data: bytes) -> str:
        version = f"v{next(self._ids)}"
        self.objects.setdefault((bucket, key), []).append((version, data))
        return version

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        versions = self.objects.get((bucket, key))
        if not versions or versions[-1] is None:
            return None
        version, data = versions[-1]
        return ObjectHead(bucket, key, len(data), f"etag-{version}", version)

    def get(self, head: ObjectHead) -> bytes:
        for v in self.objects[(head.bucket, head.key)]:
            if v is not None and v[0] == head.version_id:
                return v[1]
        raise TransientError("version vanished")


class MemoryProcessedStore:
    """ProcessedBucket: written by the ingest service, read back (``head``/``get``) by the Kendra sink."""

    def __init__(self, bucket: str = PROCESSED_BUCKET) -> None:
        self.bucket = bucket
        self.files: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.files[key] = body

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.files.pop(key, None)

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        data = self.files.get(key)
        return None if data is None else ObjectHead(bucket, key, len(data), "etag")

    def get(self, head: ObjectHead) -> bytes:
        return self.files[head.key]


class MemoryRegistry:
    """The registry's contract: one record per document, written only by the lease holder."""

    def __init__(self) -> None:
        self.items: dict[str, DocumentRecord | None] = {}
        self.leases: dict[str, tuple[str, float]] = {}

    def acquire(self, doc_id: str, owner: str, now: float, lease_seconds: float) -> DocumentRecord | None:
        held = self.leases.get(doc_id)
        if held is not None and held[1] >= now:
            raise DocumentBusyError(doc_id)
        self.leases[doc_id] = (owner, now + lease_seconds)
        return self.items.get(doc_id)

    def commit(self, record: DocumentRecord, owner: str, *, keep_lease_until: float | None) -> None:
        held = self.leases.get(record.doc_id)
        if held is None or held[0] != owner:
            raise LeaseLostError(record.doc_id)
        self.items[record.doc_id] = record
        if keep_lease_until is None:
            del self.leases[record.doc_id]
        else:
            self.leases[record.doc_id] = (owner, keep_lease_until)

    def release(self, doc_id: str, owner: str) -> None:
        held = self.leases.get(doc_id)
        if held is not None and held[0] == owner:
            del self.leases[doc_id]

    def get(self, doc_id: str) -> DocumentRecord | None:
        return self.items.get(doc_id)

    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]:
        for record in list(self.items.values()):
            if record is not None and (status is None or record.status is status):
                yield record


class MemoryBus:
    def __init__(self) -> None:
        self.events: list[DocumentEvent] = []

    def publish(self, events: Sequence[DocumentEvent]) -> None:
        self.events.extend(events)


class MemorySinkStates:
    """Sink states with the store's optimistic concurrency."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], SinkState] = {}

    def get(self, sink: str, doc_id: str) -> SinkState | None:
        return self.items.get((sink, doc_id))

    def put(self, state: SinkState, *, expected_version: int | None) -> None:
        current = self.items.get((state.sink, state.doc_id))
        if (current.version if current else None) != expected_version:
            raise StateConflictError(state.doc_id)
        self.items[(state.sink, state.doc_id)] = state

    def count(self, sink: str, status: SinkStatus) -> int:
        return sum(1 for s in self.items.values() if s.sink == sink and s.status is status)

    def states(self, sink: str, status: SinkStatus) -> Iterator[SinkState]:
        return iter([s for s in list(self.items.values()) if s.sink == sink and s.status is status])


class SimQueue:
    """A sink's SQS queue in virtual time: messages become visible after their delay and are handed
    out ten at a time, gathered over the batching window, earliest first."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self.sent = 0

    def send(self, body: str, delay_seconds: int = 0) -> None:
        heapq.heappush(self._heap, (self.clock.now + min(max(delay_seconds, 0), 900), next(self._seq), body))
        self.sent += 1

    def receive(self) -> list[tuple[str, str]]:
        if not self._heap:
            return []
        self.clock.now = max(self.clock.now, self._heap[0][0])
        batch = []
        while self._heap and len(batch) < SQS_BATCH and self._heap[0][0] <= self.clock.now + SQS_WINDOW:
            _, seq, body = heapq.heappop(self._heap)
            batch.append((f"m{seq}", body))
        return batch


# -- the services, counting --------------------------------------------------------------------------------


@dataclass
class CallLog:
    calls: list[tuple[str, int]] = field(default_factory=list)  # (operation, items in the call)

    def record(self, operation: str, items: int) -> None:
        self.calls.append((operation, items))

    def since(self, mark: int) -> tuple[Counter[str], Counter[str]]:
        """Calls and items per operation after ``mark`` (an earlier ``len(calls)``)."""
        calls: Counter[str] = Counter()
        items: Counter[str] = Counter()
        for operation, n in self.calls[mark:]:
            calls[operation] += 1
            items[operation] += n
        return calls, items


def _at_most_ten(operation: str, n: int) -> None:
    if n > PER_CALL:
        raise ValueError(f"{operation}: {n} items; the service takes at most {PER_CALL}")


class KnowledgeBaseStandIn:
    """One knowledge base's S3 data source (the methods of ``BedrockKnowledgeBaseApi``)."""

    def __init__(self, log: CallLog, ds: str = "DS00000001") -> None:
        self.log = log
        self.ds = ds
        self.held: set[str] = set()  # chunk uris the knowledge base holds
        self.running: str | None = None
        self.ended: list[str] = []
        self._jobs = itertools.count(1)

    def ingest(self, documents: Sequence[KbDocument], token: str) -> dict[str, tuple[str, str]]:
        _at_most_ten("IngestKnowledgeBaseDocuments", len(documents))
        self.log.record("IngestKnowledgeBaseDocuments", len(documents))
        self.held |= {d.uri for d in documents}
        return {d.uri: ("STARTING", "") for d in documents}

    def delete(self, uris: Sequence[str], token: str) -> dict[str, tuple[str, str]]:
        _at_most_ten("DeleteKnowledgeBaseDocuments", len(uris))
        self.log.record("DeleteKnowledgeBaseDocuments", len(uris))
        self.held -= set(uris)
        return dict.fromkeys(uris, ("DELETING", ""))

    def statuses(self, uris: Sequence[str]) -> dict[str, tuple[str, str]]:
        _at_most_ten("GetKnowledgeBaseDocuments", len(uris))
        self.log.record("GetKnowledgeBaseDocuments", len(uris))
        return {u: ("INDEXED", "") if u in self.held else ("NOT_FOUND", "") for u in uris}

    def start_job(self, token: str, description: str) -> str:
        self.log.record("StartIngestionJob", 0)
        if self.running is not None:
            raise JobConflictError("an ingestion job is already running on the data source")
        self.running = f"JOB{next(self._jobs):06d}"
        return self.running

    def job(self, job_id: str) -> IngestionJob:
        self.log.record("GetIngestionJob", 0)
        if job_id == self.running:
            self.running = None  # it completes when polled
            self.ended.append(job_id)
        return IngestionJob(job_id, "COMPLETE", {"numberOfDocumentsScanned": 0})


class KendraStandIn:
    """A Kendra index (the methods of ``KendraApi``); the index description is read once, as the
    real client caches it per container."""

    role_arn: str | None = None

    def __init__(self, log: CallLog) -> None:
        self.log = log
        self.documents: set[str] = set()
        self._fields: dict[str, str] | None = None

    def declared_fields(self) -> dict[str, str]:
        if self._fields is None:
            self.log.record("DescribeIndex", 0)
            self._fields = {}
        return self._fields

    @contextmanager
    def sync_job(self) -> Iterator[None]:  # no custom data source: nothing to start
        yield

    def put(self, documents: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        _at_most_ten("BatchPutDocument", len(documents))
        self.log.record("BatchPutDocument", len(documents))
        self.documents |= {d["Id"] for d in documents}
        return {}

    def delete(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        _at_most_ten("BatchDeleteDocument", len(ids))
        self.log.record("BatchDeleteDocument", len(ids))
        self.documents -= set(ids)
        return {}

    def statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        _at_most_ten("BatchGetDocumentStatus", len(ids))
        self.log.record("BatchGetDocumentStatus", len(ids))
        return {i: ("INDEXED", "") if i in self.documents else ("NOT_FOUND", "") for i in ids}


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
    """One sink with its own state table, queue and service stand-in."""

    name: str
    sink: DiffSink
    queue: SimQueue
    log: CallLog
    retried: int = 0


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.raw = MemoryRawStore()
        self.processed = MemoryProcessedStore()
        self.registry = MemoryRegistry()
        self.bus = MemoryBus()
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
        log = CallLog()
        clock = Clock(self.clock.now)
        kendra = KendraSink(
            api=KendraStandIn(log),  # type: ignore[arg-type]
            registry=self.registry,
            states=MemorySinkStates(),
            processed=self.processed,
            processed_bucket=PROCESSED_BUCKET,
            clock=clock,
        )
        self.targets.append(Target("Sluice Kendra", kendra, SimQueue(clock), log))

    def _kb(self, name: str, mode: str) -> Target:
        log, clock = CallLog(), Clock(self.clock.now)
        queue = SimQueue(clock)
        sink = KnowledgeBaseSink(
            api=KnowledgeBaseStandIn(log),  # type: ignore[arg-type]
            registry=self.registry,
            states=MemorySinkStates(),
            processed_bucket=PROCESSED_BUCKET,
            mode=mode,
            queue=queue,
            clock=clock,
        )
        return Target(name, sink, queue, log)

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
        mark = len(target.log.calls)
        target.queue.clock.now = max(target.queue.clock.now, self.clock.now)
        for e in events:
            target.queue.send(json.dumps({"source": SOURCE, "detail-type": e.detail_type, "detail": e.detail}))
        while batch := target.queue.receive():
            report = run_batch(target.sink, batch, target.queue)
            if report.malformed:
                raise RuntimeError(f"{target.name}: malformed messages {report.malformed}")
            failed = set(report.failed_message_ids)
            target.retried += len(failed)
            if target.retried > MAX_RETRIES:
                raise RuntimeError(f"{target.name}: more than {MAX_RETRIES} messages retried")
            for message_id, body in batch:  # SQS makes a failed message visible again later
                if message_id in failed:
                    target.queue.send(body, 30)
        return target.log.since(mark)


def changed_events(doc_ids: Sequence[str]) -> list[DocumentEvent]:
    """Bus events naming these documents, as when every document is announced again."""
    return [DocumentEvent("Document Changed", {"doc_id": d}) for d in doc_ids]


# -- the naive baselines ------------------------------------------------------------------------------------------


def naive_job_per_upload(uploads: int) -> tuple[Counter[str], Counter[str]]:
    """One StartIngestionJob per upload event (most of them refused with ConflictException while
    another job runs; each is still a call)."""
    log = CallLog()
    api = KnowledgeBaseStandIn(log)
    for n in range(uploads):
        with suppress(JobConflictError):
            api.start_job(f"upload-{n}", "sync")
    return log.since(0)


def naive_direct(doc_ids: Sequence[str], registry: MemoryRegistry) -> tuple[Counter[str], Counter[str]]:
    """Every chunk of the uploaded document ingested again on each upload, ten to a call, no diff
    (nor status checks, nor deletes of the chunks an edit replaced)."""
    log = CallLog()
    api = KnowledgeBaseStandIn(log)
    for doc_id in doc_ids:
        record = registry.get(doc_id)
        assert record is not None
        uris = [f"s3://{PROCESSED_BUCKET}/{chunk_key(doc_id, c)}" for c in record.chunks]
        for i in range(0, len(uris), PER_CALL):
            api.ingest([KbDocument(u, u + ".metadata.json") for u in uris[i : i + PER_CALL]], f"{doc_id}-{i}")
    return log.since(0)


def naive_kendra_per_upload(doc_ids: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """One BatchPutDocument (of one document) per upload event, no status checks."""
    log = CallLog()
    api = KendraStandIn(log)
    for doc_id in doc_ids:
        api.put([{"Id": doc_id}])
    return log.since(0)


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


def _held(target: Target, registry: MemoryRegistry) -> str:
    """What the index holds at the end against what the registry says it should, and the sink
    states: a check that every sync was complete (nothing missing, stale or left pending)."""
    api = target.sink.api  # type: ignore[attr-defined]
    records = list(registry.records(Status.PROCESSED))
    if isinstance(api, KendraStandIn):
        want = {r.source_uri for r in records}
        held = f"{len(api.documents)} documents in the index ({'as' if api.documents == want else 'NOT as'} registered)"
    elif getattr(target.sink, "mode", "") == "direct":
        want = {f"s3://{PROCESSED_BUCKET}/{chunk_key(r.doc_id, c)}" for r in records for c in r.chunks}
        held = f"{len(api.held)} chunks in the knowledge base ({'as' if api.held == want else 'NOT as'} registered)"
    else:
        held = f"no job running, {len(api.ended)} jobs run" if api.running is None else f"job {api.running} running"
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
        "until it is empty, the sinks' own delayed status checks and job polls included. The service stand-ins "
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
