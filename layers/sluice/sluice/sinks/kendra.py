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
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from sluice.compat import batched
from sluice.errors import RefusedError, TransientError
from sluice.pipeline.files import text_key
from sluice.registry import DocumentRecord, Registry
from sluice.sinks import CallCount, SinkState, SinkStateStore, SinkStatus, send_in_batches, status_reason
from sluice.sinks.diff import FIRST_CHECK_SECONDS, MAX_CHECKS, DiffSink, Work, settle
from sluice.storage import ObjectReader

log = logging.getLogger(__name__)
PER_CALL = 10
MAX_ID = 2048
INLINE_BYTES = 4 * 1024 * 1024  # larger documents go by S3 path
FILE_TYPES = {"pdf": "PDF", "html": "HTML", "markdown": "MD", "docx": "MS_WORD", "csv": "CSV", "json": "JSON"}
RETRYABLE = frozenset({"InternalError"})
DONE = frozenset({"INDEXED", "UPDATED"})
REFUSED = frozenset({"FAILED", "UPDATE_FAILED"})


def kendra_id(record: DocumentRecord) -> str:
    """The source URI names the document in Kendra (it is what users recognise), unless too long."""
    return record.source_uri if len(record.source_uri) <= MAX_ID else record.doc_id


def fingerprint(record: DocumentRecord) -> str:
    """Everything Kendra holds of a document: when it is unchanged, nothing is sent."""
    blob = json.dumps([record.text_sha256, record.title, record.kind, record.doc_metadata], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class KendraIndex(Protocol):
    """A Kendra index (``sluice.adapters.aws.kendra`` is the adapter). put, delete and statuses take
    at most PER_CALL documents and answer Kendra id → (code or status, message)."""

    role_arn: str | None  # documents larger than INLINE_BYTES go by S3 path only with a role
    calls: CallCount

    def sync_job(self) -> AbstractContextManager[None]: ...

    def declared_fields(self) -> dict[str, str]:
        """Custom attribute name → Kendra type (STRING_VALUE, STRING_LIST_VALUE, LONG_VALUE, DATE_VALUE)."""

    def put(self, documents: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]: ...

    def delete(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...

    def statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...


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
        api: KendraIndex,
        registry: Registry,
        states: SinkStateStore,
        processed: ObjectReader,
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
        for batch in batched(asks, PER_CALL):
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
                failures = {"document": status_reason(status, reason)}
            elif status not in DONE:
                pending = (doc,)
                if checks >= MAX_CHECKS:
                    failures, pending = {"document": f"still {status} after {checks} checks"}, ()
            w.new_state = settle(w.state.evolve(checks=checks), pending, failures, present=True)
