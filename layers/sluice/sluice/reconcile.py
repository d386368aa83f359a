"""Reconciliation: prove that RawBucket, the registry, ProcessedBucket and each index agree, and
repair what does not by sending the work down the ordinary paths, never around them.

A pass walks five listings in turn, a page at a time, and saves its position after every page, so a
pass spans as many runs as it needs (each run is bounded by time, by repairs queued and by index
calls) and a crashed run costs one page done twice:

    raw        RawBucket's objects and sidecars      → records missing or older than the object
    registry   the registry's records and sink states → sources gone, unfinished announcements,
               quarantines a newer pipeline may pass, processed files missing, sinks behind the
               registry, documents an index lost (asked of the index itself)
    chunks     ProcessedBucket's chunk files          → files no record names
    texts      ProcessedBucket's cleaned texts        → files no record names
    kb-index   the knowledge base's own document list → chunks nobody recorded giving it

Repairs, each idempotent:

    recheck    the ingest queue reads the object again under its lease: what S3 holds now wins
    rebuild    a recheck that also rewrites the document's processed files and deletes its strays
    sync       the sink's queue compares the document and sends the difference
    correct    the sink's recorded state takes the index's own answer (optimistically, by version),
               then a sync sends the difference
    delete     processed files whose document has no record at all, once older than an hour

A dry run finds and reports, and changes nothing (not even its position).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.registry import DynamoDBRegistry, from_item, take_lease
from sluice.adapters.aws.s3 import S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates, state_from_item
from sluice.errors import Reason, TransientError
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
from sluice.registry import DocumentRecord, Status
from sluice.s3events import recheck_message
from sluice.sinks import SinkState, SinkStatus, StateConflictError, chunks_of
from sluice.sinks.diff import settle
from sluice.sinks.kendra import fingerprint, kendra_id
from sluice.sinks.knowledge_base import PER_CALL
from sluice.sinks.runner import MAX_IDS_PER_MESSAGE, sync_message
from sluice.timestamps import epoch

PHASES = ("raw", "registry", "chunks", "texts", "kb-index")
STATE_KEY = "reconcile#pass"  # the pass in progress and the last complete one, in DocumentsTable
GONE = frozenset({"NOT_FOUND"})
LEAVING = frozenset({"NOT_FOUND", "DELETING", "DELETE_IN_PROGRESS"})
MAX_EXAMPLES = 10


class Drift(StrEnum):
    """What a pass can find. Each kind has one repair (REPAIRS)."""

    UNRECORDED = "unrecorded"  # an object in RawBucket with no record, or a DELETED one
    STALE = "stale"  # the object or its sidecar changed since its record was written
    SOURCE_GONE = "source_gone"  # a live record whose object is gone
    UNFINISHED = "unfinished"  # a transition committed and never announced (its worker died)
    QUARANTINE_RETRY = "quarantine_retry"  # quarantined by an older pipeline, which a newer may pass
    PIPELINE_CHANGED = "pipeline_changed"  # processed by an older pipeline (re-read when asked to)
    PROCESSED_MISSING = "processed_missing"  # a processed document's files are not all there
    PROCESSED_STRAY = "processed_stray"  # processed files no record names
    SINK_BEHIND = "sink_behind"  # a sink recorded something other than the registry's version
    SINK_FAILED = "sink_failed"  # the index refused it: `sluice redrive` sends it again
    INDEX_LOST = "index_lost"  # the sink recorded giving it; the index does not have it
    INDEX_STRAY = "index_stray"  # the index holds chunks the sink never recorded giving it


REPAIRS = {
    Drift.UNRECORDED: "recheck",
    Drift.STALE: "recheck",
    Drift.SOURCE_GONE: "recheck",
    Drift.UNFINISHED: "recheck",
    Drift.QUARANTINE_RETRY: "recheck",
    Drift.PIPELINE_CHANGED: "recheck when reprocess is on, else reported",
    Drift.PROCESSED_MISSING: "rebuild",
    Drift.PROCESSED_STRAY: "rebuild (delete, when no record exists)",
    Drift.SINK_BEHIND: "sync",
    Drift.SINK_FAILED: "reported: `sluice redrive` after fixing the cause",
    Drift.INDEX_LOST: "correct the sink state, then sync",
    Drift.INDEX_STRAY: "correct the sink state, then sync",
}
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


@dataclass
class Report:
    """One pass, as far as it got: what it examined, found and did. Runs of one pass add up."""

    pass_id: str
    started_at: str
    dry_run: bool = False
    phase: str = PHASES[0]
    complete: bool = False
    stopped: str = ""  # complete | time | budget | busy
    runs: int = 0
    examined: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        if n:
            table[key] = table.get(key, 0) + n

    def add(self, drift: Drift, example: str) -> None:
        self.count(self.found, drift.value)
        shown = self.examples.setdefault(drift.value, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def drift(self) -> int:
        """Drift that needed repair (documents processed by an older pipeline are information)."""
        return sum(n for kind, n in self.found.items() if kind != Drift.PIPELINE_CHANGED)


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PassBusyError(TransientError):
    """Another run of the reconciler holds the pass."""


class PassStore:
    """The pass in progress (phase, cursor, report so far) and the last complete report: one item
    of DocumentsTable (no ``status``, so no registry reader takes it for a document), leased."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def acquire(self, owner: str, now: float, lease_seconds: float) -> dict[str, Any]:
        attributes = take_lease(self._db, self.table, STATE_KEY, owner, now, lease_seconds)
        if attributes is None:
            raise PassBusyError("another reconciliation run is under way")
        return {k: json.loads(attributes[k]["S"]) for k in ("current", "cursor", "last") if k in attributes}

    def save(self, owner: str, *, current: Report | None, cursor: Any, last: Report | None, release: bool) -> None:
        sets, removes, values = ["#c = :c"], [], {":o": {"S": owner}, ":c": {"S": json.dumps(cursor)}}
        if current is not None:
            sets.append("#cur = :cur")
            values[":cur"] = {"S": json.dumps(current.to_json())}
        else:
            removes.append("#cur")
        if last is not None:
            sets.append("#last = :last")
            values[":last"] = {"S": json.dumps(last.to_json())}
        if release:
            removes += ["lease_owner", "lease_expires"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        names = {"#c": "cursor", "#cur": "current", **({"#last": "last"} if last is not None else {})}
        try:
            self._db.update_item(
                TableName=self.table,
                Key={"doc_id": {"S": STATE_KEY}},
                UpdateExpression=expression,
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise PassBusyError("the reconciliation lease was lost to another run") from exc
            raise

    def last(self) -> Report | None:
        item = self._db.get_item(TableName=self.table, Key={"doc_id": {"S": STATE_KEY}}, ConsistentRead=True)
        data = item.get("Item", {}).get("last")
        return Report.from_json(json.loads(data["S"])) if data else None


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
        s3: Any,
        dynamodb: Any,
        sqs: Any,
        kb: BedrockKnowledgeBaseApi | None = None,
        kendra: KendraApi | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.sqs = sqs
        self.raw = S3ObjectReader(s3)
        self.registry = DynamoDBRegistry(dynamodb, settings.documents_table)
        self.states = DynamoDBSinkStates(dynamodb, settings.documents_table)
        self.passes = PassStore(dynamodb, settings.documents_table)
        self._db = dynamodb
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
        saved: dict[str, Any] = {}
        if not dry_run:
            saved = self.passes.acquire(owner, now, self.settings.lease_seconds)
        report = Report.from_json(saved["current"]) if saved.get("current") else None
        cursor = saved.get("cursor") if report is not None else None
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

    def _page(self, report: Report, cursor: Any, repairs: _Repairs) -> Any:
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
        resp = self.s3.list_objects_v2(
            Bucket=bucket, MaxKeys=self.settings.page_size, **({"StartAfter": cursor} if cursor else {})
        )
        objects = {o["Key"]: str(o.get("ETag", "")).strip('"') for o in resp.get("Contents", [])}
        if not objects:
            return None
        last_key = max(objects)
        truncated = bool(resp.get("IsTruncated"))
        documents = {k: document_id(s3_uri(bucket, k)) for k in objects if document_of(k) is None}
        items = self.registry.items(documents.values())
        for key, doc_id in documents.items():
            report.count(report.examined, "objects")
            item = items.get(doc_id)
            if item is not None and "status" not in item:
                continue  # its first ingestion is under way
            record = from_item(item) if item is not None else None
            uri = s3_uri(bucket, key)
            if record is None or record.status is Status.DELETED:
                report.add(Drift.UNRECORDED, uri)
            elif record.etag != objects[key] or self._sidecar_etag(key, objects, last_key, truncated) != (
                record.metadata_etag
            ):
                report.add(Drift.STALE, uri)
            else:
                continue
            repairs.ask(bucket, key)
        return last_key if truncated else None

    def _sidecar_etag(self, key: str, objects: dict[str, str], last_key: str, truncated: bool) -> str | None:
        sidecar = sidecar_of(key)
        if sidecar in objects or not truncated or sidecar < last_key:
            return objects.get(sidecar)
        head = self.raw.head(self.settings.raw_bucket, sidecar)  # on the next page, perhaps
        return head.etag if head is not None else None

    # -- registry: every record matches its object, its files and each sink ----------------------------------

    def _registry_page(self, report: Report, cursor: dict[str, Any] | None, repairs: _Repairs) -> Any:
        resp = self._db.scan(
            TableName=self.settings.documents_table,
            Limit=self.settings.page_size,
            ConsistentRead=True,
            **({"ExclusiveStartKey": cursor} if cursor else {}),
        )
        records: list[DocumentRecord] = []
        lone_states: list[SinkState] = []
        for item in resp.get("Items", []):
            if "status" in item:
                record = from_item(item)
                if record is not None:
                    records.append(record)
            elif item.get("sink", {}).get("S") in self.settings.sink_queues:
                lone_states.append(state_from_item(item))
        self._check_records(report, records, repairs)
        self._check_sinks(report, records, lone_states, repairs)
        return resp.get("LastEvaluatedKey")

    def _check_records(self, report: Report, records: list[DocumentRecord], repairs: _Repairs) -> None:
        now = self.clock()
        live = [r for r in records if r.status is not Status.DELETED]
        processed = [r for r in records if r.status is Status.PROCESSED]
        with ThreadPoolExecutor(self.settings.threads) as pool:
            heads = dict(
                zip((r.doc_id for r in live), pool.map(lambda r: self.raw.head(r.bucket, r.key), live), strict=True)
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
        bucket = self.settings.processed_bucket
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=chunk_prefix(record.doc_id))
        keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
        try:
            self.s3.head_object(Bucket=bucket, Key=text_key(record.doc_id))
            keys.add(text_key(record.doc_id))
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
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
        keys = [f"{sink}#{r.doc_id}" for r in records for sink in self.settings.sink_queues]
        stored = {k: state_from_item(i) for k, i in self.registry.items(keys).items() if "sink" in i}
        # Sink states met in the scan whose record is elsewhere: only those whose record does not exist.
        # When this pass found objects without records, their rechecks are about to make those records:
        # syncing now would take the documents out of the index only to put them back.
        orphans = [s for s in lone_states if s.doc_id not in by_id]
        if orphans and report.found.get(Drift.UNRECORDED):
            report.note("sink states without a record are left to the next pass (objects are being re-read)")
        elif orphans:
            present = self.registry.items(s.doc_id for s in orphans)
            for lone in orphans:
                if lone.doc_id not in present and lone.held:
                    report.add(Drift.SINK_BEHIND, f"{lone.sink}: {lone.doc_id} (no record)")
                    repairs.sync_doc(lone.sink, lone.doc_id)
        verify: dict[str, list[tuple[DocumentRecord, SinkState]]] = {}
        for record in records:
            for sink in self.settings.sink_queues:
                state = stored.get(f"{sink}#{record.doc_id}")
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
        for batch in chunks_of(list(uris), PER_CALL):
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
        for batch in chunks_of(list(ids), PER_CALL):
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
        resp = self.s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix, MaxKeys=self.settings.page_size, **({"StartAfter": cursor} if cursor else {})
        )
        contents = resp.get("Contents", [])
        if not contents:
            return None
        owned = [(o, processed_owner(o["Key"])) for o in contents]
        items = self.registry.items({owner[0] for _, owner in owned if owner is not None})
        now = self.clock()
        strays: dict[str, list[dict[str, Any]]] = {}
        for obj, owner in owned:
            report.count(report.examined, "processed files")
            if owner is None:
                continue  # not a document's file
            doc_id, chunk = owner
            item = items.get(doc_id)
            if item is not None and "status" not in item:
                continue  # a first ingestion under way writes its files before its record
            record = from_item(item) if item is not None else None
            if record is not None and record.status is Status.PROCESSED and (chunk is None or chunk in record.chunks):
                continue
            if record is not None and record.pending_event:
                continue  # the transition deletes them once it has announced it
            strays.setdefault(doc_id, []).append(obj)
        for doc_id, objects in strays.items():
            item = items.get(doc_id)
            record = from_item(item) if item is not None else None
            if record is not None:
                report.add(Drift.PROCESSED_STRAY, f"{record.source_uri} ({len(objects)} files)")
                repairs.ask(record.bucket, record.key, rebuild=True)
                continue
            old = [o["Key"] for o in objects if now - o["LastModified"].timestamp() > self.settings.stray_age_seconds]
            if old:
                report.add(Drift.PROCESSED_STRAY, f"s3://{bucket}/{old[0]} ({len(old)} files, no record)")
                repairs.deletes += old
            if len(old) < len(objects):
                report.note("processed files without a record younger than stray_age_seconds were left")
        return contents[-1]["Key"] if resp.get("IsTruncated") else None

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
        stored = self.registry.items(f"kb#{d}" for d in by_doc)
        for doc_id, chunks in by_doc.items():
            item = stored.get(f"kb#{doc_id}")
            state = state_from_item(item) if item is not None else None
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
        entries = [
            recheck_message(bucket, key, trigger, rebuild=rebuild) for (bucket, key), rebuild in repairs.recheck.items()
        ]
        self._send_messages(self.settings.ingest_queue_url, entries)
        for (_, _), rebuild in repairs.recheck.items():
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
            self._send_messages(
                self.settings.sink_queues[sink],
                [sync_message(batch) for batch in chunks_of(doc_ids, MAX_IDS_PER_MESSAGE)],
            )
            report.count(report.repairs, f"{sink} syncs queued", len(doc_ids))
        if repairs.deletes:
            for batch in chunks_of(repairs.deletes, 1000):
                self.s3.delete_objects(
                    Bucket=self.settings.processed_bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            report.count(report.repairs, "stray files deleted", len(repairs.deletes))
        self._done += repairs.size

    def _send_messages(self, queue_url: str, bodies: Iterable[str]) -> None:
        for batch in chunks_of(list(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
            for _attempt in range(5):
                failed = {
                    f["Id"] for f in self.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
                }
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                time.sleep(0.2)
            if entries:
                raise TransientError(f"{len(entries)} messages to {queue_url} failed to send")


def describe(report: Report) -> Iterator[str]:
    """The report as lines for a person: what was examined, found (with examples) and done."""
    state = "complete" if report.complete else f"stopped in {report.phase} ({report.stopped}); the next run goes on"
    mode = " (dry run: nothing changed)" if report.dry_run else ""
    yield f"reconciliation pass {report.pass_id}: {state}{mode}, {report.runs} run{'s' * (report.runs != 1)}"
    yield "  examined: " + (", ".join(f"{n:,} {k}" for k, n in report.examined.items()) or "nothing")
    if not report.found:
        yield "  found: no drift — RawBucket, the registry, the processed files and the indexes agree"
    for kind, n in sorted(report.found.items()):
        yield f"  found {n:,} {kind} → {REPAIRS[Drift(kind)]}"
        for example in report.examples.get(kind, [])[:3]:
            yield f"      e.g. {example}"
    for action, n in report.repairs.items():
        yield f"  did: {n:,} {action}"
    for note in report.notes:
        yield f"  note: {note}"
