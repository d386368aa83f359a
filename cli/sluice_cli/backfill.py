"""`sluice backfill`: start the backfill state machine (RawBucket's listing, or an S3 Inventory
manifest, fed to the ingest queue at a controlled rate) and follow it; and the backfill lines of
`sluice status`.

The run is the execution the Step Functions console lists: its Map Run shows the batches, and the
backfill's own records (one per finished batch) give what a batch found: listed, queued, unchanged,
skipped, refused. The registry gives what the ingest function has made of it since the run started."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from sluice.bootstrap.backfill import run_status

Clients = Callable[[str], Any]
# Seconds between two looks at a run being followed. A look sums the run's batch records and counts the
# documents processed since it started (a query over the status index that reads every one of them):
# cheap on the local stack, worth spacing out over a deployed million-document run.
POLL_LOCAL, POLL_DEPLOYED = 1.0, 30.0
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def request(
    prefix: str, rate: float | None, dry_run: bool, manifest: str | None, kb_sync_mode: str | None = None
) -> dict[str, Any]:
    """The execution's input, as a console user would type it (absent values take the plan's defaults)."""
    payload: dict[str, Any] = {"prefix": prefix, "dry_run": dry_run}
    if rate is not None:
        payload["rate"] = rate
    if kb_sync_mode:
        payload["kb_sync_mode"] = kb_sync_mode
    if manifest:
        if not manifest.startswith("s3://") or "/" not in manifest[5:]:
            raise ValueError(f"--manifest must be s3://BUCKET/KEY/manifest.json, not {manifest!r}")
        bucket, key = manifest[5:].split("/", 1)
        payload["manifest"] = {"bucket": bucket, "key": key}
    return payload


def start(outputs: dict[str, str], client: Clients, payload: dict[str, Any], name: str | None = None) -> str:
    from sluice_cli.status import start_execution  # status imports this module: imported when called

    return start_execution(outputs, client, "BackfillStateMachineArn", payload, name)


@dataclass
class Look:
    """One look at a run: the execution, its Map Run's counts and the backfill's records."""

    execution_arn: str
    status: str
    run: str  # the execution's name: the backfill's records are kept under it
    started: float  # epoch seconds
    items: dict[str, int] = field(default_factory=dict)  # the Map Run's itemCounts (total, succeeded, ...)
    progress: dict[str, Any] | None = None  # the backfill's totals so far, with processed and quarantined
    eta_seconds: float | None = None
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cause: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "status": self.status,
            "run": self.run,
            "items": self.items,
            "progress": self.progress,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
        }


def look(outputs: dict[str, str], client: Clients, arn: str, now: float | None = None) -> Look:
    sfn = client("stepfunctions")
    execution = sfn.describe_execution(executionArn=arn)
    started = execution["startDate"]
    found = Look(
        arn,
        execution["status"],
        execution["name"],
        started.timestamp() if hasattr(started, "timestamp") else float(started),
        output=json.loads(execution.get("output") or "{}"),
        error=execution.get("error", ""),
        cause=execution.get("cause", ""),
    )
    runs = sfn.list_map_runs(executionArn=arn).get("mapRuns", [])
    if runs:
        counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
        found.items = {k: int(v) for k, v in counts.items() if isinstance(v, int)}
    status = run_status(
        client("dynamodb"),
        progress_table=outputs["ConnectorStateTableName"],
        documents_table=outputs["DocumentsTableName"],
        run=found.run,
    )
    if status is not None:
        found.progress = {
            **status.progress.to_json(),
            "processed": status.processed,
            "quarantined": status.quarantined,
        }
        if found.status == "RUNNING":
            total = found.items.get("total") or None
            found.eta_seconds = status.progress.eta_seconds(time.time() if now is None else now, total)
    return found


def latest(outputs: dict[str, str], client: Clients) -> Look | None:
    """The stack's most recent backfill, for `sluice status` (None: never run)."""
    machine = outputs.get("BackfillStateMachineArn")
    if not machine:
        return None
    executions = client("stepfunctions").list_executions(stateMachineArn=machine, maxResults=1).get("executions", [])
    return look(outputs, client, executions[0]["executionArn"]) if executions else None


def follow(
    outputs: dict[str, str], client: Clients, arn: str, out: TextIO | None, timeout: float, poll: float = POLL_LOCAL
) -> Look:
    """Until the run ends (or ``timeout``), a progress line whenever the counts move."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        found = look(outputs, client, arn)
        line = progress_line(found)
        if out is not None and line != said:
            out.write(f"  {line}\n")
            out.flush()
            said = line
        if found.status in ENDED or time.monotonic() > deadline:
            return found
        time.sleep(poll)


def progress_line(found: Look) -> str:
    p = found.progress
    if p is None:
        return f"{found.status.lower()}: planning"
    line = (
        f"{found.status.lower()}: listed {p['listed']}, {'would queue' if p['dry_run'] else 'queued'} {p['queued']}, "
        f"unchanged {p['unchanged']}, skipped {p['skipped']}, refused {p['refused']}"
    )
    if not p["dry_run"]:
        line += f"; since it started: processed {p['processed']}, quarantined {p['quarantined']}"
    if found.items.get("total"):
        line += f"; items done {found.items.get('succeeded', 0)} of {found.items['total']}"
    if found.eta_seconds is not None:
        line += f"; about {duration(found.eta_seconds)} to go"
    return line


def duration(seconds: float) -> str:
    """A time to go, as an operator reads it: seconds, minutes or hours."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def render(found: Look, out: TextIO) -> None:
    out.write(f"Backfill {found.run}: {found.status}\n")
    out.write(f"  {progress_line(found)}\n")
    p = found.progress or {}
    for title, reasons in (("skipped", p.get("skipped_by_reason")), ("refused", p.get("refused_by_reason"))):
        if reasons:
            out.write(f"  {title}: " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) + "\n")
    if found.error:
        out.write(f"  {found.error}: {found.cause}\n")
        if found.status in ("FAILED", "TIMED_OUT", "ABORTED"):
            out.write(
                f"  Fix the cause, then redrive it: aws stepfunctions redrive-execution --execution-arn "
                f"{found.execution_arn}\n"
                "  (finished batches are skipped; only what did not finish runs again)\n"
            )
