"""The one format of the times Sluice records: ISO 8601 in UTC with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(epoch_seconds: float, timespec: str = "milliseconds") -> str:
    """``2026-12-07T02:11:05.123Z`` (``timespec`` as in ``datetime.isoformat``)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
