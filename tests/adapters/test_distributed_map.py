"""Step Functions' Distributed Map on the local stack (``sluice_local.distributed_map``): small state
machines run by moto's interpreter in this process, with the local stack's patches, through real
clients. Children are Pass, Choice and Wait states, or a Lambda task answered in-process where a test
must see which batches ran. Concurrency is counted through a gate the test opens child by child,
not timed; the only clock is Express's time limit, shortened to let a child run past it."""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from sluice_local import distributed_map, emulators, moto_patches
from support.awsfixtures import finished_execution

BUCKET = "dmap-items"
ROLE = "arn:aws:iam::123456789012:role/local"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:batch"
LISTING = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": BUCKET, "Prefix.$": "$.prefix"}}
PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}}}
FAIL_ON_MARKER = {
    "StartAt": "Marker?",
    "States": {
        "Marker?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Key", "StringEquals": "docs/marker", "Next": "Refuse"}],
            "Default": "Done",
        },
        "Refuse": {"Type": "Fail", "Error": "Marker", "Cause": "the marker item"},
        "Done": {"Type": "Pass", "End": True},
    },
}
QUEUE_BATCH = {
    "StartAt": "QueueBatch",
    "States": {
        "QueueBatch": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": FUNCTION, "Payload.$": "$"},
            "ResultSelector": {},
            "End": True,
        }
    },
}


@dataclass
class Stack:
    s3: Any
    sfn: Any

    def machine(self, name: str, map_state: dict[str, Any], then: dict[str, Any] | None = None) -> str:
        states: dict[str, Any] = {"Map": {"Type": "Map", **map_state}}
        if then is not None:
            states["Map"]["Next"] = "Then"
            states["Then"] = then
        else:
            states["Map"]["End"] = True
        definition = json.dumps({"StartAt": "Map", "States": states})
        return str(self.sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"])

    def start(self, machine: str, payload: dict[str, Any], name: str = "run-1") -> str:
        return str(
            self.sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
        )

    def finished(self, execution: str) -> dict[str, Any]:
        return finished_execution(self.sfn, execution)

    def run(self, machine: str, payload: dict[str, Any], name: str = "run-1") -> dict[str, Any]:
        return self.finished(self.start(machine, payload, name))

    def map_run(self, execution: str) -> dict[str, Any]:
        (listed,) = self.sfn.list_map_runs(executionArn=execution)["mapRuns"]
        return dict(self.sfn.describe_map_run(mapRunArn=listed["mapRunArn"]))

    def events(self, execution: str) -> list[str]:
        return [e["type"] for e in self.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]]

    def put(self, *keys: str) -> None:
        """Objects whose body is their key, stored by moto's S3 directly (a thousand API calls would
        take seconds)."""
        from moto.s3.models import s3_backends

        backend = s3_backends["123456789012"]["aws"]
        for key in keys:
            backend.put_object(BUCKET, key, key.encode())


@pytest.fixture
def stack() -> Iterator[Stack]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        moto_patches.apply()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        try:
            yield Stack(s3, boto3.client("stepfunctions"))
        finally:
            emulators.uninstall()


def _distributed(processor: dict[str, Any], execution_type: str = "EXPRESS", **fields: Any) -> dict[str, Any]:
    config = {"Mode": "DISTRIBUTED", "ExecutionType": execution_type}
    return {"ItemProcessor": {"ProcessorConfig": config, **processor}, **fields}


