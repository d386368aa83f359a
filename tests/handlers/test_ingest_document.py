"""IngestDocumentFunction's real handler on the sample events in events/."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from handlers.conftest import (
    PROCESSED,
    RAW,
    Aws,
    LambdaContext,
    emf_records,
    load_event,
    metric_units,
    metric_values,
)
from sluice.ingest import Action
from support.handlers import load_handler

GOOD_MD = b"# Getting started\n\nDrop a file into the raw bucket.\n\n## Next\n\nWatch it become chunks.\n"


def _invoke(event: dict[str, Any], handler: Any = None) -> dict[str, Any]:
    handler = handler or load_handler("ingest_document")
    return handler.lambda_handler(event, LambdaContext())


def _processed_keys(aws: Aws) -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=PROCESSED).get("Contents", [])]


def test_put_event_ingests_the_object(aws: Aws) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    assert _invoke(load_event("s3_put.json")) == {"batchItemFailures": []}
    record = aws.registry()["guides/getting-started.md"]
    assert record["status"]["S"] == "PROCESSED" and record["title"]["S"] == "Getting started"
    keys = _processed_keys(aws)
    chunks = [k for k in keys if k.startswith("chunks/") and k.endswith(".txt")]
    assert chunks and all(f"{k}.metadata.json" in keys for k in chunks)
    sidecar = json.loads(aws.s3.get_object(Bucket=PROCESSED, Key=f"{chunks[0]}.metadata.json")["Body"].read())
    assert (
        sidecar["metadataAttributes"]["source_uri"]["value"]["stringValue"] == f"s3://{RAW}/guides/getting-started.md"
    )
    (event,) = aws.events()
    assert event["detail-type"] == "Document Changed" and event["source"] == "sluice.ingest"
    assert len(event["detail"]["chunks"]["added"]) == len(chunks)


def test_delete_event_removes_the_processed_files(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    handler = load_handler("ingest_document")
    _invoke(load_event("s3_put.json"), handler)
    aws.s3.delete_object(Bucket=RAW, Key="guides/getting-started.md")
    capsys.readouterr()
    assert _invoke(load_event("s3_delete.json"), handler) == {"batchItemFailures": []}
    assert metric_values(emf_records(capsys.readouterr().out), "DocumentsDeleted", service="sluice") == [1.0]
    assert aws.registry()["guides/getting-started.md"]["status"]["S"] == "DELETED"
    assert _processed_keys(aws) == []
    assert [e["detail-type"] for e in aws.events()] == ["Document Changed", "Document Deleted"]


def test_the_s3_test_event_is_acknowledged_and_ignored(aws: Aws) -> None:
    assert _invoke(load_event("s3_test_event.json")) == {"batchItemFailures": []}
    assert aws.registry() == {} and aws.events() == []


def test_keys_with_spaces_and_unicode_are_decoded(aws: Aws) -> None:
    key = "Quarterly Report (2026) — été 東京.txt"
    aws.s3.put_object(Bucket=RAW, Key=key, Body=b"Quarterly report\n\nRevenue grew.\n")
    assert _invoke(load_event("s3_put_unicode_key.json")) == {"batchItemFailures": []}
    assert aws.registry()[key]["status"]["S"] == "PROCESSED"


def test_a_poison_record_never_fails_the_batch(aws: Aws) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    aws.s3.put_object(Bucket=RAW, Key="scans/corrupt-upload.pdf", Body=b"%PDF-1.4\n1 0 obj << /Type /Cat")
    aws.s3.put_object(Bucket=RAW, Key="notes/release-notes.txt", Body=b"Release notes\n\nFirst release.\n")
    response = _invoke(load_event("sqs_batch_with_poison.json"))
    # Only the garbled message fails (SQS retries it, then dead-letters it); the corrupt PDF is
    # quarantined with its reason and acknowledged.
    assert response == {"batchItemFailures": [{"itemIdentifier": "6f708192-garbled"}]}
    registry = aws.registry()
    assert registry["scans/corrupt-upload.pdf"]["status"]["S"] == "QUARANTINED"
    assert registry["scans/corrupt-upload.pdf"]["reason"]["S"] == "malformed"
    assert registry["guides/getting-started.md"]["status"]["S"] == "PROCESSED"
    assert registry["notes/release-notes.txt"]["status"]["S"] == "PROCESSED"
    assert sorted(e["detail-type"] for e in aws.events()) == [
        "Document Changed",
        "Document Changed",
        "Document Quarantined",
    ]


def test_metrics_count_documents_chunks_tokens_and_quarantines_by_reason(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    aws.s3.put_object(Bucket=RAW, Key="scans/corrupt-upload.pdf", Body=b"%PDF-1.4\n1 0 obj << /Type /Cat")
    aws.s3.put_object(Bucket=RAW, Key="notes/release-notes.txt", Body=b"Release notes\n\nFirst release.\n")
    handler = load_handler("ingest_document")
    capsys.readouterr()
    _invoke(load_event("sqs_batch_with_poison.json"), handler)
    records = emf_records(capsys.readouterr().out)
    assert {r["_aws"]["CloudWatchMetrics"][0]["Namespace"] for r in records} == {"Sluice"}
    service = {"service": "sluice"}
    chunks = [k for k in _processed_keys(aws) if k.startswith("chunks/") and k.endswith(".txt")]
    tokens = sum(int(i["token_count"]["N"]) for i in aws.registry().values() if i["status"]["S"] == "PROCESSED")
    assert sum(metric_values(records, "DocumentsIngested", **service)) == 2
    assert sum(metric_values(records, "Chunks", **service)) == len(chunks) > 0
    assert sum(metric_values(records, "Tokens", **service)) == tokens > 0
    assert metric_values(records, "DocumentsQuarantined", **service) == [1.0]
    assert metric_values(records, "DocumentsQuarantined", reason="malformed", **service) == [1.0]
    assert metric_units(records)["DocumentsIngested"] == "Count"
    assert set(handler.DOCUMENT_METRICS) == set(Action)  # every outcome is counted


def test_duplicate_delivery_has_one_side_effect(aws: Aws) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    event = load_event("s3_put.json")
    redelivered = copy.deepcopy(event)
    redelivered["Records"][0]["messageId"] = "a-different-message-id"  # same S3 event, new SQS message
    handler = load_handler("ingest_document")
    _invoke(event, handler)
    puts_before = _processed_keys(aws)
    _invoke(redelivered, handler)
    assert _processed_keys(aws) == puts_before
    assert len(aws.events()) == 1  # announced once
    (record,) = aws.dynamodb.scan(TableName="idempotency")["Items"]  # one key: bucket + key + sequencer
    assert record["status"]["S"] == "COMPLETED"


def test_an_in_progress_record_left_by_a_failed_attempt_does_not_hold_the_event_back(
    aws: Aws, monkeypatch: Any
) -> None:
    """An attempt fails and its in-progress record stays (the DeleteItem that should clear it failed,
    as when its answer is lost): the retry runs the event anyway instead of being refused until
    that record expires with the attempt's invocation time."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    handler = load_handler("ingest_document")
    wiring = handler.function()

    def publish_fails(events: Any) -> None:
        raise RuntimeError("the invocation died here")

    def delete_lost(*args: Any, **kwargs: Any) -> None:
        raise IdempotencyPersistenceLayerError("DeleteItem: read timeout")

    with monkeypatch.context() as patch:
        patch.setattr(wiring.service.bus, "publish", publish_fails)
        patch.setattr(wiring.persistence, "delete_record", delete_lost)
        with pytest.raises(BatchProcessingError):  # its only record failed: the whole batch fails
            _invoke(load_event("s3_put.json"), handler)
    (record,) = aws.dynamodb.scan(TableName="idempotency")["Items"]
    assert record["status"]["S"] == "INPROGRESS"  # left behind, good for the rest of its invocation time
    assert _invoke(load_event("s3_put.json"), handler) == {"batchItemFailures": []}
    assert aws.registry()["guides/getting-started.md"]["status"]["S"] == "PROCESSED"
    assert "pending_event" not in aws.registry()["guides/getting-started.md"]
    assert len(aws.events()) == 1


