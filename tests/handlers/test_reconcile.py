"""ReconcileFunction against a deliberately corrupted stack: moto (S3, SQS, DynamoDB, EventBridge),
the local stack's Bedrock and Kendra emulators, and the real ingest and sink handlers pumping the
queues as Lambda would. Every kind of drift is made by hand, found by a dry run (which changes
nothing), repaired by a real run through the ordinary queues, and a second pass finds nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

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
    metric_values,
)
from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.reconcile import DynamoDBPassStore
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.bootstrap.reconcile import ReconcileFunctionSettings, wire
from sluice.pipeline.files import chunk_key, document_id, s3_uri, sidecar_key, text_key
from sluice.reconcile import PassBusyError, Reconciler, describe
from sluice.registry import Status
from sluice_local import emulators
from support.handlers import load_handler

DOCS = {f"notes/{n:02d}-{name}.md": f"# {name.title()}\n\nThe {name} tide table, page {n}.\n" for n, name in
        enumerate(["harbour", "estuary", "lock", "weir", "sluice", "mill", "race", "dyke", "polder", "quay"])}  # fmt: skip
NOBODY = "0" * 32  # a document id no record has
UNANNOUNCED = "notes/My+Report (2).md"  # a key S3 would URL-encode in a notification: the recheck does not


def _sqs_records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }
        for m in messages
    ]


class Stack:
    """The queues and functions as the template wires them: S3 notifications → the ingest queue →
    IngestDocumentFunction → the bus → each sink's queue → its function (and its own checks)."""

    def __init__(self, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        self.queues = {n: aws.sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("ingest", "kb", "kendra")}
        common = {
            "INGEST_QUEUE_URL": self.queues["ingest"],
            "KB_QUEUE_URL": self.queues["kb"],
            "KENDRA_QUEUE_URL": self.queues["kendra"],
            "KNOWLEDGE_BASE_ID": KB,
            "DATA_SOURCE_ID": DS,
            "KENDRA_INDEX_ID": INDEX,
            "SINK_FIRST_CHECK_SECONDS": "0",
        }
        for name, value in common.items():
            monkeypatch.setenv(name, value)
        self.ingest = load_handler("ingest_document")
        self.sinks: dict[str, ModuleType] = {}
        for sink, kind in (("kb", "kb"), ("kendra", "kendra")):
            monkeypatch.setenv("SINK", kind)
            monkeypatch.setenv("SINK_QUEUE_URL", self.queues[sink])
            self.sinks[sink] = load_handler("sync_sink")
            self.sinks[sink].function()  # wired now, from this environment
        self.reconcile = load_handler("reconcile")

    def put(self, key: str, body: bytes | str, *, notify: bool = True) -> None:
        self.aws.s3.put_object(Bucket=RAW, Key=key, Body=body)
        if notify:
            self._notify(key, "ObjectCreated:Put")

    def delete(self, key: str, *, notify: bool = True) -> None:
        self.aws.s3.delete_object(Bucket=RAW, Key=key)
        if notify:
            self._notify(key, "ObjectRemoved:Delete")

    def _notify(self, key: str, name: str) -> None:
        record = {"eventName": name, "s3": {"bucket": {"name": RAW}, "object": {"key": quote_plus(key)}}}
        self.aws.sqs.send_message(QueueUrl=self.queues["ingest"], MessageBody=json.dumps({"Records": [record]}))

    def _deliver(self, queue: str, handler: ModuleType) -> int:
        messages = self.aws.sqs.receive_message(QueueUrl=self.queues[queue], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return 0
        answer = handler.lambda_handler({"Records": _sqs_records(messages)}, LambdaContext())
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        assert not failed, answer
        for m in messages:
            self.aws.sqs.delete_message(QueueUrl=self.queues[queue], ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def pump(self) -> None:
        """Run every queue until all are empty, as Lambda's event source mappings would."""
        for _ in range(200):
            moved = self._deliver("ingest", self.ingest)
            for event in self.aws.events():  # the bus's rules: every document event to both sinks
                for sink in self.sinks:
                    self.aws.sqs.send_message(QueueUrl=self.queues[sink], MessageBody=json.dumps(event))
                moved += 1
            moved += sum(self._deliver(sink, handler) for sink, handler in self.sinks.items())
            if not moved:
                return
        raise AssertionError("the queues did not drain")

    def reconciler(self, *, hours_later: float = 0, **changes: Any) -> Reconciler:
        settings = replace(ReconcileFunctionSettings.from_env(os.environ).reconcile, **changes)
        return wire(
            settings,
            lambda service: getattr(self.aws, service),
            kb=BedrockKnowledgeBaseApi(boto3.client("bedrock-agent"), KB, DS, per_second=100),
            kendra=KendraApi(boto3.client("kendra"), INDEX, per_second=100),
            clock=lambda: time.time() + hours_later * 3600,
        )

    def queued(self) -> int:
        return sum(
            int(self.aws.sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"]["ApproximateNumberOfMessages"])
            for q in self.queues.values()
        )  # fmt: skip


@pytest.fixture
def stack(aws: Aws, emulated: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    stack = Stack(aws, monkeypatch)
    for key, body in DOCS.items():
        stack.put(key, body)
    stack.put("data/broken.json", b'{"tides": [1, 2,')  # quarantined: malformed
    stack.pump()
    return stack


def _doc(key: str) -> str:
    return document_id(s3_uri(RAW, key))


def _records(aws: Aws) -> dict[str, Any]:
    return {r.key: r for r in DynamoDBRegistry(aws.dynamodb, "documents").records()}


def _corrupt(stack: Stack, emulated: Path) -> None:
    """One of every drift the reconciler knows, each made behind the pipeline's back."""
    aws, keys = stack.aws, list(DOCS)
    records = _records(aws)
    stack.put(UNANNOUNCED, "# Unannounced\n\nNobody told Sluice.\n", notify=False)  # unrecorded
    stack.put(keys[0], "# Harbour\n\nRewritten without a notification.\n", notify=False)  # stale
    stack.delete(keys[1], notify=False)  # source_gone
    lost_file = records[keys[2]]
    aws.s3.delete_object(Bucket=PROCESSED, Key=chunk_key(lost_file.doc_id, lost_file.chunks[0]))  # processed_missing
    aws.s3.put_object(Bucket=PROCESSED, Key=chunk_key(records[keys[3]].doc_id, "f" * 20), Body=b"stray")  # stray
    for key in (chunk_key(NOBODY, "a" * 20), sidecar_key(chunk_key(NOBODY, "a" * 20)), text_key(NOBODY)):
        aws.s3.put_object(Bucket=PROCESSED, Key=key, Body=b"{}")  # stray, no record at all
    agent = boto3.client("bedrock-agent")
    gone = f"s3://{PROCESSED}/{chunk_key(records[keys[4]].doc_id, records[keys[4]].chunks[0])}"
    agent.delete_knowledge_base_documents(  # index_lost (kb)
        knowledgeBaseId=KB, dataSourceId=DS, documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": gone}}]
    )
    boto3.client("kendra").batch_delete_document(IndexId=INDEX, DocumentIdList=[s3_uri(RAW, keys[5])])  # index_lost
    stray = f"s3://{PROCESSED}/{chunk_key(NOBODY, 'a' * 20)}"
    agent.ingest_knowledge_base_documents(  # index_stray
        knowledgeBaseId=KB,
        dataSourceId=DS,
        documents=[{"content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": stray}}}}],
    )
    aws.dynamodb.delete_item(TableName="documents", Key={"doc_id": {"S": f"kendra#{_doc(keys[6])}"}})  # sink_behind
    aws.dynamodb.update_item(  # quarantine_retry: quarantined by an older pipeline
        TableName="documents",
        Key={"doc_id": {"S": _doc("data/broken.json")}},
        UpdateExpression="SET fingerprint = :f",
        ExpressionAttributeValues={":f": {"S": "0ld0ld0ld0ld0ld0"}},
    )
    aws.dynamodb.update_item(  # unfinished: committed, then its worker died before announcing it
        TableName="documents",
        Key={"doc_id": {"S": _doc(keys[7])}},
        UpdateExpression="SET pending_event = :e, updated_at = :t",
        ExpressionAttributeValues={":e": {"S": "Document Changed"}, ":t": {"S": "2026-01-01T00:00:00.000Z"}},
    )


EXPECTED = {
    "unrecorded": 1,
    "stale": 1,
    "source_gone": 1,
    "processed_missing": 1,
    "processed_stray": 3,  # beside a record; no record: its chunk files, its text (two listings)
    "index_lost": 2,
    "index_stray": 1,
    "sink_behind": 1,
    "quarantine_retry": 1,
    "unfinished": 1,
}


def _agrees(stack: Stack, emulated: Path) -> None:
    """RawBucket, the registry, ProcessedBucket and both indexes say the same thing."""
    aws = stack.aws
    raw = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=RAW).get("Contents", [])}
    records = _records(aws)
    live = {k for k, r in records.items() if r.status is not Status.DELETED}
    assert live == raw
    processed = {k: r for k, r in records.items() if r.status is Status.PROCESSED}
    files = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=PROCESSED).get("Contents", [])}
    wanted = {text_key(r.doc_id) for r in processed.values()}
    wanted |= {
        k
        for r in processed.values()
        for h in r.chunks
        for k in (chunk_key(r.doc_id, h), sidecar_key(chunk_key(r.doc_id, h)))
    }
    assert files == wanted
    with sqlite3.connect(emulated / emulators.DB_FILE) as db:
        kb = {row[0] for row in db.execute("SELECT uri FROM kb_chunks WHERE status = 'INDEXED'")}
        kendra = {row[0] for row in db.execute("SELECT id FROM kendra_docs")}
    assert kb == {f"s3://{PROCESSED}/{chunk_key(r.doc_id, h)}" for r in processed.values() for h in r.chunks}
    assert kendra == {r.source_uri for r in processed.values()}


