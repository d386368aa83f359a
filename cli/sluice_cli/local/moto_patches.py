"""Where moto's S3 notifications differ from AWS's, make them match, so the local stack exercises the
same code paths as a deployed one:

- AWS puts ``sequencer`` (per key, increasing) and, on versioned buckets, ``versionId`` in every
  object-created and object-removed record; moto sends neither.
- Deleting an object in a versioned bucket creates a delete marker and AWS sends
  ``ObjectRemoved:DeleteMarkerCreated``; moto sends nothing.

Applied once, in the process that runs the moto server; dev-only, never in the Lambda layer.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

_lock = threading.Lock()
_counter = itertools.count(time.time_ns())
_applied = False


def next_sequencer() -> str:
    """Hex, increasing across the process, like S3's per-key sequencers."""
    with _lock:
        return f"{next(_counter):018X}"


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.s3 import models, notifications

    original_event = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original_event(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        obj["sequencer"] = next_sequencer()
        version = getattr(key, "version_id", None)
        if bucket.is_versioned and version:
            obj["versionId"] = str(version)
        return event

    notifications._get_s3_event = get_s3_event

    original_delete = models.S3Backend.delete_object

    def delete_object(
        self: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        success, meta = original_delete(self, bucket_name, key_name, version_id=version_id, bypass=bypass)
        if success and version_id is None and meta.get("delete-marker") == "true":
            bucket = self.get_bucket(bucket_name)
            marker = bucket.keys[key_name]
            _send_delete_marker_event(self.account_id, bucket, key_name, marker)
        return success, meta

    models.S3Backend.delete_object = delete_object  # type: ignore[method-assign]
    _applied = True


class _MarkerKey:
    """The shape of key notifications.send_event expects, for a delete marker."""

    def __init__(self, name: str, version_id: str) -> None:
        self.name = name
        self.version_id = version_id
        self.etag = ""
        self.size = 0


def _send_delete_marker_event(account_id: str, bucket: Any, key_name: str, marker: Any) -> None:
    from moto.s3 import notifications

    notifications.send_event(
        account_id,
        notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
        bucket,
        _MarkerKey(key_name, str(marker.version_id)),
    )
