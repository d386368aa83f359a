"""The real handler, wired by the composition root (sluice.bootstrap) from environment variables, against moto's
in-process AWS (S3, SQS, DynamoDB, EventBridge)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from support.awsfixtures import create_documents_table

ROOT = Path(__file__).resolve().parents[2]
RAW = "sluice-raw-example"  # the bucket the files in events/ name
PROCESSED = "sluice-processed-test"
KB, DS, INDEX = "LOCALKB001", "LOCALDS001", "10ca1000-0000-4000-8000-000000000001"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


def emf_records(output: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric-format records a handler printed (JSON lines with ``_aws``)."""
    records = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            if isinstance(record, dict) and "_aws" in record:
                records.append(record)
    return records


def metric_values(records: list[dict[str, Any]], name: str, **dimensions: str) -> list[float]:
    """Every value CloudWatch would take for metric ``name`` with exactly these dimensions."""
    values: list[float] = []
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            if name not in {m["Name"] for m in directive["Metrics"]}:
                continue
            for dimension_set in directive["Dimensions"]:
                if set(dimension_set) == set(dimensions) and all(record[k] == v for k, v in dimensions.items()):
                    value = record[name]
                    values += value if isinstance(value, list) else [value]
    return values


def metric_units(records: list[dict[str, Any]]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


class LambdaContext:
    function_name = "IngestDocumentFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:IngestDocumentFunction"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass
class Aws:
    s3: Any
    dynamodb: Any
    sqs: Any
    tap_url: str

    def events(self) -> list[dict[str, Any]]:
        """Events the handler published on the bus (copied to a queue by a catch-all rule)."""
        out = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=m["ReceiptHandle"])

    def registry(self) -> dict[str, dict[str, Any]]:
        items = self.dynamodb.scan(TableName="documents")["Items"]
        return {i["key"]["S"]: i for i in items if "status" in i}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (RAW, PROCESSED):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
        ddb = boto3.client("dynamodb")
        create_documents_table(ddb, "documents")
        ddb.create_table(
            TableName="idempotency",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )
        events = boto3.client("events")
        events.create_event_bus(Name="documents")
        sqs = boto3.client("sqs")
        tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
        events.put_rule(Name="tap", EventBusName="documents", EventPattern=json.dumps({"source": ["sluice.ingest"]}))
        events.put_targets(
            Rule="tap",
            EventBusName="documents",
            Targets=[{"Id": "tap", "Arn": "arn:aws:sqs:us-east-1:123456789012:tap"}],
        )
        for name, value in {
            "RAW_BUCKET": RAW,
            "PROCESSED_BUCKET": PROCESSED,
            "DOCUMENTS_TABLE": "documents",
            "IDEMPOTENCY_TABLE": "idempotency",
            "EVENT_BUS_NAME": "documents",
            "POWERTOOLS_SERVICE_NAME": "sluice",
            "POWERTOOLS_METRICS_NAMESPACE": "Sluice",
        }.items():
            monkeypatch.setenv(name, value)
        yield Aws(s3, ddb, sqs, tap)


@pytest.fixture
def emulated(aws: Aws, tmp_path: Path) -> Iterator[Path]:
    """The local stack's Bedrock and Kendra emulators, reading chunks from moto's S3."""
    from sluice_local import emulators

    emulator = emulators.install(tmp_path / "emulators", s3=aws.s3)
    emulator.create_data_source(KB, DS, PROCESSED, "chunks/")
    emulator.create_index(INDEX, emulators.LOCAL_KENDRA_FIELDS)
    yield tmp_path / "emulators"
    emulators.uninstall()
