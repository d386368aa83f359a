"""The reconciler: a pass over the five listings (see ``sluice.reconcile``), run by run, on ports."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sluice.errors import Reason
from sluice.pipeline.files import (
    CHUNK_PREFIX,
    DOCUMENT_PREFIX,
    chunk_key,
    chunk_prefix,
    document_id,
    processed_owner,
    s3_uri,
    sidecar_key,
    text_key,
)
from sluice.pipeline.metadata import document_of, sidecar_of
from sluice.reconcile.ports import Cursor, PassStore, RegistryPages, RepairQueues, SinkStates
from sluice.reconcile.report import PHASES, Drift, Report
from sluice.registry import DocumentRecord, Status
from sluice.s3events import recheck_message
from sluice.sinks import SinkState, SinkStatus, StateConflictError, chunks_of
from sluice.sinks import kendra as kendra_sink
from sluice.sinks import knowledge_base as kb_sink
from sluice.sinks.diff import epoch, settle
from sluice.sinks.kendra import KendraIndex, fingerprint, kendra_id
from sluice.sinks.knowledge_base import KnowledgeBaseIndex
from sluice.sinks.runner import MAX_IDS_PER_MESSAGE, sync_message
from sluice.storage import BucketListing, BucketWriter, ListedObject, ObjectReader

GONE = frozenset({"NOT_FOUND"})
LEAVING = frozenset({"NOT_FOUND", "DELETING", "DELETE_IN_PROGRESS"})
# Quarantines that no pipeline change can lift: the bytes themselves are the problem.
FINAL_REASONS = frozenset({Reason.EMPTY.value})


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    raw_bucket: str
    processed_bucket: str
    documents_table: str
    ingest_queue_url: str
    pipeline_fingerprint: str  # the ingest function's: records made by another pipeline are older
    sink_queues: dict[str, str] = field(default_factory=dict)  # "kb" / "kendra" → its queue
    kb_mode: str = "direct"
    page_size: int = 500
    max_repairs: int = 5000  # messages and corrections per run; the pass goes on next run
    max_index_calls: int = 600  # GetKnowledgeBaseDocuments + BatchGetDocumentStatus calls per run
    reprocess: bool = False  # re-read documents processed by an older pipeline (a full re-parse)
    stray_age_seconds: int = 3600  # files without any record are deleted only when older than this
    unfinished_seconds: int = 900  # an announcement still pending after this long was abandoned
    lease_seconds: int = 960  # one run at a time; longer than the function's timeout
    threads: int = 16  # concurrent S3 reads in the registry phase


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _under_way(found: dict[str, DocumentRecord | None], doc_id: str) -> bool:
    """A first ingestion holds the document's lease and writes its files before its record."""
    return doc_id in found and found[doc_id] is None


@dataclass
class _Repairs:
    """What one page decided to do, sent together when the page is done."""

    recheck: dict[tuple[str, str], bool] = field(default_factory=dict)  # (bucket, key) → rebuild
    sync: dict[str, list[str]] = field(default_factory=dict)  # sink → doc ids
    corrections: list[tuple[SinkState | None, SinkState]] = field(default_factory=list)  # (stored, corrected)
    deletes: list[str] = field(default_factory=list)  # processed keys

    def ask(self, bucket: str, key: str, *, rebuild: bool = False) -> None:
        self.recheck[(bucket, key)] = self.recheck.get((bucket, key), False) or rebuild

    def sync_doc(self, sink: str, doc_id: str) -> None:
        self.sync.setdefault(sink, [])
        if doc_id not in self.sync[sink]:
            self.sync[sink].append(doc_id)

    @property
    def size(self) -> int:
        return len(self.recheck) + sum(map(len, self.sync.values())) + len(self.corrections) + len(self.deletes)


