"""`sluice status`: documents by status, every quarantined file with its reason, and the queues."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO

from sluice.registry import Status
from sluice.registry.dynamodb import DynamoDBRegistry

ClientFactory = Callable[[str], Any]


def stack_outputs(stack_name: str, client: ClientFactory) -> dict[str, str]:
    """A deployed stack's Outputs, by name."""
    stacks = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _depth(sqs: Any, url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return {
        "waiting": int(attrs["ApproximateNumberOfMessages"]),
        "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    }


def collect(outputs: dict[str, str], client: ClientFactory) -> dict[str, Any]:
    registry = DynamoDBRegistry(client("dynamodb"), outputs["DocumentsTableName"])
    counts = {status.value: registry.count(status) for status in Status}
    quarantined = [
        {"key": r.key, "reason": r.reason, "detail": r.detail, "updated_at": r.updated_at, "source": r.source_uri}
        for r in registry.records(Status.QUARANTINED)
    ]
    sqs = client("sqs")
    queues = {
        name: _depth(sqs, outputs[output])
        for name, output in (("ingest", "IngestQueueUrl"), ("ingest_dead_letters", "IngestDeadLetterQueueUrl"))
        if output in outputs
    }
    return {"documents": counts, "quarantined": sorted(quarantined, key=lambda q: q["key"]), "queues": queues}


def render(status: dict[str, Any], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(status) + "\n")
        return
    docs = status["documents"]
    out.write("Documents\n")
    for name, count in docs.items():
        out.write(f"  {name.lower():<12} {count:>7}\n")
    out.write("Queues\n")
    for name, depth in status["queues"].items():
        out.write(f"  {name.replace('_', ' '):<20} {depth['waiting']:>5} waiting  {depth['in_flight']:>5} in flight\n")
    dead = status["queues"].get("ingest_dead_letters", {}).get("waiting", 0)
    if dead:
        out.write(f"  {dead} notifications failed repeatedly; fix the cause, then redrive them.\n")
    if status["quarantined"]:
        out.write("Quarantined\n")
        width = max(len(q["key"]) for q in status["quarantined"])
        for q in status["quarantined"]:
            out.write(f"  {q['key']:<{width}}  {q['reason']:<28} {q['detail']}\n")
