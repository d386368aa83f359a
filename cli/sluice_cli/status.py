"""`sluice status`: documents by status, every quarantined file with its reason, each sink's index and
documents (indexed / pending / failed, with the index's reasons) and ingestion job, and the queues."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TextIO

from sluice.adapters.aws.reconcile import DynamoDBPassStore
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.registry import Status
from sluice.sinks import SinkStatus
from sluice.sinks.knowledge_base import HOLD_KEY, JOB_SINK, MODE_HOLD, current_hold
from sluice.timestamps import iso
from sluice_cli import backfill, connectors

ClientFactory = Callable[[str], Any]
MAX_FAILURES_SHOWN = 50
SETTLED_WINDOW = 600  # seconds: a sink's pace is what it settled (indexed or removed) in this long

# Each sink: its name in the sink states, and the outputs naming its queues and its index.
SINKS = {
    "kb": ("KnowledgeBaseQueueUrl", "KnowledgeBaseDeadLetterQueueUrl", "KnowledgeBaseDataSourceId"),
    "kendra": ("KendraQueueUrl", "KendraDeadLetterQueueUrl", None),
}
QUEUES = {
    "ingest": ("IngestQueueUrl", "IngestDeadLetterQueueUrl"),
    "kb": ("KnowledgeBaseQueueUrl", "KnowledgeBaseDeadLetterQueueUrl"),
    "kendra": ("KendraQueueUrl", "KendraDeadLetterQueueUrl"),
}
QUEUE_DLQS = {f"{name}_dead_letters" for name in QUEUES}  # what `sluice redrive` moves back
SCHEDULE_DEAD_LETTERS = "schedule_dead_letters"  # invocations a schedule could not make; not redriven


def stack_outputs(stack_name: str, client: ClientFactory) -> dict[str, str]:
    """A deployed stack's Outputs, by name."""
    stacks = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def start_execution(
    outputs: dict[str, str], client: ClientFactory, machine_output: str, payload: dict[str, Any], name: str | None
) -> str:
    """Start the state machine a stack output names with ``payload`` (a generated name unless given)."""
    machine = outputs.get(machine_output)
    if not machine:
        raise LookupError(f"this stack has no {machine_output} output (deploy this version first)")
    arguments: dict[str, Any] = {"stateMachineArn": machine, "input": json.dumps(payload)}
    if name:
        arguments["name"] = name
    return str(client("stepfunctions").start_execution(**arguments)["executionArn"])


