"""ReconcileFunction: one run of the reconciliation pass (see sluice.reconcile).

EventBridge Scheduler invokes it on ReconcileSchedule with ``{}``; ``sluice reconcile --stack`` with
``{"dry_run": true}`` or ``{"dry_run": false}``. A run goes on with the pass in progress (or starts one) until the
pass is complete, its budgets are spent or the invocation is nearly out of time; the next run goes
on from the saved position. The report is returned, logged, and counted in metrics: drift found by
kind (``ReconcileDrift``), repairs made, and whether the pass completed.
"""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap import METRICS_NAMESPACE
from sluice.bootstrap.reconcile import build
from sluice.reconcile import PassBusyError, Reconciler, Report

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
function = cache(lambda: build(os.environ))  # once per execution environment
MARGIN_SECONDS = 60  # a page in flight and the save after it


def record(report: Report) -> None:
    """Metrics of one run: drift found by kind (a record of its own per kind: a closed set), repairs."""
    for kind, count in report.found.items():
        with single_metric(name="ReconcileDrift", unit=MetricUnit.Count, value=count, namespace=METRICS_NAMESPACE) as m:
            m.add_dimension(name="kind", value=kind)
    metrics.add_metric(name="ReconcileDriftFound", unit=MetricUnit.Count, value=report.drift)  # the alarm's
    metrics.add_metric(name="ReconcileRepairs", unit=MetricUnit.Count, value=sum(report.repairs.values()))
    metrics.add_metric(name="ReconcilePassesCompleted", unit=MetricUnit.Count, value=int(report.complete))
    log = logger.warning if report.found else logger.info
    log("reconciliation %s", "pass complete" if report.complete else f"stopped ({report.stopped})",
        extra={"report": report.to_json()})  # fmt: skip


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, reconciler: Reconciler | None = None
) -> dict[str, Any]:
    reconciler = reconciler or function()
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    try:
        report = reconciler.run(deadline=deadline, dry_run=bool(event.get("dry_run")))
    except PassBusyError as exc:
        logger.info("another run holds the pass", extra={"reason": str(exc)})
        return {"stopped": "busy", "reason": str(exc)}
    record(report)
    return report.to_json()
