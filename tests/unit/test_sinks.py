"""The Knowledge Base and Kendra sinks on in-memory services: only differences are sent, in
batches; duplicates and reordering change nothing; faults lose nothing; one job at a time."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

import pytest

from sluice.errors import TransientError
from sluice.ingest import IngestService, IngestSettings, ObjectEvent
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.files import document_id, s3_uri
from sluice.pipeline.process import PipelineSettings
from sluice.sinks import SinkStatus
from sluice.sinks.kendra import KendraSink
from sluice.sinks.knowledge_base import (
    HOLD_KEY,
    HOLD_SECONDS,
    MODE_HOLD,
    KnowledgeBaseSink,
    ModeHold,
    ModeHolds,
    current_hold,
)
from sluice.sinks.runner import run_batch, sync_message
from support.fakes import (
    FakeBucketReader,
    FakeBucketWriter,
    FakeBus,
    FakeObjectReader,
    FakeQueue,
    FakeRegistry,
    FakeSinkStates,
)
from support.sinkfakes import FakeKendra, FakeKnowledgeBase

BUCKET = "raw"


class World:
    def __init__(self, mode: str = "direct") -> None:
        clock = [1_800_000_000.0]
        self.raw, self.processed, self.registry, self.bus = (
            FakeObjectReader(),
            FakeBucketWriter("processed"),
            FakeRegistry(),
            FakeBus(),
        )
        self.ingest = IngestService(
            raw=self.raw, processed=self.processed, registry=self.registry, bus=self.bus,
            settings=IngestSettings(pipeline=PipelineSettings(chunking=ChunkSettings(max_tokens=128))),
            clock=lambda: clock[0],
        )  # fmt: skip
        self.states = FakeSinkStates()
        self.kb_api = FakeKnowledgeBase()
        self.kendra_api = FakeKendra()
        self.queue = FakeQueue()
        self.kb = KnowledgeBaseSink(
            api=self.kb_api,
            registry=self.registry,
            states=self.states,
            processed_bucket="processed",
            mode=mode,
            queue=self.queue,
        )  # type: ignore[arg-type]
        self.kendra = KendraSink(api=self.kendra_api, registry=self.registry, states=self.states,  # type: ignore[arg-type]
                                 processed=FakeBucketReader(self.processed), processed_bucket="processed")  # fmt: skip
        self.seq = 0

    def redeploy(self, mode: str) -> None:
        """The stack deployed again with another KnowledgeBaseSyncMode: the sink's functions start
        with the new mode; its states, its queue and the knowledge base are as they were."""
        self.kb = KnowledgeBaseSink(api=self.kb_api, registry=self.registry, states=self.states,  # type: ignore[arg-type]
                                    processed_bucket="processed", mode=mode, queue=self.queue)  # fmt: skip

    def put(self, key: str, text: str) -> str:
        self.seq += 1
        version = self.raw.put(BUCKET, key, text.encode())
        self.ingest.handle(ObjectEvent(BUCKET, key, removed=False, sequencer=f"{self.seq:08X}", version_id=version))
        return document_id(s3_uri(BUCKET, key))

    def delete(self, key: str) -> str:
        self.seq += 1
        self.raw.delete(BUCKET, key)
        self.ingest.handle(ObjectEvent(BUCKET, key, removed=True, sequencer=f"{self.seq:08X}"))
        return document_id(s3_uri(BUCKET, key))

    def deliver(self, sink, doc_ids: list[str]):  # type: ignore[no-untyped-def]
        """The bus events for these documents, in SQS batches of ten, then any checks the sink queued."""
        events = [
            json.dumps({"source": "sluice.ingest", "detail-type": "Document Changed", "detail": {"doc_id": d}})
            for d in doc_ids
        ]
        failed = []
        for i in range(0, len(events), 10):
            failed += run_batch(
                sink, [(f"e{i + n}", body) for n, body in enumerate(events[i : i + 10])], self.queue
            ).failed_message_ids
        return failed

    def drain_checks(self, sink) -> None:  # type: ignore[no-untyped-def]
        while self.queue.sent:
            run_batch(sink, self.queue.take(), self.queue)


def _text(n: int, tag: str = "") -> str:
    return "# Doc\n\n" + "\n\n".join(
        f"Paragraph {i}{tag} says something about sinks and indexes, plainly and at length." for i in range(n)
    )


def test_a_new_document_is_ingested_chunk_by_chunk_and_confirmed() -> None:
    w = World()
    doc = w.put("a.md", _text(90))
    chunks = w.registry.get(doc).chunks
    assert len(chunks) > 10
    assert w.deliver(w.kb, [doc]) == []
    assert w.kb_api.count("ingest") == math.ceil(len(chunks) / 10)
    assert w.states.get("kb", doc).status is SinkStatus.PENDING
    w.drain_checks(w.kb)
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.INDEXED and state.held == chunks and not state.pending
    assert set(w.kb_api.indexed) == {f"s3://processed/chunks/{doc}/{c}.txt" for c in chunks}
    assert all(m.endswith(".txt.metadata.json") for m in w.kb_api.indexed.values())


def test_a_resync_of_an_unchanged_corpus_makes_no_calls() -> None:
    w = World()
    docs = [w.put(f"d{i}.md", _text(8, str(i))) for i in range(5)]
    w.deliver(w.kb, docs)
    w.deliver(w.kendra, docs)
    w.drain_checks(w.kb)
    w.drain_checks(w.kendra)
    kb_calls, kendra_calls = len(w.kb_api.calls), len(w.kendra_api.calls)
    for i in range(5):
        w.put(f"d{i}.md", _text(8, str(i)))  # re-uploaded, same bytes
    w.deliver(w.kb, docs)
    w.deliver(w.kendra, docs)
    w.deliver(w.kb, docs)  # and the events duplicated
    assert (len(w.kb_api.calls), len(w.kendra_api.calls)) == (kb_calls, kendra_calls)


def test_a_one_paragraph_edit_sends_only_the_changed_chunks() -> None:
    w = World()
    text = _text(40)
    doc = w.put("long.md", text)
    w.deliver(w.kb, [doc])
    w.drain_checks(w.kb)
    before = set(w.registry.get(doc).chunks)
    w.kb_api.calls.clear()
    w.put("long.md", text.replace("Paragraph 20 says", "Paragraph twenty now says, after an edit,"))
    after = set(w.registry.get(doc).chunks)
    w.deliver(w.kb, [doc])
    sent = sum(n for op, n in w.kb_api.calls if op == "ingest")
    removed = sum(n for op, n in w.kb_api.calls if op == "delete")
    assert (sent, removed) == (len(after - before), len(before - after))
    assert 1 <= sent <= 3
    assert set(w.kb_api.indexed) == {f"s3://processed/chunks/{doc}/{c}.txt" for c in after}


def test_a_delete_removes_the_document_from_both_sinks() -> None:
    w = World()
    doc = w.put("gone.md", _text(12))
    w.deliver(w.kb, [doc])
    w.deliver(w.kendra, [doc])
    assert w.kb_api.indexed and w.kendra_api.documents
    w.delete("gone.md")
    w.deliver(w.kb, [doc])
    w.deliver(w.kendra, [doc])
    assert not w.kb_api.indexed and not w.kendra_api.documents
    assert w.states.get("kb", doc).status is SinkStatus.ABSENT
    assert w.states.get("kendra", doc).status is SinkStatus.ABSENT


def test_deleting_a_document_the_sink_never_had_is_success_without_a_call() -> None:
    w = World()
    doc = w.put("bad.pdf", "not a pdf")  # quarantined: nothing to index
    assert w.deliver(w.kb, [doc]) == [] and w.deliver(w.kendra, [doc]) == []
    assert w.kb_api.calls == [] and w.kendra_api.calls == []


def test_events_out_of_order_change_nothing() -> None:
    w = World()
    doc = w.put("o.md", _text(10, "a"))
    w.put("o.md", _text(10, "b"))  # the first event is delivered after the second: both name the doc
    w.deliver(w.kb, [doc, doc])
    w.deliver(w.kb, [doc])
    assert {u.rsplit("/", 1)[1][:-4] for u in w.kb_api.indexed} == set(w.registry.get(doc).chunks)


def test_a_burst_of_1000_documents_is_100_kendra_calls() -> None:
    w = World()
    docs = [w.put(f"many/{i}.txt", f"Document number {i} has its own short text.") for i in range(1000)]
    assert w.deliver(w.kendra, docs) == []
    assert w.kendra_api.count("put") == 100 and len(w.kendra_api.documents) == 1000


def test_kendra_documents_carry_reserved_declared_attributes_and_acls() -> None:
    w = World()
    w.raw.put(BUCKET, "hr.md.metadata.json", json.dumps({
        "metadataAttributes": {"department": "hr", "year": 2025, "undeclared": "x"},
        "accessControlList": [{"name": "hr", "type": "GROUP", "access": "ALLOW"}],
    }).encode())  # fmt: skip
    doc = w.put("hr.md", _text(3))
    w.deliver(w.kendra, [doc])
    (document,) = w.kendra_api.documents.values()
    assert document["Id"] == "s3://raw/hr.md" and document["ContentType"] == "PLAIN_TEXT"
    assert document["Blob"].startswith(b"# Doc")
    attrs = {a["Key"]: a["Value"] for a in document["Attributes"]}
    assert attrs["_source_uri"] == {"StringValue": "s3://raw/hr.md"} and attrs["_file_type"] == {"StringValue": "MD"}
    assert attrs["department"] == {"StringValue": "hr"} and attrs["year"] == {"LongValue": 2025}
    assert "undeclared" not in attrs and "_last_updated_at" in attrs
    assert document["AccessControlList"] == [{"Name": "hr", "Type": "GROUP", "Access": "ALLOW"}]


def test_throttling_loses_nothing() -> None:
    w = World()
    docs = [w.put(f"t{i}.md", _text(12, str(i))) for i in range(4)]
    w.kb_api.fail_next["ingest"] = 2
    failed = w.deliver(w.kb, docs)
    assert failed  # SQS redelivers those records
    w.deliver(w.kb, docs)  # the redelivery sends what the first attempt could not
    w.drain_checks(w.kb)
    expected = {f"s3://processed/chunks/{d}/{c}.txt" for d in docs for c in w.registry.get(d).chunks}
    assert set(w.kb_api.indexed) == expected
    assert all(w.states.get("kb", d).status is SinkStatus.INDEXED for d in docs)


def test_kendra_partial_failures_retry_only_what_is_retryable() -> None:
    w = World()
    docs = [w.put(f"k{i}.md", _text(2, str(i))) for i in range(3)]
    w.kendra_api.refuse = {"s3://raw/k0.md": "InternalError", "s3://raw/k1.md": "InvalidRequest"}
    failed = w.deliver(w.kendra, docs)
    assert failed == ["e0"]  # the batch's one message stays; its retryable document goes again
    assert w.states.get("kendra", docs[1]).status is SinkStatus.FAILED
    assert "InvalidRequest" in w.states.get("kendra", docs[1]).failures["document"]
    w.deliver(w.kendra, docs)
    assert set(w.kendra_api.documents) == {"s3://raw/k0.md", "s3://raw/k2.md"}


def test_refused_chunks_are_recorded_with_the_services_reason() -> None:
    w = World()
    doc = w.put("r.md", _text(5))
    first = f"s3://processed/chunks/{doc}/{w.registry.get(doc).chunks[0]}.txt"
    w.kb_api.refuse.add(first)
    w.deliver(w.kb, [doc])
    w.drain_checks(w.kb)
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.FAILED
    assert list(state.failures.values()) == ["FAILED: embedding failed"]


def test_checks_back_off_until_the_index_answers() -> None:
    w = World()
    doc = w.put("slow.md", _text(4))
    w.kb_api.processing_checks = 3
    w.deliver(w.kb, [doc])
    delays = []
    while w.queue.sent:
        delays += [d for _, d in w.queue.sent]
        run_batch(w.kb, w.queue.take(), w.queue)
    assert delays == [20, 40, 80, 160] and w.states.get("kb", doc).status is SinkStatus.INDEXED


def test_a_check_still_runs_when_its_batch_also_syncs_the_document() -> None:
    w = World()
    doc = w.put("both.md", _text(4))
    w.deliver(w.kb, [doc])
    (check,) = w.queue.take()
    event = json.dumps({"source": "sluice.ingest", "detail-type": "Document Changed", "detail": {"doc_id": doc}})
    run_batch(w.kb, [("dup", event), check], w.queue)  # a duplicate event and the check, together
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED


def test_edits_while_pending_leave_one_chain_of_checks() -> None:
    w = World()
    w.kb_api.processing_checks = 1000  # the index stays busy
    doc = ""
    for n in range(4):
        doc = w.put("busy.md", _text(6, f"v{n}"))
        w.deliver(w.kb, [doc])  # each edit starts a chain; the older chains go stale
    for _ in range(3):
        run_batch(w.kb, w.queue.take(), w.queue)
    assert len(w.queue.sent) == 1  # one live chain
    w.kb_api.processing_checks = 0
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED


def test_ingestion_job_mode_runs_one_job_at_a_time_and_coalesces_bursts() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"j{i}.txt", f"Text of document {i}.") for i in range(1000)]
    w.deliver(w.kb, docs)  # 100 batches while the first job runs
    assert len(w.kb_api.jobs) == 1 and w.kb_api.count("ingest") == 0
    assert w.states.get("kb-job", "DS12345678").failures.get("dirty") == "1"
    assert [json.loads(body)["sluice"] for body, _ in w.queue.sent] == ["poll-job"]  # one chain
    run_batch(w.kb, w.queue.take(), w.queue)  # still running: poll again later
    assert len(w.queue.sent) == 1 and len(w.kb_api.jobs) == 1
    w.kb_api.job_status = "COMPLETE"
    run_batch(w.kb, w.queue.take(), w.queue)  # the job ended: one more starts for what came meanwhile
    assert len(w.kb_api.jobs) == 2
    statuses = [w.states.get("kb", d).status for d in docs]
    assert statuses[:10] == [SinkStatus.INDEXED] * 10  # the first job covered the first batch only
    assert set(statuses[10:]) == {SinkStatus.PENDING}
    run_batch(w.kb, w.queue.take(), w.queue)
    assert all(w.states.get("kb", d).status is SinkStatus.INDEXED for d in docs)
    assert len(w.kb_api.jobs) == 2 and w.kb_api.running is None and not w.queue.sent


def test_settling_a_large_job_goes_on_over_several_polls() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"s{i}.txt", f"Text {i}.") for i in range(25)]
    run_batch(w.kb, [("m", sync_message(docs))], w.queue)
    w.kb_api.job_status = "COMPLETE"
    ((_, poll),) = w.queue.take()
    outcome = w.kb.poll_job(json.loads(poll)["chain"], limit=10)
    assert outcome.more and sum(w.states.get("kb", d).status is SinkStatus.INDEXED for d in docs) == 10
    while w.queue.sent:
        run_batch(w.kb, w.queue.take(), w.queue)
    assert all(w.states.get("kb", d).status is SinkStatus.INDEXED for d in docs)
    assert "settle" not in w.states.get("kb-job", "DS12345678").failures


def test_a_failed_job_fails_its_documents_until_redriven() -> None:
    w = World(mode="ingestion-job")
    doc = w.put("f.txt", "Some text.")
    w.deliver(w.kb, [doc])
    w.kb_api.job_status = "FAILED"
    run_batch(w.kb, w.queue.take(), w.queue)
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.FAILED and "FAILED" in state.failures["job"]
    w.deliver(w.kb, [doc])
    assert len(w.kb_api.jobs) == 1  # an ordinary re-sync does not resend what failed
    run_batch(w.kb, [("r", sync_message([doc], retry_failed=True))], w.queue)
    assert len(w.kb_api.jobs) == 2 and w.states.get("kb", doc).status is SinkStatus.PENDING


def test_redrive_resends_only_the_refused_chunks() -> None:
    w = World()
    doc = w.put("r2.md", _text(40))
    chunks = w.registry.get(doc).chunks
    w.kb_api.refuse.add(f"s3://processed/chunks/{doc}/{chunks[1]}.txt")
    w.deliver(w.kb, [doc])
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.FAILED
    w.kb_api.refuse.clear()
    w.kb_api.calls.clear()
    run_batch(w.kb, [("r", sync_message([doc], retry_failed=True))], w.queue)
    assert w.kb_api.calls == [("ingest", 1)]
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED and not w.states.get("kb", doc).failures


def test_a_conflict_with_a_job_started_elsewhere_is_absorbed() -> None:
    w = World(mode="ingestion-job")
    doc = w.put("c.txt", "Some text.")
    w.kb_api.conflict_next = True
    assert w.deliver(w.kb, [doc]) == []
    assert w.kb_api.jobs == [] and len(w.queue.sent) == 1  # it waits and polls
    run_batch(w.kb, w.queue.take(), w.queue)  # the other job has ended: ours starts
    assert len(w.kb_api.jobs) == 1
    w.kb_api.job_status = "COMPLETE"
    run_batch(w.kb, w.queue.take(), w.queue)
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED


def test_sync_messages_from_operators_are_accepted() -> None:
    w = World()
    doc = w.put("s.md", _text(3))
    report = run_batch(w.kendra, [("m", sync_message([doc])), ("bad", "not json")], w.queue)
    assert report.failed_message_ids == ["bad"] and w.kendra_api.documents


@pytest.mark.parametrize("mode", ["nonsense"])
def test_unknown_modes_are_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="direct or ingestion-job"):
        World(mode=mode)


class _Later:
    """An API whose next call of ``operation`` first lets ``before`` run (another worker's whole sync),
    so that this worker's call reaches the service last."""

    def __init__(self, api: object, operation: str, before: Callable[[], object]) -> None:
        self._api, self._operation, self._before = api, operation, before

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._api, name)
        if name != self._operation or self._before is None:
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            before, self._before = self._before, None
            before()
            return attribute(*args, **kwargs)

        return call


