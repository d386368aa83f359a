"""`sluice reconcile [--dry-run]`: does what is in RawBucket match the registry, the processed files
and each index? Drift is repaired through the ordinary queues (see sluice.reconcile).

On a deployed stack it invokes ReconcileFunction until the pass is complete (each invocation goes on
from where the last stopped). On the local stack it runs here, against the stack's resources, with
the settings the stack gave its ReconcileFunction; the stack's functions then carry out the repairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO

from botocore.config import Config

from sluice.bootstrap import reconcile
from sluice.reconcile import Report, describe

Clients = Callable[..., Any]
MAX_RUNS = 50  # invocations of one pass before giving up (each bounded by the function's budgets)


def run_here(environment: dict[str, str], client: Clients, *, dry_run: bool) -> Report:
    reconciler = reconcile.build(environment, client, per_second=20)  # the local stack's emulators keep no quota
    report = reconciler.run(dry_run=dry_run)
    for _ in range(MAX_RUNS):
        if report.complete:
            break
        report = reconciler.run(dry_run=dry_run)
    return report


def run_deployed(outputs: dict[str, str], client: Clients, *, dry_run: bool) -> dict[str, Any]:
    name = outputs.get("ReconcileFunctionName")
    if not name:
        raise LookupError("this stack has no ReconcileFunction (ReconcileFunctionName output)")
    lam = client("lambda", config=Config(read_timeout=910, retries={"max_attempts": 0}))
    answer: dict[str, Any] = {}
    for _ in range(MAX_RUNS):
        response = lam.invoke(FunctionName=name, Payload=json.dumps({"dry_run": dry_run}).encode())
        answer = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            raise LookupError(f"{name} failed: {answer.get('errorMessage', answer)}")
        if answer.get("complete") or answer.get("stopped") == "busy":
            break
    return answer


def render(report: Report | dict[str, Any], out: TextIO) -> None:
    if isinstance(report, dict) and report.get("stopped") == "busy":
        out.write(f"another reconciliation run holds the pass: {report.get('reason')}\n")
        return
    for line in describe(report if isinstance(report, Report) else Report.from_json(report)):
        out.write(line + "\n")
