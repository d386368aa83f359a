"""The reconciliation pass's own state in DocumentsTable."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.adapters.aws.registry import take_lease
from sluice.reconcile import PassBusyError, Report
from sluice.reconcile.ports import Cursor, SavedPass

STATE_KEY = "reconcile#pass"  # the pass in progress and the last complete one


class DynamoDBPassStore:
    """The pass in progress (phase, cursor, report so far) and the last complete report: one item
    of DocumentsTable (no ``status``, so no registry reader takes it for a document), leased."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def acquire(self, owner: str, now: float, lease_seconds: float) -> SavedPass:
        attributes = take_lease(self._db, self.table, STATE_KEY, owner, now, lease_seconds)
        if attributes is None:
            raise PassBusyError("another reconciliation run is under way")
        current = Report.from_json(json.loads(attributes["current"]["S"])) if "current" in attributes else None
        cursor = json.loads(attributes["cursor"]["S"]) if "cursor" in attributes else None
        return SavedPass(current, cursor)

    def save(self, owner: str, *, current: Report | None, cursor: Cursor, last: Report | None, release: bool) -> None:
        sets, removes, values = ["#c = :c"], [], {":o": {"S": owner}, ":c": {"S": json.dumps(cursor)}}
        if current is not None:
            sets.append("#cur = :cur")
            values[":cur"] = {"S": json.dumps(current.to_json())}
        else:
            removes.append("#cur")
        if last is not None:
            sets.append("#last = :last")
            values[":last"] = {"S": json.dumps(last.to_json())}
        if release:
            removes += ["lease_owner", "lease_expires"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        names = {"#c": "cursor", "#cur": "current", **({"#last": "last"} if last is not None else {})}
        try:
            self._db.update_item(
                TableName=self.table,
                Key={"doc_id": {"S": STATE_KEY}},
                UpdateExpression=expression,
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise PassBusyError("the reconciliation lease was lost to another run") from exc
            raise

    def last(self) -> Report | None:
        item = self._db.get_item(TableName=self.table, Key={"doc_id": {"S": STATE_KEY}}, ConsistentRead=True)
        data = item.get("Item", {}).get("last")
        return Report.from_json(json.loads(data["S"])) if data else None
