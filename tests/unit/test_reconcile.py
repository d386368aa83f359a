"""The reconciler on in-memory adapters: each kind of drift, made by hand behind the pipeline's back,
is found and gets its repair; a dry run changes nothing; a pass spans runs."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sluice.ingest import IngestSettings
from sluice.pipeline.files import chunk_key, document_id, s3_uri, sidecar_key, text_key
from sluice.reconcile import Drift, PassBusyError, Reconciler, ReconcileSettings, Report
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkState, SinkStatus
from sluice.sinks.kendra import fingerprint, kendra_id
from sluice.sinks.knowledge_base import HOLD_SECONDS, ModeHolds
from support.fakes import FakeListedKnowledgeBase, FakePassStore, IngestedBucket
from support.sinkfakes import FakeKendra

RAW, PROCESSED = "raw", "processed"
HOUR = 3600.0
NOBODY = "0" * 32  # a document id no record has
DOCS = {f"notes/{name}.md": f"# {name.title()}\n\nThe {name} tide table.\n" for name in ("harbour", "estuary", "weir")}


class World(IngestedBucket):
    """RawBucket, the registry, ProcessedBucket and both indexes, in step: each document ingested by
    the real ingestion service, then given to both indexes and recorded in both sinks' states."""

    def __init__(self) -> None:
        super().__init__(RAW, PROCESSED)
        self.passes = FakePassStore()
        self.kb = FakeListedKnowledgeBase()
        self.kendra = FakeKendra()
        self.settings = ReconcileSettings(
            raw_bucket=RAW,
            processed_bucket=PROCESSED,
            documents_table="documents",
            ingest_queue_url="ingest-queue",
            pipeline_fingerprint=IngestSettings().pipeline.fingerprint(),
            sink_queues={"kb": "kb-queue", "kendra": "kendra-queue"},
        )
        for key, body in DOCS.items():
            self.put(key, body)

    def put(self, key: str, body: str, *, notify: bool = True) -> None:
        super().put(key, body, notify=notify)
        if notify:
            self._index(self.record(key))

    def _index(self, record: DocumentRecord) -> None:
        when = "2027-01-15T08:00:00Z"
        if record.status is not Status.PROCESSED:
            return
        for chunk in record.chunks:
            uri = self.kb_uri(record.doc_id, chunk)
            self.kb.indexed[uri] = f"{uri}.metadata.json"
        self.kendra.documents[kendra_id(record)] = {"Id": kendra_id(record)}
        held = (fingerprint(record), kendra_id(record))
        for state in (
            SinkState("kb", record.doc_id, SinkStatus.INDEXED, when, held=record.chunks, version=1),
            SinkState("kendra", record.doc_id, SinkStatus.INDEXED, when, held=held, version=1),
        ):
            self.table.put(state, expected_version=None)

    def kb_uri(self, doc_id: str, chunk: str) -> str:
        return f"s3://{PROCESSED}/{chunk_key(doc_id, chunk)}"

    def record(self, key: str) -> DocumentRecord:
        record = self.table.registry.get(document_id(s3_uri(RAW, key)))
        assert record is not None
        return record

    def rewrite(self, key: str, **changes: Any) -> DocumentRecord:
        """Change a record behind the pipeline's back."""
        record = self.record(key).evolve(**changes)
        self.table.registry.items[record.doc_id].record = record
        return record

    def state(self, sink: str, doc_id: str) -> SinkState | None:
        return self.table.states.get(sink, doc_id)

    def reconciler(self, **changes: Any) -> Reconciler:
        return Reconciler(
            replace(self.settings, **changes),
            objects=self.s3,
            listing=self.s3,
            processed=self.s3.bucket(PROCESSED),
            registry=self.table,
            states=self.table,
            queues=self.queues,
            passes=self.passes,
            kb=self.kb,
            kendra=self.kendra,
            clock=lambda: self.now,
        )

    def run(self, **changes: Any) -> Report:
        report = self.reconciler(**changes).run()
        assert report.complete
        return report

    def rechecks(self) -> list[tuple[str, bool]]:
        """The ingest queue's messages: (key, rebuild)."""
        messages = [json.loads(b) for b in self.queues.sent.get("ingest-queue", [])]
        assert all(m["bucket"] == RAW and m["trigger"].startswith("reconcile:") for m in messages)
        return sorted((m["key"], m.get("rebuild", False)) for m in messages)

    def syncs(self, sink: str) -> list[str]:
        return sorted(d for b in self.queues.sent.get(f"{sink}-queue", []) for d in json.loads(b)["doc_ids"])


@pytest.fixture
def world() -> World:
    return World()


HARBOUR, ESTUARY, WEIR = DOCS


