"""BackfillFunction's real handler, wired by the composition root, on moto: the three calls the backfill
state machine makes (plan, one call per child of the Distributed Map with its Items and BatchInput,
summary), with events shaped as Step Functions sends them, and the real ingest handler taking the
rechecks it queues."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from handlers.conftest import RAW, Aws, LambdaContext, emf_records, load_event, metric_values
from sluice.backfill import BackfillInputError
from sluice.bootstrap.backfill import run_status
from support.awsfixtures import create_connector_state_table
from support.handlers import load_handler

DOCS = {f"guides/{name}.md": f"# {name.title()}\n\nHow the {name} works.\n" for name in ("lock", "weir", "sluice")}


class Stack:
    """RawBucket, the registry and the ingest queue; the ingest and backfill handlers."""

    def __init__(self, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        self.queue = aws.sqs.create_queue(QueueName="ingest")["QueueUrl"]
        create_connector_state_table(aws.dynamodb, "state")
        for name, value in {"INGEST_QUEUE_URL": self.queue, "PROGRESS_TABLE": "state",
                            "INVENTORY_BUCKET": "inventories"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        self.ingest = load_handler("ingest_document")
        self.backfill = load_handler("queue_backfill")

    def put(self, key: str, body: str, *, notify: bool = True) -> None:
        self.aws.s3.put_object(Bucket=RAW, Key=key, Body=body.encode())
        if notify:
            record = {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": RAW}, "object": {"key": quote_plus(key)}},
            }
            self.aws.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps({"Records": [record]}))
            self.deliver()

    def messages(self) -> list[dict[str, Any]]:
        out = []
        while batch := self.aws.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            out += batch
        return out

    def deliver(self) -> list[dict[str, Any]]:
        """The ingest function takes every message on the queue; the bodies it took."""
        messages = self.messages()
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"} for m in messages]  # fmt: skip
        if records:
            assert self.ingest.lambda_handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
        for m in messages:
            self.aws.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    def listing(self) -> list[dict[str, Any]]:
        """RawBucket as the Map's ListObjectsV2 reader hands it out."""
        contents = self.aws.s3.list_objects_v2(Bucket=RAW).get("Contents", [])
        return [{"Etag": o["ETag"], "Key": o["Key"], "LastModified": int(o["LastModified"].timestamp()),
                 "Size": o["Size"], "StorageClass": o.get("StorageClass", "STANDARD")} for o in contents]  # fmt: skip

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(self.backfill.lambda_handler(event, LambdaContext()))

    def run(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """The state machine's run: Plan, the Map's children one after the other, Summarise."""
        plan = self.call({"action": "plan", "input": request, "execution": name})
        batch_input = {"run": plan["run"], "rate": plan["rate"], "dry_run": plan["dry_run"],
                       "concurrency": plan["max_concurrency"]}  # fmt: skip
        items = self.listing()
        for start in range(0, len(items), plan["batch_size"]):
            batch = {"Items": items[start : start + plan["batch_size"]], "BatchInput": batch_input}
            result = self.call({"action": "batch", "batch": batch})
            assert 0 <= result["wait_seconds"] <= 240
        return self.call({"action": "summary", "run": plan["run"]})


@pytest.fixture
def stack(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Stack:
    stack = Stack(aws, monkeypatch)
    for key, body in DOCS.items():
        stack.put(key, body)
    return stack


def _totals(summary: dict[str, Any]) -> dict[str, int]:
    return {k: summary[k] for k in ("listed", "queued", "unchanged", "skipped", "refused")}


def test_a_run_rechecks_what_was_written_without_notifications_and_the_next_finds_nothing(stack: Stack) -> None:
    stack.put("guides/unannounced.md", "# Unannounced\n\nNobody told Sluice.\n", notify=False)
    stack.put("guides/weir.md", "# Weir\n\nRewritten without a notification.\n", notify=False)
    stack.put("guides/lock.md.metadata.json", '{"metadataAttributes": {"team": "locks"}}', notify=False)

    summary = stack.run("run-1", {"rate": 50})

    assert _totals(summary) == {"listed": 5, "queued": 3, "unchanged": 1, "skipped": 1, "refused": 0}
    assert summary["found"] == {"unrecorded": 1, "stale": 2} and summary["dry_run"] is False
    taken = stack.deliver()  # the ingest function reads them again
    assert sorted(m["key"] for m in taken) == ["guides/lock.md", "guides/unannounced.md", "guides/weir.md"]
    assert {(m["sluice"], m["bucket"], m["trigger"]) for m in taken} == {("recheck", RAW, "backfill:run-1")}

    again = stack.run("run-2", {})
    assert _totals(again) == {"listed": 5, "queued": 0, "unchanged": 4, "skipped": 1, "refused": 0}
    assert stack.messages() == []


def test_the_sample_batch_queues_its_documents_once_and_reports_metrics(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("backfill_batch.json")
    first = stack.call(event)
    records = emf_records(capsys.readouterr().out)
    again = stack.call(event)  # the same child run again (a redriven Map Run)

    assert (first["queued"], first["skipped"], first["repeated"]) == (
        2,
        {"sidecar (checked with its document)": 1},
        False,
    )
    assert again["repeated"] and again["queued"] == 0
    assert sorted(json.loads(m["Body"])["key"] for m in stack.messages()) == [
        "guides/getting-started.md",
        "reports/My Report (2).md",
    ]
    assert metric_values(records, "BackfillListed", service="sluice") == [3]
    assert metric_values(records, "BackfillQueued", service="sluice") == [2]
    assert metric_values(records, "BackfillSkipped", service="sluice") == [1]
    assert emf_records(capsys.readouterr().out) == []  # nothing counted twice


def test_a_hostile_item_is_refused_and_logged_the_rest_of_its_batch_goes_on(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.put("guides/unannounced.md", "# Unannounced\n\nNobody told Sluice.\n", notify=False)
    items = [*stack.listing(), {"Key": "\udcff\n\x00" * 400, "Etag": '"0"'}, {"Key": 7}]
    batch = {"Items": items, "BatchInput": {"run": "r", "rate": 10, "dry_run": False, "concurrency": 40}}

    result = stack.call({"action": "batch", "batch": batch})

    assert result["refused"] == {"key not UTF-8": 1, "malformed item": 1} and result["queued"] == 1
    (logged,) = [r for r in caplog.records if r.getMessage() == "items refused"]
    assert logged.levelname == "WARNING" and len(logged.examples) == 2  # type: ignore[attr-defined]
    assert all(len(example) <= 200 for example in logged.examples)  # type: ignore[attr-defined]


def test_a_dry_run_queues_nothing_and_reports_what_it_would(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.put("guides/unannounced.md", "# Unannounced\n\nNobody told Sluice.\n", notify=False)
    summary = stack.run("dry", {"dry_run": True})
    assert summary["dry_run"] is True and (summary["queued"], summary["unchanged"]) == (1, 3)
    assert stack.messages() == []
    assert metric_values(emf_records(capsys.readouterr().out), "BackfillQueued", service="sluice") == []


def test_a_wrong_input_fails_the_plan_with_every_problem_named(stack: Stack) -> None:
    with pytest.raises(BackfillInputError) as raised:
        stack.call({"action": "plan", "input": {"rate": -1, "manifest": {"bucket": "other", "key": "m.json"}},
                    "execution": "bad"})  # fmt: skip
    assert len(raised.value.problems) == 3, raised.value.problems
    assert stack.aws.dynamodb.scan(TableName="state")["Items"] == []  # no run recorded


def test_an_unknown_action_or_a_batch_without_items_is_refused(stack: Stack) -> None:
    for event in ({"action": "sweep"}, {"action": "batch", "batch": {"Items": []}}):
        with pytest.raises(BackfillInputError):
            stack.call(event)


def test_an_inventory_plan_reads_the_stacks_inventory_bucket_only(stack: Stack) -> None:
    key = f"inventory/{RAW}/all/2027-01-01T00-00Z/manifest.json"
    plan = stack.call(
        {"action": "plan", "input": {"manifest": {"bucket": "inventories", "key": key}}, "execution": "i"}
    )
    assert plan["manifest"] == {"bucket": "inventories", "key": key} and plan["prefix"] == ""


def test_the_status_of_a_run_counts_what_the_ingest_function_did_since_it_started(stack: Stack) -> None:
    stack.put("guides/unannounced.md", "# Unannounced\n\nNobody told Sluice.\n", notify=False)
    stack.put("data/broken.json", '{"tides": [1, 2,', notify=False)
    stack.run("run-1", {})
    stack.deliver()

    status = run_status(stack.aws.dynamodb, progress_table="state", documents_table="documents", run="run-1")

    assert status is not None and status.progress.counts.queued == 2
    assert (status.processed, status.quarantined) == (1, 1)  # the three from before the run are not counted
    assert run_status(stack.aws.dynamodb, progress_table="state", documents_table="documents", run="none") is None
