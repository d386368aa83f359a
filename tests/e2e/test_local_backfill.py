"""`sluice backfill` on the local stack: objects written while RawBucket's notifications were off (one
already processed and unchanged, one changed, two new, one hostile) found by the Distributed Map over
the bucket's listing, rechecked through the ingest queue, and agreeing with the registry and both indexes
afterwards, the Map Run's results exported to ProcessedBucket; a dry run that changes nothing; a stopped
run redriven that does nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.adapters.aws.sink_states import DynamoDBSinkStates, state_key
from sluice.pipeline.files import document_id, s3_uri
from sluice.sinks import SinkStatus
from sluice.sinks.knowledge_base import HOLD_KEY, MODE_HOLD
from sluice_cli.backfill import look
from sluice_local import emulators
from sluice_local.stack import LocalStack
from support.localcli import sluice_on

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK = "sluice-backfill"  # its own names: other modules' stacks may share this process's moto


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, state_dir=tmp_path_factory.mktemp("local"), stack_name=STACK) as running:
        yield running


def _status(stack: LocalStack, key: str) -> str | None:
    outputs = stack.outputs()
    doc = document_id(s3_uri(outputs["RawBucketName"], key))
    item = stack.client("dynamodb").get_item(TableName=outputs["DocumentsTableName"], Key={"doc_id": {"S": doc}})
    return item.get("Item", {}).get("status", {}).get("S")


def _settle(stack: LocalStack, expected: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_status(stack, key) == status for key, status in expected.items()):
            assert stack.wait_idle(timeout=60)
            return
        time.sleep(0.2)
    raise AssertionError({key: _status(stack, key) for key in expected})


def _notifications_off(stack: LocalStack) -> dict[str, Any]:
    """What S3 sends on RawBucket's writes, saved, then nothing (as a bucket whose notifications were
    never configured, or were lost)."""
    s3, raw = stack.client("s3"), stack.outputs()["RawBucketName"]
    saved = s3.get_bucket_notification_configuration(Bucket=raw)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={})
    return saved


def test_a_backfill_finds_what_was_written_while_notifications_were_off(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    s3 = stack.client("s3")
    for key in ("old/kept.md", "old/changed.md"):
        s3.put_object(Bucket=raw, Key=key, Body=f"# {key}\n\nThe harbour log of {key}.\n".encode())
    _settle(stack, {"old/kept.md": "PROCESSED", "old/changed.md": "PROCESSED"})
    saved = _notifications_off(stack)
    try:
        s3.put_object(Bucket=raw, Key="old/changed.md", Body=b"# Changed\n\nThe harbour log, amended at dusk.\n")
        s3.put_object(Bucket=raw, Key="old/new one.md", Body=b"# New\n\nTide tables for the north quay.\n")
        s3.put_object(Bucket=raw, Key="old/ne\u0301w two.txt", Body=b"Pilot boarding at the outer buoy.\n")
        s3.put_object(Bucket=raw, Key="old/hostile.pdf", Body=b"%PDF-1.7\n" + b"\x00\xff" * 400)
    finally:
        s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration=saved)
    assert stack.wait_idle(timeout=30)
    assert _status(stack, "old/new one.md") is None  # nothing announced them
    with sluice_on(stack) as sluice:
        dry = json.loads(sluice("backfill", "--local", "--prefix", "old/", "--dry-run", "--json").stdout)
        assert dry["status"] == "SUCCEEDED", dry
        assert (dry["progress"]["listed"], dry["progress"]["queued"], dry["progress"]["unchanged"]) == (5, 4, 1)
        assert dry["progress"]["found"] == {"unrecorded": 3, "stale": 1}
        assert stack.wait_idle(timeout=30)
        assert _status(stack, "old/new one.md") is None  # a dry run only counts

        done = json.loads(sluice("backfill", "--local", "--prefix", "old/", "--rate", "50", "--json").stdout)
        assert done["status"] == "SUCCEEDED", done
        assert (done["progress"]["listed"], done["progress"]["queued"], done["progress"]["unchanged"]) == (5, 4, 1)
        assert done["output"]["queued"] == 4  # the state machine's own summary
        # The children's outputs went to ProcessedBucket (the Map's ResultWriter), under its Map Run's id.
        sfn = stack.client("stepfunctions")
        (map_run,) = sfn.list_map_runs(executionArn=done["execution_arn"])["mapRuns"]
        manifest_key = f"backfill-results/{map_run['mapRunArn'].split(':')[-1]}/manifest.json"
        processed = stack.outputs()["ProcessedBucketName"]
        manifest = json.loads(s3.get_object(Bucket=processed, Key=manifest_key)["Body"].read())
        assert manifest["MapRunArn"] == map_run["mapRunArn"]
        _settle(
            stack,
            {
                "old/kept.md": "PROCESSED",
                "old/changed.md": "PROCESSED",
                "old/new one.md": "PROCESSED",
                "old/ne\u0301w two.txt": "PROCESSED",
                "old/hostile.pdf": "QUARANTINED",
            },
        )
        agreed = json.loads(sluice("reconcile", "--local", "--json").stdout)
        assert agreed["found"] == {}, agreed["examples"]  # RawBucket, registry, files and both indexes agree

        again = json.loads(sluice("backfill", "--local", "--prefix", "old/", "--json").stdout)
        assert (again["progress"]["queued"], again["progress"]["unchanged"]) == (0, 5)  # quarantined is recorded too

        status = sluice("status", "--local").stdout
        assert f"Backfill {again['run']}" in status and "listed 5" in status, status


def test_a_stopped_backfill_redriven_does_nothing_twice(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    s3 = stack.client("s3")
    saved = _notifications_off(stack)
    try:
        for n in range(3):
            s3.put_object(Bucket=raw, Key=f"stopped/{n}.md", Body=f"# Berth {n}\n\nBerth {n} is free.\n".encode())
    finally:
        s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration=saved)
    sfn = stack.client("stepfunctions")
    with sluice_on(stack) as sluice:
        # 3 rechecks at 20 a second with 40 children at once: the batch paces itself for 6 s once queued
        started = json.loads(
            sluice("backfill", "--local", "--prefix", "stopped/", "--rate", "20", "--no-wait", "--json").stdout
        )
        arn = started["execution_arn"]
        deadline = time.monotonic() + 60
        while not (look(stack.outputs(), stack.client, arn).progress or {}).get("batches"):
            assert time.monotonic() < deadline, "the batch was never recorded"
            time.sleep(0.2)
        sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped to test a redrive")
        _settle(stack, {f"stopped/{n}.md": "PROCESSED" for n in range(3)})
        stopped = sfn.describe_execution(executionArn=arn)
        assert stopped["status"] == "ABORTED"

        redriven = json.loads(sluice("backfill", "--local", "--redrive", arn, "--json").stdout)
        assert redriven["status"] == "SUCCEEDED", redriven
        assert redriven["progress"]["queued"] == 3 and redriven["progress"]["batches"] == 1  # not 6, not 2
        assert sfn.describe_execution(executionArn=arn)["redriveCount"] == 1


def test_a_backfill_can_hold_the_knowledge_base_in_ingestion_job_mode(stack: LocalStack) -> None:
    outputs = stack.outputs()
    raw, s3 = outputs["RawBucketName"], stack.client("s3")
    saved = _notifications_off(stack)
    try:
        for n in range(3):
            s3.put_object(
                Bucket=raw, Key=f"held/{n}.md", Body=f"# Mooring {n}\n\nMooring {n} takes a ketch.\n".encode()
            )
    finally:
        s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration=saved)
    start = len(emulators.read_calls(stack.emulator_dir))
    dynamodb = stack.client("dynamodb")
    try:
        with sluice_on(stack) as sluice:
            done = json.loads(
                sluice("backfill", "--local", "--prefix", "held/", "--kb-sync-mode", "ingestion-job", "--json").stdout
            )
            assert done["status"] == "SUCCEEDED", done
            _settle(stack, {f"held/{n}.md": "PROCESSED" for n in range(3)})
            states = DynamoDBSinkStates(dynamodb, outputs["DocumentsTableName"])
            docs = [document_id(s3_uri(raw, f"held/{n}.md")) for n in range(3)]
            assert {states.get("kb", d).status for d in docs} == {SinkStatus.INDEXED}  # type: ignore[union-attr]
            operations = [c["operation"] for c in emulators.read_calls(stack.emulator_dir)[start:]]
            # The chunks went by an ingestion job, though the stack's mode is direct.
            assert "StartIngestionJob" in operations and "IngestKnowledgeBaseDocuments" not in operations
            status = sluice("status", "--local").stdout
            assert f"sync mode: ingestion-job, held by backfill {done['run']}" in status, status
    finally:  # the other tests of this stack expect its own mode back at once
        dynamodb.delete_item(TableName=outputs["DocumentsTableName"], Key=state_key(MODE_HOLD, HOLD_KEY))