def test_a_clean_stack_has_no_drift(stack: Stack, emulated: Path) -> None:
    report = stack.reconciler().run()
    assert report.complete and report.found == {}
    assert report.examined["objects"] == len(DOCS) + 1 and report.examined["records"] == len(DOCS) + 1
    assert report.repairs == {}
    assert "no drift" in "\n".join(describe(report))
    _agrees(stack, emulated)


def test_a_dry_run_finds_every_drift_and_changes_nothing(stack: Stack, emulated: Path) -> None:
    _corrupt(stack, emulated)
    first = stack.reconciler(hours_later=2).run(dry_run=True)
    assert first.found == EXPECTED
    assert first.repairs == {} and stack.queued() == 0
    assert DynamoDBPassStore(stack.aws.dynamodb, "documents").last() is None  # not even its position was saved
    again = stack.reconciler(hours_later=2).run(dry_run=True)
    assert again.found == EXPECTED
    text = "\n".join(describe(first))
    assert "dry run" in text and "found 1 unrecorded → recheck" in text and UNANNOUNCED in text


def test_a_run_repairs_a_corrupted_stack_and_the_next_pass_finds_nothing(stack: Stack, emulated: Path) -> None:
    _corrupt(stack, emulated)
    report = stack.reconciler(hours_later=2).run()
    assert report.complete and report.found == EXPECTED
    assert report.repairs == {
        "ingest rechecks queued": 5,  # unrecorded, stale, source_gone, quarantine_retry, unfinished
        "ingest rebuilds queued": 2,  # processed_missing, the stray beside a record
        "stray files deleted": 3,  # the chunk, its sidecar and the text of a document nobody has
        "sink states corrected": 3,  # kb lost, kendra lost, kb stray
        "kb syncs queued": 2,  # kb lost, kb stray
        "kendra syncs queued": 2,  # kendra lost, sink_behind
    }
    stack.pump()
    after = stack.reconciler(hours_later=2).run()
    assert after.complete and after.found == {}, after.found
    _agrees(stack, emulated)
    records = _records(stack.aws)
    assert records[UNANNOUNCED].status is Status.PROCESSED
    assert records[list(DOCS)[1]].status is Status.DELETED
    broken = records["data/broken.json"]
    assert broken.status is Status.QUARANTINED and broken.fingerprint != "0ld0ld0ld0ld0ld0"  # re-read, still bad
    last = DynamoDBPassStore(stack.aws.dynamodb, "documents").last()
    assert last is not None and last.pass_id == after.pass_id


