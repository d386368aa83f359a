"""What each sink recorded, checked against the registry (in the registry phase) and against the
index itself: the knowledge base's and Kendra's status of what the sink recorded giving them, and
the knowledge base's own listing (the kb-index phase)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sluice.compat import batched
from sluice.pipeline.files import chunk_uri, processed_owner
from sluice.reconcile.ports import RegistryPages, SinkStates
from sluice.reconcile.repairs import Repairs
from sluice.reconcile.report import Drift, Report
from sluice.reconcile.settings import ReconcileSettings
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkState, SinkStatus
from sluice.sinks import kendra as kendra_sink
from sluice.sinks import knowledge_base as kb_sink
from sluice.sinks.diff import settle
from sluice.sinks.kendra import KendraIndex, fingerprint, kendra_id
from sluice.sinks.knowledge_base import KnowledgeBaseIndex
from sluice.timestamps import iso

GONE = frozenset({"NOT_FOUND"})
LEAVING = frozenset({"NOT_FOUND", "DELETING", "DELETE_IN_PROGRESS"})


class SinkChecks:
    """The sink side of a pass; it counts the index calls it makes against the run's budget."""

    def __init__(
        self,
        settings: ReconcileSettings,
        *,
        registry: RegistryPages,
        states: SinkStates,
        kb: KnowledgeBaseIndex | None,
        kendra: KendraIndex | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.states = states
        self.kb = kb if "kb" in settings.sink_queues else None
        self.kendra = kendra if "kendra" in settings.sink_queues else None
        self.clock = clock
        self.index_calls = 0  # GetKnowledgeBaseDocuments, BatchGetDocumentStatus and listing calls

    def check(
        self, report: Report, records: list[DocumentRecord], lone_states: list[SinkState], repairs: Repairs
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
        kb_mode = self.kb_mode()
        for record in records:
            for sink in self.settings.sink_queues:
                state = stored.get((sink, record.doc_id))
                drift = self._drift(sink, record, state, kb_mode)
                if drift is not None:
                    report.add(drift, f"{sink}: {record.source_uri}")
                    if drift is Drift.SINK_BEHIND:
                        repairs.sync_doc(sink, record.doc_id)
                elif state is not None and state.status is SinkStatus.INDEXED and record.status is Status.PROCESSED:
                    verify.setdefault(sink, []).append((record, state))
        if verify.get("kb") and self.kb is not None and kb_mode == "direct":
            self._verify_kb(report, verify["kb"], repairs)
        if verify.get("kendra") and self.kendra is not None:
            self._verify_kendra(report, verify["kendra"], repairs)

    def kb_mode(self) -> str:
        """The knowledge-base sink's sync mode now: a backfill's hold, else the stack's."""
        key = (kb_sink.MODE_HOLD, kb_sink.HOLD_KEY)
        hold = kb_sink.current_hold(self.states.get_many([key]).get(key), self.clock())
        return hold.mode if hold is not None else self.settings.kb_mode

    def _drift(self, sink: str, record: DocumentRecord, state: SinkState | None, kb_mode: str) -> Drift | None:
        if record.pending_event or (sink == "kb" and kb_mode != "direct"):
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

    def _verify_kb(self, report: Report, pairs: list[tuple[DocumentRecord, SinkState]], repairs: Repairs) -> None:
        assert self.kb is not None
        uris = {self._kb_uri(r.doc_id, h): (r, s, h) for r, s in pairs for h in s.held if h not in s.failures}
        lost: dict[str, list[str]] = {}
        for batch in batched(list(uris), kb_sink.PER_CALL):
            self.index_calls += 1
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

    def _verify_kendra(self, report: Report, pairs: list[tuple[DocumentRecord, SinkState]], repairs: Repairs) -> None:
        assert self.kendra is not None
        ids = {(s.held[1] if len(s.held) > 1 else kendra_id(r)): (r, s) for r, s in pairs}
        for batch in batched(list(ids), kendra_sink.PER_CALL):
            self.index_calls += 1
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
        return chunk_uri(self.settings.processed_bucket, doc_id, chunk)

    # -- kb-index: the knowledge base holds nothing the kb sink did not record giving it ------------------

    def kb_index_page(self, report: Report, cursor: str | None, repairs: Repairs) -> str | None:
        if self.kb is None or self.kb_mode() != "direct":
            return None
        self.index_calls += 1
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
            base = state or SinkState("kb", doc_id, SinkStatus.ABSENT, iso(self.clock()))  # stamped when written
            held = (*base.held, *sorted(extra))
            corrected = settle(base.evolve(held=held), (), dict(base.failures), present=True)
            repairs.corrections.append((state, corrected))
            repairs.sync_doc("kb", doc_id)
        return next_token
