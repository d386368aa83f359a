"""RunConnectorFunction, the real handler: configuration from SSM and credentials from Secrets
Manager through Powertools, the s3 connector reading another bucket, the state in DynamoDB and the
items landed in RawBucket (moto for all of it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from handlers.conftest import LambdaContext, emf_records, metric_values
from support.awsfixtures import create_connector_state_table
from support.handlers import load_handler

RAW, SOURCE, PARAMETER = "sluice-raw-test", "team-docs", "/sluice/connectors"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3, ssm = boto3.client("s3"), boto3.client("ssm")
        for bucket in (RAW, SOURCE):
            s3.create_bucket(Bucket=bucket)
        create_connector_state_table(boto3.client("dynamodb"), "connector-state")
        for name, value in {
            "CONNECTOR_CONFIG_PARAMETER": PARAMETER, "CONNECTOR_STATE_TABLE": "connector-state", "RAW_BUCKET": RAW,
            "POWERTOOLS_SERVICE_NAME": "sluice",
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        parameters.clear_caches()  # Powertools caches parameters and secrets for a minute, across tests
        yield s3, ssm


def _configure(ssm: Any, instances: list[dict[str, Any]]) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=json.dumps({"instances": instances}), Type="String", Overwrite=True)


def _guides(s3: Any) -> None:
    """Two documents in the source bucket, under the prefix team-docs syncs."""
    s3.put_object(Bucket=SOURCE, Key="guides/boarding.md", Body=b"# Boarding\n\nPilots board at the buoy.\n")
    s3.put_object(Bucket=SOURCE, Key="guides/tides.txt", Body=b"High water is at 14:20.\n")


def _landed(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", []))


def test_a_scheduled_run_syncs_every_instance_of_its_type_and_the_next_one_only_what_changed(world: Any) -> None:
    s3, ssm = world
    _guides(s3)
    _configure(ssm, [
        {"name": "team-docs", "type": "s3", "settings": {"bucket": SOURCE, "prefix": "guides/"}},
        {"name": "broken", "type": "s3", "settings": {"bucket": "no-such-bucket"}},
        {"name": "site", "type": "web", "settings": {"start_urls": ["https://example.com/"]}},
    ])  # fmt: skip
    handler = load_handler("run_connector")
    result = handler.lambda_handler({"connector": "s3"}, LambdaContext())
    runs = {r["instance"]: r for r in result["runs"]}
    assert set(runs) == {"team-docs", "broken"}  # the web instance has its own schedule
    assert runs["team-docs"]["stopped"] == "done" and runs["team-docs"]["landed"] == 2
    assert runs["broken"]["stopped"] == "error" and "no-such-bucket" in runs["broken"]["errors"][0]
    assert [k for k in _landed(s3) if not k.endswith(".metadata.json")] == [
        "connectors/team-docs/boarding.md",
        "connectors/team-docs/tides.txt",
    ]
    s3.delete_object(Bucket=SOURCE, Key="guides/tides.txt")
    again = handler.lambda_handler({"instance": "team-docs"}, LambdaContext())["runs"][0]
    assert (again["landed"], again["swept"]) == (0, 1)
    assert "connectors/team-docs/tides.txt" not in _landed(s3)


def test_metrics_count_items_and_failed_runs_per_connector_type_and_in_total(
    world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, ssm = world
    _guides(s3)
    _configure(ssm, [
        {"name": "team-docs", "type": "s3", "settings": {"bucket": SOURCE, "prefix": "guides/"}},
        {"name": "broken", "type": "s3", "settings": {"bucket": "no-such-bucket"}},
        {"name": "chat", "type": "slack", "secret": "sluice/slack", "settings": {"channels": ["C1"]}},
    ])  # fmt: skip
    handler = load_handler("run_connector")
    capsys.readouterr()
    handler.lambda_handler({}, LambdaContext())
    records = emf_records(capsys.readouterr().out)
    s3_type, slack = {"Connector": "s3", "service": "sluice"}, {"Connector": "slack", "service": "sluice"}
    assert metric_values(records, "ConnectorItemsLanded", **s3_type) == [2.0]
    assert metric_values(records, "ConnectorRunErrors", **s3_type) == [1.0]  # the missing bucket
    assert metric_values(records, "ConnectorRunErrors", **slack) == [1.0]  # the missing secret
    assert sum(metric_values(records, "ConnectorRunErrors", service="sluice")) == 2  # every type's, for the alarm
    s3.delete_object(Bucket=SOURCE, Key="guides/tides.txt")
    handler.lambda_handler({"instance": "team-docs"}, LambdaContext())
    records = emf_records(capsys.readouterr().out)
    assert metric_values(records, "ConnectorItemsDeleted", **s3_type) == [1.0]
    assert metric_values(records, "ConnectorItemsLanded", service="sluice") == [0.0]


def test_credentials_come_from_secrets_manager_and_a_missing_secret_is_a_recorded_error(world: Any) -> None:
    _, ssm = world
    _configure(ssm, [{"name": "chat", "type": "slack", "secret": "sluice/slack", "settings": {"channels": ["C1"]}}])
    handler = load_handler("run_connector")
    (run,) = handler.lambda_handler({"instance": "chat"}, LambdaContext())["runs"]
    assert run["stopped"] == "error" and "sluice/slack" in run["errors"][0]
    table = boto3.client("dynamodb")
    record = table.get_item(TableName="connector-state", Key={"instance": {"S": "chat"}, "item": {"S": "#run"}})
    assert json.loads(record["Item"]["last_run"]["S"])["stopped"] == "error"


def test_an_instance_with_a_configuration_problem_does_not_stop_the_others(world: Any) -> None:
    s3, ssm = world
    s3.put_object(Bucket=SOURCE, Key="guides/boarding.md", Body=b"# Boarding\n\nPilots board at the buoy.\n")
    _configure(ssm, [
        {"name": "Team Docs", "type": "s3", "settings": {"bucket": SOURCE}},
        {"name": "team-docs", "type": "s3", "settings": {"bucket": SOURCE, "prefix": "guides/"}},
    ])  # fmt: skip
    result = load_handler("run_connector").lambda_handler({"connector": "s3"}, LambdaContext())
    assert [(r["instance"], r["landed"]) for r in result["runs"]] == [("team-docs", 1)]
    assert "name must be" in result["configuration_problems"][0]
