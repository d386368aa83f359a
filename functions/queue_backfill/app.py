"""BackfillFunction: the Lambda steps of the backfill state machine (statemachine/backfill.asl.json).

``{"action": "plan", "input": ..., "execution": ...}`` returns the run's settings (a wrong input raises
BackfillInputError, which the state machine makes the execution's failure); ``{"action": "batch",
"batch": {"Items": [...], "BatchInput": {...}}}`` rechecks one child's items and returns its counts and
``wait_seconds``; ``{"action": "summary", "run": ...}`` returns the run's totals. A transient AWS failure
raises TransientError, which the state machine retries. A batch's counts are metrics (not a dry run's,
nor a batch's seen before), and the items it refused are logged with their reasons.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap import METRICS_NAMESPACE
from sluice.bootstrap.backfill import build

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
function = cache(lambda: build(os.environ))  # once per execution environment
BATCH_METRICS = {"BackfillListed": "listed", "BackfillQueued": "queued", "BackfillUnchanged": "unchanged"}
REASON_METRICS = {"BackfillSkipped": "skipped", "BackfillRefused": "refused"}


def record(result: dict[str, Any]) -> None:
    if result["repeated"] or result["dry_run"]:
        return
    for name, field in BATCH_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=result[field])
    for name, field in REASON_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=sum(result[field].values()))
    if result["refused"]:
        logger.warning("items refused", extra={"refused": result["refused"], "examples": result["examples"]})


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    logger.append_keys(action=action)
    result = function().handle(event)
    if action == "batch":
        record(result)
    else:
        logger.info("backfill %s", action, extra={"result": result})
    return result
