"""The Bedrock Agent API for one knowledge base's S3 data source: direct ingestion of documents by
S3 location (Ingest/Delete/GetKnowledgeBaseDocuments, at most 10 a call, 5 requests/s per API per
account) and ingestion jobs. botocore's standard retry mode backs off (with jitter) on throttling
and 5xx; what still fails becomes a TransientError (retry later) or a RefusedError (see
``sluice.adapters.aws.service_call``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import RateLimit, error_code, service_call
from sluice.errors import RefusedError, TransientError
from sluice.sinks import CallCount
from sluice.sinks.knowledge_base import PER_CALL, IngestionJob, JobConflictError, KbDocument


class BedrockKnowledgeBaseApi:
    def __init__(self, client: Any, knowledge_base_id: str, data_source_id: str, per_second: float = 2.0) -> None:
        self._client = client
        self.kb = knowledge_base_id
        self.ds = data_source_id
        self._limits = {op: RateLimit(per_second) for op in ("ingest", "delete", "get", "list")}
        self.calls = CallCount()

    def _call(self, limit: str | None, operation: str, **params: Any) -> dict[str, Any]:
        if limit:
            self._limits[limit].wait()
        self.calls.called()
        try:
            with service_call(operation):
                call = getattr(self._client, operation)
                response: dict[str, Any] = call(knowledgeBaseId=self.kb, dataSourceId=self.ds, **params)
                return response
        except RefusedError as exc:
            self.calls.failed()
            code = error_code(exc.__cause__) if isinstance(exc.__cause__, ClientError) else ""
            if code == "ConflictException":
                raise JobConflictError(str(exc)) from exc
            if code == "ServiceQuotaExceededException":  # e.g. 10 concurrent Ingest+Delete requests per account
                raise TransientError(str(exc)) from exc
            raise
        except TransientError:
            self.calls.failed()
            raise

    @staticmethod
    def _details(response: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {
            d["identifier"]["s3"]["uri"]: (d["status"], d.get("statusReason", ""))
            for d in response.get("documentDetails", [])
            if d.get("identifier", {}).get("s3")
        }

    def ingest(self, documents: Sequence[KbDocument], token: str) -> dict[str, tuple[str, str]]:
        assert len(documents) <= PER_CALL
        response = self._call(
            "ingest",
            "ingest_knowledge_base_documents",
            clientToken=token,
            documents=[
                {
                    "content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": d.uri}}},
                    "metadata": {"type": "S3_LOCATION", "s3Location": {"uri": d.metadata_uri}},
                }
                for d in documents
            ],
        )
        return self._details(response)

    def delete(self, uris: Sequence[str], token: str) -> dict[str, tuple[str, str]]:
        assert len(uris) <= PER_CALL
        response = self._call(
            "delete",
            "delete_knowledge_base_documents",
            clientToken=token,
            documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": u}} for u in uris],
        )
        return self._details(response)

    def statuses(self, uris: Sequence[str]) -> dict[str, tuple[str, str]]:
        assert len(uris) <= PER_CALL
        response = self._call(
            "get",
            "get_knowledge_base_documents",
            documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": u}} for u in uris],
        )
        return self._details(response)

    def listed(self, next_token: str | None, max_results: int = 1000) -> tuple[dict[str, str], str | None]:
        """One page of the data source's documents: S3 URI → status, and the next page's token."""
        page = {"nextToken": next_token} if next_token else {}
        response = self._call("list", "list_knowledge_base_documents", maxResults=max_results, **page)
        return {u: s for u, (s, _) in self._details(response).items()}, response.get("nextToken")

    def start_job(self, token: str, description: str) -> str:
        response = self._call(None, "start_ingestion_job", clientToken=token, description=description[:200])
        return str(response["ingestionJob"]["ingestionJobId"])

    def job(self, job_id: str) -> IngestionJob:
        job = self._call(None, "get_ingestion_job", ingestionJobId=job_id)["ingestionJob"]
        return IngestionJob(
            job_id=job_id,
            status=job["status"],
            statistics={k: int(v) for k, v in (job.get("statistics") or {}).items()},
            failure_reasons=tuple(job.get("failureReasons") or ()),
        )
