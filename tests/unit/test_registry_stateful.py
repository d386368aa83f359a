"""A stateful model of the ingestion path: uploads, edits, deletes and metadata sidecars
of a few keys, their S3 notifications delivered in any order and any number of times, and publishes
that fail after the registry commit. The registry's invariants are checked after every step; after
every notification the service did not drop as stale, the document must match what S3 holds at that
moment; and once every notification has been delivered, everything must have converged.

test_ingest.py's interleaving test drives one key through a fixed list of writes; this machine
mixes writes and deliveries over several keys, so writes also happen between deliveries."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sluice.bus import DOCUMENT_CHANGED, DOCUMENT_DELETED, DOCUMENT_QUARANTINED, DocumentEvent
from sluice.errors import TransientError
from sluice.ingest import Action, IngestService, IngestSettings, ObjectEvent, is_older
from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.files import chunk_key, document_id, s3_uri, sidecar_key, text_key
from sluice.pipeline.metadata import document_of, sidecar_of
from sluice.pipeline.process import PipelineSettings
from sluice.registry import DocumentRecord, Status
from support.fakes import FakeBucketWriter, FakeBus, FakeObjectReader, FakeRegistry

BUCKET = "raw"
KEYS = ("guide.md", "notes.txt", "team/faq.md")
_DOC_IDS = {document_id(s3_uri(BUCKET, key)) for key in KEYS}
_PIPELINE = PipelineSettings(chunking=ChunkSettings(max_tokens=128, overlap_tokens=16, min_tokens=32))


def _paragraph(i: int, tag: str = "") -> str:
    return (
        f"Paragraph {i}{tag} explains one idea about ingestion pipelines in several plain sentences. "
        f"It mentions queues, registries and chunk boundaries number {i}. It ends here."
    )


_BASE = [_paragraph(i) for i in range(8)]
# Versions of one document share most paragraphs (an edit keeps most chunks), one differs from
# "guide" only in bytes that cleaning removes (a new version with the same chunks), two cannot be
# indexed at all (quarantined as empty).
TEXTS = {
    "guide": "# Guide\n\n" + "\n\n".join(_BASE),
    "guide_edited": "# Guide\n\n" + "\n\n".join([*_BASE[:3], _paragraph(3, " rewritten entirely"), *_BASE[4:]]),
    "guide_longer": "# Guide\n\n" + "\n\n".join([*_BASE, *(_paragraph(i, "x") for i in range(8, 11))]),
    "guide_trailing": "# Guide\n\n" + "\n\n".join(_BASE) + "\n\n\n",
    "short": "# Short\n\n" + _paragraph(0, "s"),
    "other": "\n\n".join(_paragraph(i, "o") for i in range(4)),
    "empty": "",
    "blank": " \n\n\t\n",
}
# `<key>.metadata.json`: attributes and an access list change every chunk's sidecar (so its hash);
# an unreadable sidecar quarantines the document (metadata_invalid).
SIDECARS = {
    "finance": json.dumps(
        {
            "metadataAttributes": {"department": "finance"},
            "accessControlList": [{"name": "finance", "type": "GROUP", "access": "ALLOW"}],
        }
    ),
    "titled": json.dumps({"title": "The handbook", "metadataAttributes": {"year": 2024}}),
    "broken": '{"metadataAttributes": ',
}


def _service(raw: FakeObjectReader, processed: FakeBucketWriter, registry: FakeRegistry, bus: FakeBus) -> IngestService:
    clock = [1_800_000_000.0]
    return IngestService(
        raw=raw,
        processed=processed,
        registry=registry,
        bus=bus,
        settings=IngestSettings(pipeline=_PIPELINE),
        clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )


_EXPECTED: dict[tuple[str, str, str | None], DocumentRecord] = {}


def _expected(key: str, text: str, sidecar: str | None) -> DocumentRecord:
    """The oracle: what a fresh system records for ``text`` (and its sidecar) written once under ``key``."""
    if (key, text, sidecar) not in _EXPECTED:
        raw, registry = FakeObjectReader(), FakeRegistry()
        if sidecar is not None:
            raw.put(BUCKET, sidecar_of(key), sidecar.encode())
        version = raw.put(BUCKET, key, text.encode())
        _service(raw, FakeBucketWriter(), registry, FakeBus()).handle(
            ObjectEvent(BUCKET, key, removed=False, sequencer="01", version_id=version)
        )
        record = registry.get(document_id(s3_uri(BUCKET, key)))
        assert record is not None
        _EXPECTED[(key, text, sidecar)] = record
    return _EXPECTED[(key, text, sidecar)]


def _version_number(version_id: str) -> int:
    return int(version_id.removeprefix("v"))  # FakeObjectReader numbers versions v1, v2, ... bucket-wide


class IngestionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.raw = FakeObjectReader()
        self.processed = FakeBucketWriter()
        self.registry = FakeRegistry()
        self.bus = FakeBus()
        self.service = _service(self.raw, self.processed, self.registry, self.bus)
        self.texts: dict[str, str | None] = dict.fromkeys(KEYS)  # what each key holds now
        self.sidecars: dict[str, str | None] = dict.fromkeys(KEYS)  # what each key's sidecar holds now
        self.sequencers: dict[str, int] = {}  # per S3 key (sidecars have their own)
        self.sent: list[ObjectEvent] = []  # every notification S3 emitted
        self.pending: list[ObjectEvent] = []  # emitted, not yet handled successfully
        self.applied: dict[str, str | None] = {}  # doc_id -> its record's sequencer after the last step
        self.seen_events = 0

    # -- S3: an object changes and a notification is queued ------------------------------------------

    def _emit(self, key: str, *, removed: bool, version_id: str | None) -> None:
        self.sequencers[key] = self.sequencers.get(key, 0) + 1
        event = ObjectEvent(BUCKET, key, removed, sequencer=self._sequencer(key), version_id=version_id)
        self.sent.append(event)
        self.pending.append(event)

    def _sequencer(self, key: str) -> str:
        return f"{self.sequencers[key]:016X}"

    @initialize(key=st.sampled_from(KEYS), name=st.sampled_from(sorted(TEXTS)))
    def first_upload(self, key: str, name: str) -> None:
        self.upload(key, name)

    @rule(key=st.sampled_from(KEYS), name=st.sampled_from(sorted(TEXTS)))
    def upload(self, key: str, name: str) -> None:
        """A new version: an edit of the key's document, the same bytes again, or another document."""
        version = self.raw.put(BUCKET, key, TEXTS[name].encode())
        self.texts[key] = TEXTS[name]
        self._emit(key, removed=False, version_id=version)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        # In a versioned bucket, deleting a missing key still adds a marker and notifies.
        self.raw.delete(BUCKET, key)
        self.texts[key] = None
        self._emit(key, removed=True, version_id=None)

    @rule(key=st.sampled_from(KEYS), name=st.sampled_from(sorted(SIDECARS)))
    def annotate(self, key: str, name: str) -> None:
        version = self.raw.put(BUCKET, sidecar_of(key), SIDECARS[name].encode())
        self.sidecars[key] = SIDECARS[name]
        self._emit(sidecar_of(key), removed=False, version_id=version)

    @precondition(lambda self: any(self.sidecars.values()))
    @rule(key=st.sampled_from(KEYS))
    def unannotate(self, key: str) -> None:
        self.raw.delete(BUCKET, sidecar_of(key))
        self.sidecars[key] = None
        self._emit(sidecar_of(key), removed=True, version_id=None)

    # -- SQS: any queued notification, in any order, any number of times -----------------------------

    @precondition(lambda self: self.pending)
    @rule(i=st.integers(min_value=0, max_value=15))
    def deliver(self, i: int) -> None:
        self._handle(self.pending.pop(i % len(self.pending)))

    @precondition(lambda self: self.sent)
    @rule(i=st.integers(min_value=0, max_value=31))
    def duplicate(self, i: int) -> None:
        """At-least-once delivery: a notification already handled (or still queued) comes again."""
        self._handle(self.sent[-1 - i % len(self.sent)])

    @precondition(lambda self: self.pending)
    @rule(i=st.integers(min_value=0, max_value=15))
    def crash_after_commit(self, i: int) -> None:
        """The publish fails after the registry commit: the message stays queued, SQS retries it."""
        index = i % len(self.pending)
        self.bus.fail_next = 1
        try:
            self._handle(self.pending[index])
        except TransientError:
            pass
        else:
            del self.pending[index]  # nothing was published, so nothing failed
        finally:
            self.bus.fail_next = 0

    @precondition(lambda self: self.pending)
    @rule()
    def drain(self) -> None:
        """Everything queued is delivered, oldest first; then everything must have converged."""
        self._drain()

    def teardown(self) -> None:
        if sys.exc_info()[0] is None:  # not after a failed step: its error is the one to report
            self._drain()

    # -- invariants, after every step ------------------------------------------------------------------

    @invariant()
    def no_lease_is_left_behind(self) -> None:
        assert all(item.lease_owner is None for item in self.registry.items.values())

    @invariant()
    def sequencers_never_regress(self) -> None:
        records = {record.doc_id: record for record in self.registry.records()}
        for doc_id, before in self.applied.items():
            assert doc_id in records, "a record vanished"
            assert not is_older(records[doc_id].sequencer, before), (doc_id, records[doc_id].sequencer, before)
        self.applied = {doc_id: record.sequencer for doc_id, record in records.items()}

    @invariant()
    def processed_files_are_exactly_those_of_processed_documents(self) -> None:
        # True even while an outbox is pending: new files are written before the commit and vanished
        # ones removed before the publish, so a failed publish leaves the files as the record says.
        expected: set[str] = set()
        for record in self.registry.records():
            assert record.doc_id in _DOC_IDS
            if record.status is Status.PROCESSED:
                assert record.chunks and len(set(record.chunks)) == len(record.chunks)
                expected.add(text_key(record.doc_id))
                for h in record.chunks:
                    expected |= {chunk_key(record.doc_id, h), sidecar_key(chunk_key(record.doc_id, h))}
            else:
                assert record.chunks == ()
                assert record.status is Status.DELETED or record.reason
        assert set(self.processed.files) == expected

    @invariant()
    def announcements_only_move_forward(self) -> None:
        """Per document, the announced sequencers and versions never go back; and once its outbox is
        empty, what the sinks were told (the sum of the chunk diffs) is what the registry holds."""
        for event in self.bus.events[self.seen_events :]:
            assert event.detail_type in {DOCUMENT_CHANGED, DOCUMENT_DELETED, DOCUMENT_QUARANTINED}
            assert event.detail["doc_id"] in _DOC_IDS and event.detail["chunks"]["listed"]
        self.seen_events = len(self.bus.events)
        for record in self.registry.records():
            events = self._events(record.doc_id)
            assert events or record.pending_event, "a record that was never announced"
            sequencers = [e.detail["source"]["sequencer"] for e in events]
            assert all(not is_older(b, a) for a, b in itertools.pairwise(sequencers)), sequencers
            # Every version an event names is newer than the ones before it. A Deleted event found
            # by a put's late notification names no version (the put's own may be older).
            versions = [
                _version_number(e.detail["source"]["version_id"])
                for e in events
                if e.detail["source"]["version_id"] is not None
            ]
            assert versions == sorted(versions), versions
            if record.pending_event is None:
                told: set[str] = set()
                for e in events:
                    told = (told | set(e.detail["chunks"]["added"])) - set(e.detail["chunks"]["removed"])
                assert told == set(record.chunks), record.doc_id
                assert events[-1].detail["status"] == record.status.value

    @invariant()
    def converged_when_nothing_is_queued(self) -> None:
        if not self.pending:
            self._converged()

    # -- checks ------------------------------------------------------------------------------------------

    def _events(self, doc_id: str) -> list[DocumentEvent]:
        return [e for e in self.bus.events if e.detail["doc_id"] == doc_id]

    def _handle(self, event: ObjectEvent) -> None:
        """Handle one notification. Unless it was dropped as stale, the service has read the object
        itself: the document then matches what S3 holds now, whatever the notification said."""
        outcome = self.service.handle(event)
        if outcome.action is not Action.STALE:
            self._matches_s3(document_of(event.key) or event.key)

    def _drain(self) -> None:
        while self.pending:
            self._handle(self.pending.pop(0))
        self.no_lease_is_left_behind()
        self.sequencers_never_regress()
        self.processed_files_are_exactly_those_of_processed_documents()
        self.announcements_only_move_forward()
        self._converged()

    def _converged(self) -> None:
        """Every notification handled: each document matches S3 and has applied its newest one."""
        for key in KEYS:
            self._matches_s3(key)
            record = self.registry.get(document_id(s3_uri(BUCKET, key)))
            if record is not None:
                assert record.sequencer == self._sequencer(key), (key, record.sequencer)

    def _matches_s3(self, key: str) -> None:
        doc_id = document_id(s3_uri(BUCKET, key))
        record = self.registry.get(doc_id)
        head = self.raw.head(BUCKET, key)
        text, sidecar = self.texts[key], self.sidecars[key]
        assert record is None or record.pending_event is None, (key, record)
        last = self._events(doc_id)[-1:]
        assert record is None or last, (key, "recorded, never announced")
        if head is None:
            assert text is None
            assert record is None or record.status is Status.DELETED, (key, record)
            if record is not None:
                assert last[0].detail_type == DOCUMENT_DELETED
            return
        assert text is not None and record is not None, key
        assert (record.version_id, record.etag) == (head.version_id, head.etag), key
        assert record.raw_sha256 == hashlib.sha256(text.encode()).hexdigest()
        meta = self.raw.head(BUCKET, sidecar_of(key))
        assert record.metadata_etag == (meta.etag if meta else None)
        expected = _expected(key, text, sidecar)
        assert record.status is expected.status, (key, record.status, expected.status)
        if record.status is Status.PROCESSED:
            assert record.reason is None and record.title == expected.title
            assert record.chunks == expected.chunks and record.text_sha256 == expected.text_sha256
            assert record.doc_metadata == expected.doc_metadata
            assert last[0].detail_type == DOCUMENT_CHANGED
        else:
            assert record.reason and record.reason == expected.reason
            assert last[0].detail_type == DOCUMENT_QUARANTINED
        stored = {k for k in self.processed.files if k.startswith(f"chunks/{doc_id}/") and k.endswith(".txt")}
        assert stored == {chunk_key(doc_id, h) for h in record.chunks}


IngestionMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_ingestion_state_machine = IngestionMachine.TestCase
