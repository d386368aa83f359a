"""Step Functions' Distributed Map on the local stack, as AWS documents it, where moto's interpreter
(5.2.5) falls short: its grammar has no ``ItemBatcher``, no Express child workflows, no S3 Inventory
reader, no ``WriterConfig`` in a ``ResultWriter`` and no integer ``ToleratedFailurePercentage``; its
S3 listing reads one page and fails on an empty one; it ignores the tolerated failure threshold (a
failing child never fails the Map Run) and miscounts its children; it has no RedriveExecution.
What the local stack does instead, with the AWS pages it follows, is in docs/architecture.md ("Step
Functions' Distributed Map on the local stack").

moto parses a definition with its ANTLR grammar when a state machine is created and when each
execution starts. ``_prepare`` takes out of every Distributed Map state what the grammar cannot hold
(it is kept on the parsed state, ``MapSpec``) just before moto parses, so the definition stored and
returned by DescribeStateMachine is the one given. The Map Run itself (items read, batched, children
run under a concurrency budget, outcomes counted, the threshold applied) replaces moto's
``DistributedIterationComponent._eval_body``; each Map Run keeps its children's outcomes
(``MapRun``) on moto's Map Run record, for DescribeMapRun and for a redrive, which reruns only the
children that did not succeed.

Applied by ``moto_patches.apply()``, in the process that runs the moto server; dev-only.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import gzip
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

LOG = logging.getLogger(__name__)

EXPRESS_CHILD_SECONDS: float = 300
"""An Express workflow's longest run; a child that runs longer times out
(https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html)."""
BATCH_BYTES = 262_144
"""A batch's most bytes, and the default when only MaxItemsPerBatch is given (256 KiB,
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html)."""
CONCURRENCY_LIMIT = 10_000
"""Children at once when MaxConcurrency is 0 or absent
(https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html)."""
REDRIVABLE_PERIOD = datetime.timedelta(days=14)
HISTORY_EVENT_LIMIT = 25_000
MAP_RUN_REDRIVE_LIMIT = 1_000
"""Redrive limits (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html,
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html)."""
EXCEEDED = "The specified tolerated failure threshold was exceeded"
POLL_SECONDS = 0.1
"""How often a Map Run waiting for a free slot looks whether its execution was stopped (a stop does
not signal the Map Run's condition)."""

PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "ABORTED",
)
_SPEC = "_sluice_map_spec"  # on moto's parsed item processor
_RUN = "_sluice_map_run"  # on moto's Map Run record
_REDRIVE_STATES = "_sluice_redrive_states"  # on an execution's Map Run pool: the states a redrive resumes
_REDRIVES = "_sluice_redrives"  # on moto's execution
_BATCHER_FIELDS = ("MaxItemsPerBatch", "MaxInputBytesPerBatch")
_WRITER_CONFIG = {"Transformation": ("NONE", "COMPACT", "FLATTEN"), "OutputType": ("JSON", "JSONL")}
_THRESHOLDS = {
    "ToleratedFailureCount": "count",
    "ToleratedFailureCountPath": "count",
    "ToleratedFailurePercentage": "percentage",
    "ToleratedFailurePercentagePath": "percentage",
}
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _patch_parser()
    _patch_map_runs()
    _patch_api()
    # It warns at every parse that tolerated failure thresholds have no effect; here they have.
    logging.getLogger("moto.stepfunctions.parser.asl.parse.preprocessor").setLevel(logging.ERROR)
    _applied = True


# -- definitions ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MapSpec:
    """What one Distributed Map state declares beyond moto's grammar."""

    batcher: Any = None  # moto's payload template of the ItemBatcher's fields, evaluated on the state's input
    express: bool = False
    inventory: bool = False
    thresholds: frozenset[str] = frozenset()  # "count", "percentage": the tolerated failure fields declared
    writes_results: bool = False


@dataclasses.dataclass(frozen=True)
class _Taken:
    spec: MapSpec
    batcher: dict[str, Any] | None


def _prepare(definition: str) -> tuple[str, dict[str, _Taken]]:
    """The definition as moto's grammar takes it, and by state name what was taken out of each
    Distributed Map state. A definition that is not JSON, or has no Distributed Map, is unchanged
    (moto reports what is wrong with it)."""
    try:
        document = json.loads(definition)
    except ValueError:
        return definition, {}
    if not isinstance(document, dict) or not isinstance(document.get("States"), dict):
        return definition, {}
    taken: dict[str, _Taken] = {}
    for name, state, language in _map_states(document["States"], str(document.get("QueryLanguage", "JSONPath"))):
        found = _take(name, state, language)
        if found is not None:
            taken[name] = found
    return (json.dumps(document) if taken else definition), taken