class _Stale:
    """The registry as a slow worker read it: the old record, once."""

    def __init__(self, registry: FakeRegistry, doc_id: str) -> None:
        self.registry, self.old = registry, registry.get(doc_id)

    def get(self, doc_id: str):  # type: ignore[no-untyped-def]
        old, self.old = self.old, None
        return old or self.registry.get(doc_id)


def test_kendra_converges_when_an_older_put_lands_after_a_newer_one() -> None:
    w = World()
    doc = w.put("race.md", "# Old title\n\nSome text.")
    stale = _Stale(w.registry, doc)
    w.put("race.md", "# New title\n\nSome text.")
    slow = KendraSink(
        api=_Later(w.kendra_api, "put", lambda: w.kendra.sync([doc])),  # type: ignore[arg-type]
        registry=stale, states=w.states, processed=FakeBucketReader(w.processed), processed_bucket="processed",  # type: ignore[arg-type]
    )  # fmt: skip
    (result,) = slow.sync([doc])  # puts the old title after the fast worker put the new one
    assert result.retry and w.kendra_api.documents["s3://raw/race.md"]["Title"] == "Old title"
    w.kendra.sync([doc])  # the redelivery
    assert w.kendra_api.documents["s3://raw/race.md"]["Title"] == "New title"


def test_the_knowledge_base_converges_when_an_older_ingest_lands_last() -> None:
    w = World()
    doc = w.put("race.md", _text(30, "old"))
    stale = _Stale(w.registry, doc)
    w.put("race.md", _text(30, "new"))
    slow = KnowledgeBaseSink(
        api=_Later(w.kb_api, "ingest", lambda: w.kb.sync([doc])),  # type: ignore[arg-type]
        registry=stale, states=w.states, processed_bucket="processed",  # type: ignore[arg-type]
    )  # fmt: skip
    (result,) = slow.sync([doc])
    assert result.retry
    w.kb.sync([doc])
    assert set(w.kb_api.indexed) == {f"s3://processed/chunks/{doc}/{c}.txt" for c in w.registry.get(doc).chunks}


