"""AWS resources tests create in moto, shaped as template.yaml declares them, and what tests wait
for there."""

from __future__ import annotations

import time
from typing import Any


def finished_execution(sfn: Any, execution_arn: str, timeout: float = 60) -> dict[str, Any]:
    """A Step Functions execution once it has stopped running, as DescribeExecution reports it (the
    deadline only turns a hang into a failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.1)
    raise AssertionError(f"{execution_arn} still running after {timeout} s")


def create_documents_table(dynamodb: Any, name: str) -> None:
    """The registry table: doc_id key, the status-index GSI for documents and sink-status-index for
    the sinks' states (see DocumentsTable)."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "doc_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "doc_id", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "updated_at", "AttributeType": "S"},
            {"AttributeName": "sink_key", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "status-index",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "sink-status-index",
                "KeySchema": [
                    {"AttributeName": "sink_key", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


def create_connector_state_table(dynamodb: Any, name: str) -> None:
    """ConnectorStateTable: instance + item."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "instance", "AttributeType": "S"},
            {"AttributeName": "item", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "instance", "KeyType": "HASH"}, {"AttributeName": "item", "KeyType": "RANGE"}],
    )
