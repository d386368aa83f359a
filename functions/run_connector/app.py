"""RunConnectorFunction: one scheduled sync of the configured connector instances.

EventBridge Scheduler invokes it with ``{"connector": "web"}`` (every instance of that type) — one
schedule per connector type, each visible in the console — and ``sluice connector run NAME`` with
``{"instance": "docs-site"}``. The configuration is read from SSM Parameter Store, each instance's
credentials from Secrets Manager (Powertools parameters, cached a minute). Instances run one after
the other, each with the time the invocation has left; one that fails is recorded and the others
still run. The reports are returned and logged; ``sluice status`` reads them from the state table.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from sluice.adapters.aws.connector_state import DynamoDBConnectorState
from sluice.adapters.aws.s3 import S3BucketWriter
from sluice.connectors import SourceError
from sluice.connectors.config import read_config
from sluice.connectors.runner import RunReport, run_instance, select

logger = Logger()
metrics = Metrics(namespace="Sluice")
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)
# Left for what the time budget cannot interrupt (one HTTP request with its retries, a query's
# wait, the sweep) and for saving the state: a run stops taking new items this long before the end.
MARGIN_SECONDS = 120


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def _client(service: str) -> Any:
    return _session().client(service, config=_CLIENT_CONFIG)


def _aws(service: str, role_arn: str | None = None) -> Any:
    """A client of the function's own role (one per service, kept across invocations), or of an
    assumed role (fresh credentials each time)."""
    if role_arn is None:
        return _client(service)
    keys = _session().client("sts").assume_role(RoleArn=role_arn, RoleSessionName="sluice-connector")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    ).client(service, config=_CLIENT_CONFIG)


def _secret(name: str) -> dict[str, Any]:
    try:
        value = parameters.get_secret(name, transform="json", max_age=60)
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise SourceError(f"secret {name!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceError(f"secret {name!r} must hold a JSON object")
    return value


def _record_metrics(reports: list[RunReport]) -> None:
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


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    text = str(parameters.get_parameter(os.environ["CONNECTOR_CONFIG_PARAMETER"], max_age=60))
    instances, problems = read_config(text)
    if problems:
        logger.error("connector configuration problems; those instances are not run", extra={"problems": problems})
    wanted = select(instances, event)
    if not wanted:
        logger.warning("no instance matches", extra={"event": event, "configured": [i.name for i in instances]})
    state = DynamoDBConnectorState(_aws("dynamodb"), os.environ["CONNECTOR_STATE_TABLE"])
    landing = S3BucketWriter(_aws("s3"), os.environ["RAW_BUCKET"])
    reports: list[RunReport] = []
    for index, instance in enumerate(wanted):
        # Each instance its share of what is left, so a large first one cannot starve the rest.
        left = context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
        seconds = left / (len(wanted) - index)
        if seconds < 10:
            report = RunReport(instance.name, instance.type, "", stopped="time budget")
            report.errors.append("no time left in this invocation; the next schedule runs it")
        else:
            try:
                report = run_instance(
                    instance, secret=_secret, aws=_aws, state=state, landing=landing, seconds=seconds,
                    owner=context.aws_request_id,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one instance never stops the others
                report = RunReport(instance.name, instance.type, "", stopped="error")
                report.errors.append(f"{type(exc).__name__}: {exc}")
        reports.append(report)
        (logger.error if report.stopped == "error" else logger.info)("connector run", extra={"run": report.to_json()})
    _record_metrics(reports)
    return {"runs": [r.to_json() for r in reports], "configuration_problems": problems}
