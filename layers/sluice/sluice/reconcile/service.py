"""The reconciler: a pass over the five listings (see ``sluice.reconcile``), run by run, on ports."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sluice.compat import batched
from sluice.errors import Reason
from sluice.pipeline.files import (
    CHUNK_PREFIX,
    DOCUMENT_PREFIX,
    chunk_key,
    chunk_prefix,
    processed_owner,
    s3_uri,
    sidecar_key,
    text_key,
)
from sluice.reconcile.ports import Cursor, PassStore, RegistryPages, RepairQueues, SinkStates
from sluice.reconcile.raw import judge_raw, under_way
from sluice.reconcile.repairs import Repairs
from sluice.reconcile.report import PHASES, Drift, Report
from sluice.reconcile.settings import ReconcileSettings
from sluice.reconcile.sink_checks import SinkChecks
from sluice.registry import DocumentRecord, Status
from sluice.s3events import recheck_message
from sluice.sinks import StateConflictError
from sluice.sinks.kendra import KendraIndex
from sluice.sinks.knowledge_base import KnowledgeBaseIndex
from sluice.sinks.runner import MAX_IDS_PER_MESSAGE, sync_message
from sluice.storage import BucketListing, BucketWriter, ListedObject, ObjectReader
from sluice.timestamps import epoch, iso

# Quarantines that no pipeline change can lift: the bytes themselves are the problem.
FINAL_REASONS = frozenset({Reason.EMPTY.value})


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
        self.sinks = SinkChecks(settings, registry=registry, states=states, kb=kb, kendra=kendra, clock=clock)
        self.clock = clock
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
            report = Report(
                pass_id=f"{iso(now, 'seconds')}-{owner[:8]}", started_at=iso(now, "seconds"), dry_run=dry_run
            )
        report.runs += 1
        self.sinks.index_calls = self._done = 0
        last = None
        try:
            while report.phase in PHASES:
                if deadline is not None and time.monotonic() > deadline:
                    report.stopped = "time"
                    break
                spent = self._done >= self.settings.max_repairs
                spent = spent or self.sinks.index_calls >= self.settings.max_index_calls
                if spent and not dry_run:
                    report.stopped = "budget"
                    break
                repairs = Repairs()
                cursor = self._page(report, cursor, repairs)
                if not dry_run:
                    self._send(report, repairs)
                if cursor is None:
                    report.phase = PHASES[PHASES.index(report.phase) + 1] if report.phase != PHASES[-1] else "done"
                if not dry_run:
                    self.passes.save(owner, current=report, cursor=cursor, last=None, release=False)
            else:
                report.complete, report.stopped = True, "complete"
                report.finished_at = iso(self.clock(), "seconds")
                last = report
        finally:
            if not dry_run:
                current = None if report.complete else report
                self.passes.save(owner, current=current, cursor=cursor, last=last, release=True)
        return report

    def _page(self, report: Report, cursor: Cursor, repairs: Repairs) -> Cursor:
        if report.phase == "raw":
            return self._raw_page(report, cursor, repairs)
        if report.phase == "registry":
            return self._registry_page(report, cursor, repairs)
        if report.phase in ("chunks", "texts"):
            prefix = CHUNK_PREFIX if report.phase == "chunks" else DOCUMENT_PREFIX
            return self._processed_page(report, cursor, repairs, prefix)
        return self.sinks.kb_index_page(report, cursor, repairs)

    # -- raw: every object has a record of its current version -------------------------------------------

    def _raw_page(self, report: Report, cursor: str | None, repairs: Repairs) -> str | None:
        bucket = self.settings.raw_bucket
        page = self.listing.page(bucket, prefix="", start_after=cursor, limit=self.settings.page_size)
        if not page.objects:
            return None
        last_key = max(o.key for o in page.objects)

        def sidecar_etags(sidecars: Sequence[str]) -> dict[str, str | None]:
            etags: dict[str, str | None] = {}
            for sidecar in sidecars:  # listed in key order: one the page lacks can only be on a later page
                head = self.objects.head(bucket, sidecar) if page.truncated and sidecar > last_key else None
                etags[sidecar] = head.etag if head is not None else None
            return etags

        verdicts = judge_raw(bucket, {o.key: o.etag for o in page.objects}, self.registry, sidecar_etags)
        report.count(report.examined, "objects", verdicts.documents)
        for key, drift in verdicts.drift.items():
            report.add(drift, s3_uri(bucket, key))
            repairs.ask(bucket, key)
        return last_key if page.truncated else None

    # -- registry: every record matches its object, its files and each sink ----------------------------------

    def _registry_page(self, report: Report, cursor: Cursor, repairs: Repairs) -> Cursor:
        records, states, next_cursor = self.registry.scan_page(cursor, self.settings.page_size)
        lone_states = [s for s in states if s.sink in self.settings.sink_queues]
        self._check_records(report, records, repairs)
        self.sinks.check(report, records, lone_states, repairs)
        return next_cursor

    def _check_records(self, report: Report, records: list[DocumentRecord], repairs: Repairs) -> None:
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

    # -- chunks / texts: every processed file belongs to a record that names it -------------------------

    def _processed_page(self, report: Report, cursor: str | None, repairs: Repairs, prefix: str) -> str | None:
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
            if under_way(found, doc_id):
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

    # -- repairs -------------------------------------------------------------------------------------

    def _send(self, report: Report, repairs: Repairs) -> None:
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
                    corrected.evolve(version=(expected or 0) + 1, updated_at=iso(self.clock(), "seconds")),
                    expected_version=expected,
                )
                report.count(report.repairs, "sink states corrected")
            except StateConflictError:
                report.note("a sink state changed while being corrected; the next pass looks again")
        for sink, doc_ids in repairs.sync.items():
            syncs = [sync_message(batch) for batch in batched(doc_ids, MAX_IDS_PER_MESSAGE)]
            self.queues.send(self.settings.sink_queues[sink], syncs)
            report.count(report.repairs, f"{sink} syncs queued", len(doc_ids))
        if repairs.deletes:
            self.processed.delete(repairs.deletes)
            report.count(report.repairs, "stray files deleted", len(repairs.deletes))
        self._done += repairs.size
