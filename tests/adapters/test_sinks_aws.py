"""The sink adapters against AWS's own service models: every Bedrock Agent and Kendra request shape
through botocore's Stubber (which validates parameters against the model), the sink states on
DynamoDB and the sink queue on SQS (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsQueue
from sluice.errors import RefusedError, TransientError
from sluice.pipeline.files import text_key
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkState, SinkStatus, StateConflictError
from sluice.sinks.kendra import KendraSink
from sluice.sinks.knowledge_base import JobConflictError, KbDocument, KnowledgeBaseSink
from sluice.storage import ObjectHead
from support.awsfixtures import create_documents_table
from support.fakes import FakeSinkStates

KB, DS, INDEX = "KB12345678", "DS12345678", "0123456789abcdef0123456789abcdef0123"
TOKEN = "t" * 64


class Records:
    """The registry as a sink reads it."""

    def __init__(self, *records: DocumentRecord) -> None:
        self.records = {r.doc_id: r for r in records}

    def get(self, doc_id: str) -> DocumentRecord | None:
        return self.records.get(doc_id)


def _client(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def _detail(uri: str, status: str, reason: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "knowledgeBaseId": KB,
        "dataSourceId": DS,
        "status": status,
        "identifier": {"dataSourceType": "S3", "s3": {"uri": uri}},
    }
    if reason:
        detail["statusReason"] = reason
    return detail


def _error(stubber: Stubber, operation: str, code: str, status: int) -> None:
    stubber.add_client_error(operation, service_error_code=code, service_message=code, http_status_code=status)


# -- Bedrock Agent: direct ingestion and ingestion jobs ---------------------------------------------


def test_ingest_sends_s3_locations_with_their_sidecars() -> None:
    client, stubber = _client("bedrock-agent")
    uri = "s3://processed/chunks/d/c.txt"
    stubber.add_response(
        "ingest_knowledge_base_documents",
        {"documentDetails": [_detail(uri, "STARTING")]},
        {
            "knowledgeBaseId": KB,
            "dataSourceId": DS,
            "clientToken": TOKEN,
            "documents": [
                {
                    "content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": uri}}},
                    "metadata": {"type": "S3_LOCATION", "s3Location": {"uri": uri + ".metadata.json"}},
                }
            ],
        },
    )
    with stubber:
        api = BedrockKnowledgeBaseApi(client, KB, DS, per_second=1000)
        assert api.ingest([KbDocument(uri, uri + ".metadata.json")], TOKEN) == {uri: ("STARTING", "")}


def test_delete_and_status_calls_name_documents_by_s3_uri() -> None:
    client, stubber = _client("bedrock-agent")
    uris = [f"s3://processed/chunks/d/{i}.txt" for i in range(10)]
    identifiers = [{"dataSourceType": "S3", "s3": {"uri": u}} for u in uris]
    stubber.add_response(
        "delete_knowledge_base_documents",
        {"documentDetails": [_detail(u, "DELETING") for u in uris]},
        {"knowledgeBaseId": KB, "dataSourceId": DS, "clientToken": TOKEN, "documentIdentifiers": identifiers},
    )
    stubber.add_response(
        "get_knowledge_base_documents",
        {"documentDetails": [_detail(uris[0], "INDEXED"), _detail(uris[1], "FAILED", "too long")]},
        {"knowledgeBaseId": KB, "dataSourceId": DS, "documentIdentifiers": identifiers},
    )
    with stubber:
        api = BedrockKnowledgeBaseApi(client, KB, DS, per_second=1000)
        assert len(api.delete(uris, TOKEN)) == 10
        assert api.statuses(uris) == {uris[0]: ("INDEXED", ""), uris[1]: ("FAILED", "too long")}


def test_ingestion_jobs_start_with_a_client_token_and_report_their_statistics() -> None:
    client, stubber = _client("bedrock-agent")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    job = {
        "knowledgeBaseId": KB,
        "dataSourceId": DS,
        "ingestionJobId": "JOB1234567",
        "startedAt": now,
        "updatedAt": now,
    }
    stubber.add_response(
        "start_ingestion_job",
        {"ingestionJob": {**job, "status": "STARTING"}},
        {"knowledgeBaseId": KB, "dataSourceId": DS, "clientToken": TOKEN, "description": "sync"},
    )
    stubber.add_response(
        "get_ingestion_job",
        {
            "ingestionJob": {
                **job,
                "status": "COMPLETE",
                "statistics": {"numberOfDocumentsScanned": 4, "numberOfDocumentsFailed": 1},
                "failureReasons": ["one file too large"],
            }
        },
        {"knowledgeBaseId": KB, "dataSourceId": DS, "ingestionJobId": "JOB1234567"},
    )
    _error(stubber, "start_ingestion_job", "ConflictException", 409)
    with stubber:
        api = BedrockKnowledgeBaseApi(client, KB, DS)
        assert api.start_job(TOKEN, "sync") == "JOB1234567"
        ended = api.job("JOB1234567")
        assert (ended.status, ended.statistics["numberOfDocumentsFailed"]) == ("COMPLETE", 1)
        assert ended.failure_reasons == ("one file too large",)
        with pytest.raises(JobConflictError):
            api.start_job(TOKEN, "sync")


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 429), ("InternalServerException", 500), ("ServiceQuotaExceededException", 402)],
)
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    client, stubber = _client("bedrock-agent")
    _error(stubber, "get_knowledge_base_documents", code, status)
    api = BedrockKnowledgeBaseApi(client, KB, DS, per_second=1000)
    with stubber, pytest.raises(TransientError, match=code):
        api.statuses(["s3://b/k"])
    assert api.calls.take() == (1, 1) and api.calls.take() == (0, 0)  # one call, failed (SinkFailures)


def test_a_refused_request_is_not_retried() -> None:
    client, stubber = _client("bedrock-agent")
    _error(stubber, "ingest_knowledge_base_documents", "ValidationException", 400)
    with stubber, pytest.raises(RefusedError, match="ValidationException"):
        BedrockKnowledgeBaseApi(client, KB, DS, per_second=1000).ingest([KbDocument("s3://b/k", "s3://b/k.m")], TOKEN)


def test_the_knowledge_base_sink_batches_ten_chunks_a_call_through_the_real_client() -> None:
    client, stubber = _client("bedrock-agent")
    chunks = tuple(f"{i:020x}" for i in range(12))
    registry = Records(_doc("d", chunks=chunks))
    uris = [f"s3://processed/chunks/d/{c}.txt" for c in chunks]
    for group in (uris[:10], uris[10:]):
        stubber.add_response(
            "ingest_knowledge_base_documents",
            {"documentDetails": [_detail(u, "STARTING") for u in group]},
            {"knowledgeBaseId": KB, "dataSourceId": DS, "clientToken": ANY, "documents": ANY},
        )
    with stubber:
        sink = KnowledgeBaseSink(
            api=BedrockKnowledgeBaseApi(client, KB, DS, per_second=1000),
            registry=registry,  # type: ignore[arg-type]
            states=FakeSinkStates(),
            processed_bucket="processed",
        )
        assert [r.check_after for r in sink.sync(["d"])] == [20]
    stubber.assert_no_pending_responses()


# -- Kendra -------------------------------------------------------------------------------------------


def _doc(doc_id: str = "d", **changes: Any) -> DocumentRecord:
    base = DocumentRecord(
        doc_id=doc_id,
        source_uri=f"s3://raw/{doc_id}.md",
        bucket="raw",
        key=f"{doc_id}.md",
        status=Status.PROCESSED,
        updated_at="2026-11-28T10:00:00.000Z",
        kind="markdown",
        title="Leave policy",
        text_sha256="ab" * 32,
        chunks=("c1",),
    )
    return base.evolve(**changes)


class TextStore:
    def __init__(self, size: int = 0) -> None:
        self.size = size

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        return ObjectHead(bucket, key, self.size or 11, "etag")

    def get(self, head: ObjectHead) -> bytes:
        return b"Leave text."


def _describe_index() -> dict[str, Any]:
    return {
        "Id": INDEX,
        "DocumentMetadataConfigurations": [
            {"Name": "department", "Type": "STRING_VALUE"},
            {"Name": "year", "Type": "LONG_VALUE"},
            {"Name": "_source_uri", "Type": "STRING_VALUE"},
        ],
    }


def test_kendra_documents_are_put_with_reserved_and_declared_attributes_and_the_access_list() -> None:
    client, stubber = _client("kendra")
    stubber.add_response("describe_index", _describe_index(), {"Id": INDEX})
    record = _doc(
        doc_metadata={
            "attributes": {"department": "hr", "year": 2025, "undeclared": "x"},
            "acl": [{"name": "hr-team", "type": "GROUP", "access": "ALLOW"}],
        }
    )
    updated = datetime(2026, 11, 28, 10, tzinfo=UTC)
    stubber.add_response(
        "batch_put_document",
        {"FailedDocuments": []},
        {
            "IndexId": INDEX,
            "Documents": [
                {
                    "Id": "s3://raw/d.md",
                    "Title": "Leave policy",
                    "ContentType": "PLAIN_TEXT",
                    "Blob": b"Leave text.",
                    "Attributes": [
                        {"Key": "_source_uri", "Value": {"StringValue": "s3://raw/d.md"}},
                        {"Key": "_last_updated_at", "Value": {"DateValue": updated}},
                        {"Key": "_language_code", "Value": {"StringValue": "en"}},
                        {"Key": "_file_type", "Value": {"StringValue": "MD"}},
                        {"Key": "department", "Value": {"StringValue": "hr"}},
                        {"Key": "year", "Value": {"LongValue": 2025}},
                    ],
                    "AccessControlList": [{"Name": "hr-team", "Type": "GROUP", "Access": "ALLOW"}],
                }
            ],
        },
    )
    registry = Records(record)
    with stubber:
        sink = KendraSink(
            api=KendraApi(client, INDEX, per_second=1000),
            registry=registry,  # type: ignore[arg-type]
            states=FakeSinkStates(),
            processed=TextStore(),
            processed_bucket="processed",
        )
        (result,) = sink.sync(["d"])
    assert result.retry is None and result.check_after == 20
    stubber.assert_no_pending_responses()


def test_large_kendra_documents_go_by_s3_path_with_the_role() -> None:
    client, stubber = _client("kendra")
    stubber.add_response("describe_index", _describe_index(), {"Id": INDEX})
    stubber.add_response(
        "batch_put_document",
        {"FailedDocuments": []},
        {
            "IndexId": INDEX,
            "RoleArn": "arn:aws:iam::123456789012:role/kendra-s3",
            "Documents": [
                {
                    "Id": "s3://raw/d.md",
                    "Title": "Leave policy",
                    "ContentType": "PLAIN_TEXT",
                    "S3Path": {"Bucket": "processed", "Key": text_key("d")},
                    "Attributes": ANY,
                }
            ],
        },
    )
    registry = Records(_doc())
    with stubber:
        sink = KendraSink(
            api=KendraApi(client, INDEX, role_arn="arn:aws:iam::123456789012:role/kendra-s3", per_second=1000),
            registry=registry,  # type: ignore[arg-type]
            states=FakeSinkStates(),
            processed=TextStore(size=6 * 1024 * 1024),
            processed_bucket="processed",
        )
        sink.sync(["d"])
    stubber.assert_no_pending_responses()


def test_kendra_deletes_statuses_and_failed_documents() -> None:
    client, stubber = _client("kendra")
    stubber.add_response(
        "batch_delete_document",
        {"FailedDocuments": [{"Id": "b", "ErrorCode": "InternalError", "ErrorMessage": "try again"}]},
        {"IndexId": INDEX, "DocumentIdList": ["a", "b"]},
    )
    stubber.add_response(
        "batch_get_document_status",
        {
            "DocumentStatusList": [
                {"DocumentId": "a", "DocumentStatus": "INDEXED"},
                {"DocumentId": "b", "DocumentStatus": "FAILED", "FailureReason": "bad field"},
            ],
            "Errors": [],
        },
        {"IndexId": INDEX, "DocumentInfoList": [{"DocumentId": "a"}, {"DocumentId": "b"}]},
    )
    _error(stubber, "batch_put_document", "ThrottlingException", 400)
    with stubber:
        api = KendraApi(client, INDEX, per_second=1000)
        assert api.delete(["a", "b"]) == {"b": ("InternalError", "try again")}
        assert api.statuses(["a", "b"]) == {"a": ("INDEXED", ""), "b": ("FAILED", "bad field")}
        with pytest.raises(TransientError):
            api.put([{"Id": "a", "Blob": b"x", "ContentType": "PLAIN_TEXT"}])


def test_the_index_fields_are_read_once() -> None:
    client, stubber = _client("kendra")
    stubber.add_response("describe_index", _describe_index(), {"Id": INDEX})
    with stubber:
        api = KendraApi(client, INDEX)
        assert api.declared_fields() == {"department": "STRING_VALUE", "year": "LONG_VALUE"}
        assert api.declared_fields() is api.declared_fields()


# -- sink states on DynamoDB, the sink queue on SQS -----------------------------------------------------


@pytest.fixture
def states() -> Iterator[DynamoDBSinkStates]:
    with mock_aws():
        ddb = boto3.client("dynamodb")
        create_documents_table(ddb, "docs")
        yield DynamoDBSinkStates(ddb, "docs")


def _state(doc_id: str, status: SinkStatus, version: int = 1) -> SinkState:
    return SinkState(
        "kb",
        doc_id,
        status,
        "2026-11-28T10:00:00.000Z",
        held=("c1", "c2"),
        pending=("c2",),
        failures={"c1": "FAILED: too long"},
        version=version,
        checks=2,
    )


def test_states_round_trip_and_are_written_only_over_the_version_read(states: DynamoDBSinkStates) -> None:
    first = _state("d1", SinkStatus.PENDING)
    states.put(first, expected_version=None)
    assert states.get("kb", "d1") == first
    assert states.get("kendra", "d1") is None
    with pytest.raises(StateConflictError):
        states.put(first, expected_version=None)
    states.put(_state("d1", SinkStatus.INDEXED, version=2), expected_version=1)
    with pytest.raises(StateConflictError):
        states.put(_state("d1", SinkStatus.FAILED, version=3), expected_version=1)


def test_document_ids_with_any_character_survive_the_round_trip(states: DynamoDBSinkStates) -> None:
    state = SinkState("kendra", "d", SinkStatus.PENDING, "2026-11-28T10:00:00.000Z",
                      held=("fp", "s3://raw/My Report (final).pdf"), pending=("s3://raw/My Report (final).pdf",))  # fmt: skip
    states.put(state, expected_version=None)
    assert states.get("kendra", "d") == state


def test_states_are_counted_and_listed_by_sink_and_status(states: DynamoDBSinkStates) -> None:
    for i in range(3):
        states.put(_state(f"p{i}", SinkStatus.PENDING), expected_version=None)
    states.put(_state("x", SinkStatus.FAILED), expected_version=None)
    assert states.count("kb", SinkStatus.PENDING) == 3
    assert states.count("kendra", SinkStatus.PENDING) == 0
    assert [s.doc_id for s in states.states("kb", SinkStatus.FAILED)] == ["x"]


def test_states_written_since_a_time_are_counted_on_the_index_sort_key(states: DynamoDBSinkStates) -> None:
    from dataclasses import replace

    for i, at in enumerate(("2026-12-07T09:59:59.999Z", "2026-12-07T10:00:00.000Z", "2026-12-07T10:05:00.000Z")):
        states.put(replace(_state(f"i{i}", SinkStatus.INDEXED), updated_at=at), expected_version=None)
    assert states.count("kb", SinkStatus.INDEXED) == 3
    assert states.count("kb", SinkStatus.INDEXED, since="2026-12-07T10:00:00.000Z") == 2  # at or after
    assert states.count("kb", SinkStatus.INDEXED, since="2026-12-07T10:05:00.001Z") == 0
    assert states.count("kb", SinkStatus.ABSENT, since="2026-12-07T00:00:00.000Z") == 0


def test_sink_states_never_look_like_documents(states: DynamoDBSinkStates) -> None:
    from sluice.adapters.aws.registry import DynamoDBRegistry

    states.put(_state("d1", SinkStatus.INDEXED), expected_version=None)
    registry = DynamoDBRegistry(states._db, "docs")
    assert list(registry.records()) == [] and registry.count(Status.PROCESSED) == 0


def test_the_sink_queue_clamps_delays_to_what_sqs_allows() -> None:
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="sink")["QueueUrl"]
        queue = SqsQueue(sqs, url)
        queue.send(json.dumps({"sluice": "poll-job"}), delay_seconds=5000)
        queue.send("{}", delay_seconds=0)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1


def test_a_refused_batch_is_split_so_one_bad_document_fails_alone() -> None:
    client, stubber = _client("kendra")
    stubber.add_response("describe_index", _describe_index(), {"Id": INDEX})
    records = [_doc(f"d{i}") for i in range(3)]
    _error(stubber, "batch_put_document", "ValidationException", 400)  # the batch of three
    stubber.add_response("batch_put_document", {"FailedDocuments": []}, {"IndexId": INDEX, "Documents": ANY})
    _error(stubber, "batch_put_document", "ValidationException", 400)  # d1 alone
    stubber.add_response("batch_put_document", {"FailedDocuments": []}, {"IndexId": INDEX, "Documents": ANY})
    states = FakeSinkStates()
    with stubber:
        sink = KendraSink(
            api=KendraApi(client, INDEX, per_second=1000),
            registry=Records(*records),  # type: ignore[arg-type]
            states=states,
            processed=TextStore(),
            processed_bucket="processed",
        )
        results = sink.sync([r.doc_id for r in records])
    stubber.assert_no_pending_responses()
    assert all(r.retry is None for r in results)
    assert [states.get("kendra", f"d{i}").status for i in range(3)] == [
        SinkStatus.PENDING,
        SinkStatus.FAILED,
        SinkStatus.PENDING,
    ]
    assert "ValidationException" in states.get("kendra", "d1").failures["document"]


def test_with_a_custom_data_source_puts_and_deletes_run_inside_its_sync_job() -> None:
    client, stubber = _client("kendra")
    job = {"Id": "sluice-ds", "IndexId": INDEX}
    stubber.add_response("start_data_source_sync_job", {"ExecutionId": "exec-1"}, job)
    stubber.add_response(
        "batch_put_document",
        {"FailedDocuments": []},
        {
            "IndexId": INDEX,
            "Documents": [
                {
                    "Id": "a",
                    "Blob": b"x",
                    "ContentType": "PLAIN_TEXT",
                    "Attributes": [
                        {"Key": "_data_source_id", "Value": {"StringValue": "sluice-ds"}},
                        {"Key": "_data_source_sync_job_execution_id", "Value": {"StringValue": "exec-1"}},
                    ],
                }
            ],
        },
    )
    stubber.add_response(
        "batch_delete_document",
        {"FailedDocuments": []},
        {
            "IndexId": INDEX,
            "DocumentIdList": ["b"],
            "DataSourceSyncJobMetricTarget": {"DataSourceId": "sluice-ds", "DataSourceSyncJobId": "exec-1"},
        },
    )
    stubber.add_response("stop_data_source_sync_job", {}, job)
    with stubber:
        api = KendraApi(client, INDEX, per_second=1000, data_source_id="sluice-ds")
        with api.sync_job():
            api.put([{"Id": "a", "Blob": b"x", "ContentType": "PLAIN_TEXT"}])
            api.delete(["b"])
    stubber.assert_no_pending_responses()
