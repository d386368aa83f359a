"""S3 notifications as they arrive on the ingest queue, decoded into ObjectEvents.

Handles classic S3 notifications (keys URL-encoded), the same wrapped in SNS, and S3 events routed
through EventBridge; recognises the s3:TestEvent S3 sends when notifications are configured, and the
rechecks the reconciler queues (``recheck_message``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from sluice.ingest import ObjectEvent

RECHECK = "recheck"


class MalformedMessageError(ValueError):
    """An SQS message body that is not an S3 notification."""


def recheck_message(bucket: str, key: str, trigger: str, *, rebuild: bool = False) -> str:
    """Read this object again, whatever its record says (the reconciler's repair)."""
    body = {"sluice": RECHECK, "bucket": bucket, "key": key, "trigger": trigger}
    return json.dumps({**body, "rebuild": True} if rebuild else body)


def _recheck(message: dict[str, Any]) -> ObjectEvent:
    fields = [message.get(f) for f in ("bucket", "key", "trigger")]
    if not all(isinstance(f, str) and f for f in fields):
        raise MalformedMessageError("recheck without bucket, key and trigger")
    bucket, key, trigger = (str(f) for f in fields)
    return ObjectEvent(bucket, key, removed=False, trigger=trigger, rebuild=message.get("rebuild") is True)


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body (empty for a test event)."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedMessageError(f"message body is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedMessageError("message body is not a JSON object")
    if message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        return parse_message(message["Message"])  # S3 → SNS → SQS
    if message.get("Event") == "s3:TestEvent":
        return []
    if "Records" in message:
        return [_classic(record) for record in message["Records"]]
    if message.get("source") == "aws.s3" and "detail" in message:
        return [_eventbridge(message)]
    if message.get("sluice") == RECHECK:
        return [_recheck(message)]
    raise MalformedMessageError("message is not an S3 event notification")


def _classic(record: Any) -> ObjectEvent:
    try:
        name = str(record["eventName"])
        obj = record["s3"]["object"]
        return ObjectEvent(
            bucket=record["s3"]["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            removed=name.startswith("ObjectRemoved") or name.startswith("LifecycleExpiration"),
            sequencer=obj.get("sequencer"),
            version_id=obj.get("versionId"),
            etag=obj.get("eTag"),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedMessageError(f"S3 record lacks {exc}") from exc


def _eventbridge(message: dict[str, Any]) -> ObjectEvent:
    try:
        detail = message["detail"]
        obj = detail["object"]
        return ObjectEvent(
            bucket=detail["bucket"]["name"],
            key=obj["key"],
            removed=message.get("detail-type") == "Object Deleted",
            sequencer=obj.get("sequencer"),
            version_id=obj.get("version-id"),
            etag=obj.get("etag"),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedMessageError(f"S3 EventBridge event lacks {exc}") from exc
