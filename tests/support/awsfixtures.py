"""AWS resources tests create in moto, shaped as template.yaml declares them."""

from __future__ import annotations

from typing import Any


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
