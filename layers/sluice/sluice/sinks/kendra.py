"""The Kendra sink: whole cleaned documents (Kendra cuts its own passages).

BatchPutDocument takes up to ten documents a call, across all the documents of a batch: the text
inline (or by S3 path when large), Kendra's reserved attributes, the document's own attributes that
the index declares (read once from DescribeIndex; the others are dropped with a warning), and its
access list. ``FailedDocuments`` with InternalError are retried, those with InvalidRequest recorded
as failed. Deletions go through BatchDeleteDocument; deleting a document the index never had is
success. Indexing is asynchronous, so BatchGetDocumentStatus follows until each is INDEXED or failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sluice.aws import error_code, service_call
from sluice.errors import RefusedError, TransientError
from sluice.layout import text_key
from sluice.registry import DocumentRecord, Registry
from sluice.sinks import CallCount, SinkState, SinkStateStore, SinkStatus, chunks_of, send_in_batches
from sluice.sinks.bedrock import RateLimit
from sluice.sinks.diff import FIRST_CHECK_SECONDS, MAX_CHECKS, DiffSink, Work, settle
from sluice.storage import RawStore

log = logging.getLogger(__name__)
PER_CALL = 10
MAX_ID = 2048
INLINE_BYTES = 4 * 1024 * 1024  # larger documents go by S3 path
FILE_TYPES = {"pdf": "PDF", "html": "HTML", "markdown": "MD", "docx": "MS_WORD", "csv": "CSV", "json": "JSON"}
RETRYABLE = frozenset({"InternalError"})
SYNC_JOB_BUSY = frozenset({"ResourceInUseException", "ConflictException"})
SYNC_JOB_WAITS = (1, 2, 4, 8, 15, 30)
ORPHANED_SYNC_JOB_SECONDS = 660  # longer than the sink function's 600 s timeout
DONE = frozenset({"INDEXED", "UPDATED"})
REFUSED = frozenset({"FAILED", "UPDATE_FAILED"})


def kendra_id(record: DocumentRecord) -> str:
    """The source URI names the document in Kendra (it is what users recognise), unless too long."""
    return record.source_uri if len(record.source_uri) <= MAX_ID else record.doc_id


def fingerprint(record: DocumentRecord) -> str:
    """Everything Kendra holds of a document: when it is unchanged, nothing is sent."""
    blob = json.dumps([record.text_sha256, record.title, record.kind, record.doc_metadata], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class KendraApi:
    def __init__(
        self,
        client: Any,
        index_id: str,
        role_arn: str | None = None,
        per_second: float = 5.0,
        data_source_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.index_id = index_id
        self.role_arn = role_arn
        self.data_source_id = data_source_id  # a custom data source: Kendra's sync history shows our syncs
        self._limit = RateLimit(per_second)
        self.calls = CallCount()
        self._fields: dict[str, str] | None = None
        self._execution: str | None = None
        self._sleep = sleep

    @contextmanager
    def sync_job(self) -> Iterator[None]:
        """With a custom data source, the puts and deletes inside run as one of its sync jobs (they
        carry its execution id, as Kendra requires). Only one runs per data source: while another
        worker's runs, this waits (up to about a minute) before giving up with a TransientError. A
        job left running longer than any invocation lasts (a lost start response, a worker killed
        mid-sync) is stopped."""
        if not self.data_source_id:
            yield
            return
        params = {"Id": self.data_source_id, "IndexId": self.index_id}
        for attempt, wait in enumerate(SYNC_JOB_WAITS):
            try:
                self._execution = str(self._call("start_data_source_sync_job", **params)["ExecutionId"])
                break
            except RefusedError as exc:
                if not isinstance(exc.__cause__, ClientError) or error_code(exc.__cause__) not in SYNC_JOB_BUSY:
                    raise
            if attempt == 0 and self._stop_orphaned_job(params):
                continue
            if attempt < len(SYNC_JOB_WAITS) - 1:
                self._sleep(wait)
        else:
            raise TransientError(f"data source {self.data_source_id} stayed busy with another sync job")
        try:
            yield
        finally:
            self._execution = None
            try:
                self._call("stop_data_source_sync_job", **params)
            except (TransientError, RefusedError) as exc:  # stopped later as an orphan (see above)
                log.warning("could not stop sync job of data source %s: %s", self.data_source_id, exc)

    def _stop_orphaned_job(self, params: dict[str, str]) -> bool:
        """Stop the data source's running sync job if it started before any live invocation did."""
        history = self._call("list_data_source_sync_jobs", **params, StatusFilter="SYNCING", MaxResults=10)
        now = datetime.now(UTC)
        for job in history.get("History", []):
            started = job.get("StartTime")
            if isinstance(started, datetime) and (now - started).total_seconds() > ORPHANED_SYNC_JOB_SECONDS:
                log.warning("stopping sync job %s of data source %s: running since %s, orphaned",
                            job.get("ExecutionId"), self.data_source_id, started.isoformat())  # fmt: skip
                self._call("stop_data_source_sync_job", **params)
                return True
        return False

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        self._limit.wait()
        self.calls.calls += 1
        try:
            with service_call(operation):
                response: dict[str, Any] = getattr(self._client, operation)(**params)
                return response
        except (TransientError, RefusedError):
            self.calls.failures += 1
            raise

    def declared_fields(self) -> dict[str, str]:
        """Custom attribute name → Kendra type (STRING_VALUE, STRING_LIST_VALUE, LONG_VALUE, DATE_VALUE)."""
        if self._fields is None:
            index = self._call("describe_index", Id=self.index_id)
            self._fields = {
                f["Name"]: f["Type"]
                for f in index.get("DocumentMetadataConfigurations", [])
                if not f["Name"].startswith("_")
            }
        return self._fields

    def put(self, documents: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        """Document id → (ErrorCode, ErrorMessage) for each document Kendra refused at once."""
        assert len(documents) <= PER_CALL
        if self._execution is not None:
            job = [
                {"Key": "_data_source_id", "Value": {"StringValue": self.data_source_id}},
                {"Key": "_data_source_sync_job_execution_id", "Value": {"StringValue": self._execution}},
            ]
            documents = [{**d, "Attributes": [*d.get("Attributes", []), *job]} for d in documents]
        params: dict[str, Any] = {"IndexId": self.index_id, "Documents": list(documents)}
        if self.role_arn:
            params["RoleArn"] = self.role_arn
        response = self._call("batch_put_document", **params)
        return {
            f["Id"]: (f.get("ErrorCode", ""), f.get("ErrorMessage", "")) for f in response.get("FailedDocuments", [])
        }

    def delete(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        assert len(ids) <= PER_CALL
        params: dict[str, Any] = {"IndexId": self.index_id, "DocumentIdList": list(ids)}
        if self._execution is not None:
            params["DataSourceSyncJobMetricTarget"] = {
                "DataSourceId": self.data_source_id,
                "DataSourceSyncJobId": self._execution,
            }
        response = self._call("batch_delete_document", **params)
        return {
            f["Id"]: (f.get("ErrorCode", ""), f.get("ErrorMessage", "")) for f in response.get("FailedDocuments", [])
        }

    def statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        assert len(ids) <= PER_CALL
        response = self._call(
            "batch_get_document_status", IndexId=self.index_id, DocumentInfoList=[{"DocumentId": i} for i in ids]
        )
        return {
            s["DocumentId"]: (s.get("DocumentStatus", ""), s.get("FailureReason", ""))
            for s in response.get("DocumentStatusList", [])
        }


def _attribute(name: str, kind: str, value: Any) -> dict[str, Any] | None:
    """A document attribute in the type the index declares, or None when the value does not fit it."""
    if kind == "STRING_VALUE" and isinstance(value, str | int | float | bool):
        return {"Key": name, "Value": {"StringValue": str(value)[:2048]}}
    if kind == "STRING_LIST_VALUE":
        items = value if isinstance(value, list) else [value]
        return {"Key": name, "Value": {"StringListValue": [str(v)[:2048] for v in items][:10]}}
    if kind == "LONG_VALUE" and isinstance(value, int | float) and not isinstance(value, bool):
        return {"Key": name, "Value": {"LongValue": int(value)}}
    if kind == "DATE_VALUE" and isinstance(value, str):
        try:
            return {"Key": name, "Value": {"DateValue": datetime.fromisoformat(value.replace("Z", "+00:00"))}}
        except ValueError:
            return None
    return None


class KendraSink(DiffSink):
    name = "kendra"

    def __init__(
        self,
        *,
        api: KendraApi,
        registry: Registry,
        states: SinkStateStore,
        processed: RawStore,
        processed_bucket: str,
        language_code: str = "en",
        clock: Callable[[], float] | None = None,
        first_check_seconds: int = FIRST_CHECK_SECONDS,
    ) -> None:
        super().__init__(registry=registry, states=states, clock=clock, first_check_seconds=first_check_seconds)
        self.api = api
        self.processed = processed
        self.bucket = processed_bucket
        self.language = language_code

    def _document(self, record: DocumentRecord) -> dict[str, Any]:
        key = text_key(record.doc_id)
        head = self.processed.head(self.bucket, key)
        if head is None:
            raise TransientError(f"{key} is not written yet")
        document: dict[str, Any] = {
            "Id": kendra_id(record),
            "Title": (record.title or record.key)[:1024],
            "ContentType": "PLAIN_TEXT",
        }
        if head.size <= INLINE_BYTES or not self.api.role_arn:
            document["Blob"] = self.processed.get(head)
        else:
            document["S3Path"] = {"Bucket": self.bucket, "Key": key}
        updated = datetime.fromisoformat(record.updated_at.replace("Z", "+00:00"))
        attributes = [
            {"Key": "_source_uri", "Value": {"StringValue": record.source_uri[:2048]}},
            {"Key": "_last_updated_at", "Value": {"DateValue": updated}},
            {"Key": "_language_code", "Value": {"StringValue": self.language}},
        ]
        if record.kind in FILE_TYPES:
            attributes.append({"Key": "_file_type", "Value": {"StringValue": FILE_TYPES[record.kind]}})
        declared = self.api.declared_fields()
        for name, value in (record.doc_metadata.get("attributes") or {}).items():
            attribute = _attribute(name, declared[name], value) if name in declared else None
            if attribute is None:
                log.warning("attribute %s of %s is not a field of the Kendra index (or not of its type): dropped",
                            name, record.doc_id)  # fmt: skip
                continue
            attributes.append(attribute)
        document["Attributes"] = attributes
        acl = record.doc_metadata.get("acl") or []
        if acl:
            document["AccessControlList"] = [{"Name": p["name"], "Type": p["type"], "Access": p["access"]} for p in acl]
        return document

    def after_conflict(self, current: SinkState, w: Work) -> SinkState:
        """Another worker's put or delete may have reached Kendra before ours: Kendra may hold some
        version of the document, so the retry puts the registry's version again (or deletes it)."""
        if current.maybe:
            return current
        document_id = (w.added or w.removed or w.lost)[0]
        state = current.evolve(maybe=(document_id,), checks=0)
        return settle(state, current.pending, current.failures, present=bool(current.held))

    def apply(self, work: list[Work]) -> None:
        puts: list[tuple[Work, dict[str, Any]]] = []
        deletes: list[tuple[Work, str]] = []
        for w in work:
            record = w.record
            if w.present and record is not None:
                if w.held()[:1] != (fingerprint(record),) or w.resend or w.maybe():
                    try:
                        puts.append((w, self._document(record)))
                    except TransientError as exc:
                        self.fail([w], exc)
            elif w.held() or w.maybe():
                known = [*w.held()[1:2], *w.maybe()]
                deletes.append((w, known[0] if known else kendra_id(record) if record else w.doc_id))
        if not (puts or deletes):
            return
        try:
            with self.api.sync_job():
                self._put(puts)
                self._delete(deletes)
        except (TransientError, RefusedError) as exc:  # the data source's sync job could not start
            self.fail([w for w, _ in puts] + [w for w, _ in deletes], exc)

    def _put(self, puts: list[tuple[Work, dict[str, Any]]]) -> None:
        for batch, answer in send_in_batches(puts, PER_CALL, lambda b: self.api.put([d for _, d in b])):
            if isinstance(answer, TransientError):
                self.fail([w for w, _ in batch], answer)
                for w, document in batch:
                    self._maybe_held(w, document["Id"])
                continue
            for w, document in batch:
                if isinstance(answer, RefusedError):
                    code, message = "Refused", str(answer)
                else:
                    code, message = answer.get(document["Id"], ("", ""))
                if code in RETRYABLE:
                    w.failed = f"Kendra {code}: {message}"
                    continue
                assert w.record is not None
                w.added.append(document["Id"])
                state = self.base_state(w).evolve(held=(fingerprint(w.record), document["Id"]), maybe=(), checks=0)
                failures = {"document": f"{code}: {message}"} if code else {}
                w.new_state = settle(state, () if code else (document["Id"],), failures, present=True)

    def _maybe_held(self, w: Work, document_id: str) -> None:
        """A put whose answer never came (a timeout) may still have reached Kendra. The state then
        says Kendra may hold some version of it: the retry puts it again, and a delete that comes
        first removes it instead of finding nothing to remove."""
        w.lost.append(document_id)
        if w.maybe() != (document_id,):
            state = self.base_state(w).evolve(maybe=(document_id,), checks=0)
            w.new_state = settle(state, (), {}, present=bool(state.held))

    def _delete(self, deletes: list[tuple[Work, str]]) -> None:
        for group, answer in send_in_batches(deletes, PER_CALL, lambda b: self.api.delete([i for _, i in b])):
            if isinstance(answer, TransientError | RefusedError):
                self.fail([w for w, _ in group], answer)  # retried, then dead-lettered with the reason
                continue
            for w, document_id in group:
                code, message = answer.get(document_id, ("", ""))
                if code in RETRYABLE:
                    w.failed = f"Kendra {code}: {message}"
                elif code:  # refused: still in the index, as far as we know; recorded until redriven
                    failure = {"document": f"delete refused, {code}: {message}"}
                    w.new_state = self.base_state(w).evolve(status=SinkStatus.FAILED, failures=failure, checks=0)
                else:
                    w.removed.append(document_id)
                    state = self.base_state(w).evolve(held=(), maybe=(), checks=0)
                    w.new_state = settle(state, (), {}, present=False)

    def confirm(self, work: list[Work]) -> None:
        asks = [w for w in work if w.state is not None and w.state.pending]
        answers: dict[str, tuple[str, str]] = {}
        for batch in chunks_of(asks, PER_CALL):
            try:
                answers |= self.api.statuses([w.state.pending[0] for w in batch if w.state is not None])
            except (TransientError, RefusedError) as exc:
                self.fail(batch, exc)
        for w in asks:
            if w.failed is not None or w.state is None:
                continue
            doc = w.state.pending[0]
            status, reason = answers.get(doc, ("PROCESSING", ""))
            checks = w.state.checks + 1
            failures: dict[str, str] = {}
            pending: tuple[str, ...] = ()
            if status in REFUSED:
                failures = {"document": f"{status}: {reason}".strip(": ")}
            elif status not in DONE:
                pending = (doc,)
                if checks >= MAX_CHECKS:
                    failures, pending = {"document": f"still {status} after {checks} checks"}, ()
            w.new_state = settle(w.state.evolve(checks=checks), pending, failures, present=True)