def test_a_pass_spans_runs_within_its_budget_and_finds_what_one_run_finds(stack: Stack, emulated: Path) -> None:
    _corrupt(stack, emulated)
    whole = stack.reconciler(hours_later=2).run(dry_run=True)
    runs = []
    while not (runs and runs[-1].complete):
        runs.append(stack.reconciler(hours_later=2, page_size=3, max_repairs=2).run())
        assert len(runs) < 50
    assert len(runs) > 3 and {r.stopped for r in runs[:-1]} == {"budget"}
    assert len({r.pass_id for r in runs}) == 1 and runs[-1].runs == len(runs)
    assert runs[-1].found == whole.found


def test_one_run_at_a_time(stack: Stack) -> None:
    DynamoDBPassStore(stack.aws.dynamodb, "documents").acquire("someone-else", time.time(), 600)
    with pytest.raises(PassBusyError):
        stack.reconciler().run()
    assert stack.reconciler().run(dry_run=True).complete  # a dry run takes no lease


def test_the_function_reports_drift_as_metrics(
    stack: Stack, emulated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.put("notes/unannounced.md", "# Unannounced\n", notify=False)
    capsys.readouterr()
    answer = stack.reconcile.lambda_handler({}, LambdaContext())
    assert answer["complete"] and answer["found"] == {"unrecorded": 1}
    records = emf_records(capsys.readouterr().out)
    assert metric_values(records, "ReconcileDrift", kind="unrecorded", service="sluice") == [1.0]
    assert metric_values(records, "ReconcilePassesCompleted", service="sluice") == [1.0]
    assert stack.reconcile.lambda_handler({}, LambdaContext())["found"] == {"unrecorded": 1}  # not yet ingested
    stack.pump()
    assert stack.reconcile.lambda_handler({"dry_run": True}, LambdaContext())["found"] == {}