def test_what_succeeded_before_a_throttle_is_recorded_and_removed_on_delete() -> None:
    w = World()
    doc = w.put("half.md", _text(90))
    assert len(w.registry.get(doc).chunks) > 10
    real_ingest, calls = w.kb_api.ingest, []

    def second_call_throttled(documents, token):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise TransientError("ingest: ThrottlingException")
        return real_ingest(documents, token)

    w.kb_api.ingest = second_call_throttled  # type: ignore[method-assign]
    assert w.deliver(w.kb, [doc])  # retried
    held = w.states.get("kb", doc).held
    assert len(held) == 10 and len(w.kb_api.indexed) == 10
    w.delete("half.md")  # deleted before SQS redelivers
    w.deliver(w.kb, [doc])
    assert w.kb_api.indexed == {} and w.states.get("kb", doc).status is SinkStatus.ABSENT


def test_a_change_during_the_end_of_a_job_is_not_lost() -> None:
    w = World(mode="ingestion-job")
    first = w.put("a.txt", "First text.")
    w.deliver(w.kb, [first])
    w.kb_api.job_status = "COMPLETE"
    second = w.put("b.txt", "Second text.")
    real_put, raced = w.states.put, []

    def put(state, *, expected_version):  # type: ignore[no-untyped-def]
        if state.sink == "kb-job" and state.status is SinkStatus.INDEXED and not raced:
            raced.append(1)
            w.deliver(w.kb, [second])  # a sync marks the lock dirty just before the poll writes
        real_put(state, expected_version=expected_version)

    w.states.put = put  # type: ignore[method-assign]
    w.drain_checks(w.kb)
    assert len(w.kb_api.jobs) == 2
    assert {w.states.get("kb", d).status for d in (first, second)} == {SinkStatus.INDEXED}