def _map_states(states: dict[str, Any], language: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        own = str(state.get("QueryLanguage", language))
        if state.get("Type") == "Map":
            yield name, state, own
        for branch in state.get("Branches", []) if isinstance(state.get("Branches"), list) else []:
            if isinstance(branch, dict) and isinstance(branch.get("States"), dict):
                yield from _map_states(branch["States"], str(branch.get("QueryLanguage", own)))
        for key in ("ItemProcessor", "Iterator"):
            processor = state.get(key)
            if isinstance(processor, dict) and isinstance(processor.get("States"), dict):
                yield from _map_states(processor["States"], str(processor.get("QueryLanguage", own)))


def _take(name: str, state: dict[str, Any], language: str) -> _Taken | None:
    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
    config = processor.get("ProcessorConfig") if isinstance(processor, dict) else None
    distributed = isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED"
    if not distributed:
        if "ItemBatcher" in state:
            raise ValueError(f"State {name}: ItemBatcher is a field of a Map state in DISTRIBUTED mode")
        return None
    assert isinstance(config, dict)
    batcher = state.pop("ItemBatcher", None)
    if batcher is not None:
        _check_batcher(name, batcher, language)
    express = config.get("ExecutionType") == "EXPRESS"
    if express:
        config["ExecutionType"] = "STANDARD"
    reader = state.get("ItemReader")
    reader_config = reader.get("ReaderConfig") if isinstance(reader, dict) else None
    inventory = isinstance(reader_config, dict) and (
        reader_config.get("InputType") == "MANIFEST" or reader_config.get("ManifestType") == "S3_INVENTORY"
    )
    if inventory:
        assert isinstance(reader_config, dict)
        reader_config.pop("ManifestType", None)
        reader_config["InputType"] = "JSON"  # moto reads MaxItems from it; the manifest is read here
    percentage = state.get("ToleratedFailurePercentage")
    if isinstance(percentage, int) and not isinstance(percentage, bool):
        state["ToleratedFailurePercentage"] = float(percentage)  # moto's grammar takes decimals only
    writer = state.get("ResultWriter")
    if isinstance(writer, dict) and "WriterConfig" in writer:
        _check_writer_config(name, writer.pop("WriterConfig"))
        if not writer:  # a WriterConfig alone formats the state's output and exports nothing
            del state["ResultWriter"]
    spec = MapSpec(
        express=express,
        inventory=inventory,
        thresholds=frozenset(kind for field, kind in _THRESHOLDS.items() if field in state),
        writes_results=isinstance(writer, dict) and "Resource" in writer,
    )
    return _Taken(spec, batcher)


def _check_batcher(name: str, batcher: Any, language: str) -> None:
    """The ItemBatcher fields AWS documents: MaxItemsPerBatch(Path), MaxInputBytesPerBatch(Path) (a
    value or a path, not both; at least one of the two limits) and BatchInput
    (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html)."""
    where = f"State {name}: ItemBatcher"
    if language != "JSONPath":
        raise ValueError(f"{where}: the local stack reads ItemBatcher in JSONPath states only")
    if not isinstance(batcher, dict):
        raise ValueError(f"{where} must be an object")
    known = {*_BATCHER_FIELDS, *(f"{field}Path" for field in _BATCHER_FIELDS), "BatchInput"}
    unknown = sorted(set(batcher) - known)
    if unknown:
        raise ValueError(f"{where} has fields AWS does not define: {', '.join(unknown)}")
    for field in _BATCHER_FIELDS:
        if field in batcher and f"{field}Path" in batcher:
            raise ValueError(f"{where}: give {field} or {field}Path, not both")
        value = batcher.get(field)
        if field in batcher and not _positive_int(value):
            raise ValueError(f"{where}: {field} must be a positive integer, got {value!r}")
        path = batcher.get(f"{field}Path")
        if f"{field}Path" in batcher and not (isinstance(path, str) and path.startswith("$")):
            raise ValueError(f"{where}: {field}Path must be a reference path, got {path!r}")
    if batcher.get("MaxInputBytesPerBatch", 0) > BATCH_BYTES:
        raise ValueError(f"{where}: MaxInputBytesPerBatch is at most {BATCH_BYTES} (256 KiB)")
    if not any(field in batcher or f"{field}Path" in batcher for field in _BATCHER_FIELDS):
        raise ValueError(f"{where} needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)")


def _check_writer_config(name: str, config: Any) -> None:
    """A ResultWriter's WriterConfig: Transformation and OutputType, with the values AWS documents
    (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html). moto's
    grammar has no WriterConfig; it is checked here and taken out (the local stack writes no result
    files for it to format)."""
    where = f"State {name}: ResultWriter's WriterConfig"
    if not isinstance(config, dict):
        raise ValueError(f"{where} must be an object")
    unknown = sorted(set(config) - set(_WRITER_CONFIG))
    if unknown:
        raise ValueError(f"{where} has fields AWS does not define: {', '.join(unknown)}")
    for field, values in _WRITER_CONFIG.items():
        if field in config and config[field] not in values:
            raise ValueError(f"{where}: {field} is one of {', '.join(values)}, got {config[field]!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _patch_parser() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        prepared, taken = _prepare(definition)
        program: Any
        program, tree = original(prepared)
        if taken:
            for state in _parsed_states(program.states.states):
                found = taken.get(state.name)
                if found is not None and hasattr(state, "iteration_component"):
                    batcher = _compile_batcher(found.batcher, original) if found.batcher is not None else None
                    setattr(state.iteration_component, _SPEC, dataclasses.replace(found.spec, batcher=batcher))
        return program, tree

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]


def _parsed_states(states: dict[str, Any]) -> Iterator[Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import StateParallel

    for state in states.values():
        yield state
        if isinstance(state, StateMap):
            yield from _parsed_states(state.iteration_component._states.states)
        elif isinstance(state, StateParallel):
            for branch in state.branches.programs:
                yield from _parsed_states(branch.states.states)


def _compile_batcher(batcher: dict[str, Any], parse: Callable[[str], tuple[Any, Any]]) -> Any:
    """The ItemBatcher's fields as one payload template ({"MaxItemsPerBatch.$": path, "BatchInput":
    {...}}), compiled by moto's own parser so paths, the context object and intrinsic functions
    behave as in any Parameters."""
    template: dict[str, Any] = {}
    for field in _BATCHER_FIELDS:
        if field in batcher:
            template[field] = batcher[field]
        if f"{field}Path" in batcher:
            template[f"{field}.$"] = batcher[f"{field}Path"]
    if "BatchInput" in batcher:
        template["BatchInput"] = batcher["BatchInput"]
    state = {"Type": "Pass", "Parameters": template, "End": True}
    program, _ = parse(json.dumps({"StartAt": "ItemBatcher", "States": {"ItemBatcher": state}}))
    return program.states.states["ItemBatcher"].parameters


# -- Map Runs ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Child:
    """One child workflow execution: its input (an item, or a batch) and how it ended."""

    index: int
    input: Any
    items: int
    status: str = PENDING
    output: Any = None
    redriven: bool = False
    frame: Any = None  # while it runs


class MapRun:
    """A Map Run's children and their outcomes, counted as DescribeMapRun reports them: executions
    and the items they carry (https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeMapRun.html)."""

    def __init__(self, record: Any, state_name: str, spec: MapSpec) -> None:
        self.record = record
        self.state_name = state_name
        self.spec = spec
        self.children: list[Child] = []
        self.redrive_count = 0
        self.redrive_date: datetime.datetime | None = None
        self.changed = threading.Condition()
        self._executions: collections.Counter[str] = collections.Counter()
        self._items: collections.Counter[str] = collections.Counter()

    def add(self, inputs: list[tuple[Any, int]]) -> None:
        with self.changed:
            self.children = [Child(index, value, items) for index, (value, items) in enumerate(inputs)]
            self._executions = collections.Counter({PENDING: len(self.children)})
            self._items = collections.Counter({PENDING: sum(child.items for child in self.children)})

    def set(self, child: Child, status: str) -> None:
        """Under ``changed``."""
        self._executions[child.status] -= 1
        self._items[child.status] -= child.items
        child.status = status
        self._executions[status] += 1
        self._items[status] += child.items
        self.changed.notify_all()

    def running(self) -> int:
        return self._executions[RUNNING]

    def exceeded(self) -> bool:
        """Whether failed and timed-out items pass the tolerated threshold: a count, a percentage
        of all items, either when both are declared (or set by UpdateMapRun); any failure when
        neither is
        (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html#maprun-fail-threshold)."""
        failed = self._items[FAILED] + self._items[TIMED_OUT]
        if failed == 0:
            return False
        total = sum(self._items.values())
        count, percentage = self.record.tolerated_failure_count, self.record.tolerated_failure_percentage
        over = []
        if "count" in self.spec.thresholds or count:
            over.append(failed > count)
        if "percentage" in self.spec.thresholds or percentage:
            over.append(failed * 100 > percentage * total)
        return any(over) if over else True

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        with self.changed:
            redriving = self.record.status == "RUNNING"
            waiting = [c for c in self.children if c.redriven and c.status == PENDING] if redriving else []
            return (
                self._shaped(self._items, sum(c.items for c in waiting)),
                self._shaped(self._executions, len(waiting)),
            )

    def _shaped(self, counter: collections.Counter[str], pending_redrive: int) -> dict[str, int]:
        return {
            "pending": counter[PENDING],
            "running": counter[RUNNING],
            "succeeded": counter[SUCCEEDED],
            "failed": counter[FAILED],
            "timedOut": counter[TIMED_OUT],
            "aborted": counter[ABORTED],
            "total": sum(counter.values()),
            "resultsWritten": counter[SUCCEEDED] if self.spec.writes_results else 0,
            "failuresNotRedrivable": 0,
            "pendingRedrive": pending_redrive,
        }


def _patch_map_runs() -> None:
    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record import (
        MapRunRecord,
    )

    original_describe = MapRunRecord.describe

    def describe(self: Any) -> Any:
        output: dict[str, Any] = dict(original_describe(self))
        run: MapRun | None = getattr(self, _RUN, None)
        if run is not None:
            output["itemCounts"], output["executionCounts"] = run.counts()
            output["redriveCount"] = run.redrive_count
            if run.redrive_date is not None:
                output["redriveDate"] = iso_8601_datetime_with_milliseconds(run.redrive_date)
        return output

    MapRunRecord.describe = describe  # type: ignore[method-assign]
    DistributedIterationComponent._eval_body = _eval_map_run  # type: ignore[method-assign,assignment]


def _eval_map_run(component: Any, env: Any) -> None:
    """A Distributed Map's Map Run, started or redriven; the state's input is on the stack under
    moto's evaluation input. Pushes the children's outputs (in item order; null for a child that
    did not succeed within the tolerated threshold, where AWS documents nothing)."""
    eval_input = env.stack.pop()
    spec: MapSpec = getattr(component, _SPEC, None) or MapSpec()
    run = _redriven(env, eval_input) or _started(env, eval_input, spec)
    outcome = _run_children(component, env, run)
    record = run.record
    if outcome == SUCCEEDED:
        _event(env, "MapRunSucceeded")
        record.set_stop(status="SUCCEEDED")
        env.stack.append([child.output for child in run.children])
    elif outcome == FAILED:
        failure = _failure(env, "States.ExceedToleratedFailureThreshold", EXCEEDED)
        _map_run_failed(env, run, failure)
        raise failure
    else:  # the execution was stopped (or timed out): the Map Run is aborted
        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

        _event(env, "MapRunAborted")
        record.set_stop(status="ABORTED")
        env.event_manager = EventManager()  # moto would record the Map state as succeeded; it was not
        env.stack.append([])


def _started(env: Any, eval_input: Any, spec: MapSpec) -> MapRun:
    from moto.stepfunctions.parser.api import MapRunStartedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException

    record = eval_input.map_run_record
    run = MapRun(record, eval_input.state_name, spec)
    setattr(record, _RUN, run)
    _event(env, "MapRunStarted", mapRunStartedEventDetails=MapRunStartedEventDetails(mapRunArn=record.map_run_arn))
    try:
        run.add(_child_inputs(env, eval_input, spec))
    except FailureEventException as failure:
        _map_run_failed(env, run, failure)
        raise
    return run


def _redriven(env: Any, eval_input: Any) -> MapRun | None:
    """The Map Run a redrive resumes: the last one of this state, if the redrive restarts this state
    and that Map Run had started its children (one that failed reading its items is started anew,
    https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html). It waits for its
    children still running (Express children run to their end when a Map Run stops), then its
    children that did not succeed are pending again."""
    from moto.stepfunctions.parser.api import MapRunRedrivenEventDetails

    pool = env.map_run_record_pool_manager
    resumed: set[str] = getattr(pool, _REDRIVE_STATES, set())
    if eval_input.state_name not in resumed:
        return None
    resumed.discard(eval_input.state_name)
    runs: list[MapRun | None] = [getattr(record, _RUN, None) for record in pool.get_all()]
    run = next((r for r in reversed(runs) if r is not None and r.state_name == eval_input.state_name), None)
    if run is None or not run.children:
        return None
    fresh = eval_input.map_run_record
    if run.redrive_count >= MAP_RUN_REDRIVE_LIMIT:
        fresh.set_stop(status="FAILED")
        raise _failure(env, "States.Runtime", f"The Map Run was redriven {MAP_RUN_REDRIVE_LIMIT} times, AWS's limit")
    pool._pool.pop(fresh.map_run_arn, None)  # the record moto made for this attempt: the old one goes on
    record = run.record
    record.max_concurrency = fresh.max_concurrency
    record.tolerated_failure_count = fresh.tolerated_failure_count
    record.tolerated_failure_percentage = fresh.tolerated_failure_percentage
    with run.changed:
        run.changed.wait_for(lambda: run.running() == 0)
        record.status, record.stop_date = "RUNNING", None
        run.redrive_count += 1
        run.redrive_date = datetime.datetime.now(tz=datetime.UTC)
        for child in run.children:
            if child.status != SUCCEEDED:
                child.redriven, child.output = True, None
                run.set(child, PENDING)
    details = MapRunRedrivenEventDetails(mapRunArn=record.map_run_arn, redriveCount=run.redrive_count)
    _event(env, "MapRunRedriven", mapRunRedrivenEventDetails=details)
    return run


def _child_inputs(env: Any, eval_input: Any, spec: MapSpec) -> list[tuple[Any, int]]:
    """Each child's input and the items it carries: the items (read by the ItemReader, or the
    state's input items), each through ItemSelector, then, with an ItemBatcher, grouped in order as
    ``{"BatchInput": ..., "Items": [...]}``
    (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html)."""
    map_input = env.stack[-1]
    items = _read_items(env, eval_input.item_reader, spec) if eval_input.item_reader else eval_input.input_items
    selector = eval_input.item_selector or eval_input.parameters
    if selector is not None:
        items = [_select(env, selector, index, item, map_input) for index, item in enumerate(items)]
    if spec.batcher is None:
        return [(item, 1) for item in items]
    spec.batcher.eval(env)
    settings = env.stack.pop()
    most = settings.get("MaxItemsPerBatch")
    most_bytes = settings.get("MaxInputBytesPerBatch", BATCH_BYTES)
    for field, value in (("MaxItemsPerBatch", most), ("MaxInputBytesPerBatch", most_bytes)):
        if value is not None and not _positive_int(value):
            raise _failure(env, "States.Runtime", f"ItemBatcher's {field} must be a positive integer, got {value!r}")
    if most_bytes > BATCH_BYTES:
        raise _failure(env, "States.Runtime", f"ItemBatcher's MaxInputBytesPerBatch is at most {BATCH_BYTES}")
    shared = {"BatchInput": settings["BatchInput"]} if "BatchInput" in settings else {}
    try:
        batches = batched(items, most, most_bytes, shared)
    except ValueError as too_large:
        raise _failure(env, "States.DataLimitExceeded", str(too_large)) from None
    return [({**shared, "Items": batch}, len(batch)) for batch in batches]


def batched(items: list[Any], most: int | None, most_bytes: int, shared: dict[str, Any]) -> list[list[Any]]:
    """Items in order, in batches of at most ``most`` items whose child input (``shared`` and the
    ``Items``, as compact JSON) is at most ``most_bytes``. Raises ValueError for an item that fits
    no batch."""
    empty = len(_json({**shared, "Items": []}))
    batches: list[list[Any]] = []
    batch: list[Any] = []
    size = empty
    for item in items:
        item_bytes = len(_json(item))
        if batch and (len(batch) == most or size + 1 + item_bytes > most_bytes):
            batches.append(batch)
            batch, size = [], empty
        if size + item_bytes > most_bytes:
            raise ValueError(f"An item of {item_bytes} bytes does not fit a batch of at most {most_bytes} bytes")
        size += item_bytes + (1 if batch else 0)
        batch.append(item)
    if batch:
        batches.append(batch)
    return batches


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _select(env: Any, selector: Any, index: int, item: Any, map_input: Any) -> Any:
    """ItemSelector (or Parameters) for one item, as moto evaluates it: on the state's input, with
    the item in the context object's ``Map.Item``."""
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

    frame = env.open_inner_frame()
    try:
        frame.states.context_object.context_object_data["Map"] = MapData(Item=ItemData(Index=index, Value=item))
        frame.states.reset(input_value=map_input)
        frame.stack.append(map_input)
        selector.eval(frame)
        return frame.stack.pop()
    finally:
        env.delete_frame(frame)


def _read_items(env: Any, reader: Any, spec: MapSpec) -> list[Any]:
    """The ItemReader's items. S3 listings and S3 Inventory manifests are read here; other readers
    (a CSV or JSON object) are moto's. A failure to read is ``States.ItemReaderFailed``."""
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    action = getattr(reader.resource, "api_action", "")
    if action != "listObjectsV2" and not spec.inventory:
        reader.eval(env=env)
        return list(env.stack.pop())
    most = None
    if reader.reader_config is not None:
        reader.reader_config.eval(env=env)
        most = env.stack.pop()["MaxItemsValue"]
    if reader.parargs is not None:
        reader.parargs.eval(env=env)
        parameters = env.stack.pop()
    else:
        parameters = {}
    client = boto_client_for(region=env.aws_execution_details.region, service="s3")
    try:
        items = _s3_inventory(client, parameters) if spec.inventory else _s3_listing(client, parameters)
    except Exception as error:  # noqa: BLE001 - any failure to read is the reader's, as on AWS
        raise _failure(env, "States.ItemReaderFailed", f"{type(error).__name__}: {error}") from None
    return items[:most] if most is not None else items


def _s3_listing(client: Any, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of ListObjectsV2 (an empty prefix gives no items), each object as Step Functions
    passes it to a child: ``Etag``, ``Key``, ``LastModified`` (epoch seconds), ``Size``,
    ``StorageClass`` (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html)."""
    items: list[dict[str, Any]] = []
    request = dict(parameters)
    while True:
        page = client.list_objects_v2(**request)
        items += [
            {
                "Etag": entry["ETag"],
                "Key": entry["Key"],
                "LastModified": int(entry["LastModified"].timestamp()),
                "Size": entry["Size"],
                "StorageClass": entry.get("StorageClass", "STANDARD"),
            }
            for entry in page.get("Contents", [])
        ]
        if not page.get("IsTruncated"):
            return items
        request["ContinuationToken"] = page["NextContinuationToken"]


def _s3_inventory(client: Any, parameters: dict[str, Any]) -> list[dict[str, str]]:
    """The objects an S3 Inventory lists: its manifest.json names the CSV data files (gzipped, in
    the destination bucket) and their columns (``fileSchema``); each row is an item keyed by those
    names, every value a string as in the file
    (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html)."""
    manifest = json.loads(client.get_object(**parameters)["Body"].read())
    if manifest.get("fileFormat") != "CSV":
        raise ValueError(f"the inventory's fileFormat is {manifest.get('fileFormat')!r}: Step Functions reads CSV")
    fields = [name.strip() for name in str(manifest["fileSchema"]).split(",")]
    destination = str(manifest.get("destinationBucket") or parameters["Bucket"])
    bucket = destination.removeprefix("arn:aws:s3:::")
    items: list[dict[str, str]] = []
    for file in manifest["files"]:
        data = client.get_object(Bucket=bucket, Key=file["key"])["Body"].read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        for row in csv.reader(io.StringIO(data.decode("utf-8"))):
            if row:  # fewer fields than the schema are empty strings; more are left out, as AWS reads CSV
                items.append({name: row[i] if i < len(row) else "" for i, name in enumerate(fields)})
    return items


def _run_children(component: Any, env: Any, run: MapRun) -> str:
    """Starts the pending children, at most the record's MaxConcurrency at once (read at each start,
    so UpdateMapRun applies), until every child has ended, the threshold is exceeded or the
    execution stops. A failed Map Run stops its Standard children and waits for its Express ones
    (Express executions cannot be stopped); a stopped one stops its Standard children and leaves
    its Express ones running (a redrive waits for them)."""
    program = _child_program(component, run.spec.express)
    record = run.record
    with run.changed:
        queue = collections.deque(child for child in run.children if child.status == PENDING)
        while True:
            if not env.is_running():
                outcome = ABORTED
                break
            if run.exceeded():
                outcome = FAILED
                break
            if not queue and run.running() == 0:
                return SUCCEEDED
            if queue and run.running() < (record.max_concurrency or CONCURRENCY_LIMIT):
                child = queue.popleft()
                run.set(child, RUNNING)
                threading.Thread(target=_run_child, args=(run, child, env, program), daemon=True).start()
                continue
            run.changed.wait(POLL_SECONDS)
        if not run.spec.express:
            stopped = datetime.datetime.now(tz=datetime.UTC)
            for child in run.children:
                if child.status == RUNNING and child.frame is not None:
                    child.frame.set_stop(stop_date=stopped, cause=None, error=None)
        if outcome == FAILED or not run.spec.express:
            run.changed.wait_for(lambda: run.running() == 0)
    return outcome


def _child_program(component: Any, express: bool) -> Any:
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.program.program import Program

    program = component._get_iteration_program()
    if not express:
        return program
    return Program(
        query_language=program.query_language,
        start_at=program.start_at,
        states=program.states,
        timeout_seconds=TimeoutSeconds(EXPRESS_CHILD_SECONDS),  # type: ignore[arg-type]
        comment=program.comment,
    )


def _run_child(run: MapRun, child: Child, env: Any, program: Any) -> None:
    """One child workflow in its own frame and history. A Standard child's frame is the
    execution's (stopping the execution stops it); an Express child's is not."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded, ProgramStopped, ProgramTimedOut
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData
    from moto.stepfunctions.parser.asl.eval.variable_store import VariableStore

    if run.spec.express:
        scope = VariableStore.as_inner_scope_of(outer_variable_store=env.variable_store)
        frame = Environment.as_inner_frame_of(env=env, variable_store=scope)
    else:
        frame = env.open_inner_frame()
    status, output = FAILED, None
    try:
        frame.event_manager = EventManager()
        item = ItemData(Index=child.index, Value=child.input)
        frame.states.context_object.context_object_data["Map"] = MapData(Item=item)
        frame.states.reset(input_value=child.input)
        with run.changed:
            child.frame = frame
        program.eval(frame)
        end = frame.program_state()
        if isinstance(end, ProgramEnded):
            status, output = SUCCEEDED, frame.states.get_input()
        elif isinstance(end, ProgramStopped):
            status = ABORTED
        elif isinstance(end, ProgramTimedOut):
            status = TIMED_OUT
    except Exception:  # a child that cannot run has failed; its Map Run goes on
        LOG.debug("child %d of %s could not run", child.index, run.record.map_run_arn, exc_info=True)
        status = FAILED if env.is_running() else ABORTED
    finally:
        if not run.spec.express:
            env.delete_frame(frame)
        with run.changed:
            child.frame, child.output = None, output
            run.set(child, status)


def _event(env: Any, event_type: str, **details: Any) -> None:
    from moto.stepfunctions.parser.api import HistoryEventType

    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType(event_type),
        event_details=_details(**details) if details else None,
    )


def _details(**details: Any) -> Any:
    """moto's EventDetails, which holds one kind of details (its type lists them all as required)."""
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    build: Any = EventDetails
    return build(**details)


def _failure(env: Any, error: str, cause: str) -> Any:
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName.from_name(error),
            event_type=HistoryEventType.MapRunFailed,
            event_details=_details(mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=cause)),
        )
    )