def _depth(sqs: Any, url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return {
        "waiting": int(attrs["ApproximateNumberOfMessages"]),
        "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    }


def collect(outputs: dict[str, str], client: ClientFactory) -> dict[str, Any]:
    registry = DynamoDBRegistry(client("dynamodb"), outputs["DocumentsTableName"])
    counts = {status.value: registry.count(status) for status in Status}
    quarantined = [
        {"key": r.key, "reason": r.reason, "detail": r.detail, "updated_at": r.updated_at, "source": r.source_uri}
        for r in registry.records(Status.QUARANTINED)
    ]
    sqs = client("sqs")
    queues = {}
    for name, (queue, dead_letters) in QUEUES.items():
        if queue in outputs:
            queues[name] = _depth(sqs, outputs[queue])
        if dead_letters in outputs:
            queues[f"{name}_dead_letters"] = _depth(sqs, outputs[dead_letters])
    if "ScheduleDeadLetterQueueUrl" in outputs:
        queues[SCHEDULE_DEAD_LETTERS] = _depth(sqs, outputs["ScheduleDeadLetterQueueUrl"])
    return {
        "documents": counts,
        "quarantined": sorted(quarantined, key=lambda q: q["key"]),
        "sinks": _sinks(outputs, client, registry),
        "queues": queues,
        "connectors": connectors.status(outputs, client),
        "reconciliation": _reconciliation(outputs, client),
        "backfill": _backfill(outputs, client),
    }


def _backfill(outputs: dict[str, str], client: ClientFactory) -> dict[str, Any] | None:
    """The most recent backfill: its execution, its Map Run's counts and its progress."""
    found = backfill.latest(outputs, client)
    return found.to_json() | {"line": backfill.progress_line(found)} if found is not None else None


def _reconciliation(outputs: dict[str, str], client: ClientFactory) -> dict[str, Any] | None:
    """The last complete reconciliation pass, in brief."""
    last = DynamoDBPassStore(client("dynamodb"), outputs["DocumentsTableName"]).last()
    if last is None:
        return None
    return {"pass_id": last.pass_id, "finished_at": last.finished_at, "found": last.found, "repairs": last.repairs}


def _sinks(
    outputs: dict[str, str], client: ClientFactory, registry: DynamoDBRegistry, window: float = SETTLED_WINDOW
) -> dict[str, Any]:
    """Each sink's documents by state, its failures and its job; and how many documents it settled
    (indexed, or removed from the index) in the last ``window`` seconds: its recent pace."""
    since = iso(time.time() - window)
    states = DynamoDBSinkStates(client("dynamodb"), outputs["DocumentsTableName"])
    sinks: dict[str, Any] = {}
    for name, (queue, _, data_source) in SINKS.items():
        if queue not in outputs:
            continue
        failures: list[dict[str, Any]] = []
        for state in states.states(name, SinkStatus.FAILED):
            if len(failures) >= MAX_FAILURES_SHOWN:
                break
            record = registry.get(state.doc_id)
            reasons = sorted(set(state.failures.values()))
            failures.append({"key": record.key if record else state.doc_id, "reasons": reasons})
        sink: dict[str, Any] = {s.value.lower(): states.count(name, s) for s in SinkStatus}
        sink["settled"] = {
            "seconds": window,
            "documents": sum(states.count(name, s, since) for s in (SinkStatus.INDEXED, SinkStatus.ABSENT)),
        }
        sink["failures"] = sorted(failures, key=lambda f: f["key"])
        sink["index"] = _index(name, outputs)
        hold = current_hold(states.get(MODE_HOLD, HOLD_KEY), time.time()) if name == "kb" else None
        if hold is not None:
            sink["mode_hold"] = {"mode": hold.mode, "run": hold.run, "until": iso(hold.until, "seconds")}
        lock = states.get(JOB_SINK, outputs[data_source]) if data_source and data_source in outputs else None
        if lock is not None:
            sink["job"] = {
                "running": lock.held[1] if lock.status is SinkStatus.PENDING and len(lock.held) > 1 else None,
                **{k: v for k, v in lock.failures.items() if k in ("last_job", "dirty", "failure_reasons")},
            }
        sinks[name] = sink
    return sinks


def _index(sink: str, outputs: dict[str, str]) -> str:
    """What the sink keeps in step, from the stack's outputs (no call to the index)."""
    if sink == "kendra":
        return f"Kendra index {outputs.get('KendraIndexId', '?')}"
    mode = outputs.get("KnowledgeBaseMode", "existing")
    where = f"knowledge base {outputs.get('KnowledgeBaseId', '?')}"
    if mode == "create":
        index = outputs.get("VectorIndexArn", "").rsplit("/", 1)[-1]
        return f"{where}, created by the stack" + (f", over the S3 Vectors index {index}" if index else "")
    return f"{where} ({mode})"


def _pace(sink: dict[str, Any], queued: int) -> str:
    """What the sink settled recently, a second, and how long what is ahead of it takes at that pace: its
    pending documents and the messages on its queue (most name one document)."""
    settled = sink.get("settled") or {}
    if not settled.get("documents"):
        return ""
    window = settled["seconds"]
    rate = settled["documents"] / window
    line = f"settled {settled['documents']:,} in the last {backfill.duration(window)} ({rate:.1f} a second)"
    ahead = sink["pending"] + queued
    if ahead:
        line += f"; at that pace the {ahead:,} pending or queued take about {backfill.duration(ahead / rate)}"
    return line


def render(status: dict[str, Any], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(status) + "\n")
        return
    docs = status["documents"]
    out.write("Documents\n")
    for name, count in docs.items():
        out.write(f"  {name.lower():<12} {count:>7}\n")
    for name, sink in status.get("sinks", {}).items():
        out.write(f"Sink {name}: {sink['index']}\n" if sink.get("index") else f"Sink {name}\n")
        out.write(
            f"  indexed {sink['indexed']:>7}   pending {sink['pending']:>5}   failed {sink['failed']:>5}"
            f"   removed {sink['absent']:>5}\n"
        )
        if pace := _pace(sink, status["queues"].get(name, {}).get("waiting", 0)):
            out.write(f"  {pace}\n")
        if hold := sink.get("mode_hold"):
            out.write(
                f"  sync mode: {hold['mode']}, held by backfill {hold['run']} until {hold['until']} unless renewed"
                " (then the stack's own)\n"
            )
        job = sink.get("job")
        if job:
            running = f"job {job['running']} running" if job.get("running") else "no job running"
            last = f"; last: {job['last_job']}" if job.get("last_job") else ""
            owed = "; another owed" if job.get("dirty") else ""
            out.write(f"  {running}{last}{owed}\n")
        for failure in sink["failures"]:
            out.write(f"  failed  {failure['key']}: {'; '.join(failure['reasons'])}\n")
    out.write("Queues\n")
    for name, depth in status["queues"].items():
        out.write(f"  {name.replace('_', ' '):<22} {depth['waiting']:>5} waiting  {depth['in_flight']:>5} in flight\n")
    dead = sum(d["waiting"] for n, d in status["queues"].items() if n in QUEUE_DLQS)
    failed = sum(s["failed"] for s in status.get("sinks", {}).values())
    if dead or failed:
        out.write("  Some work failed repeatedly: fix the cause, then `sluice redrive`.\n")
    if status["queues"].get(SCHEDULE_DEAD_LETTERS, {}).get("waiting"):
        out.write(
            "  A schedule could not start its target: its events (ScheduleDeadLetterQueue) carry the error;\n"
            "  fix it (the role, the target), and the next scheduled run does the work.\n"
        )
    connectors.render_status(status.get("connectors") or {}, out)
    reconciled = status.get("reconciliation")
    out.write("Reconciliation\n")
    if reconciled is None:
        out.write("  no pass completed yet (`sluice reconcile`)\n")
    else:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(reconciled["found"].items())) or "no drift"
        out.write(f"  last pass finished {reconciled['finished_at']}: {found}\n")
    latest = status.get("backfill")
    if latest is not None:
        out.write(f"Backfill {latest['run']}\n  {latest['line']}\n")
        if latest["error"]:
            out.write(f"  {latest['error']}: {latest['cause']}\n")
    if status["quarantined"]:
        out.write("Quarantined\n")
        width = max(len(q["key"]) for q in status["quarantined"])
        for q in status["quarantined"]:
            out.write(f"  {q['key']:<{width}}  {q['reason']:<28} {q['detail']}\n")
