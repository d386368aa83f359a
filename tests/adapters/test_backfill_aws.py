"""A backfill run's progress on DynamoDB (moto), in ConnectorStateTable beside the connectors' state:
each item written once, the summary summed by a consistent Query of the run's own partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sluice.adapters.aws.backfill import DynamoDBProgressStore
from sluice.adapters.aws.connector_state import DynamoDBConnectorState
from sluice.backfill import Counts, Plan
from support.awsfixtures import create_connector_state_table

PLAN = Plan(run="run-1", rate=10.0, batch_size=40, max_concurrency=40)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_connector_state_table(client, "state")
        yield client


def test_a_run_is_recorded_once_with_its_first_plan_and_start(dynamodb: Any) -> None:
    store = DynamoDBProgressStore(dynamodb, "state")
    store.begin(PLAN, 100.0)
    store.begin(Plan(run="run-1", rate=1.0, batch_size=6, max_concurrency=40), 200.0)  # a Plan run again
    progress = store.progress("run-1")
    assert progress is not None and (progress.plan, progress.started_at, progress.batches) == (PLAN, 100.0, 0)
    assert store.progress("run-2") is None


def test_each_batch_is_recorded_once_and_the_summary_adds_them_up(dynamodb: Any) -> None:
    store = DynamoDBProgressStore(dynamodb, "state")
    store.begin(PLAN, 100.0)
    first = Counts(
        listed=40, queued=3, unchanged=36, found={"stale": 3}, skipped={"sidecar (checked with its document)": 1}
    )
    second = Counts(listed=7, queued=1, unchanged=5, found={"unrecorded": 1}, refused={"malformed item": 1})
    assert store.record("run-1", "a", first, 101.0) and store.record("run-1", "b", second, 102.0)
    assert not store.record("run-1", "a", second, 103.0)  # the same batch again: nothing written
    assert store.recorded("run-1", "a") == first  # the first record holds
    assert store.recorded("run-1", "c") is None and store.recorded("run-2", "a") is None
    store.begin(Plan(run="run-2", rate=1.0, batch_size=6, max_concurrency=40), 104.0)
    store.record("run-2", "a", second, 105.0)  # another run's batch of the same name: its own

    progress = store.progress("run-1")

    assert progress is not None and progress.batches == 2
    assert progress.counts == Counts(
        listed=47,
        queued=4,
        unchanged=41,
        found={"stale": 3, "unrecorded": 1},
        skipped={"sidecar (checked with its document)": 1},
        refused={"malformed item": 1},
    )


def test_a_run_shares_the_table_with_connectors_without_touching_their_items(dynamodb: Any) -> None:
    connectors = DynamoDBConnectorState(dynamodb, "state")
    assert connectors.acquire("docs-site", "owner", until=200.0, now=100.0)
    store = DynamoDBProgressStore(dynamodb, "state")
    store.begin(PLAN, 100.0)
    store.record("run-1", "a", Counts(listed=1), 101.0)
    partitions = {item["instance"]["S"] for item in dynamodb.scan(TableName="state")["Items"]}
    assert partitions == {"docs-site", "backfill#run-1"}
    assert not connectors.acquire("docs-site", "someone else", until=300.0, now=150.0)  # its lease still holds