def _map_run_failed(env: Any, run: MapRun, failure: Any) -> None:
    from moto.stepfunctions.parser.api import MapRunFailedEventDetails

    error, cause = failure.extract_error_cause_pair() or (None, None)
    _event(env, "MapRunFailed", mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=cause))
    run.record.set_stop(status="FAILED")


# -- RedriveExecution and what DescribeExecution / ListExecutions report of it --------------------


@dataclasses.dataclass
class Redrives:
    count: int = 0
    date: datetime.datetime | None = None


def redrives(execution: Any) -> Redrives:
    found: Redrives | None = getattr(execution, _REDRIVES, None)
    if found is None:
        found = Redrives()
        setattr(execution, _REDRIVES, found)
    return found


def not_redrivable(execution: Any, now: datetime.datetime | None = None) -> str | None:
    """Why RedriveExecution would refuse this execution, in AWS's words, or None
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html,
    redriveStatusReason; https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html)."""
    status = execution.status
    if status in ("RUNNING", "SUCCEEDED"):
        return f"Execution is {status} and cannot be redriven"
    now = now or datetime.datetime.now(tz=datetime.UTC)
    if execution.stop_date is not None and now - execution.stop_date > REDRIVABLE_PERIOD:
        return "Execution redrivable period exceeded"
    if len(execution.exec_worker.env.event_manager.get_event_history()) >= HISTORY_EVENT_LIMIT - 1:
        return "Execution history event limit exceeded"
    return None