def test_a_failed_start_after_a_job_keeps_the_next_job_owed() -> None:
    w = World(mode="ingestion-job")
    first = w.put("a.txt", "First text.")
    w.deliver(w.kb, [first])
    second = w.put("b.txt", "Second text.")
    w.deliver(w.kb, [second])  # marks the running job dirty
    w.kb_api.job_status = "COMPLETE"
    w.kb_api.fail_next["start_job"] = 1
    poll = w.queue.take()
    assert run_batch(w.kb, poll, w.queue).failed_message_ids == ["m0"]  # the poll is retried...
    run_batch(w.kb, poll, w.queue)  # ...and its redelivery starts the job still owed
    w.drain_checks(w.kb)
    assert len(w.kb_api.jobs) == 2 and w.states.get("kb", second).status is SinkStatus.INDEXED


def test_a_duplicate_event_for_a_document_the_running_job_covers_starts_no_job() -> None:
    w = World(mode="ingestion-job")
    doc = w.put("a.txt", "Text.")
    w.deliver(w.kb, [doc])
    w.deliver(w.kb, [doc])
    assert "dirty" not in w.states.get("kb-job", "DS12345678").failures
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert len(w.kb_api.jobs) == 1


def test_a_refused_kendra_delete_keeps_the_document_id_for_the_redrive() -> None:
    w = World()
    doc = w.put("My Report.md", _text(2))
    w.deliver(w.kendra, [doc])
    w.delete("My Report.md")
    real_delete = w.kendra_api.delete
    w.kendra_api.delete = lambda ids: dict.fromkeys(ids, ("InvalidRequest", "no"))  # type: ignore[method-assign]
    w.deliver(w.kendra, [doc])
    state = w.states.get("kendra", doc)
    assert state.status is SinkStatus.FAILED and state.held[1] == "s3://raw/My Report.md"
    w.kendra_api.delete = real_delete  # type: ignore[method-assign]
    run_batch(w.kendra, [("r", sync_message([doc], retry_failed=True))], w.queue)
    assert w.kendra_api.documents == {} and w.states.get("kendra", doc).status is SinkStatus.ABSENT


