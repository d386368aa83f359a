"""Amazon EventBridge adapter for the event bus port."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sluice.bus import SOURCE, DocumentEvent
from sluice.compat import batched
from sluice.errors import TransientError

PUT_EVENTS_BATCH = 10  # PutEvents takes at most 10 entries


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._events = client
        self.bus_name = bus_name

    def publish(self, events: Sequence[DocumentEvent]) -> None:
        for batch in batched(events, PUT_EVENTS_BATCH):
            resp = self._events.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": e.detail_type,
                        "Detail": json.dumps(e.detail, ensure_ascii=False),
                        "EventBusName": self.bus_name,
                    }
                    for e in batch
                ]
            )
            failed = int(resp.get("FailedEntryCount") or 0)
            if failed:
                codes = {entry.get("ErrorCode") for entry in resp.get("Entries", []) if entry.get("ErrorCode")}
                raise TransientError(f"{failed} of {len(batch)} events were not published: {sorted(codes)}")
