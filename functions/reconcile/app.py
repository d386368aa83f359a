"""ReconcileFunction: one run of the reconciliation pass (see sluice.reconcile).

EventBridge Scheduler invokes it on ReconcileSchedule with ``{}``; ``sluice reconcile --stack`` with
``{"dry_run": true}`` or ``{}``. A run goes on with the pass in progress (or starts one) until the
pass is complete, its budgets are spent or the invocation is nearly out of time; the next run goes
on from the saved position. The report is returned, logged, and counted in metrics: drift found by
kind (``ReconcileDrift``), repairs made, and whether the pass completed.
"""

from __future__ import annotations

import os
import time
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.reconcile import build_reconciler
from sluice.reconcile import PassBusyError, Reconciler, Report
from sluice.settings import reconcile_settings

logger = Logger()
NAMESPACE = "Sluice"
metrics = Metrics(namespace=NAMESPACE)
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
MARGIN_SECONDS = 60  # a page in flight and the save after it


@cache
def _build() -> Reconciler:
    settings = reconcile_settings(os.environ)
    session = boto3.session.Session()
    kb = kendra = None
    if "kb" in settings.sink_queues:  # GetKnowledgeBaseDocuments shares 5 requests/s with the sink
        agent = session.client("bedrock-agent", config=_CLIENT_CONFIG)
        kb = BedrockKnowledgeBaseApi(agent, os.environ["KNOWLEDGE_BASE_ID"], os.environ["DATA_SOURCE_ID"], 1.0)
    if "kendra" in settings.sink_queues:
        kendra = KendraApi(session.client("kendra", config=_CLIENT_CONFIG), os.environ["KENDRA_INDEX_ID"], per_second=2)
    return build_reconciler(settings, partial(session.client, config=_CLIENT_CONFIG), kb=kb, kendra=kendra)


def record(report: Report) -> None:
    """Metrics of one run: drift found by kind (a record of its own per kind: a closed set), repairs."""
    for kind, count in report.found.items():
        with single_metric(name="ReconcileDrift", unit=MetricUnit.Count, value=count, namespace=NAMESPACE) as m:
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
    reconciler = reconciler or _build()
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    try:
        report = reconciler.run(deadline=deadline, dry_run=bool(event.get("dry_run")))
    except PassBusyError as exc:
        logger.info("another run holds the pass", extra={"reason": str(exc)})
        return {"stopped": "busy", "reason": str(exc)}
    record(report)
    return report.to_json()