def test_two_checks_of_one_document_in_a_batch_keep_the_live_chain() -> None:
    w = World()
    w.kb_api.processing_checks = 1000
    doc = w.put("busy.md", _text(6, "v0"))
    w.deliver(w.kb, [doc])
    (old,) = w.queue.take()
    w.put("busy.md", _text(6, "v1"))
    w.deliver(w.kb, [doc])
    (new,) = w.queue.take()
    run_batch(w.kb, [new, old], w.queue)  # the newest first: the old one must not hide it
    assert len(w.queue.sent) == 1


def test_a_chunk_refused_after_a_race_with_a_check_is_still_found_refused() -> None:
    w = World()
    doc = w.put("e.md", _text(6, "old"))
    w.deliver(w.kb, [doc])
    (check,) = w.queue.take()
    version = json.loads(check[1])["versions"][doc]
    w.put("e.md", _text(6, "new"))
    for c in set(w.registry.get(doc).chunks) - set(w.states.get("kb", doc).held):
        w.kb_api.refuse.add(f"s3://processed/chunks/{doc}/{c}.txt")
    slow = KnowledgeBaseSink(
        api=_Later(w.kb_api, "ingest", lambda: w.kb.check({doc: version})),  # type: ignore[arg-type]
        registry=w.registry, states=w.states, processed_bucket="processed", queue=w.queue,  # type: ignore[arg-type]
    )  # fmt: skip
    assert run_batch(slow, [("m", sync_message([doc]))], w.queue).failed_message_ids == ["m"]
    run_batch(w.kb, [("m", sync_message([doc]))], w.queue)  # the redelivery
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.FAILED


def test_a_batch_that_failed_after_recording_keeps_its_checks() -> None:
    w = World()
    doc = w.put("lost.md", _text(4))
    real_send, sent = w.queue.send, []

    def send_fails_once(body: str, delay_seconds: int = 0) -> None:
        if not sent:
            sent.append(body)
            raise TransientError("sqs: ServiceUnavailable")
        real_send(body, delay_seconds)

    w.queue.send = send_fails_once  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        w.deliver(w.kb, [doc])  # the state was written, the check was not queued: SQS redelivers
    w.deliver(w.kb, [doc])
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED


def test_one_chain_of_polls_under_steady_load() -> None:
    w = World(mode="ingestion-job")
    w.kb.settle_limit = 3  # settling spans several polls while the next jobs run

    def polls() -> int:
        return sum(1 for body, _ in w.queue.sent if json.loads(body)["sluice"] == "poll-job")

    for cycle in range(4):
        w.deliver(w.kb, [w.put(f"c{cycle}-{i}.txt", f"Text {cycle} {i}.") for i in range(8)])
        w.kb_api.job_status = "IN_PROGRESS"
        for message in w.queue.take():
            run_batch(w.kb, [message], w.queue)
        w.deliver(w.kb, [w.put(f"x{cycle}.txt", f"Extra {cycle}.")])  # the running job is dirty
        w.kb_api.job_status = "COMPLETE"
        for message in w.queue.take():  # each message in a batch of its own
            run_batch(w.kb, [message], w.queue)
        assert polls() <= 1
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert w.kb_api.running is None and w.states.count("kb", SinkStatus.INDEXED) == 36


def test_a_failed_job_does_not_fail_what_an_earlier_job_indexed() -> None:
    w = World(mode="ingestion-job")
    first = [w.put(f"a/{i}.txt", f"First {i}.") for i in range(5)]
    w.deliver(w.kb, first)
    later = w.put("b.txt", "Later.")
    w.deliver(w.kb, [later])  # the running job is dirty
    w.kb_api.job_status = "COMPLETE"
    ((_, poll),) = w.queue.take()
    w.kb.poll_job(json.loads(poll)["chain"], limit=2)  # job 1 ends; job 2 starts; 2 of 5 settled
    w.kb_api.job_status = "FAILED"
    w.drain_checks(w.kb)
    assert {w.states.get("kb", d).status for d in first} == {SinkStatus.INDEXED}
    assert w.states.get("kb", later).status is SinkStatus.FAILED


def test_a_redrive_with_a_delete_in_the_same_batch_removes_the_refused_chunk() -> None:
    w = World()
    doc = w.put("gone.md", _text(6))
    (chunk,) = w.registry.get(doc).chunks[:1]
    w.kb_api.refuse.add(f"s3://processed/chunks/{doc}/{chunk}.txt")
    w.deliver(w.kb, [doc])
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.FAILED
    w.delete("gone.md")
    event = json.dumps({"source": "sluice.ingest", "detail-type": "Document Deleted", "detail": {"doc_id": doc}})
    run_batch(w.kb, [("r", sync_message([doc], retry_failed=True)), ("e", event)], w.queue)
    assert w.kb_api.indexed == {} and w.states.get("kb", doc).status is SinkStatus.ABSENT


def test_each_document_the_index_confirms_is_one_sync_lag_sample() -> None:
    w = World()
    now = [1_800_000_000.0 + 42]  # the ingestion's clock, 42 s later
    kb = KnowledgeBaseSink(api=w.kb_api, registry=w.registry, states=w.states, processed_bucket="processed",  # type: ignore[arg-type]
                           queue=w.queue, clock=lambda: now[0])  # fmt: skip
    docs = [w.put(f"d{i}.md", _text(3, str(i))) for i in range(3)]
    assert run_batch(kb, [("m", sync_message(docs))], w.queue).lags == []  # sent, not yet confirmed
    assert run_batch(kb, w.queue.take(), w.queue).lags == [42.0] * 3  # the status check finds them INDEXED
    assert run_batch(kb, [("again", sync_message(docs))], w.queue).lags == []  # nothing new confirmed
    w.delete("d0.md")
    assert run_batch(kb, [("gone", sync_message(docs[:1]))], w.queue).lags == [42.0]  # out of the index


def test_a_job_that_ends_gives_a_lag_sample_per_document_it_indexed() -> None:
    w = World(mode="ingestion-job")
    now = [1_800_000_000.0]
    kb = KnowledgeBaseSink(api=w.kb_api, registry=w.registry, states=w.states, processed_bucket="processed",  # type: ignore[arg-type]
                           mode="ingestion-job", queue=w.queue, clock=lambda: now[0])  # fmt: skip
    docs = [w.put(f"j{i}.txt", f"Text of document {i}.") for i in range(2)]
    assert run_batch(kb, [("m", sync_message(docs))], w.queue).lags == []
    now[0] += 300
    w.kb_api.job_status = "COMPLETE"
    assert run_batch(kb, w.queue.take(), w.queue).lags == [300.0, 300.0]


