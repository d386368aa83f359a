"""The event bus port: how ingestion tells the sinks (and anyone else) what changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SOURCE = "sluice.ingest"
DOCUMENT_CHANGED = "Document Changed"
DOCUMENT_DELETED = "Document Deleted"
DOCUMENT_QUARANTINED = "Document Quarantined"


@dataclass(frozen=True, slots=True)
class DocumentEvent:
    detail_type: str
    detail: dict[str, Any]


class EventBus(Protocol):
    def publish(self, events: Sequence[DocumentEvent]) -> None:
        """Publish every event or raise; a partial failure is a failure."""
