"""The reconciler on AWS: the pass's own state in DocumentsTable, and the reconciler wired on one
set of clients (the function's and the CLI's)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.adapters.aws.registry import DynamoDBRegistry, take_lease
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsBatchSender
from sluice.reconcile import PassBusyError, Reconciler, ReconcileSettings, Report
from sluice.reconcile.ports import Cursor, SavedPass
from sluice.sinks.kendra import KendraIndex
from sluice.sinks.knowledge_base import KnowledgeBaseIndex

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


def build_reconciler(
    settings: ReconcileSettings,
    clients: Callable[[str], Any],
    *,
    kb: KnowledgeBaseIndex | None = None,
    kendra: KendraIndex | None = None,
    clock: Callable[[], float] = time.time,
) -> Reconciler:
    """The reconciler on the S3, DynamoDB and SQS clients ``clients(service)`` makes (a boto3
    session's ``client`` with the function's config, or the CLI's factory), and the index APIs."""
    s3, dynamodb, table = clients("s3"), clients("dynamodb"), settings.documents_table
    objects = S3ObjectReader(s3)
    return Reconciler(
        settings,
        objects=objects,
        listing=objects,
        processed=S3BucketWriter(s3, settings.processed_bucket),
        registry=DynamoDBRegistry(dynamodb, table),
        states=DynamoDBSinkStates(dynamodb, table),
        queues=SqsBatchSender(clients("sqs")),
        passes=DynamoDBPassStore(dynamodb, table),
        kb=kb,
        kendra=kendra,
        clock=clock,
    )