class _LostAnswer(FakeKendra):
    """Kendra takes the put, and the answer is lost (a read timeout after botocore's retries)."""

    def put(self, documents):  # type: ignore[no-untyped-def]
        super().put(documents)
        raise TransientError("batch_put_document: Read timeout on endpoint URL")


def test_a_kendra_put_whose_answer_was_lost_is_removed_by_a_delete_that_comes_first() -> None:
    w = World()
    lossy = _LostAnswer()
    w.kendra.api = lossy  # type: ignore[assignment]
    doc = w.put("lost.md", _text(3))
    assert w.deliver(w.kendra, [doc])  # failed: SQS would deliver it again
    assert lossy.documents  # but Kendra has it
    state = w.states.get("kendra", doc)
    assert state.status is SinkStatus.PENDING and state.maybe == ("s3://raw/lost.md",) and not state.held
    w.delete("lost.md")  # before the retry
    assert w.deliver(w.kendra, [doc]) == []
    assert not lossy.documents and w.states.get("kendra", doc).status is SinkStatus.ABSENT


def test_a_kendra_put_whose_answer_was_lost_is_put_again_on_retry() -> None:
    w = World()
    doc = w.put("lost.md", _text(3))
    w.kendra_api.fail_next["put"] = 1
    assert w.deliver(w.kendra, [doc])
    assert w.deliver(w.kendra, [doc]) == []
    w.drain_checks(w.kendra)
    assert w.states.get("kendra", doc).status is SinkStatus.INDEXED


class _LostIngest(FakeKnowledgeBase):
    """The knowledge base takes the chunks, and the answer is lost (a read timeout after botocore's
    retries)."""

    lose: int = 1

    def ingest(self, documents, token):  # type: ignore[no-untyped-def]
        answer = super().ingest(documents, token)
        if self.lose:
            self.lose -= 1
            raise TransientError("ingest_knowledge_base_documents: Read timeout on endpoint URL")
        return answer


def test_a_kb_ingest_whose_answer_was_lost_is_removed_by_a_delete_that_comes_first() -> None:
    w = World()
    lossy = _LostIngest()
    w.kb.api = lossy  # type: ignore[assignment]
    doc = w.put("lost.md", _text(3))
    assert w.deliver(w.kb, [doc])  # failed: SQS would deliver it again
    assert lossy.indexed  # but the knowledge base has its chunks
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.PENDING and set(state.maybe) == set(w.registry.get(doc).chunks)
    assert not state.held and not w.queue.sent  # no status checks of what may not be there
    w.delete("lost.md")  # before the retry
    assert w.deliver(w.kb, [doc]) == []
    assert not lossy.indexed
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.ABSENT and not state.maybe


def test_a_kb_ingest_whose_answer_was_lost_is_sent_again_and_confirmed() -> None:
    w = World()
    lossy = _LostIngest()
    w.kb.api = lossy  # type: ignore[assignment]
    doc = w.put("lost.md", _text(3))
    assert w.deliver(w.kb, [doc])
    assert w.deliver(w.kb, [doc]) == []
    w.drain_checks(w.kb)
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.INDEXED and not state.maybe
    assert set(state.held) == set(w.registry.get(doc).chunks) == {u.rsplit("/", 1)[1][:-4] for u in lossy.indexed}


def test_a_lost_answer_survives_a_conflicting_write() -> None:
    """A worker whose ingest answer was lost, and whose state write then lost to another worker's,
    folds what may be held into the winner's state."""
    w = World()
    doc = w.put("c.md", _text(3))
    lossy = _LostIngest()
    w.kb.api = lossy  # type: ignore[assignment]
    real_put = w.states.put

    def racing_put(state, *, expected_version):  # type: ignore[no-untyped-def]
        if expected_version is None and w.states.get("kb", doc) is None:
            real_put(state.evolve(status=SinkStatus.ABSENT, maybe=(), held=()), expected_version=None)
        real_put(state, expected_version=expected_version)

    w.states.put = racing_put  # type: ignore[method-assign]
    assert w.deliver(w.kb, [doc])
    w.states.put = real_put  # type: ignore[method-assign]
    assert set(w.states.get("kb", doc).maybe) == set(w.registry.get(doc).chunks)


class _IngestWaitsForACheck(FakeKnowledgeBase):
    """An Ingest call that returns only once a Get call has started (or after 30 s): a batch's checks
    of other documents must not wait for its syncs."""

    def __init__(self) -> None:
        super().__init__()
        self.checking = threading.Event()
        self.overlapped: list[bool] = []

    def ingest(self, documents, token):  # type: ignore[no-untyped-def]
        self.overlapped.append(self.checking.wait(timeout=30))
        return super().ingest(documents, token)

    def statuses(self, uris):  # type: ignore[no-untyped-def]
        self.checking.set()
        return super().statuses(uris)


def test_a_batch_checks_other_documents_while_it_syncs() -> None:
    w = World()
    waiting = w.put("waiting.md", _text(4))
    w.deliver(w.kb, [waiting])
    (check,) = w.queue.take()  # the check the sync queued for `waiting`
    w.kb.api = api = _IngestWaitsForACheck()
    api.indexed = w.kb_api.indexed  # what the index already holds
    new = w.put("new.md", _text(4))
    event = json.dumps({"source": "sluice.ingest", "detail-type": "Document Changed", "detail": {"doc_id": new}})

    report = run_batch(w.kb, [("e", event), check], w.queue)

    assert api.overlapped == [True]  # the Get was made while the Ingest was under way
    assert report.failed_message_ids == []
    assert w.states.get("kb", waiting).status is SinkStatus.INDEXED
    assert w.states.get("kb", new).status is SinkStatus.PENDING  # sent; its own check follows
    assert [m for m, _ in api.calls] == ["get", "ingest"]
    w.drain_checks(w.kb)
    assert w.states.get("kb", new).status is SinkStatus.INDEXED