@dataclass
class Gate:
    """Stands in for the children's Wait state: each child holds here until the test lets one go
    (or its execution stops), so the test counts children in flight without timing anything."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    holding: int = 0
    most: int = 0
    passes: int = 0

    def hold(self, env: Any) -> None:
        with self.changed:
            self.holding += 1
            self.most = max(self.most, self.holding)
            self.changed.notify_all()
            while self.passes == 0 and env.is_running():
                self.changed.wait(0.05)
            if self.passes:
                self.passes -= 1
            self.holding -= 1
            self.changed.notify_all()

    def until_holding(self, count: int, timeout: float = 30) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.holding == count and self.passes == 0, timeout):
                raise AssertionError(f"{self.holding} children held, expected {count}")

    def let_go(self, count: int = 1) -> None:
        with self.changed:
            self.passes += count
            self.changed.notify_all()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    held = Gate()
    monkeypatch.setattr(WaitFunction, "_wait_interval", lambda _, env, wait_seconds: held.hold(env))
    return held


@dataclass
class BatchFunction:
    """The children's Lambda: records the first key of each batch it is given, and fails a batch
    holding the poisoned key while ``poisoned`` is set."""

    poisoned: str | None = None
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        keys = [item["Key"] for item in event["Items"]]
        with self.lock:
            self.seen.append(keys[0])
        if self.poisoned in keys:
            raise RuntimeError(f"refused {self.poisoned}")
        return {"queued": len(keys)}

    def calls(self) -> list[str]:
        with self.lock:
            called, self.seen = self.seen, []
        return called


@pytest.fixture
def batch_function() -> BatchFunction:
    function = BatchFunction()
    emulators.route_lambda(lambda name: function if name == FUNCTION else None)
    return function


# -- definitions ---------------------------------------------------------------------------------


def test_the_definition_keeps_its_item_batcher_and_a_bad_one_is_refused(stack: Stack) -> None:
    batcher = {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$$.Execution.Name"}}
    machine = stack.machine("kept", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": batcher})
    stored = json.loads(stack.sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    assert stored["States"]["Map"]["ItemBatcher"] == batcher
    assert stored["States"]["Map"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"

    for bad, reason in [
        ({"MaxItemsPerBatch": 2, "MaxItemsPerBatchPath": "$.n"}, "not both"),
        ({"BatchInput": {"a": 1}}, "needs MaxItemsPerBatch"),
        ({"MaxItemsPerBatch": 0}, "positive integer"),
        ({"MaxInputBytesPerBatch": 300_000}, "at most 262144"),
        ({"MaxItems": 2}, "fields AWS does not define: MaxItems"),
    ]:
        with pytest.raises(ClientError) as refused:
            stack.machine("bad", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": bad})
        assert reason in refused.value.response["Error"]["Message"]  # moto's InvalidDefinition has no code
    inline = {"ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **PASS}, "ItemBatcher": {"MaxItemsPerBatch": 2}}
    with pytest.raises(ClientError, match="DISTRIBUTED mode"):
        stack.machine("inline", inline)


def test_a_result_writer_exports_the_map_run_and_its_writer_config_is_checked(stack: Stack) -> None:
    """With a ResultWriter the Map state's output is where the results went, not the children's
    outputs; the local stack writes the manifest (moto's), with no result files."""
    stack.put("docs/a", "docs/b", "docs/c")
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": BUCKET, "Prefix": "results/"},
        "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
    }
    batcher = {"MaxItemsPerBatch": 2}
    machine = stack.machine(
        "writes", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": batcher, "ResultWriter": writer}
    )
    stored = json.loads(stack.sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    assert stored["States"]["Map"]["ResultWriter"] == writer
    execution = stack.run(machine, {"prefix": "docs/"})
    assert execution["status"] == "SUCCEEDED", execution
    map_run = stack.map_run(execution["executionArn"])
    key = f"results/{map_run['mapRunArn'].split(':')[-1]}/manifest.json"
    assert json.loads(execution["output"]) == {
        "MapRunArn": map_run["mapRunArn"],
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": key},
    }
    manifest = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert (manifest["DestinationBucket"], manifest["MapRunArn"]) == (BUCKET, map_run["mapRunArn"])
    assert map_run["executionCounts"]["resultsWritten"] == 2

    for bad, reason in [
        ({"OutputType": "CSV"}, "OutputType is one of JSON, JSONL"),
        ({"Transformation": "compact"}, "Transformation is one of NONE, COMPACT, FLATTEN"),
        ({"Format": "JSON"}, "fields AWS does not define: Format"),
    ]:
        with pytest.raises(ClientError) as refused:
            stack.machine(
                "bad", {**_distributed(PASS), "ItemReader": LISTING, "ResultWriter": {**writer, "WriterConfig": bad}}
            )
        assert reason in refused.value.response["Error"]["Message"]


# -- items and batches ---------------------------------------------------------------------------


def test_batches_hold_at_most_max_items_and_the_batch_input(stack: Stack) -> None:
    stack.put(*(f"docs/{i:02}" for i in range(7)), "other/x")
    batcher = {"MaxItemsPerBatchPath": "$.batch_size", "BatchInput": {"run.$": "$$.Execution.Name", "rate.$": "$.rate"}}
    machine = stack.machine("batches", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": batcher})
    execution = stack.run(machine, {"prefix": "docs/", "batch_size": 3, "rate": 2.5})
    assert execution["status"] == "SUCCEEDED", execution
    children = json.loads(execution["output"])  # each Pass child echoes its input
    assert [[item["Key"] for item in child["Items"]] for child in children] == [
        ["docs/00", "docs/01", "docs/02"],
        ["docs/03", "docs/04", "docs/05"],
        ["docs/06"],
    ]
    assert all(child["BatchInput"] == {"run": "run-1", "rate": 2.5} for child in children)
    first = children[0]["Items"][0]
    assert set(first) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
    assert first["Size"] == len(b"docs/00") and first["StorageClass"] == "STANDARD"
    assert isinstance(first["LastModified"], int) and first["Etag"].startswith('"')
    counts = stack.map_run(execution["executionArn"])
    assert counts["itemCounts"]["succeeded"] == counts["itemCounts"]["total"] == 7
    assert counts["executionCounts"]["succeeded"] == counts["executionCounts"]["total"] == 3

    by_bytes = {"MaxInputBytesPerBatchPath": "$.bytes"}
    machine = stack.machine("by-bytes", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": by_bytes})
    two_items = len(json.dumps({"Items": children[0]["Items"][:2]}, separators=(",", ":")))
    execution = stack.run(machine, {"prefix": "docs/", "bytes": two_items}, name="run-2")
    assert execution["status"] == "SUCCEEDED", execution
    assert [len(child["Items"]) for child in json.loads(execution["output"])] == [2, 2, 2, 1]


def test_a_batch_is_cut_where_the_next_item_would_pass_the_byte_limit() -> None:
    items = [{"k": "x" * 10}] * 5
    shared = {"BatchInput": {"r": 1}}
    empty = len(json.dumps({**shared, "Items": []}, separators=(",", ":")))
    item = len(json.dumps(items[0], separators=(",", ":")))
    fits_two = empty + 2 * item + 1  # two items and the comma between them
    batches = distributed_map.batched(items, None, fits_two, shared)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert all(len(json.dumps({**shared, "Items": b}, separators=(",", ":"))) <= fits_two for b in batches)
    assert [len(b) for b in distributed_map.batched(items, 2, distributed_map.BATCH_BYTES, {})] == [2, 2, 1]
    with pytest.raises(ValueError, match="does not fit"):
        distributed_map.batched(items, None, empty + item - 1, shared)


def test_the_listing_reads_every_page_and_an_empty_prefix_gives_no_children(stack: Stack) -> None:
    stack.put(*(f"docs/{i:04}" for i in range(1_001)))  # S3 answers at most 1,000 keys a page
    batcher = {"MaxItemsPerBatch": 100}
    machine = stack.machine(
        "pages", {**_distributed(PASS), "ItemReader": LISTING, "ItemBatcher": batcher, "ResultPath": None}
    )
    execution = stack.run(machine, {"prefix": "docs/"})
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"prefix": "docs/"}  # ResultPath null: the input goes on
    counts = stack.map_run(execution["executionArn"])
    assert counts["itemCounts"]["total"] == counts["itemCounts"]["succeeded"] == 1_001
    assert counts["executionCounts"]["total"] == 11

    empty = stack.run(machine, {"prefix": "nothing/"}, name="run-2")
    assert empty["status"] == "SUCCEEDED", empty
    assert stack.map_run(empty["executionArn"])["itemCounts"]["total"] == 0


def _inventory(stack: Stack, rows: list[list[str]], schema: str, file_format: str = "CSV") -> dict[str, str]:
    """An S3 Inventory as S3 delivers it: manifest.json naming gzipped CSV data files."""
    keys = []
    for part, chunk in enumerate((rows[:2], rows[2:])):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL).writerows(chunk)
        key = f"inventory/{BUCKET}/daily/data/part-{part}.csv.gz"
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(text.getvalue().encode()))
        keys.append(key)
    manifest = {
        "sourceBucket": "source",
        "destinationBucket": f"arn:aws:s3:::{BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": "1668560400000",
        "fileFormat": file_format,
        "fileSchema": schema,
        "files": [{"key": key, "size": 1, "MD5checksum": "x"} for key in keys],
    }
    manifest_key = f"inventory/{BUCKET}/daily/2026-12-01T01-00Z/manifest.json"
    stack.s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())
    return {"bucket": BUCKET, "key": manifest_key}


