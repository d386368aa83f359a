"""Backfill runs' progress in DynamoDB: ConnectorStateTable, whose key (a partition and an item within
it) fits runs and their batches as it fits connector instances and their items. A run has a partition
of its own, which no connector instance can name (their names have no ``#``):

    instance = "backfill#<run>", item = "#run"             the plan (JSON) and the start time
    instance = "backfill#<run>", item = "batch#<batch>"    a finished batch's counts (JSON)

Each item is written once (a conditional put), so a batch recorded again is a no-op; the summary is a
consistent Query of the partition. The backfill function's role may touch no other partition
(``dynamodb:LeadingKeys``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.backfill import Counts, Plan, Progress

PARTITION_PREFIX = "backfill#"
RUN_ITEM = "#run"
BATCH_ITEM_PREFIX = "batch#"


def partition(run: str) -> str:
    return f"{PARTITION_PREFIX}{run}"


class DynamoDBProgressStore:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def _key(self, run: str, item: str) -> dict[str, Any]:
        return {"instance": {"S": partition(run)}, "item": {"S": item}}

    def _put_once(self, item: dict[str, Any]) -> bool:
        try:
            self._db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#i)",
                ExpressionAttributeNames={"#i": "item"},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def begin(self, plan: Plan, now: float) -> None:
        record = {"plan": {"S": json.dumps(plan.to_json())}, "started_at": {"N": repr(now)}}
        self._put_once({**self._key(plan.run, RUN_ITEM), **record})

    def recorded(self, run: str, batch: str) -> Counts | None:
        key = self._key(run, BATCH_ITEM_PREFIX + batch)
        item = self._db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return Counts.from_json(json.loads(item["counts"]["S"])) if item else None

    def record(self, run: str, batch: str, counts: Counts, now: float) -> bool:
        record = {"counts": {"S": json.dumps(counts.to_json())}, "recorded_at": {"N": repr(now)}}
        return self._put_once({**self._key(run, BATCH_ITEM_PREFIX + batch), **record})

    def _items(self, run: str) -> Iterator[dict[str, Any]]:
        pages = self._db.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": "instance"},
            ExpressionAttributeValues={":p": {"S": partition(run)}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from page.get("Items", [])

    def progress(self, run: str) -> Progress | None:
        plan: Plan | None = None
        started = 0.0
        batches: list[Counts] = []
        for item in self._items(run):
            if item["item"]["S"] == RUN_ITEM:
                plan, started = Plan.from_json(json.loads(item["plan"]["S"])), float(item["started_at"]["N"])
            elif item["item"]["S"].startswith(BATCH_ITEM_PREFIX):
                batches.append(Counts.from_json(json.loads(item["counts"]["S"])))
        return Progress.summed(plan, started, batches) if plan is not None else None