def redrive(execution: Any) -> datetime.datetime:
    """Resumes a FAILED, ABORTED or TIMED_OUT Standard execution at the state that did not end (the
    last one entered and not exited), with the input it had, under the same ARN; its history goes
    on after an ``ExecutionRedriven`` event. A Distributed Map resumed reruns its Map Run's children
    that did not succeed (``_redriven``)
    (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html)."""
    from moto.stepfunctions.parser.api import ExecutionRedrivenEventDetails, ExecutionStatus
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    previous = execution.exec_worker.env
    worker = execution._get_start_execution_worker()
    program = worker._get_evaluation_entrypoint()
    history = previous.event_manager.get_event_history()
    state, state_input = _resume_point(history, set(program.states.states)) or (
        program.start_at.start_at_name,
        execution.input_data,
    )
    record = redrives(execution)
    record.count += 1
    record.date = datetime.datetime.now(tz=datetime.UTC)

    env = worker._get_evaluation_environment()
    env.event_manager = previous.event_manager
    env.map_run_record_pool_manager = previous.map_run_record_pool_manager
    setattr(env.map_run_record_pool_manager, _REDRIVE_STATES, {state})
    last_event = history[-1]["id"] if history else 0
    env.event_history_context.source_event_id = env.event_history_context.last_published_event_id = last_event
    context = env.states.context_object.context_object_data["Execution"]
    context["RedriveCount"], context["RedriveTime"] = record.count, record.date.isoformat()
    details = ExecutionRedrivenEventDetails(redriveCount=record.count)
    _event(env, "ExecutionRedriven", executionRedrivenEventDetails=details)
    env.next_state_name = state
    env.states.reset(input_value=state_input)

    execution.exec_status, execution.stop_date = ExecutionStatus.RUNNING, None
    execution.error = execution.cause = execution.output = None
    worker.env = env
    execution.exec_worker = worker
    LOG.debug("redriving %s at %s with %s", execution.exec_arn, state, to_json_str(state_input))
    threading.Thread(target=_resume, args=(program, env, worker), daemon=True).start()
    return record.date