def test_an_inventory_manifest_gives_one_item_a_row_keyed_by_its_file_schema(stack: Stack) -> None:
    rows = [["source", f"docs/{i}.md", str(10 + i), f"etag{i}"] for i in range(3)]
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "MANIFEST"},
        "Parameters": {"Bucket.$": "$.manifest.bucket", "Key.$": "$.manifest.key"},
    }
    batcher = {"MaxItemsPerBatch": 2}
    machine = stack.machine("inventory", {**_distributed(PASS), "ItemReader": reader, "ItemBatcher": batcher})
    execution = stack.run(machine, {"manifest": _inventory(stack, rows, "Bucket, Key, Size, ETag")})
    assert execution["status"] == "SUCCEEDED", execution
    items = [item for child in json.loads(execution["output"]) for item in child["Items"]]
    assert items == [
        {"Bucket": "source", "Key": f"docs/{i}.md", "Size": str(10 + i), "ETag": f"etag{i}"} for i in range(3)
    ]

    orc = stack.run(machine, {"manifest": _inventory(stack, rows, "Bucket, Key", "ORC")}, name="run-2")
    assert orc["status"] == "FAILED" and orc["error"] == "States.ItemReaderFailed"
    assert "fileFormat is 'ORC'" in orc["cause"]


# -- concurrency, failures, redrive, stop -------------------------------------------------------


