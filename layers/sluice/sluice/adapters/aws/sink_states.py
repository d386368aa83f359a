"""Sink states in the registry table (DocumentsTable): one item per sink and document, keyed
``{sink}#{doc_id}``, found by status through the ``sink-status-index`` GSI. Document records and
sink states never share an item, so neither writer can overwrite the other."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.adapters.aws.dynamodb import batch_get
from sluice.sinks import SinkState, SinkStatus, StateConflictError

SINK_INDEX = "sink-status-index"


def state_key(sink: str, doc_id: str) -> dict[str, Any]:
    return {"doc_id": {"S": f"{sink}#{doc_id}"}}


def _item(state: SinkState) -> dict[str, Any]:
    item: dict[str, Any] = {
        **state_key(state.sink, state.doc_id),
        "sink": {"S": state.sink},
        "sink_doc": {"S": state.doc_id},
        "sink_status": {"S": state.status.value},
        "sink_key": {"S": f"{state.sink}#{state.status.value}"},
        "updated_at": {"S": state.updated_at},
        "version": {"N": str(state.version)},
        "checks": {"N": str(state.checks)},
    }
    if state.held:  # JSON: Kendra document ids are URIs, which may hold any character
        item["held"] = {"S": json.dumps(state.held)}
    if state.pending:
        item["pending"] = {"S": json.dumps(state.pending)}
    if state.maybe:
        item["maybe"] = {"S": json.dumps(state.maybe)}
    if state.failures:
        item["failures"] = {"S": json.dumps(state.failures, sort_keys=True)}
    return item


def state_from_item(item: dict[str, Any]) -> SinkState:
    return SinkState(
        sink=item["sink"]["S"],
        doc_id=item["sink_doc"]["S"],
        status=SinkStatus(item["sink_status"]["S"]),
        updated_at=item["updated_at"]["S"],
        held=tuple(json.loads(item["held"]["S"])) if "held" in item else (),
        pending=tuple(json.loads(item["pending"]["S"])) if "pending" in item else (),
        maybe=tuple(json.loads(item["maybe"]["S"])) if "maybe" in item else (),
        failures=json.loads(item["failures"]["S"]) if "failures" in item else {},
        version=int(item["version"]["N"]),
        checks=int(item.get("checks", {}).get("N", "0")),
    )


class DynamoDBSinkStates:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def get(self, sink: str, doc_id: str) -> SinkState | None:
        item = self._db.get_item(TableName=self.table, Key=state_key(sink, doc_id), ConsistentRead=True).get("Item")
        return state_from_item(item) if item else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SinkState]:
        """The states of these (sink, doc_id) pairs, read consistently; absent ones are left out."""
        wanted = [state_key(sink, doc_id) for sink, doc_id in dict.fromkeys(keys)]
        states = (state_from_item(item) for item in batch_get(self._db, self.table, wanted))
        return {(s.sink, s.doc_id): s for s in states}

    def put(self, state: SinkState, *, expected_version: int | None) -> None:
        if expected_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(doc_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
            }
        try:
            self._db.put_item(TableName=self.table, Item=_item(state), **condition)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StateConflictError(f"{state.sink} state of {state.doc_id} changed concurrently") from exc
            raise

    def _query(self, sink: str, status: SinkStatus, since: str | None = None, **extra: Any) -> Iterator[dict[str, Any]]:
        condition, values = "sink_key = :k", {":k": {"S": f"{sink}#{status.value}"}}
        if since is not None:  # the index's sort key
            condition, values[":since"] = f"{condition} AND updated_at >= :since", {"S": since}
        pages = self._db.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=SINK_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            **extra,
        )
        yield from pages

    def count(self, sink: str, status: SinkStatus, since: str | None = None) -> int:
        return sum(int(page.get("Count", 0)) for page in self._query(sink, status, since, Select="COUNT"))

    def states(self, sink: str, status: SinkStatus) -> Iterator[SinkState]:
        for page in self._query(sink, status):
            for item in page.get("Items", []):
                yield state_from_item(item)