def test_checks_made_beside_a_sync_that_fails_keep_their_chain() -> None:
    w = World()
    waiting = w.put("waiting.md", _text(4))
    w.kb_api.processing_checks = 1  # its first check finds it still processing
    w.deliver(w.kb, [waiting])
    (check,) = w.queue.take()
    new = w.put("new.md", _text(4))
    event = json.dumps({"source": "sluice.ingest", "detail-type": "Document Changed", "detail": {"doc_id": new}})

    def sync_breaks(doc_ids, *, retry_failed=False):  # type: ignore[no-untyped-def]
        raise RuntimeError("the registry is unreachable")

    w.kb.sync = sync_breaks  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run_batch(w.kb, [("e", event), check], w.queue)  # SQS redelivers both messages
    assert w.states.get("kb", waiting).checks == 1  # the check beside ran and recorded its answer...
    (follow,) = w.queue.sent  # ...and queued the next one: the redelivered check is stale now
    assert json.loads(follow[0])["versions"] == {waiting: w.states.get("kb", waiting).version}

    del w.kb.sync  # the registry is back
    run_batch(w.kb, [("e", event), check], w.queue)  # the redelivery: the stale check is dropped
    w.drain_checks(w.kb)
    assert w.states.get("kb", waiting).status is SinkStatus.INDEXED
    assert w.states.get("kb", new).status is SinkStatus.INDEXED


def test_a_state_that_cannot_be_written_fails_only_its_own_check() -> None:
    w = World()
    one, two = w.put("one.md", _text(4)), w.put("two.md", _text(4, "b"))
    w.kb_api.processing_checks = 2  # both still processing at their first check
    w.deliver(w.kb, [one, two])
    (check,) = w.queue.take()  # one message checks both
    real_put, broken = w.states.put, [two]

    def put_fails_for_two(state, *, expected_version):  # type: ignore[no-untyped-def]
        if state.doc_id in broken:
            broken.clear()
            raise RuntimeError("dynamodb: ServiceUnavailable")
        real_put(state, expected_version=expected_version)

    w.states.put = put_fails_for_two  # type: ignore[method-assign]
    report = run_batch(w.kb, [check], w.queue)
    assert report.failed_message_ids == [check[0]]  # SQS redelivers it, for `two`
    (follow,) = w.queue.sent  # `one` was recorded: its next check is queued, as its redelivered check is stale
    assert set(json.loads(follow[0])["versions"]) == {one}
    run_batch(w.kb, [check], w.queue)  # the redelivery checks `two` again
    w.drain_checks(w.kb)
    assert w.states.get("kb", one).status is SinkStatus.INDEXED and w.states.get("kb", two).status is SinkStatus.INDEXED


# -- switching the sync mode with documents in flight ---------------------------------------------------


def test_documents_sent_directly_are_confirmed_after_a_switch_to_ingestion_jobs() -> None:
    w = World()
    docs = [w.put(f"d{i}.md", _text(8, tag=str(i))) for i in range(3)]
    w.deliver(w.kb, docs)
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.PENDING}
    w.redeploy("ingestion-job")
    w.drain_checks(w.kb)  # the checks already queued follow what was sent directly to the end
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.INDEXED}
    assert w.kb_api.jobs == []  # nothing changed: no job is owed
    w.deliver(w.kb, docs)  # a duplicate event finds nothing to do
    assert w.kb_api.jobs == [] and not w.queue.sent


def test_documents_waiting_for_a_job_are_not_checked_one_by_one_after_a_switch_to_direct() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"j{i}.txt", f"Text of document {i}.") for i in range(3)]
    w.deliver(w.kb, docs)
    w.redeploy("direct")
    w.deliver(w.kb, docs)  # a duplicate event: still the running job's to settle
    for _ in range(4):  # the job runs on; its polls go on in direct mode
        run_batch(w.kb, w.queue.take(), w.queue)
    assert w.kb_api.count("get") == 0 and not any("job" in u for u in w.kb_api.asked)
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.PENDING}
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.INDEXED}
    assert len(w.kb_api.jobs) == 1 and w.kb_api.count("ingest") == 0


def test_a_document_edited_after_a_switch_to_direct_is_sent_whole_and_outlives_a_failed_job() -> None:
    w = World(mode="ingestion-job")
    doc = w.put("e.md", _text(30))
    w.deliver(w.kb, [doc])  # waits for the job, which has not indexed it yet
    w.redeploy("direct")
    w.put("e.md", _text(30).replace("Paragraph 3 says", "Paragraph 3 now says"))
    w.deliver(w.kb, [doc])
    chunks = w.registry.get(doc).chunks
    # The job may fail: the chunks the edit kept are sent as well, not only the changed ones.
    assert {f"s3://processed/chunks/{doc}/{c}.txt" for c in chunks} <= set(w.kb_api.indexed)
    w.kb_api.job_status = "FAILED"
    w.drain_checks(w.kb)
    state = w.states.get("kb", doc)
    assert state.status is SinkStatus.INDEXED and set(state.held) == set(chunks)


def test_an_ingest_whose_answer_was_lost_before_a_switch_to_ingestion_jobs_is_settled_by_the_job() -> None:
    w = World()
    w.kb_api = lossy = _LostIngest()
    w.redeploy("direct")
    doc = w.put("lost.md", _text(3))
    assert w.deliver(w.kb, [doc])  # failed, so SQS delivers it again; the chunks may be in the index
    w.redeploy("ingestion-job")
    assert w.deliver(w.kb, [doc]) == []  # delivered again, to the new mode: the next job covers it
    lossy.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    state = w.states.get("kb", doc)
    # The job made the index what the processed bucket holds: nothing is left in doubt.
    assert state.status is SinkStatus.INDEXED and not state.maybe and len(lossy.jobs) == 1


# -- a backfill's hold on the sync mode -------------------------------------------------------------------