def test_no_more_children_run_at_once_than_max_concurrency_even_when_it_is_updated(stack: Stack, gate: Gate) -> None:
    machine = stack.machine("budget", {**_distributed(WAIT), "ItemsPath": "$.items", "MaxConcurrencyPath": "$.most"})
    execution = stack.start(machine, {"items": list(range(7)), "most": 3})
    gate.until_holding(3)
    counts = stack.map_run(execution)["executionCounts"]
    assert (counts["running"], counts["pending"], counts["total"]) == (3, 4, 7)
    for _ in range(2):  # each child let go makes room for exactly one more
        gate.let_go()
        gate.until_holding(3)
    assert gate.most == 3

    stack.sfn.update_map_run(mapRunArn=stack.map_run(execution)["mapRunArn"], maxConcurrency=1)
    gate.let_go()
    gate.until_holding(2)  # no room yet: two still run against a budget of one
    gate.let_go()
    gate.until_holding(1)
    gate.let_go()
    gate.until_holding(1)  # the sixth child, alone
    gate.most = 1
    gate.let_go()
    gate.until_holding(1)
    gate.let_go()
    finished = stack.finished(execution)
    assert finished["status"] == "SUCCEEDED", finished
    assert json.loads(finished["output"]) == list(range(7))
    assert gate.most == 1


def test_a_failing_child_fails_the_execution_when_no_failure_is_tolerated(stack: Stack) -> None:
    stack.put("docs/a", "docs/marker", "docs/z")
    strict = stack.machine(
        "strict", {**_distributed(FAIL_ON_MARKER), "ItemReader": LISTING, "ToleratedFailurePercentage": 0}
    )
    execution = stack.run(strict, {"prefix": "docs/"})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.ExceedToleratedFailureThreshold"
    assert execution["cause"] == distributed_map.EXCEEDED
    map_run = stack.map_run(execution["executionArn"])
    assert map_run["status"] == "FAILED" and map_run["itemCounts"]["failed"] == 1
    assert {"MapRunFailed", "MapStateFailed", "ExecutionFailed"} <= set(stack.events(execution["executionArn"]))
    assert execution["redriveStatus"] == "REDRIVABLE" and execution["redriveCount"] == 0

    lenient = stack.machine(
        "lenient", {**_distributed(FAIL_ON_MARKER), "ItemReader": LISTING, "ToleratedFailurePercentage": 34}
    )
    tolerated = stack.run(lenient, {"prefix": "docs/"})  # 1 of 3 items is 33 %
    assert tolerated["status"] == "SUCCEEDED", tolerated
    assert [child and child["Key"] for child in json.loads(tolerated["output"])] == ["docs/a", None, "docs/z"]


