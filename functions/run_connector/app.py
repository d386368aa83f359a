"""RunConnectorFunction: one scheduled sync of the configured connector instances.

EventBridge Scheduler invokes it with ``{"connector": "web"}`` (every instance of that type) — one
schedule per connector type, each visible in the console — and ``sluice connector run NAME`` with
``{"instance": "docs-site"}``. The configuration is read from SSM Parameter Store, each instance's
credentials from Secrets Manager. The instances run one after the other (see
``sluice.connectors.scheduled``); the reports are returned and logged, and ``sluice status`` reads
them from the state table.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap import METRICS_NAMESPACE
from sluice.bootstrap.connectors import build
from sluice.connectors.runner import RunReport, select
from sluice.connectors.scheduled import run_selected

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
function = cache(lambda: build(os.environ))  # once per execution environment


def record_metrics(reports: list[RunReport]) -> None:
    """Per connector type, items landed and deleted and runs that failed: one EMF record per type,
    with the totals (dimension service) and the type's own (Connector, service)."""
    for kind in dict.fromkeys(r.type for r in reports):
        runs = [r for r in reports if r.type == kind]
        metrics.add_dimensions(Connector=kind, **({"service": metrics.service} if metrics.service else {}))
        metrics.add_metric(name="ConnectorItemsLanded", unit=MetricUnit.Count, value=sum(r.landed for r in runs))
        deleted = sum(r.deleted + r.swept for r in runs)
        metrics.add_metric(name="ConnectorItemsDeleted", unit=MetricUnit.Count, value=deleted)
        errors = sum(r.stopped == "error" for r in runs)
        metrics.add_metric(name="ConnectorRunErrors", unit=MetricUnit.Count, value=errors)
        metrics.flush_metrics()


def log_run(report: RunReport) -> None:
    (logger.error if report.stopped == "error" else logger.info)("connector run", extra={"run": report.to_json()})


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connectors = function()
    instances, problems = connectors.instances()
    if problems:
        logger.error("connector configuration problems; those instances are not run", extra={"problems": problems})
    wanted = select(instances, event)
    if not wanted:
        logger.warning("no instance matches", extra={"event": event, "configured": [i.name for i in instances]})
    reports = run_selected(
        wanted, connectors.ports, owner=context.aws_request_id, done=log_run,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )  # fmt: skip
    record_metrics(reports)
    return {"runs": [r.to_json() for r in reports], "configuration_problems": problems}
