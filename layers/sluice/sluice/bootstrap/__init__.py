"""The composition root: every function's service, built from its settings and one boto3 session.

This package is the one place that knows which adapter serves which port. A handler calls its
module's ``build(os.environ)`` once per execution environment and keeps what it returns; settings
are read once, there, and every client shares ``CLIENT_CONFIG`` (the connector function reads
its configuration and secrets through Powertools parameters, with their own clients and cache).
One module per function, so that a handler's cold start imports its own service and nothing else.
Tests build the same services around fakes through the services' own constructors, or call these
builders against moto.
"""

from __future__ import annotations

from typing import Any

import boto3

from sluice.adapters.aws import CLIENT_CONFIG

METRICS_NAMESPACE = "Sluice"  # every function's metrics (the template's alarms and dashboard read it)


class Clients:
    """One client per AWS service, from one session, with the shared configuration."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self.session = session or boto3.session.Session()
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=CLIENT_CONFIG)
        return self._clients[service]

    def assumed(self, service: str, role_arn: str | None = None) -> Any:
        """A client of this session's role, or of an assumed role (fresh credentials every call)."""
        if role_arn is None:
            return self(service)
        keys = self("sts").assume_role(RoleArn=role_arn, RoleSessionName="sluice-connector")["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
        ).client(service, config=CLIENT_CONFIG)
