"""The ingestion service on in-memory adapters: change, no-change, deletion, quarantine, ordering,
duplicates and crash recovery."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.bus import DOCUMENT_CHANGED, DOCUMENT_DELETED, DOCUMENT_QUARANTINED
from sluice.errors import DocumentBusyError, TransientError
from sluice.ingest import Action, IngestService, IngestSettings, ObjectEvent, is_older, newest
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.files import document_id, s3_uri
from sluice.pipeline.process import PipelineSettings
from sluice.registry import Status
from support.fakes import FakeBucketWriter, FakeBus, FakeObjectReader, FakeRegistry

BUCKET = "raw"


def _paragraphs(n: int, tag: str = "") -> str:
    return "\n\n".join(
        f"Paragraph {i}{tag} explains one idea about ingestion pipelines in several plain sentences. "
        f"It mentions queues, registries and chunk boundaries number {i}. It ends here."
        for i in range(n)
    )


class World:
    def __init__(self, clock: list[float], **ingest: object) -> None:
        self.raw = FakeObjectReader()
        self.processed = FakeBucketWriter()
        self.registry = FakeRegistry()
        self.bus = FakeBus()
        self.clock = clock
        self.seq = 0
        pipeline = PipelineSettings(chunking=ChunkSettings(max_tokens=128, overlap_tokens=16, min_tokens=32))
        self.service = IngestService(
            raw=self.raw,
            processed=self.processed,
            registry=self.registry,
            bus=self.bus,
            settings=IngestSettings(pipeline=pipeline, **ingest),  # type: ignore[arg-type]
            clock=lambda: clock[0],
            sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        )

    def put(self, key: str, body: bytes | str) -> ObjectEvent:
        data = body.encode() if isinstance(body, str) else body
        version = self.raw.put(BUCKET, key, data)
        self.seq += 1
        return ObjectEvent(BUCKET, key, removed=False, sequencer=f"{self.seq:016X}", version_id=version)

    def delete(self, key: str) -> ObjectEvent:
        self.raw.delete(BUCKET, key)
        self.seq += 1
        return ObjectEvent(BUCKET, key, removed=True, sequencer=f"{self.seq:016X}")

    def record(self, key: str):  # type: ignore[no-untyped-def]
        return self.registry.get(document_id(s3_uri(BUCKET, key)))

    def chunk_files(self, key: str) -> set[str]:
        doc = document_id(s3_uri(BUCKET, key))
        return {k for k in self.processed.files if k.startswith(f"chunks/{doc}/") and k.endswith(".txt")}


@pytest.fixture
def world(clock: list[float]) -> World:
    return World(clock)


def test_a_new_document_is_chunked_recorded_and_announced(world: World) -> None:
    outcome = world.service.handle(world.put("guide.md", "# Guide\n\n" + _paragraphs(12)))
    record = world.record("guide.md")
    assert outcome.action is Action.CHANGED
    assert record.status is Status.PROCESSED and record.kind == "markdown" and record.title == "Guide"
    assert len(record.chunks) == outcome.chunks > 1
    assert record.pending_event is None  # the outbox is empty once published
    assert len(world.chunk_files("guide.md")) == len(record.chunks)
    assert f"documents/{record.doc_id}.txt" in world.processed.files
    (event,) = world.bus.events
    assert event.detail_type == DOCUMENT_CHANGED
    assert event.detail["chunks"]["added"] == list(record.chunks)
    assert event.detail["source"] == {
        "uri": "s3://raw/guide.md",
        "bucket": "raw",
        "key": "guide.md",
        "version_id": record.version_id,
        "sequencer": record.sequencer,
    }


def test_an_unchanged_reupload_does_no_downstream_work(world: World) -> None:
    world.service.handle(world.put("a.txt", _paragraphs(8)))
    puts, events = len(world.processed.puts), len(world.bus.events)
    outcome = world.service.handle(world.put("a.txt", _paragraphs(8)))
    assert outcome.action is Action.UNCHANGED
    assert len(world.processed.puts) == puts and len(world.bus.events) == events
    assert world.record("a.txt").version_id == "v2"  # but the registry knows the newest version


def test_a_changed_document_writes_only_new_chunks_and_removes_vanished_ones(world: World) -> None:
    paragraphs = _paragraphs(30).split("\n\n")
    world.service.handle(world.put("long.txt", "\n\n".join(paragraphs)))
    before = set(world.record("long.txt").chunks)
    files_before = world.chunk_files("long.txt")
    puts = len(world.processed.puts)
    paragraphs[15] = "This paragraph was rewritten completely, with different words and a different length entirely."
    outcome = world.service.handle(world.put("long.txt", "\n\n".join(paragraphs)))
    after = set(world.record("long.txt").chunks)
    added, removed = after - before, before - after
    assert outcome.action is Action.CHANGED
    assert (outcome.added, outcome.removed) == (len(added), len(removed))
    assert 1 <= len(added) <= 3 and len(before & after) >= len(before) - 3
    # Only the new chunks (file + sidecar) and the document text were written.
    assert len(world.processed.puts) - puts == 2 * len(added) + 1
    doc_id = world.record("long.txt").doc_id
    assert world.chunk_files("long.txt") == {f"chunks/{doc_id}/{h}.txt" for h in after}
    assert files_before - world.chunk_files("long.txt") == {f"chunks/{doc_id}/{h}.txt" for h in removed}
    event = world.bus.events[-1]
    assert set(event.detail["chunks"]["added"]) == added and set(event.detail["chunks"]["removed"]) == removed


def test_a_delete_removes_processed_files_and_marks_the_document_deleted(world: World) -> None:
    world.service.handle(world.put("gone.md", "# Gone\n\n" + _paragraphs(5)))
    chunks = world.record("gone.md").chunks
    outcome = world.service.handle(world.delete("gone.md"))
    record = world.record("gone.md")
    assert outcome.action is Action.DELETED and outcome.removed == len(chunks)
    assert record.status is Status.DELETED and record.chunks == ()
    assert not [k for k in world.processed.files if record.doc_id in k]
    event = world.bus.events[-1]
    assert event.detail_type == DOCUMENT_DELETED and event.detail["chunks"]["removed"] == list(chunks)


def test_deleting_an_object_never_ingested_is_ignored_and_leaves_no_record(world: World) -> None:
    outcome = world.service.handle(world.delete("never.md"))
    assert outcome.action is Action.IGNORED
    assert world.record("never.md") is None and not world.registry.items and not world.bus.events


def test_a_broken_file_is_quarantined_recorded_and_announced(world: World) -> None:
    outcome = world.service.handle(world.put("bad.pdf", b"PK\x03\x04 not a pdf at all"))
    record = world.record("bad.pdf")
    assert outcome.action is Action.QUARANTINED and outcome.reason == "type_mismatch"
    assert record.status is Status.QUARANTINED and record.reason == "type_mismatch" and ".pdf" in record.detail
    assert world.bus.events[-1].detail_type == DOCUMENT_QUARANTINED


def test_a_recognised_but_unreadable_file_records_its_type(world: World) -> None:
    world.service.handle(world.put("cut.pdf", b"%PDF-1.7\n1 0 obj << /Type"))
    record = world.record("cut.pdf")
    assert (record.status, record.kind, record.reason) == (Status.QUARANTINED, "pdf", "malformed")


def test_a_document_that_becomes_unreadable_loses_its_old_chunks(world: World) -> None:
    world.service.handle(world.put("doc.txt", _paragraphs(6)))
    old = world.record("doc.txt").chunks
    world.service.handle(world.put("doc.txt", b""))
    assert world.record("doc.txt").reason == "empty"
    assert world.chunk_files("doc.txt") == set()
    assert world.bus.events[-1].detail["chunks"]["removed"] == list(old)


def test_an_oversized_object_is_quarantined_without_being_read(clock: list[float]) -> None:
    world = World(clock)
    world.service.settings = IngestSettings(pipeline=PipelineSettings(max_bytes=100))
    outcome = world.service.handle(world.put("huge.txt", "x" * 101))
    assert outcome.reason == "too_large" and world.raw.gets == 0


def test_a_parser_crash_is_quarantined_not_retried(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise ValueError("parser bug")

    monkeypatch.setattr("sluice.ingest.process_document", explode)
    outcome = world.service.handle(world.put("x.txt", "hello world"))
    assert outcome.reason == "worker_crash" and "parser bug" in (outcome.detail or "")


def test_an_event_older_than_the_applied_one_is_dropped(world: World) -> None:
    first = world.put("k.txt", _paragraphs(3))
    second = world.put("k.txt", _paragraphs(4))
    world.service.handle(second)
    events = len(world.bus.events)
    assert world.service.handle(first).action is Action.STALE
    assert len(world.bus.events) == events and world.record("k.txt").version_id == second.version_id


def test_a_stale_put_after_the_delete_leaves_the_document_deleted(world: World) -> None:
    put = world.put("k.txt", _paragraphs(3))
    delete = world.delete("k.txt")
    world.service.handle(delete)  # the delete overtook the put
    world.service.handle(put)
    assert world.record("k.txt") is None and not world.chunk_files("k.txt") and not world.bus.events


def test_a_delete_after_ingestion_wins_over_a_late_duplicate_put(world: World) -> None:
    put = world.put("k.txt", _paragraphs(3))
    world.service.handle(put)
    world.service.handle(world.delete("k.txt"))
    assert world.service.handle(put).action is Action.STALE
    assert world.record("k.txt").status is Status.DELETED and not world.chunk_files("k.txt")


def test_a_put_event_read_after_a_later_delete_converges_on_the_deletion(world: World) -> None:
    put = world.put("k.txt", _paragraphs(3))
    world.delete("k.txt")  # its notification has not arrived yet
    outcome = world.service.handle(put)
    # The service reads the object, not the event: it is gone, so nothing is indexed.
    assert outcome.action is Action.IGNORED and world.record("k.txt") is None


def test_a_failed_publish_is_finished_by_the_retry(world: World) -> None:
    event = world.put("outbox.md", "# Outbox\n\n" + _paragraphs(4))
    world.bus.fail_next = 1
    with pytest.raises(TransientError):
        world.service.handle(event)
    committed = world.record("outbox.md")
    assert committed.pending_event == DOCUMENT_CHANGED and not world.bus.events  # recorded, not yet announced
    world.service.handle(event)  # SQS redelivers the same event
    (published,) = world.bus.events
    assert published.detail["chunks"]["added"] == list(committed.chunks)
    assert world.record("outbox.md").pending_event is None


def test_a_document_locked_by_another_worker_is_retried_later(world: World, clock: list[float]) -> None:
    event = world.put("busy.txt", _paragraphs(2))
    doc_id = document_id(s3_uri(BUCKET, "busy.txt"))
    world.registry.acquire(doc_id, "someone-else", clock[0], 60)
    with pytest.raises(DocumentBusyError):
        world.service.handle(event)
    clock[0] += 61  # the other worker died: its lease expires
    assert world.service.handle(event).action is Action.CHANGED


def test_a_settings_change_reprocesses_an_unchanged_file(clock: list[float]) -> None:
    world = World(clock)
    world.service.handle(world.put("s.txt", _paragraphs(10)))
    before = world.record("s.txt").chunks
    world.service.settings = IngestSettings(pipeline=PipelineSettings(chunking=ChunkSettings(max_tokens=256)))
    outcome = world.service.handle(world.put("s.txt", _paragraphs(10)))
    assert outcome.action is Action.CHANGED and world.record("s.txt").chunks != before


def test_connector_metadata_names_the_original_source(world: World) -> None:
    version = world.raw.put(
        BUCKET,
        "web/page.html",
        b"<html><title>T</title><p>Body text here.</p></html>",
        {"source-url": "https://example.com/page"},
    )
    world.service.handle(ObjectEvent(BUCKET, "web/page.html", removed=False, sequencer="01", version_id=version))
    sidecars = [v for k, v in world.processed.files.items() if k.endswith(".metadata.json")]
    assert sidecars and all(b'"https://example.com/page"' in s for s in sidecars)


def test_sequencers_compare_right_padded() -> None:
    assert is_older("0055AED6DCD90281E5", "0055AED6DCD90281E6")
    assert is_older("0055AED6DCD9028", "0055AED6DCD90281E5")  # shorter: right-padded with zeros
    assert not is_older("0055AED6DCD90281E5", "0055AED6DCD9028")
    assert not is_older(None, "01") and not is_older("01", None)
    assert newest("0a", "0B") == "0B" and newest(None, "01") == "01"


# -- any interleaving of duplicate and reordered events converges -----------------------------------

_OPS = st.lists(st.sampled_from(["put_a", "put_b", "put_c", "delete"]), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, data=st.data())
def test_duplicated_and_reordered_events_end_in_the_latest_state(ops: list[str], data: st.DataObject) -> None:
    world = World([1_800_000_000.0])
    bodies = {"put_a": _paragraphs(3, "a"), "put_b": _paragraphs(5, "b"), "put_c": "# C\n\n" + _paragraphs(2, "c")}
    events = [world.delete("doc.md") if op == "delete" else world.put("doc.md", bodies[op]) for op in ops]
    deliveries = data.draw(st.lists(st.sampled_from(events), min_size=0, max_size=6)) + events  # duplicates
    for event in data.draw(st.permutations(deliveries)):
        world.service.handle(event)
    record = world.record("doc.md")
    last = ops[-1]
    if last == "delete":
        assert record is None or record.status is Status.DELETED
        assert world.chunk_files("doc.md") == set()
    else:
        expected = World([1_800_000_000.0])
        expected.service.handle(expected.put("doc.md", bodies[last]))
        assert record is not None and record.status is Status.PROCESSED
        assert record.chunks == expected.record("doc.md").chunks
        assert world.chunk_files("doc.md") == {f"chunks/{record.doc_id}/{h}.txt" for h in record.chunks}
    # What the sinks were told adds up to what the registry holds.
    announced: set[str] = set()
    for event in world.bus.events:
        announced |= set(event.detail["chunks"]["added"])
        announced -= set(event.detail["chunks"]["removed"])
    assert announced == set(record.chunks if record else ())


def _rebuild(key: str, trigger: str = "reconcile:p1") -> ObjectEvent:
    return ObjectEvent(BUCKET, key, removed=False, trigger=trigger, rebuild=True)


def test_a_rebuild_rewrites_missing_files_and_deletes_strays_without_announcing(world: World) -> None:
    world.service.handle(world.put("guide.md", "# Guide\n\n" + _paragraphs(12)))
    record = world.record("guide.md")
    files = dict(world.processed.files)
    lost = sorted(world.chunk_files("guide.md"))[0]
    del world.processed.files[lost]
    stray = f"chunks/{record.doc_id}/{'f' * 20}.txt"
    world.processed.files[stray] = world.processed.files[stray + ".metadata.json"] = b"stray"
    announced = len(world.bus.events)
    outcome = world.service.handle(_rebuild("guide.md"))
    assert outcome.action is Action.UNCHANGED  # same chunks: nothing for the sinks
    assert world.processed.files == files
    assert len(world.bus.events) == announced


def test_a_rebuild_of_a_deleted_document_removes_everything_left(world: World) -> None:
    world.service.handle(world.put("guide.md", "# Guide\n\n" + _paragraphs(3)))
    doc = world.record("guide.md").doc_id
    world.service.handle(world.delete("guide.md"))
    world.processed.files[f"chunks/{doc}/{'a' * 20}.txt"] = world.processed.files[f"documents/{doc}.txt"] = b"x"
    assert world.service.handle(_rebuild("guide.md")).action is Action.IGNORED
    assert not [k for k in world.processed.files if doc in k]


def test_s3_failing_to_return_the_sidecar_is_a_retry_not_a_quarantine(world: World) -> None:
    from botocore.exceptions import ClientError

    world.raw.put(BUCKET, "guide.md.metadata.json", b'{"metadataAttributes": {"team": "ops"}}')
    event = world.put("guide.md", "# Guide\n\n" + _paragraphs(3))
    real_get = world.raw.get

    def flaky(head):  # type: ignore[no-untyped-def]
        if head.key.endswith(".metadata.json"):
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "busy"}}, "GetObject")
        return real_get(head)

    world.raw.get = flaky  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        world.service.handle(event)
    assert world.record("guide.md") is None  # nothing recorded: SQS delivers it again
    world.raw.get = real_get  # type: ignore[method-assign]
    assert world.service.handle(event).action is Action.CHANGED


def test_files_an_attempt_wrote_and_never_committed_are_swept_by_the_next(world: World) -> None:
    from sluice.errors import LeaseLostError

    event = world.put("guide.md", "# Guide\n\n" + _paragraphs(6))
    real_commit = world.registry.commit

    def lost(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise LeaseLostError("the commit did not happen")

    world.registry.commit = lost  # type: ignore[method-assign]
    with pytest.raises(LeaseLostError):
        world.service.handle(event)
    written = world.chunk_files("guide.md")
    assert written  # the chunks were written before the commit failed
    world.registry.commit = real_commit  # type: ignore[method-assign]
    world.service.handle(world.put("guide.md", "# Guide\n\n" + _paragraphs(3, " (shorter)")))
    assert world.chunk_files("guide.md") == {
        f"chunks/{world.record('guide.md').doc_id}/{h}.txt" for h in world.record("guide.md").chunks
    }
    world.registry.commit = lost  # type: ignore[method-assign]
    other = world.put("gone.md", "# Gone\n\n" + _paragraphs(3))
    with pytest.raises(LeaseLostError):
        world.service.handle(other)
    world.registry.commit = real_commit  # type: ignore[method-assign]
    world.service.handle(world.delete("gone.md"))  # never recorded, now deleted: nothing may be left
    assert world.chunk_files("gone.md") == set()


def test_sidecars_fitted_to_the_vector_store_are_noted_and_unfit_ones_quarantined(world: World) -> None:
    long_heading = "# " + "A heading that goes on and on " * 12 + "\n\n"
    world.service.handle(
        world.put("long.md", long_heading + "## " + "Another long heading " * 12 + "\n\n" + _paragraphs(2))
    )
    record = world.record("long.md")
    assert record.status is Status.PROCESSED
    assert "headings" in record.notes["sidecar_fields_dropped"].split(",")
    world.raw.put(
        BUCKET, "tagged.md.metadata.json", json.dumps({"metadataAttributes": {"summary": "s" * 1500}}).encode()
    )
    world.service.handle(world.put("tagged.md", "# Tagged\n\n" + _paragraphs(2)))
    tagged = world.record("tagged.md")
    assert tagged.status is Status.QUARANTINED and tagged.reason == "metadata_too_large"
    assert "summary" in (tagged.detail or "") and not world.chunk_files("tagged.md")