def test_a_transient_failure_fails_only_its_record(aws: Aws, monkeypatch: Any) -> None:
    aws.s3.put_object(Bucket=RAW, Key="guides/getting-started.md", Body=GOOD_MD)
    aws.s3.put_object(Bucket=RAW, Key="notes/release-notes.txt", Body=b"Release notes\n\nFirst release.\n")
    handler = load_handler("ingest_document")
    wiring = handler.function()
    original = wiring.service.bus.publish
    calls = {"n": 0}

    def throttled_once(events: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")
        original(events)

    monkeypatch.setattr(wiring.service.bus, "publish", throttled_once)
    event = load_event("sqs_batch_with_poison.json")
    event["Records"] = [event["Records"][0], event["Records"][3]]
    assert _invoke(event, handler) == {"batchItemFailures": [{"itemIdentifier": "4d5e6f70-good"}]}
    # The committed change waits in the registry's outbox; SQS's retry publishes it.
    assert aws.registry()["guides/getting-started.md"]["pending_event"]["S"] == "Document Changed"
    assert _invoke(event, handler) == {"batchItemFailures": []}
    assert "pending_event" not in aws.registry()["guides/getting-started.md"]
    assert sorted(e["detail"]["source"]["key"] for e in aws.events()) == [
        "guides/getting-started.md",
        "notes/release-notes.txt",
    ]


def test_notifications_for_another_bucket_are_ignored(aws: Aws) -> None:
    event = load_event("s3_put.json")
    event["Records"][0]["body"] = event["Records"][0]["body"].replace(RAW, "someone-elses-bucket")
    assert _invoke(event) == {"batchItemFailures": []}
    assert aws.registry() == {}