def test_a_stack_in_step_has_no_drift(world: World) -> None:
    report = world.run()
    assert report.found == {} and report.repairs == {} and world.queues.sent == {}
    assert report.examined["objects"] == report.examined["records"] == len(DOCS)
    assert world.passes.last() == report


def test_unrecorded_an_object_nobody_was_told_about_is_rechecked(world: World) -> None:
    world.put("notes/unannounced.md", "# Unannounced\n\nNobody told Sluice.\n", notify=False)
    report = world.run()
    assert report.found == {Drift.UNRECORDED: 1}
    assert world.rechecks() == [("notes/unannounced.md", False)]
    assert report.repairs == {"ingest rechecks queued": 1}


def test_stale_an_object_overwritten_without_a_notification_is_rechecked(world: World) -> None:
    world.put(HARBOUR, "# Harbour\n\nRewritten behind Sluice's back.\n", notify=False)
    report = world.run()
    assert report.found == {Drift.STALE: 1}
    assert world.rechecks() == [(HARBOUR, False)]


def test_source_gone_a_record_whose_object_was_deleted_is_rechecked(world: World) -> None:
    world.s3.remove(RAW, ESTUARY)
    report = world.run()
    assert report.found == {Drift.SOURCE_GONE: 1}
    assert world.rechecks() == [(ESTUARY, False)]


def test_unfinished_an_announcement_abandoned_by_its_worker_is_rechecked(world: World) -> None:
    world.rewrite(WEIR, pending_event="Document Changed")
    assert world.run().found == {}  # its worker may still be at it
    world.now += HOUR
    report = world.run()
    assert report.found == {Drift.UNFINISHED: 1}
    assert world.rechecks() == [(WEIR, False)]


def test_quarantine_retry_what_an_older_pipeline_quarantined_is_rechecked(world: World) -> None:
    world.put("data/broken.json", '{"tides": [1, 2,')
    world.put("data/empty.txt", "")
    assert world.record("data/broken.json").status is Status.QUARANTINED
    assert world.record("data/empty.txt").reason == "empty"
    world.rewrite("data/broken.json", fingerprint="0ld0ld0ld0ld0ld0")
    world.rewrite("data/empty.txt", fingerprint="0ld0ld0ld0ld0ld0")  # empty under any pipeline
    report = world.run()
    assert report.found == {Drift.QUARANTINE_RETRY: 1}
    assert world.rechecks() == [("data/broken.json", False)]


def test_pipeline_changed_is_reported_and_reprocessed_only_when_asked(world: World) -> None:
    world.rewrite(HARBOUR, fingerprint="0ld0ld0ld0ld0ld0")
    report = world.run()
    assert report.found == {Drift.PIPELINE_CHANGED: 1} and report.drift == 0
    assert world.queues.sent == {} and any("reprocess is off" in n for n in report.notes)
    world.run(reprocess=True)
    assert world.rechecks() == [(HARBOUR, False)]


def test_processed_missing_a_lost_chunk_file_is_rebuilt(world: World) -> None:
    record = world.record(HARBOUR)
    world.s3.remove(PROCESSED, chunk_key(record.doc_id, record.chunks[0]))
    report = world.run()
    assert report.found == {Drift.PROCESSED_MISSING: 1}
    assert world.rechecks() == [(HARBOUR, True)]
    assert report.repairs == {"ingest rebuilds queued": 1}


def test_processed_stray_files_are_rebuilt_or_deleted_when_old_and_nobody_s(world: World) -> None:
    beside = chunk_key(world.record(ESTUARY).doc_id, "f" * 20)
    world.s3.put(PROCESSED, beside, b"stray")
    nobodys = [chunk_key(NOBODY, "a" * 20), sidecar_key(chunk_key(NOBODY, "a" * 20)), text_key(NOBODY)]
    for key in nobodys:
        world.s3.put(PROCESSED, key, b"{}")
    world.now += 2 * HOUR
    young = text_key("1" * 32)
    world.s3.put(PROCESSED, young, b"just written: its first ingestion is under way")
    report = world.run()
    assert report.found == {Drift.PROCESSED_STRAY: 3}  # beside a record; nobody's chunks, nobody's text
    assert world.rechecks() == [(ESTUARY, True)]
    assert report.repairs == {"ingest rebuilds queued": 1, "stray files deleted": 3}
    assert not set(nobodys) & world.s3.keys_of(PROCESSED) and young in world.s3.keys_of(PROCESSED)
    assert any("younger than stray_age_seconds" in n for n in report.notes)


