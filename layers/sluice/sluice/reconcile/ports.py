"""What the reconciler needs besides the storage ports (``sluice.storage``) and the indexes' own
(``KnowledgeBaseIndex``, ``KendraIndex``): the registry table read page by page (and looked up by
id, which a backfill needs too), the sink states read many at a time and corrected by version, the
repair queues, and the pass's own state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.errors import TransientError
from sluice.reconcile.report import Report
from sluice.registry import DocumentRecord
from sluice.sinks import SinkState

# Where a scan or a listing goes on: the adapter's own token, opaque here and saved with the pass as JSON.
Cursor = Any


class RecordLookup(Protocol):
    def lookup(self, doc_ids: Iterable[str]) -> dict[str, DocumentRecord | None]:
        """What the registry holds under each id, read consistently: the record, or None while a
        first ingestion holds the lease and has not yet written one. Ids it has nothing under are
        left out."""


class RegistryPages(RecordLookup, Protocol):
    def scan_page(self, start: Cursor, limit: int) -> tuple[list[DocumentRecord], list[SinkState], Cursor]:
        """One page of the registry, read consistently: the records and the sink states on it, and
        where the next page starts (None after the last)."""


class SinkStates(Protocol):
    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SinkState]:
        """The states of these (sink, doc_id) pairs, read consistently; absent ones are left out."""

    def put(self, state: SinkState, *, expected_version: int | None) -> None:
        """Write ``state`` if the stored version is ``expected_version`` (None: no state yet), else
        StateConflictError."""


class RepairQueues(Protocol):
    def send(self, queue_url: str, bodies: Sequence[str]) -> None:
        """Every body to the queue, or TransientError."""


class PassBusyError(TransientError):
    """Another run of the reconciler holds the pass."""


@dataclass(frozen=True, slots=True)
class SavedPass:
    current: Report | None  # the pass in progress, if any
    cursor: Cursor  # where its phase goes on


class PassStore(Protocol):
    """The pass in progress (its report and position) and the last complete report, leased to one
    run at a time."""

    def acquire(self, owner: str, now: float, lease_seconds: float) -> SavedPass:
        """Take the lease; PassBusyError while another run holds it."""

    def save(self, owner: str, *, current: Report | None, cursor: Cursor, last: Report | None, release: bool) -> None:
        """Save the pass (and the last complete report, when given) while ``owner`` holds the lease,
        else PassBusyError; give the lease back with ``release``."""
