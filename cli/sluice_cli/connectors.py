"""`sluice connector run NAME`, and the connectors' part of `sluice status`.

On a deployed stack a run is RunConnectorFunction invoked with ``{"instance": NAME}`` (the function's
own permissions, network and time). On the local stack it runs here, in this process, with the same
runner against the stack's SSM parameter, state table, secrets and RawBucket: from there the stack's
ingest function takes over as for any upload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TextIO

from botocore.config import Config

from sluice.adapters.aws.connector_state import DynamoDBConnectorState
from sluice.adapters.aws.s3 import S3BucketWriter
from sluice.connectors import SourceError
from sluice.connectors.config import read_config
from sluice.connectors.runner import RunReport, run_instance, select

Clients = Callable[..., Any]
LOCAL_SECONDS = 600.0


def configured(outputs: dict[str, str], client: Clients) -> tuple[list[Any], list[str]]:
    """The valid instances and the configuration's problems."""
    name = outputs.get("ConnectorConfigParameterName")
    if not name:
        return [], []
    return read_config(client("ssm").get_parameter(Name=name)["Parameter"]["Value"])


def run_here(outputs: dict[str, str], client: Clients, name: str) -> list[RunReport]:
    """Run the instance (or every instance of a type) in this process against the stack's resources."""
    secrets = client("secretsmanager")

    def secret(secret_id: str) -> dict[str, Any]:
        try:
            value = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
        except (secrets.exceptions.ResourceNotFoundException, ValueError, KeyError) as exc:
            raise SourceError(f"secret {secret_id!r}: {exc}") from exc
        return dict(value)

    def aws(service: str, role_arn: str | None = None) -> Any:
        return client(service)  # the local stack has no roles to assume

    state = DynamoDBConnectorState(client("dynamodb"), outputs["ConnectorStateTableName"])
    landing = S3BucketWriter(client("s3"), outputs["RawBucketName"])
    instances, _ = configured(outputs, client)
    wanted = select(instances, {"instance": name})  # an instance, or every instance of a type
    return [
        run_instance(
            i, secret=secret, aws=aws, state=state, landing=landing, seconds=LOCAL_SECONDS, owner=f"cli-{time.time()}"
        )
        for i in wanted
    ]


def run_deployed(outputs: dict[str, str], client: Clients, name: str) -> list[dict[str, Any]]:
    # One attempt, and as long as the function may run: a retried invoke would only find its lease busy.
    config = Config(read_timeout=910, retries={"total_max_attempts": 1})
    response = client("lambda", config=config).invoke(
        FunctionName=outputs["RunConnectorFunctionName"], Payload=json.dumps({"instance": name}).encode()
    )
    payload = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise SourceError(f"RunConnectorFunction failed: {payload.get('errorMessage')}")
    runs: list[dict[str, Any]] = payload.get("runs", [])
    return runs


def status(outputs: dict[str, str], client: Clients) -> dict[str, Any]:
    """Each configured instance's last run, cursor, counts and errors."""
    if "ConnectorStateTableName" not in outputs:
        return {}
    state = DynamoDBConnectorState(client("dynamodb"), outputs["ConnectorStateTableName"])
    found: dict[str, Any] = {}
    instances, problems = configured(outputs, client)
    if problems:
        found["(configuration)"] = {"problems": problems}
    for instance in instances:
        run = state.run_state(instance.name)
        items = state.count(instance.name)
        found[instance.name] = {"type": instance.type, "items": items, "cursor": run.cursor, "last_run": run.last_run}
    return found


def render_runs(runs: list[dict[str, Any]], out: TextIO) -> None:
    for run in runs:
        out.write(
            f"{run['instance']} ({run['type']}): {run['stopped']} in {run['seconds']} s — {run['landed']} landed, "
            f"{run['unchanged']} unchanged, {run['deleted']} deleted, {run['swept']} swept"
            f"{', pass complete' if run['pass_complete'] else ''}\n"
        )
        for error in run["errors"]:
            out.write(f"  error: {error}\n")


def render_status(connectors: dict[str, Any], out: TextIO) -> None:
    if not connectors:
        return
    out.write("Connectors\n")
    for problem in connectors.get("(configuration)", {}).get("problems", []):
        out.write(f"  configuration problem: {problem}\n")
    for name, c in connectors.items():
        if name == "(configuration)":
            continue
        last = c["last_run"]
        if not last:
            out.write(f"  {name:<20} {c['type']:<10} never run\n")
            continue
        deleted = last.get("deleted", 0) + last.get("swept", 0)
        out.write(
            f"  {name:<20} {c['type']:<10} {c['items']:>6} items   last run {last.get('started_at')}: "
            f"{last.get('stopped')}, {last.get('landed')} landed, {deleted} deleted\n"
        )
        cursor = c["cursor"] or "(none: the next run starts a full pass)"
        out.write(f"    cursor {cursor if len(cursor) <= 80 else cursor[:79] + '…'}\n")
        for error in last.get("errors", []):
            out.write(f"    error: {error}\n")