def test_sink_behind_a_missing_or_orphaned_sink_state_is_synced(world: World) -> None:
    weir = world.record(WEIR).doc_id
    del world.table.states.items[("kendra", weir)]
    orphan = SinkState("kb", NOBODY, SinkStatus.INDEXED, "2027-01-15T08:00:00Z", held=("a" * 20,), version=1)
    world.table.put(orphan, expected_version=None)
    world.kb.indexed[world.kb_uri(NOBODY, "a" * 20)] = "m"  # the index has what the state says
    report = world.run()
    assert report.found == {Drift.SINK_BEHIND: 2}
    assert world.syncs("kendra") == [weir] and world.syncs("kb") == [NOBODY]
    assert report.repairs == {"kendra syncs queued": 1, "kb syncs queued": 1}


def test_sink_failed_is_reported_for_an_operator(world: World) -> None:
    harbour = world.record(HARBOUR).doc_id
    state = world.state("kb", harbour)
    assert state is not None
    world.table.states.items[("kb", harbour)] = state.evolve(status=SinkStatus.FAILED, failures={"x": "refused"})
    report = world.run()
    assert report.found == {Drift.SINK_FAILED: 1}
    assert world.queues.sent == {} and report.repairs == {}


def test_index_lost_the_sink_state_is_corrected_then_synced(world: World) -> None:
    harbour, weir = world.record(HARBOUR), world.record(WEIR)
    del world.kb.indexed[world.kb_uri(harbour.doc_id, harbour.chunks[0])]
    del world.kendra.documents[kendra_id(weir)]
    report = world.run()
    assert report.found == {Drift.INDEX_LOST: 2}
    assert report.repairs == {"sink states corrected": 2, "kb syncs queued": 1, "kendra syncs queued": 1}
    assert world.syncs("kb") == [harbour.doc_id] and world.syncs("kendra") == [weir.doc_id]
    kb, kendra = world.state("kb", harbour.doc_id), world.state("kendra", weir.doc_id)
    assert kb is not None and kb.held == harbour.chunks[1:] and kb.version == 2
    assert kendra is not None and (kendra.held, kendra.status, kendra.version) == ((), SinkStatus.ABSENT, 2)


def test_index_stray_the_sink_state_takes_what_the_index_holds_then_a_sync(world: World) -> None:
    world.kb.indexed[world.kb_uri(NOBODY, "a" * 20)] = "m"  # ingested behind Sluice's back
    report = world.run()
    assert report.found == {Drift.INDEX_STRAY: 1}
    assert world.syncs("kb") == [NOBODY]
    state = world.state("kb", NOBODY)
    assert state is not None and (state.held, state.status, state.version) == (("a" * 20,), SinkStatus.INDEXED, 1)


def test_every_kind_of_drift_has_a_test() -> None:
    untested = [kind for kind in Drift if not any(name.startswith(f"test_{kind.value}_") for name in globals())]
    assert untested == []


def test_a_dry_run_finds_and_changes_nothing(world: World) -> None:
    world.put("notes/unannounced.md", "# Unannounced\n", notify=False)
    world.s3.remove(RAW, ESTUARY)
    report = world.reconciler().run(dry_run=True)
    assert report.complete and report.dry_run
    assert report.found == {Drift.UNRECORDED: 1, Drift.SOURCE_GONE: 1} and report.repairs == {}
    assert world.queues.sent == {} and world.passes.last() is None and world.passes.current is None


def test_a_pass_spans_runs_within_its_budget_and_finds_what_one_run_finds(world: World) -> None:
    for n in range(4):
        world.put(f"notes/unannounced-{n}.md", f"# Unannounced {n}\n", notify=False)
    whole = world.reconciler().run(dry_run=True)
    runs = [world.reconciler(page_size=2, max_repairs=1).run()]
    while not runs[-1].complete:
        runs.append(world.reconciler(page_size=2, max_repairs=1).run())
        assert len(runs) < 20
    assert {r.stopped for r in runs[:-1]} == {"budget"} and len({r.pass_id for r in runs}) == 1
    assert runs[-1].found == whole.found == {Drift.UNRECORDED: 4} and runs[-1].runs == len(runs)
    assert len(world.rechecks()) == 4


def test_one_run_at_a_time(world: World) -> None:
    world.passes.acquire("someone-else", world.now, 600)
    with pytest.raises(PassBusyError):
        world.reconciler().run()
    assert world.reconciler().run(dry_run=True).complete  # a dry run takes no lease


def test_while_a_backfill_holds_ingestion_jobs_the_knowledge_base_is_left_to_its_jobs(world: World) -> None:
    world.kb.indexed[world.kb_uri(NOBODY, "a" * 20)] = "m"  # ingested behind Sluice's back
    ModeHolds(world.table.states, clock=lambda: world.now).hold("ingestion-job", "backfill-1")
    assert world.run().found == {}  # a job syncs the data source from the processed bucket
    world.now += HOLD_SECONDS + 1  # not renewed since: the stack's direct mode is back
    assert world.run().found == {Drift.INDEX_STRAY: 1}
