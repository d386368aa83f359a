"""SyncKnowledgeBaseFunction and SyncKendraFunction: the real handler, wired from its environment,
against moto (S3, SQS, DynamoDB, EventBridge) and the local stack's Bedrock and Kendra emulators
(requests validated against the service models). Documents are ingested by the real ingestion
handler; the bus events it published are what the sink queues receive."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from handlers.conftest import (
    DS,
    INDEX,
    KB,
    PROCESSED,
    RAW,
    Aws,
    LambdaContext,
    emf_records,
    load_event,
    metric_units,
    metric_values,
)
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.sinks import SinkStatus
from sluice_local import emulators
from support.handlers import load_handler

GUIDE = b"# Getting started\n\nDrop a file into the raw bucket.\n\n## Next\n\nWatch it become searchable chunks.\n"


class Sink:
    def __init__(self, aws: Aws, handler: ModuleType, queue_url: str) -> None:
        self.aws, self.handler, self.queue_url = aws, handler, queue_url

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.handler.lambda_handler({"Records": records}, LambdaContext()))

    def queued(self) -> list[dict[str, Any]]:
        """The sink's own messages (status checks), as SQS records."""
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        return [_record(m["Body"], m["MessageId"], m["ReceiptHandle"]) for m in messages]

    def drain(self) -> None:
        while records := self.queued():
            assert self.invoke(records) == {"batchItemFailures": []}
            for r in records:
                self.aws.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=r["receiptHandle"])


def _record(body: str, message_id: str = "m1", receipt: str = "r1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": receipt,
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
    }


def _sink(aws: Aws, monkeypatch: pytest.MonkeyPatch, kind: str) -> Sink:
    url = aws.sqs.create_queue(QueueName=f"{kind}-sink")["QueueUrl"]
    for name, value in {
        "SINK": kind,
        "SINK_QUEUE_URL": url,
        "SINK_FIRST_CHECK_SECONDS": "0",
        "KNOWLEDGE_BASE_ID": KB,
        "DATA_SOURCE_ID": DS,
        "KENDRA_INDEX_ID": INDEX,
    }.items():
        monkeypatch.setenv(name, value)
    return Sink(aws, load_handler("sync_sink"), url)


def _ingest(aws: Aws) -> list[dict[str, Any]]:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GUIDE)
    load_handler("ingest_document").lambda_handler(load_event("s3_put.json"), LambdaContext())
    return [_record(json.dumps(e), f"e{n}") for n, e in enumerate(aws.events())]


def test_the_knowledge_base_sink_ingests_confirms_and_answers(
    aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = _sink(aws, monkeypatch, "kb")
    events = _ingest(aws)
    assert sink.invoke(events) == {"batchItemFailures": []}
    sink.drain()
    ((doc_id, state),) = [
        (s.doc_id, s) for s in DynamoDBSinkStates(aws.dynamodb, "documents").states("kb", SinkStatus.INDEXED)
    ]
    assert state.held and not state.pending
    hits = boto3.client("bedrock-agent-runtime").retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "searchable"})
    assert hits["retrievalResults"][0]["location"]["s3Location"]["uri"].startswith(f"s3://{PROCESSED}/chunks/{doc_id}/")
    operations = [c["operation"] for c in emulators.read_calls(emulated)]
    assert operations == ["IngestKnowledgeBaseDocuments", "GetKnowledgeBaseDocuments", "Retrieve"]


def test_sink_metrics_count_calls_and_the_lag_until_the_index_confirms(
    aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _sink(aws, monkeypatch, "kb")
    events = _ingest(aws)
    capsys.readouterr()
    sink.invoke(events)
    sink.drain()
    records = emf_records(capsys.readouterr().out)
    kb = {"Sink": "kb", "service": "sluice"}
    calls = [c for c in emulators.read_calls(emulated) if c["operation"].endswith("KnowledgeBaseDocuments")]
    assert sum(metric_values(records, "SinkCalls", **kb)) == len(calls) == 2  # ingest, then one status check
    assert sum(metric_values(records, "SinkFailures", **kb)) == 0
    (lag,) = metric_values(records, "SyncLagSeconds", **kb)  # the one document, when found INDEXED
    assert 0 <= lag < 60
    assert metric_units(records)["SyncLagSeconds"] == "Seconds"


def test_a_failed_index_call_is_a_sink_failure(
    aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    sink = _sink(aws, monkeypatch, "kendra")
    events = _ingest(aws)

    def throttled(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "BatchPutDocument")

    monkeypatch.setattr(sink.handler.function().sink.api._client, "batch_put_document", throttled)
    capsys.readouterr()
    assert sink.invoke(events)["batchItemFailures"]  # retried later
    records = emf_records(capsys.readouterr().out)
    kendra = {"Sink": "kendra", "service": "sluice"}
    assert sum(metric_values(records, "SinkFailures", **kendra)) == 1
    assert sum(metric_values(records, "SinkCalls", **kendra)) == 2  # DescribeIndex, then BatchPutDocument
    assert metric_values(records, "SyncLagSeconds", **kendra) == []


def test_the_kendra_sink_puts_whole_documents(aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = _sink(aws, monkeypatch, "kendra")
    assert sink.invoke(_ingest(aws)) == {"batchItemFailures": []}
    sink.drain()
    assert DynamoDBSinkStates(aws.dynamodb, "documents").count("kendra", SinkStatus.INDEXED) == 1
    items = boto3.client("kendra").retrieve(IndexId=INDEX, QueryText="raw bucket")["ResultItems"]
    assert items[0]["DocumentId"] == f"s3://{RAW}/guides/getting-started.md"
    assert items[0]["DocumentTitle"] == "Getting started"


def test_a_duplicated_event_makes_no_second_call(aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = _sink(aws, monkeypatch, "kendra")
    events = _ingest(aws)
    sink.invoke(events)
    sink.drain()
    before = len(emulators.read_calls(emulated))
    assert sink.invoke(events) == {"batchItemFailures": []}
    assert len(emulators.read_calls(emulated)) == before


def test_a_failed_message_is_reported_and_comes_back_after_a_backoff(
    aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = _sink(aws, monkeypatch, "kb")
    aws.sqs.send_message(QueueUrl=sink.queue_url, MessageBody="not a sink message")
    (record,) = sink.queued()
    assert sink.invoke([record]) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    attributes = aws.sqs.get_queue_attributes(QueueUrl=sink.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # hidden for the backoff, then retried


def test_a_misconfigured_function_names_every_missing_setting(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.settings import ConfigurationError

    monkeypatch.setenv("SINK", "kendra")
    monkeypatch.delenv("KENDRA_INDEX_ID", raising=False)
    monkeypatch.delenv("SINK_QUEUE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="SINK_QUEUE_URL is required; KENDRA_INDEX_ID is required"):
        load_handler("sync_sink").lambda_handler({"Records": []}, LambdaContext())