def test_a_redrive_reruns_only_the_batches_that_did_not_succeed(stack: Stack, batch_function: BatchFunction) -> None:
    keys = [f"docs/{i:02}" for i in range(10)]
    stack.put(*keys)
    batch_function.poisoned = "docs/05"
    map_state = {
        **_distributed(QUEUE_BATCH),
        "ItemReader": LISTING,
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "MaxConcurrency": 2,
        "ToleratedFailurePercentage": 0,
        "ResultPath": None,
        "Label": "Backfill",
    }
    machine = stack.machine("redrive", map_state, then={"Type": "Pass", "Result": {"summary": "done"}, "End": True})
    failed = stack.run(machine, {"prefix": "docs/"})
    assert failed["status"] == "FAILED" and failed["error"] == "States.ExceedToleratedFailureThreshold"
    first = set(batch_function.calls())
    assert "docs/04" in first  # the batch [docs/04, docs/05] failed
    map_run = stack.map_run(failed["executionArn"])
    assert ":mapRun:redrive/Backfill:" in map_run["mapRunArn"]
    assert map_run["itemCounts"]["failed"] == 2 and map_run["redriveCount"] == 0

    batch_function.poisoned = None
    redriven = stack.sfn.redrive_execution(executionArn=failed["executionArn"])
    assert isinstance(redriven["redriveDate"], datetime.datetime)
    finished = stack.finished(failed["executionArn"])
    assert finished["status"] == "SUCCEEDED", finished
    assert json.loads(finished["output"]) == {"summary": "done"}
    second = batch_function.calls()
    succeeded_before = first - {"docs/04"}
    assert "docs/04" in second and not succeeded_before & set(second)
    assert first | set(second) == {f"docs/{i:02}" for i in range(0, 10, 2)}
    assert len(second) == len(set(second))

    assert finished["redriveCount"] == 1 and finished["redriveStatus"] == "NOT_REDRIVABLE"
    assert finished["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"
    (listed,) = stack.sfn.list_executions(stateMachineArn=machine)["executions"]
    assert listed["redriveCount"] == 1 and "redriveDate" in listed
    again = stack.map_run(failed["executionArn"])  # the same Map Run, redriven
    assert again["mapRunArn"] == map_run["mapRunArn"] and again["redriveCount"] == 1
    assert isinstance(again["redriveDate"], datetime.datetime)
    assert again["status"] == "SUCCEEDED" and again["itemCounts"]["succeeded"] == 10
    events = stack.events(failed["executionArn"])
    assert events.index("ExecutionRedriven") < events.index("MapRunRedriven") < events.index("ExecutionSucceeded")
    with pytest.raises(ClientError) as refused:
        stack.sfn.redrive_execution(executionArn=failed["executionArn"])
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"


def test_an_execution_is_redrivable_for_fourteen_days(stack: Stack) -> None:
    stack.put("docs/marker")
    machine = stack.machine("window", {**_distributed(FAIL_ON_MARKER), "ItemReader": LISTING})
    failed = stack.run(machine, {"prefix": "docs/"})
    assert failed["status"] == "FAILED" and failed["redriveStatus"] == "REDRIVABLE"
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    execution = stepfunctions_parser_backends["123456789012"]["us-east-1"].describe_execution(failed["executionArn"])
    execution.stop_date -= datetime.timedelta(days=14, seconds=1)
    described = stack.sfn.describe_execution(executionArn=failed["executionArn"])
    assert described["redriveStatus"] == "NOT_REDRIVABLE"
    assert described["redriveStatusReason"] == "Execution redrivable period exceeded"
    with pytest.raises(ClientError, match="redrivable period exceeded"):
        stack.sfn.redrive_execution(executionArn=failed["executionArn"])
    with pytest.raises(ClientError) as missing:
        stack.sfn.redrive_execution(executionArn=failed["executionArn"] + "-gone")
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"


def test_stopping_the_execution_aborts_its_map_run_and_a_redrive_finishes_it(stack: Stack, gate: Gate) -> None:
    machine = stack.machine(
        "stopped", {**_distributed(WAIT, "STANDARD"), "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": None}
    )
    execution = stack.start(machine, {"items": list(range(5))})
    gate.until_holding(2)
    gate.let_go()
    gate.until_holding(2)  # one child done, two held, two never started
    stack.sfn.stop_execution(executionArn=execution)
    stopped = stack.finished(execution)
    assert stopped["status"] == "ABORTED"
    aborted = stack.map_run(execution)
    assert aborted["status"] == "ABORTED"
    counts = aborted["executionCounts"]
    assert (counts["succeeded"], counts["aborted"], counts["pending"]) == (1, 2, 2)
    events = stack.events(execution)
    assert "MapRunAborted" in events and "MapStateSucceeded" not in events and events[-1] == "ExecutionAborted"

    stack.sfn.redrive_execution(executionArn=execution)
    gate.until_holding(2)
    gate.let_go(4)
    finished = stack.finished(execution)
    assert finished["status"] == "SUCCEEDED", finished
    redriven = stack.map_run(execution)
    assert redriven["executionCounts"]["succeeded"] == 5 and redriven["redriveCount"] == 1
    assert gate.most == 2


def test_an_express_child_that_runs_past_its_limit_times_out(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed_map, "EXPRESS_CHILD_SECONDS", 0.2)  # Express's 5 minutes, shortened
    machine = stack.machine("slow", {**_distributed(WAIT), "ItemsPath": "$.items"})
    execution = stack.run(machine, {"items": [1]})
    assert execution["status"] == "FAILED" and execution["error"] == "States.ExceedToleratedFailureThreshold"
    assert stack.map_run(execution["executionArn"])["itemCounts"]["timedOut"] == 1
