"""What a Slack message is to the connector: conversation or housekeeping, when it last changed, and
its timestamps (Slack's ``ts``: epoch seconds with six decimals, kept as Decimal) shown as times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sluice import timestamps

# Subtypes that are channel housekeeping, not conversation.
SKIPPED = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "group_join",
        "group_leave",
        "group_topic",
        "group_purpose",
        "group_name",
        "group_archive",
        "group_unarchive",
        "pinned_item",
        "unpinned_item",
        "bot_add",
        "bot_remove",
    }
)


def renders(message: Mapping[str, Any]) -> bool:
    return bool(message.get("ts")) and message.get("subtype") not in SKIPPED


def dirty(message: Mapping[str, Any], watermark: Decimal | None) -> bool:
    return watermark is None or touched(message) > watermark


def touched(message: Mapping[str, Any]) -> Decimal:
    """The newest thing that happened to a message: itself, its latest reply, its last edit."""
    stamps = [
        str(message["ts"]),
        str(message.get("latest_reply") or 0),
        str((message.get("edited") or {}).get("ts") or 0),
    ]
    values = []
    for stamp in stamps:
        try:
            values.append(Decimal(stamp))
        except InvalidOperation:
            continue
    return max(values)


def ts(value: Decimal) -> str:
    return f"{value:.6f}"


def day_of(stamp: Decimal) -> date:
    return datetime.fromtimestamp(float(stamp), UTC).date()


def day_start(day: date) -> Decimal:
    return Decimal(int(datetime.combine(day, datetime.min.time(), UTC).timestamp()))


def when(stamp: Decimal) -> str:
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M")


def clock(stamp: Decimal) -> str:
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%H:%M")


def iso(stamp: Decimal) -> str:
    return timestamps.iso(float(stamp), "seconds")


def epoch(value: Any) -> Decimal | None:
    """Epoch seconds from a number, a numeric string, or an ISO date or time (naive means UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value)) if value >= 0 else None
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value) if Decimal(value) >= 0 else None
    except InvalidOperation:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return Decimal(int(parsed.timestamp()))