def _resume_point(history: list[dict[str, Any]], top_level: set[str]) -> tuple[str, Any] | None:
    open_state: tuple[str, Any] | None = None
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        exited = event.get("stateExitedEventDetails")
        if entered and entered.get("name") in top_level:
            open_state = (entered["name"], json.loads(entered.get("input") or "null"))
        elif exited and open_state and exited.get("name") == open_state[0]:
            open_state = None
    return open_state


def _resume(program: Any, env: Any, worker: Any) -> None:
    """moto's Program.eval from the state already set (it would start at StartAt)."""
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    timeout = program.timeout_seconds.timeout_seconds if program.timeout_seconds else None
    thread = threading.Thread(target=EvalComponent.eval, args=(program, env), daemon=True)
    thread.start()
    thread.join(timeout=timeout)
    if thread.is_alive():
        env.set_timed_out()
    worker._execution_communication.terminated()


def _patch_api() -> None:
    """RedriveExecution on moto's Step Functions API, and the redrive fields of DescribeExecution and
    ListExecutions (https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html)."""
    from moto.core.exceptions import AWSError
    from moto.core.responses import ActionResult
    from moto.stepfunctions import responses

    class ExecutionNotRedrivable(AWSError):
        TYPE = "ExecutionNotRedrivable"
        STATUS = 400

    def redrive_execution(self: Any) -> Any:
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if execution.sm_type == "EXPRESS":
            raise ExecutionNotRedrivable("RedriveExecution is not supported by EXPRESS state machines")
        reason = not_redrivable(execution)
        if reason is not None:
            raise ExecutionNotRedrivable(reason)
        return ActionResult({"redriveDate": redrive(execution)})

    original_describe = responses.StepFunctionResponse.describe_execution
    original_list = responses.StepFunctionResponse.list_executions

    def describe_execution(self: Any) -> Any:
        result = original_describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        described: dict[str, Any] = dict(result.result)  # type: ignore[call-overload]
        described.update(_redrive_fields(execution, described=True))
        result._result = described
        return result

    def list_executions(self: Any) -> Any:
        result = original_list(self)
        listed: dict[str, Any] = dict(result.result)  # type: ignore[call-overload]
        backend = self.stepfunction_backend
        listed["executions"] = [
            {**item, **_redrive_fields(backend.describe_execution(item["executionArn"]), described=False)}
            for item in listed["executions"]
        ]
        result._result = listed
        return result

    responses.StepFunctionResponse.redrive_execution = redrive_execution  # type: ignore[attr-defined]
    responses.StepFunctionResponse.describe_execution = describe_execution  # type: ignore[method-assign]
    responses.StepFunctionResponse.list_executions = list_executions  # type: ignore[method-assign]


def _redrive_fields(execution: Any, described: bool) -> dict[str, Any]:
    if getattr(execution, "sm_type", "STANDARD") == "EXPRESS" or execution.exec_worker is None:
        return {}
    record = redrives(execution)
    fields: dict[str, Any] = {"redriveCount": record.count}
    if record.date is not None:
        fields["redriveDate"] = record.date
    if described:
        reason = not_redrivable(execution)
        fields["redriveStatus"] = "NOT_REDRIVABLE" if reason else "REDRIVABLE"
        if reason:
            fields["redriveStatusReason"] = reason
    return fields
