"""Amazon DynamoDB adapter for the registry port.

One item per document, keyed by ``doc_id``. Chunk hash lists are stored as space-separated strings
(compact: a 4,000-chunk manifest is 84 KB). A GSI on ``status`` + ``updated_at`` lists documents by
status without a scan.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.adapters.aws.dynamodb import batch_get
from sluice.errors import DocumentBusyError, LeaseLostError
from sluice.registry import DocumentRecord, Status

if TYPE_CHECKING:
    from sluice.sinks import SinkState

STATUS_INDEX = "status-index"
_LISTS = ("chunks", "pending_added", "pending_removed")
_JSON = ("notes", "doc_metadata")
_FIELDS = {f.name for f in fields(DocumentRecord)}
_ser = TypeSerializer()
_de = TypeDeserializer()


def to_item(record: DocumentRecord) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        if name in _LISTS:
            value = " ".join(value)
        elif name in _JSON:
            value = json.dumps(value, sort_keys=True) if value else None
        elif isinstance(value, Status):
            value = value.value
        if value not in (None, ""):
            plain[name] = value
    return {k: _ser.serialize(v) for k, v in plain.items()}


def from_item(item: dict[str, Any]) -> DocumentRecord | None:
    if "status" not in item:
        return None  # a lease placeholder for a document being processed for the first time
    plain = {k: _de.deserialize(v) for k, v in item.items() if k in _FIELDS}
    for name in _LISTS:
        plain[name] = tuple(str(plain.get(name, "")).split())
    for name in _JSON:
        plain[name] = json.loads(plain[name]) if plain.get(name) else {}
    plain["status"] = Status(plain["status"])
    for name in ("size", "token_count"):
        plain[name] = int(plain.get(name, 0))
    if plain.get("page_count") is not None:
        plain["page_count"] = int(plain["page_count"])
    return DocumentRecord(**plain)


def take_lease(db: Any, table: str, key: str, owner: str, now: float, lease_seconds: float) -> dict[str, Any] | None:
    """Take the lease on the item keyed ``key`` (created if absent) and return the item as it is
    now; None while another owner's lease is live."""
    try:
        resp = db.update_item(
            TableName=table,
            Key={"doc_id": {"S": key}},
            UpdateExpression="SET lease_owner = :owner, lease_expires = :expires",
            ConditionExpression="attribute_not_exists(lease_expires) OR lease_expires < :now",
            ExpressionAttributeValues={
                ":owner": {"S": owner},
                ":expires": {"N": repr(now + lease_seconds)},
                ":now": {"N": repr(now)},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        held: dict[str, Any] = exc.response.get("Item") or {}
        # botocore's retry of this very call, after an attempt that took the lease and whose answer
        # was lost (a read timeout): the lease is already ours.
        return held if held.get("lease_owner", {}).get("S") == owner else None
    attributes: dict[str, Any] = resp["Attributes"]
    return attributes


class DynamoDBRegistry:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def acquire(self, doc_id: str, owner: str, now: float, lease_seconds: float) -> DocumentRecord | None:
        item = take_lease(self._db, self.table, doc_id, owner, now, lease_seconds)
        if item is None:
            raise DocumentBusyError(f"document {doc_id} is being processed by another worker")
        return from_item(item)

    def commit(self, record: DocumentRecord, owner: str, *, keep_lease_until: float | None) -> None:
        item = to_item(record)
        if keep_lease_until is not None:
            item["lease_owner"] = {"S": owner}
            item["lease_expires"] = {"N": repr(keep_lease_until)}
        try:
            self._db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LeaseLostError(f"lease on {record.doc_id} was lost; another worker owns it now") from exc
            raise

    def release(self, doc_id: str, owner: str) -> None:
        key = {"doc_id": {"S": doc_id}}
        values = {":owner": {"S": owner}}
        try:
            # A placeholder created by acquire() for a document that got no record goes away entirely.
            self._db.delete_item(
                TableName=self.table,
                Key=key,
                ConditionExpression="lease_owner = :owner AND attribute_not_exists(#s)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
            return
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        try:
            self._db.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="REMOVE lease_owner, lease_expires",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise  # otherwise the lease had already expired and moved on: nothing to give back

    def get(self, doc_id: str) -> DocumentRecord | None:
        item = self._db.get_item(TableName=self.table, Key={"doc_id": {"S": doc_id}}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def lookup(self, doc_ids: Iterable[str]) -> dict[str, DocumentRecord | None]:
        """The record under each id, read consistently; None for a lease placeholder (a first
        ingestion under way, no record yet); ids with no item are left out."""
        keys = [{"doc_id": {"S": d}} for d in dict.fromkeys(doc_ids)]
        return {item["doc_id"]["S"]: from_item(item) for item in batch_get(self._db, self.table, keys)}

    def scan_page(self, start: dict[str, Any] | None, limit: int) -> tuple[list[DocumentRecord], list[SinkState], Any]:
        """One page of a consistent scan of the table: its records and sink states (lease placeholders
        and other items skipped), and the key the next page starts after (None after the last)."""
        from sluice.adapters.aws.sink_states import state_from_item  # reconciliation's: not in ingestion's cold start

        after = {"ExclusiveStartKey": start} if start else {}
        resp = self._db.scan(TableName=self.table, Limit=limit, ConsistentRead=True, **after)
        records: list[DocumentRecord] = []
        states: list[SinkState] = []
        for item in resp.get("Items", []):
            record = from_item(item)
            if record is not None:
                records.append(record)
            elif "sink" in item:
                states.append(state_from_item(item))
        return records, states, resp.get("LastEvaluatedKey")

    def count(self, status: Status, since: str | None = None) -> int:
        """Documents in ``status`` (and whose record changed at or after ``since``, an ISO time),
        counted on the status index (no items are read)."""
        total = 0
        condition, values = "#s = :s", {":s": {"S": status.value}}
        if since is not None:
            condition += " AND updated_at >= :since"
            values[":since"] = {"S": since}
        pages = self._db.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=STATUS_INDEX,
            Select="COUNT",
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        for page in pages:
            total += int(page.get("Count", 0))
        return total

    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]:
        if status is None:
            pages = self._db.get_paginator("scan").paginate(TableName=self.table)
        else:
            pages = self._db.get_paginator("query").paginate(
                TableName=self.table,
                IndexName=STATUS_INDEX,
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status.value}},
            )
        for page in pages:
            for item in page.get("Items", []):
                record = from_item(item)
                if record is not None:
                    yield record