class Reconciler:
    def __init__(
        self,
        settings: ReconcileSettings,
        *,
        objects: ObjectReader,
        listing: BucketListing,
        processed: BucketWriter,
        registry: RegistryPages,
        states: SinkStates,
        queues: RepairQueues,
        passes: PassStore,
        kb: KnowledgeBaseIndex | None = None,
        kendra: KendraIndex | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.objects = objects  # heads of raw objects and of processed texts
        self.listing = listing
        self.processed = processed
        self.registry = registry
        self.states = states
        self.queues = queues
        self.passes = passes
        self.kb = kb if "kb" in settings.sink_queues else None
        self.kendra = kendra if "kendra" in settings.sink_queues else None
        self.clock = clock
        self._index_calls = 0
        self._done = 0  # repairs made this run

    # -- the run -------------------------------------------------------------------------------------

    def run(self, *, deadline: float | None = None, dry_run: bool = False) -> Report:
        """Go on with the pass (or start one) until it is complete, ``deadline`` (time.monotonic())
        comes, or this run's budgets are spent. A dry run starts its own pass and saves nothing."""
        owner = uuid.uuid4().hex
        now = self.clock()
        report: Report | None = None
        cursor: Cursor = None
        if not dry_run:
            saved = self.passes.acquire(owner, now, self.settings.lease_seconds)
            report = saved.current
            cursor = saved.cursor if report is not None else None
        if report is None:
            report = Report(pass_id=f"{_now_iso(now)}-{owner[:8]}", started_at=_now_iso(now), dry_run=dry_run)
        report.runs += 1
        self._index_calls = self._done = 0
        last = None
        try:
            while report.phase in PHASES:
                if deadline is not None and time.monotonic() > deadline:
                    report.stopped = "time"
                    break
                spent = self._done >= self.settings.max_repairs or self._index_calls >= self.settings.max_index_calls
                if spent and not dry_run:
                    report.stopped = "budget"
                    break
                repairs = _Repairs()
                cursor = self._page(report, cursor, repairs)
                if not dry_run:
                    self._send(report, repairs)
                if cursor is None:
                    report.phase = PHASES[PHASES.index(report.phase) + 1] if report.phase != PHASES[-1] else "done"
                if not dry_run:
                    self.passes.save(owner, current=report, cursor=cursor, last=None, release=False)
            else:
                report.complete, report.stopped = True, "complete"
                report.finished_at = _now_iso(self.clock())
                last = report
        finally:
            if not dry_run:
                current = None if report.complete else report
                self.passes.save(owner, current=current, cursor=cursor, last=last, release=True)
        return report

    def _page(self, report: Report, cursor: Cursor, repairs: _Repairs) -> Cursor:
        if report.phase == "raw":
            return self._raw_page(report, cursor, repairs)
        if report.phase == "registry":
            return self._registry_page(report, cursor, repairs)
        if report.phase in ("chunks", "texts"):
            prefix = CHUNK_PREFIX if report.phase == "chunks" else DOCUMENT_PREFIX
            return self._processed_page(report, cursor, repairs, prefix)
        return self._kb_index_page(report, cursor, repairs)

    # -- raw: every object has a record of its current version -------------------------------------------

    def _raw_page(self, report: Report, cursor: str | None, repairs: _Repairs) -> str | None:
        bucket = self.settings.raw_bucket
        page = self.listing.page(bucket, prefix="", start_after=cursor, limit=self.settings.page_size)
        objects = {o.key: o.etag for o in page.objects}
        if not objects:
            return None
        last_key = max(objects)
        documents = {k: document_id(s3_uri(bucket, k)) for k in objects if document_of(k) is None}
        found = self.registry.lookup(documents.values())
        for key, doc_id in documents.items():
            report.count(report.examined, "objects")
            if _under_way(found, doc_id):
                continue
            record = found.get(doc_id)
            uri = s3_uri(bucket, key)
            if record is None or record.status is Status.DELETED:
                report.add(Drift.UNRECORDED, uri)
            elif record.etag != objects[key] or self._sidecar_etag(key, objects, last_key, page.truncated) != (
                record.metadata_etag
            ):
                report.add(Drift.STALE, uri)
            else:
                continue
            repairs.ask(bucket, key)
        return last_key if page.truncated else None

    def _sidecar_etag(self, key: str, objects: dict[str, str], last_key: str, truncated: bool) -> str | None:
        sidecar = sidecar_of(key)
        if sidecar in objects or not truncated or sidecar < last_key:
            return objects.get(sidecar)
        head = self.objects.head(self.settings.raw_bucket, sidecar)  # on the next page, perhaps
        return head.etag if head is not None else None

    # -- registry: every record matches its object, its files and each sink ----------------------------------

    def _registry_page(self, report: Report, cursor: Cursor, repairs: _Repairs) -> Cursor:
        records, states, next_cursor = self.registry.scan_page(cursor, self.settings.page_size)
        lone_states = [s for s in states if s.sink in self.settings.sink_queues]
        self._check_records(report, records, repairs)
        self._check_sinks(report, records, lone_states, repairs)
        return next_cursor

    def _check_records(self, report: Report, records: list[DocumentRecord], repairs: _Repairs) -> None:
        now = self.clock()
        live = [r for r in records if r.status is not Status.DELETED]
        processed = [r for r in records if r.status is Status.PROCESSED]
        with ThreadPoolExecutor(self.settings.threads) as pool:
            heads = dict(
                zip((r.doc_id for r in live), pool.map(lambda r: self.objects.head(r.bucket, r.key), live), strict=True)
            )
            files = dict(zip((r.doc_id for r in processed), pool.map(self._processed_files, processed), strict=True))
        for record in records:
            report.count(report.examined, "records")
            drift = None
            if record.pending_event and now - epoch(record.updated_at) > self.settings.unfinished_seconds:
                drift = Drift.UNFINISHED
            elif record.status is not Status.DELETED and heads.get(record.doc_id) is None:
                drift = Drift.SOURCE_GONE
            elif record.status is Status.QUARANTINED and record.fingerprint != self.settings.pipeline_fingerprint:
                drift = None if record.reason in FINAL_REASONS else Drift.QUARANTINE_RETRY
            elif record.status is Status.PROCESSED and record.fingerprint != self.settings.pipeline_fingerprint:
                report.add(Drift.PIPELINE_CHANGED, record.source_uri)
                if self.settings.reprocess:
                    repairs.ask(record.bucket, record.key)
                else:
                    report.note("documents processed by an older pipeline are reported, not re-read (reprocess is off)")
            if drift is not None:
                report.add(drift, record.source_uri)
                repairs.ask(record.bucket, record.key)
                continue
            if record.status is Status.PROCESSED and not self._files_complete(record, files[record.doc_id]):
                report.add(Drift.PROCESSED_MISSING, record.source_uri)
                repairs.ask(record.bucket, record.key, rebuild=True)

    def _processed_files(self, record: DocumentRecord) -> set[str]:
        keys = set(self.processed.keys(chunk_prefix(record.doc_id)))
        if self.objects.head(self.settings.processed_bucket, text_key(record.doc_id)) is not None:
            keys.add(text_key(record.doc_id))
        return keys

    @staticmethod
    def _files_complete(record: DocumentRecord, keys: set[str]) -> bool:
        wanted = {text_key(record.doc_id)}
        for h in record.chunks:
            wanted |= {chunk_key(record.doc_id, h), sidecar_key(chunk_key(record.doc_id, h))}
        return wanted <= keys

    def _check_sinks(
        self, report: Report, records: list[DocumentRecord], lone_states: list[SinkState], repairs: _Repairs
    ) -> None:
        if not self.settings.sink_queues:
            return
        by_id = {r.doc_id: r for r in records}
        stored = self.states.get_many((sink, r.doc_id) for r in records for sink in self.settings.sink_queues)
        # Sink states met in the scan whose record is elsewhere: only those whose record does not exist.
        # When this pass found objects without records, their rechecks are about to make those records:
        # syncing now would take the documents out of the index only to put them back.
        orphans = [s for s in lone_states if s.doc_id not in by_id]
        if orphans and report.found.get(Drift.UNRECORDED):
            report.note("sink states without a record are left to the next pass (objects are being re-read)")
        elif orphans:
            present = self.registry.lookup(s.doc_id for s in orphans)
            for lone in orphans:
                if lone.doc_id not in present and lone.held:
                    report.add(Drift.SINK_BEHIND, f"{lone.sink}: {lone.doc_id} (no record)")
                    repairs.sync_doc(lone.sink, lone.doc_id)
        verify: dict[str, list[tuple[DocumentRecord, SinkState]]] = {}
        for record in records:
            for sink in self.settings.sink_queues:
                state = stored.get((sink, record.doc_id))
                drift = self._sink_drift(sink, record, state)
                if drift is not None:
                    report.add(drift, f"{sink}: {record.source_uri}")
                    if drift is Drift.SINK_BEHIND:
                        repairs.sync_doc(sink, record.doc_id)
                elif state is not None and state.status is SinkStatus.INDEXED and record.status is Status.PROCESSED:
                    verify.setdefault(sink, []).append((record, state))
        if verify.get("kb") and self.kb is not None and self.settings.kb_mode == "direct":
            self._verify_kb(report, verify["kb"], repairs)
        if verify.get("kendra") and self.kendra is not None:
            self._verify_kendra(report, verify["kendra"], repairs)

    def _sink_drift(self, sink: str, record: DocumentRecord, state: SinkState | None) -> Drift | None:
        if record.pending_event or (sink == "kb" and self.settings.kb_mode != "direct"):
            return None  # the announcement is still to come; an ingestion job's sink tracks its own jobs
        present = record.status is Status.PROCESSED
        held = state.held if state is not None else ()
        if state is not None and state.status is SinkStatus.FAILED:
            return Drift.SINK_FAILED
        if state is not None and state.maybe:
            return Drift.SINK_BEHIND  # an answer was lost: a sync sends it again or deletes it
        if state is not None and state.status is SinkStatus.PENDING:
            return None  # sent; its status checks follow it
        wanted: tuple[str, ...]
        if sink == "kb":
            wanted = record.chunks if present else ()
            return None if set(held) == set(wanted) else Drift.SINK_BEHIND
        wanted = (fingerprint(record),) if present else ()
        return None if held[:1] == wanted else Drift.SINK_BEHIND  # Kendra's: (fingerprint, document id)

    def _verify_kb(self, report: Report, pairs: list[tuple[DocumentRecord, SinkState]], repairs: _Repairs) -> None:
        assert self.kb is not None
        uris = {self._kb_uri(r.doc_id, h): (r, s, h) for r, s in pairs for h in s.held if h not in s.failures}
        lost: dict[str, list[str]] = {}
        for batch in chunks_of(list(uris), kb_sink.PER_CALL):
            self._index_calls += 1
            for uri, (status, _) in self.kb.statuses(batch).items():
                if status in GONE and uri in uris:
                    record, _, chunk = uris[uri]
                    lost.setdefault(record.doc_id, []).append(chunk)
            report.count(report.examined, "kb chunks asked", len(batch))
        for record, state in pairs:
            gone = set(lost.get(record.doc_id, ()))
            if gone:
                report.add(Drift.INDEX_LOST, f"kb: {record.source_uri} ({len(gone)} chunks)")
                held = tuple(h for h in state.held if h not in gone)
                corrected = settle(state.evolve(held=held), (), dict(state.failures), present=bool(held))
                repairs.corrections.append((state, corrected))
                repairs.sync_doc("kb", record.doc_id)

    def _verify_kendra(self, report: Report, pairs: list[tuple[DocumentRecord, SinkState]], repairs: _Repairs) -> None:
        assert self.kendra is not None
        ids = {(s.held[1] if len(s.held) > 1 else kendra_id(r)): (r, s) for r, s in pairs}
        for batch in chunks_of(list(ids), kendra_sink.PER_CALL):
            self._index_calls += 1
            answers = self.kendra.statuses(batch)
            report.count(report.examined, "kendra documents asked", len(batch))
            for document in batch:
                status, _ = answers.get(document, ("NOT_FOUND", ""))
                if status in GONE:
                    record, state = ids[document]
                    report.add(Drift.INDEX_LOST, f"kendra: {record.source_uri}")
                    repairs.corrections.append((state, settle(state.evolve(held=()), (), {}, present=False)))
                    repairs.sync_doc("kendra", record.doc_id)

    def _kb_uri(self, doc_id: str, chunk: str) -> str:
        return f"s3://{self.settings.processed_bucket}/{chunk_key(doc_id, chunk)}"

    # -- chunks / texts: every processed file belongs to a record that names it -------------------------

    def _processed_page(self, report: Report, cursor: str | None, repairs: _Repairs, prefix: str) -> str | None:
        bucket = self.settings.processed_bucket
        page = self.listing.page(bucket, prefix=prefix, start_after=cursor, limit=self.settings.page_size)
        if not page.objects:
            return None
        owned = [(o, processed_owner(o.key)) for o in page.objects]
        found = self.registry.lookup({owner[0] for _, owner in owned if owner is not None})
        now = self.clock()
        strays: dict[str, list[ListedObject]] = {}
        for obj, owner in owned:
            report.count(report.examined, "processed files")
            if owner is None:
                continue  # not a document's file
            doc_id, chunk = owner
            if _under_way(found, doc_id):
                continue
            record = found.get(doc_id)
            if record is not None and record.status is Status.PROCESSED and (chunk is None or chunk in record.chunks):
                continue
            if record is not None and record.pending_event:
                continue  # the transition deletes them once it has announced it
            strays.setdefault(doc_id, []).append(obj)
        for doc_id, objects in strays.items():
            record = found.get(doc_id)
            if record is not None:
                report.add(Drift.PROCESSED_STRAY, f"{record.source_uri} ({len(objects)} files)")
                repairs.ask(record.bucket, record.key, rebuild=True)
                continue
            old = [o.key for o in objects if now - o.modified > self.settings.stray_age_seconds]
            if old:
                report.add(Drift.PROCESSED_STRAY, f"s3://{bucket}/{old[0]} ({len(old)} files, no record)")
                repairs.deletes += old
            if len(old) < len(objects):
                report.note("processed files without a record younger than stray_age_seconds were left")
        return page.objects[-1].key if page.truncated else None

    # -- kb-index: the knowledge base holds nothing the kb sink did not record giving it ------------------

    def _kb_index_page(self, report: Report, cursor: str | None, repairs: _Repairs) -> str | None:
        if self.kb is None or self.settings.kb_mode != "direct":
            return None
        self._index_calls += 1
        listed, next_token = self.kb.listed(cursor)
        prefix = f"s3://{self.settings.processed_bucket}/"
        by_doc: dict[str, set[str]] = {}
        for uri, status in listed.items():
            report.count(report.examined, "kb documents listed")
            owner = processed_owner(uri[len(prefix) :]) if uri.startswith(prefix) else None
            if owner is None or owner[1] is None or status in LEAVING:
                continue
            by_doc.setdefault(owner[0], set()).add(owner[1])
        stored = self.states.get_many(("kb", d) for d in by_doc)
        for doc_id, chunks in by_doc.items():
            state = stored.get(("kb", doc_id))
            extra = chunks - set(state.held if state is not None else ())
            if not extra or (state is not None and state.status is SinkStatus.PENDING):
                continue
            report.add(Drift.INDEX_STRAY, f"kb: {doc_id} ({len(extra)} chunks)")
            base = state or SinkState("kb", doc_id, SinkStatus.ABSENT, _now_iso(self.clock()))
            held = (*base.held, *sorted(extra))
            corrected = settle(base.evolve(held=held), (), dict(base.failures), present=True)
            repairs.corrections.append((state, corrected))
            repairs.sync_doc("kb", doc_id)
        return next_token

    # -- repairs -------------------------------------------------------------------------------------

    def _send(self, report: Report, repairs: _Repairs) -> None:
        trigger = f"reconcile:{report.pass_id}"
        rechecks = [
            recheck_message(bucket, key, trigger, rebuild=rebuild) for (bucket, key), rebuild in repairs.recheck.items()
        ]
        self.queues.send(self.settings.ingest_queue_url, rechecks)
        for rebuild in repairs.recheck.values():
            report.count(report.repairs, "ingest rebuilds queued" if rebuild else "ingest rechecks queued")
        for stored, corrected in repairs.corrections:
            expected = stored.version if stored is not None else None
            try:
                self.states.put(
                    corrected.evolve(version=(expected or 0) + 1, updated_at=_now_iso(self.clock())),
                    expected_version=expected,
                )
                report.count(report.repairs, "sink states corrected")
            except StateConflictError:
                report.note("a sink state changed while being corrected; the next pass looks again")
        for sink, doc_ids in repairs.sync.items():
            syncs = [sync_message(batch) for batch in chunks_of(doc_ids, MAX_IDS_PER_MESSAGE)]
            self.queues.send(self.settings.sink_queues[sink], syncs)
            report.count(report.repairs, f"{sink} syncs queued", len(doc_ids))
        if repairs.deletes:
            self.processed.delete(repairs.deletes)
            report.count(report.repairs, "stray files deleted", len(repairs.deletes))
        self._done += repairs.size
