"""Connector state in DynamoDB (ConnectorStateTable): per instance, one run record and one record per
landed item.

    instance = "docs-site", item = "#run"              cursor, pass id, lease, last run's report
    instance = "docs-site", item = "<item_id>"         landed key, fingerprint, last pass seen
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from sluice.connectors import SourceError
from sluice.connectors.runner import ItemState, RunState

RUN = "#run"


class DynamoDBConnectorState:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _key(self, instance: str, item: str) -> dict[str, Any]:
        return {"instance": {"S": instance}, "item": {"S": item}}

    # -- the lease -------------------------------------------------------------------------------

    def acquire(self, instance: str, owner: str, until: float, now: float) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(instance, RUN),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": repr(until)},
                    ":now": {"N": repr(now)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, instance: str, owner: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(instance, RUN),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- the run record --------------------------------------------------------------------------

    def run_state(self, instance: str) -> RunState:
        item = self.client.get_item(TableName=self.table, Key=self._key(instance, RUN), ConsistentRead=True).get("Item")
        if not item:
            return RunState()
        return RunState(
            cursor=item["cursor"]["S"] if "cursor" in item else None,
            pass_id=item.get("pass_id", {}).get("S", ""),
            last_run=json.loads(item["last_run"]["S"]) if "last_run" in item else {},
        )

    def save_run(self, instance: str, run: RunState, owner: str, until: float) -> None:
        values: dict[str, Any] = {
            ":pass": {"S": run.pass_id},
            ":run": {"S": json.dumps(run.last_run)},
            ":owner": {"S": owner},
            ":until": {"N": repr(until)},
        }
        update = "SET pass_id = :pass, last_run = :run, lease_until = :until"
        if run.cursor is None:
            update += " REMOVE #cursor"
        else:
            update += ", #cursor = :cursor"
            values[":cursor"] = {"S": run.cursor}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(instance, RUN),
                UpdateExpression=update,
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeNames={"#cursor": "cursor"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise SourceError(f"{instance}: another run took the lease; this run's progress was not saved") from exc
            raise

    def save_report(self, instance: str, report: dict[str, Any]) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self._key(instance, RUN),
            UpdateExpression="SET last_run = :run",
            ExpressionAttributeValues={":run": {"S": json.dumps(report)}},
        )

    # -- items -----------------------------------------------------------------------------------

    def item(self, instance: str, item_id: str) -> ItemState | None:
        found = self.client.get_item(TableName=self.table, Key=self._key(instance, item_id), ConsistentRead=True).get(
            "Item"
        )
        return _item(found) if found else None

    def put_item(self, instance: str, item: ItemState) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._key(instance, item.item_id),
                "key": {"S": item.key},
                "fingerprint": {"S": item.fingerprint},
                "seen": {"S": item.seen},
            },
        )

    def mark_seen(self, instance: str, item_id: str, pass_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self._key(instance, item_id),
            UpdateExpression="SET seen = :pass",
            ConditionExpression="attribute_exists(#key)",
            ExpressionAttributeNames={"#key": "key"},
            ExpressionAttributeValues={":pass": {"S": pass_id}},
        )

    def delete_item(self, instance: str, item_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=self._key(instance, item_id))

    def count(self, instance: str) -> int:
        """The instance's items (its run record not counted), read as counts only."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            Select="COUNT",
            KeyConditionExpression="#instance = :instance",
            FilterExpression="#item <> :run",
            ExpressionAttributeNames={"#instance": "instance", "#item": "item"},
            ExpressionAttributeValues={":instance": {"S": instance}, ":run": {"S": RUN}},
        )
        return sum(int(page.get("Count", 0)) for page in pages)

    def items(self, instance: str) -> Iterator[ItemState]:
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            ConsistentRead=True,  # the sweep must see the marks this pass just wrote
            KeyConditionExpression="#instance = :instance",
            ExpressionAttributeNames={"#instance": "instance"},
            ExpressionAttributeValues={":instance": {"S": instance}},
        )
        for page in pages:
            for found in page["Items"]:
                if found["item"]["S"] != RUN:
                    yield _item(found)


def _item(found: dict[str, Any]) -> ItemState:
    return ItemState(
        found["item"]["S"], found["key"]["S"], found["fingerprint"]["S"], found.get("seen", {}).get("S", "")
    )
