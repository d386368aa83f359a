"""RunConnectorFunction's service: the connector instances' configuration, credentials and ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities import parameters

from sluice.adapters.aws.connector_state import DynamoDBConnectorState
from sluice.adapters.aws.s3 import S3BucketWriter
from sluice.bootstrap import Clients
from sluice.connectors import Instance, SourceError
from sluice.connectors.config import read_config
from sluice.connectors.scheduled import ConnectorPorts
from sluice.settings import Env


@dataclass(frozen=True, slots=True)
class ConnectorFunctionSettings:
    """The connector runs: where their configuration is, where they keep their state, where they land."""

    config_parameter: str  # an SSM parameter holding every instance's configuration
    state_table: str
    raw_bucket: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectorFunctionSettings:
        e = Env(env)
        settings = cls(
            config_parameter=e.required("CONNECTOR_CONFIG_PARAMETER"),
            state_table=e.required("CONNECTOR_STATE_TABLE"),
            raw_bucket=e.required("RAW_BUCKET"),
        )
        e.check()
        return settings


@dataclass(frozen=True)
class ConnectorFunction:
    settings: ConnectorFunctionSettings
    ports: ConnectorPorts

    def instances(self) -> tuple[list[Instance], list[str]]:
        """Every configured instance (from SSM Parameter Store, cached a minute) and the problems found."""
        return read_config(str(parameters.get_parameter(self.settings.config_parameter, max_age=60)))


def _secret(name: str) -> dict[str, Any]:
    """An instance's credentials, from Secrets Manager (cached a minute)."""
    try:
        value = parameters.get_secret(name, transform="json", max_age=60)
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise SourceError(f"secret {name!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceError(f"secret {name!r} must hold a JSON object")
    return value


def build(env: Mapping[str, str], clients: Clients | None = None) -> ConnectorFunction:
    settings = ConnectorFunctionSettings.from_env(env)
    clients = clients or Clients()
    ports = ConnectorPorts(
        secret=_secret,
        aws=clients.assumed,
        state=DynamoDBConnectorState(clients("dynamodb"), settings.state_table),
        landing=S3BucketWriter(clients("s3"), settings.raw_bucket),
    )
    return ConnectorFunction(settings, ports)
