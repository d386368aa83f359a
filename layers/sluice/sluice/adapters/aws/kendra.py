"""The Kendra index API (BatchPutDocument, BatchDeleteDocument, BatchGetDocumentStatus, DescribeIndex),
at most PER_CALL documents a call, optionally inside a custom data source's sync job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import RateLimit, error_code, service_call
from sluice.errors import RefusedError, TransientError
from sluice.sinks import CallCount
from sluice.sinks.kendra import PER_CALL

log = logging.getLogger(__name__)
SYNC_JOB_BUSY = frozenset({"ResourceInUseException", "ConflictException"})
SYNC_JOB_WAITS = (1, 2, 4, 8, 15, 30)
ORPHANED_SYNC_JOB_SECONDS = 660  # longer than the sink function's 600 s timeout


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
        self.calls.called()
        try:
            with service_call(operation):
                response: dict[str, Any] = getattr(self._client, operation)(**params)
                return response
        except (TransientError, RefusedError):
            self.calls.failed()
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