def test_a_hold_sends_changes_by_job_and_the_stack_mode_comes_back_when_it_lapses() -> None:
    w = World()  # the stack's mode: direct
    ModeHolds(w.states).hold("ingestion-job", "backfill-1")
    first = w.put("h1.md", _text(5, "a"))
    w.deliver(w.kb, [first])
    assert len(w.kb_api.jobs) == 1 and w.kb_api.count("ingest") == 0
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert w.states.get("kb", first).status is SinkStatus.INDEXED
    later = time.time() + HOLD_SECONDS + 1  # the backfill stopped renewing it: the hold has lapsed
    w.kb.clock = lambda: later
    second = w.put("h2.md", _text(5, "b"))
    w.deliver(w.kb, [second])
    assert w.kb_api.count("ingest") > 0 and len(w.kb_api.jobs) == 1
    w.drain_checks(w.kb)
    assert w.states.get("kb", second).status is SinkStatus.INDEXED


def test_a_hold_is_renewed_a_few_times_an_hour_not_at_every_batch() -> None:
    states, now = FakeSinkStates(), [1_800_000_000.0]
    holds = ModeHolds(states, clock=lambda: now[0])  # type: ignore[arg-type]
    holds.hold("ingestion-job", "run-1")
    for _ in range(10):
        now[0] += 60
        holds.hold("ingestion-job", "run-1")
    assert states.get(MODE_HOLD, HOLD_KEY).version == 1
    now[0] += HOLD_SECONDS / 2
    holds.hold("ingestion-job", "run-1")
    assert states.get(MODE_HOLD, HOLD_KEY).version == 2
    state = states.get(MODE_HOLD, HOLD_KEY)
    assert current_hold(state, now[0]) == ModeHold("ingestion-job", "run-1", now[0] + HOLD_SECONDS)
    assert current_hold(state, now[0] + HOLD_SECONDS) is None  # lapsed
    with pytest.raises(ValueError, match="direct or ingestion-job"):
        holds.hold("nightly", "run-2")


def test_a_job_is_still_followed_when_the_first_poll_of_its_chain_could_not_be_sent() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"p{i}.txt", f"Text of document {i}.") for i in range(3)]
    real_send, failed = w.queue.send, []

    def send_fails_once(body: str, delay_seconds: int = 0) -> None:
        if json.loads(body).get("sluice") == "poll-job" and not failed:
            failed.append(body)
            raise TransientError("send_message: ThrottlingException")
        real_send(body, delay_seconds)

    w.queue.send = send_fails_once  # type: ignore[method-assign]
    events = [(f"e{n}", json.dumps({"source": "sluice.ingest", "detail": {"doc_id": d}})) for n, d in enumerate(docs)]
    assert run_batch(w.kb, events, w.queue).failed_message_ids  # SQS delivers them again
    assert failed and len(w.kb_api.jobs) == 1  # the job started; the poll that would follow it was not sent
    run_batch(w.kb, events, w.queue)
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.INDEXED}


def test_a_poll_that_arrives_before_the_lock_naming_its_chain_waits_for_it() -> None:
    w = World(mode="ingestion-job")
    doc = w.put("early.txt", "Early text.")
    real_put, early = w.states.put, []

    def put(state, *, expected_version):  # type: ignore[no-untyped-def]
        if state.sink == "kb-job" and not early:
            early.append(w.queue.take())  # the new chain's first poll, delivered before the lock is written
            run_batch(w.kb, early[0], w.queue)
        real_put(state, expected_version=expected_version)

    w.states.put = put  # type: ignore[method-assign]
    w.deliver(w.kb, [doc])
    assert [json.loads(body).get("early") for body, _ in w.queue.sent] == [1]  # it came back to wait
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert w.states.get("kb", doc).status is SinkStatus.INDEXED and len(w.kb_api.jobs) == 1


def test_the_documents_of_a_job_that_failed_some_are_confirmed_chunk_by_chunk() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"f{i}.md", _text(4, str(i))) for i in range(3)]
    w.deliver(w.kb, docs)
    uris = {d: [f"s3://processed/chunks/{d}/{c}.txt" for c in w.registry.get(d).chunks] for d in docs}
    w.kb_api.indexed |= {u: f"{u}.metadata.json" for d in docs for u in uris[d]}  # what the job indexed
    w.kb_api.refuse.add(uris[docs[0]][0])  # but one chunk it could not: the statistics count a failure
    w.kb_api.job_status, w.kb_api.job_failed = "COMPLETE", 1
    w.drain_checks(w.kb)
    failed = w.states.get("kb", docs[0])
    reason = "FAILED: embedding failed (after an ingestion job that failed some documents)"
    assert failed.status is SinkStatus.FAILED and failed.failures == {uris[docs[0]][0].rsplit("/", 1)[1][:-4]: reason}
    assert {w.states.get("kb", d).status for d in docs[1:]} == {SinkStatus.INDEXED}
    # Asked only because the job counted a failure: every chunk of its documents, ten a call.
    assert w.kb_api.count("get") == math.ceil(sum(len(u) for u in uris.values()) / 10)


def test_the_documents_of_a_job_that_failed_none_are_indexed_without_a_question() -> None:
    w = World(mode="ingestion-job")
    docs = [w.put(f"g{i}.md", _text(4, str(i))) for i in range(3)]
    w.deliver(w.kb, docs)
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert {w.states.get("kb", d).status for d in docs} == {SinkStatus.INDEXED} and w.kb_api.count("get") == 0


def test_waiting_for_someone_elses_job_backs_off() -> None:
    w = World(mode="ingestion-job")
    w.kb_api.running = "FOREIGN0001"  # started in the console, say; its id is not ours to poll
    doc = w.put("wait.txt", "Waiting text.")
    w.deliver(w.kb, [doc])
    delays = []
    for _ in range(4):
        ((_, delay),) = w.queue.sent
        delays.append(delay)
        run_batch(w.kb, w.queue.take(), w.queue)
    assert delays == [20, 40, 80, 160] and w.kb_api.jobs == []
    w.kb_api.running = None  # it ended
    run_batch(w.kb, w.queue.take(), w.queue)
    w.kb_api.job_status = "COMPLETE"
    w.drain_checks(w.kb)
    assert len(w.kb_api.jobs) == 1 and w.states.get("kb", doc).status is SinkStatus.INDEXED
