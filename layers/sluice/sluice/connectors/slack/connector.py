"""The Slack connector: its settings, one scan of each channel's history per run, and the cursor
(described in the package's docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from sluice.connectors import Change, Checkpoint, Context, Instance, Tombstone, load_json_cursor
from sluice.connectors.settings import Problems, allowed_networks, check_url, http_client, unknown_settings
from sluice.connectors.slack.api import PAGE, SlackApi, next_cursor
from sluice.connectors.slack.messages import day_of, day_start, dirty, epoch, renders, ts
from sluice.connectors.slack.people import People
from sluice.connectors.slack.render import Renderer, item_id

SETTINGS = (
    "channels",
    "api_url",
    "group_by",
    "oldest",
    "lookback_days",
    "channel_members_as_acl",
    "resolve_users",
    "allowed_networks",
)
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
MAX_KNOWN = 4000  # threads (or days) remembered for deletion checks, shared by the channels
MIN_KNOWN = 200  # per channel, however many channels there are
CLOCK_MARGIN = Decimal(60)  # the watermark stays this far behind the scan's start (clock skew)


class SlackConnector:
    complete_listing: ClassVar[bool] = False

    def __init__(
        self,
        *,
        token: str,
        channels: Sequence[str],
        http: Any,
        api_url: str = "https://slack.com/api",
        group_by: str = "thread",
        oldest: Decimal | None = None,
        lookback_days: int = 7,
        channel_members_as_acl: bool = True,
        resolve_users: bool = True,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.api = SlackApi(token, http, api_url)
        self.channels = list(channels)
        self.group_by = group_by
        self.oldest = oldest
        self.lookback = Decimal(lookback_days * 86400)
        self.members_as_acl = channel_members_as_acl
        self.resolve_users = resolve_users
        self.now = now
        self._max_known = max(MIN_KNOWN, MAX_KNOWN // max(1, len(self.channels)))

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> SlackConnector:
        settings = instance.settings
        problems = Problems()
        unknown_settings(settings, SETTINGS, problems)
        token = context.secret.get("token")
        if not (isinstance(token, str) and token.startswith("xox")):
            problems.add('the secret needs "token": a Slack token (xoxb-...)')
        channels = settings.get("channels")
        if not (isinstance(channels, list) and channels):
            problems.add("channels must be a non-empty list of channel IDs")
            channels = []
        for channel in channels:
            if not (isinstance(channel, str) and CHANNEL_ID.match(channel)):
                problems.add(f"channels: {channel!r} is not a channel ID (like C0123ABCD; a channel's details show it)")
        networks = allowed_networks(settings.get("allowed_networks"), problems)
        api_url = settings.get("api_url", "https://slack.com/api")
        check_url("api_url", api_url, networks, problems)
        group_by = settings.get("group_by", "thread")
        if group_by not in ("thread", "day"):
            problems.add(f'group_by must be "thread" or "day", not {group_by!r}')
        oldest = None
        if settings.get("oldest") is not None:
            oldest = epoch(settings["oldest"])
            if oldest is None:
                problems.add(f"oldest must be an ISO date or time, or epoch seconds, not {settings['oldest']!r}")
        lookback = settings.get("lookback_days", 7)
        if not (isinstance(lookback, int) and not isinstance(lookback, bool) and 0 <= lookback <= 90):
            problems.add(f"lookback_days must be a whole number from 0 to 90, not {lookback!r}")
        flags = {}
        for name in ("channel_members_as_acl", "resolve_users"):
            flags[name] = settings.get(name, True)
            if not isinstance(flags[name], bool):
                problems.add(f"{name} must be true or false, not {flags[name]!r}")
        problems.raise_any()
        return cls(
            token=str(token),
            channels=list(dict.fromkeys(str(c) for c in channels)),
            http=http_client(context, networks),
            api_url=str(api_url),
            group_by=str(group_by),
            oldest=oldest,
            lookback_days=int(lookback),
            channel_members_as_acl=bool(flags["channel_members_as_acl"]),
            resolve_users=bool(flags["resolve_users"]),
            now=context.now or time.time,
        )

    # -- the sync --------------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> Iterator[Change]:
        state = load_json_cursor(cursor, "Slack", "channels")
        state["channels"] = {c: s for c, s in state["channels"].items() if c in self.channels}
        auth = self.api.call("auth.test", {})
        people = People(self.api, members_as_acl=self.members_as_acl, resolve_users=self.resolve_users)
        render = Renderer(self.api, people, workspace=str(auth.get("url") or ""))
        for channel in self.channels:
            channel_state = state["channels"].setdefault(channel, {})
            for change in self._channel(channel, channel_state, render):
                if isinstance(change, Checkpoint):
                    yield Checkpoint(json.dumps(state, separators=(",", ":"), sort_keys=True))
                else:
                    yield change

    def _channel(self, channel: str, state: dict[str, Any], render: Renderer) -> Iterator[Change]:
        """One scan of a channel's history; a bare Checkpoint marks where the caller saves the cursor."""
        watermark = Decimal(state["watermark"]) if state.get("watermark") else None
        scan = state.get("scan")
        if scan is None:
            start = Decimal(f"{self.now():.6f}")
            if watermark is None:
                oldest = self.oldest if self.oldest is not None else Decimal(0)
            else:
                oldest = min(watermark, start - self.lookback)
                if self.oldest is not None:
                    oldest = max(oldest, self.oldest)
            scan = {"id": ts(start), "oldest": ts(oldest), "latest": ts(start), "seen": [], "done": []}
            state["scan"] = scan
        window_start = Decimal(scan["id"]) - self.lookback
        seen: list[str] = scan["seen"]  # keys inside the deletion window this scan listed
        done: list[str] = scan["done"]  # keys that may come again in this scan, once rendered
        listed = set(seen)
        # This run's pages share one query (Slack's page cursor belongs to it); a resumed run starts a
        # new query below the last page it finished.
        query = {"channel": channel, "oldest": scan["oldest"], "latest": scan["latest"], "inclusive": "false"}
        page_cursor = ""
        while True:
            params = {**query, "limit": str(PAGE)}
            if page_cursor:
                params["cursor"] = page_cursor
            data = self.api.call("conversations.history", params, channel)
            for message in [m for m in data.get("messages") or [] if renders(m)]:
                key = self._key(message)
                if key not in listed and self._key_end(key) >= window_start and len(seen) < self._max_known:
                    listed.add(key)
                    seen.append(key)
                if not dirty(message, watermark):
                    continue
                if self.group_by == "day":
                    if key in done:  # a day goes on over the next page
                        continue
                    done.append(key)
                    yield render.day(channel, date.fromisoformat(key))
                elif key == message["ts"]:
                    yield render.thread(channel, key, message)
                elif Decimal(key) < Decimal(scan["oldest"]) and key not in done:
                    # A reply also sent to the channel, whose parent this scan will not reach (a parent in
                    # reach is dirty too, since its latest reply is, and renders the thread itself).
                    done.append(key)
                    yield render.thread(channel, key, message)
            stamps = [Decimal(str(m["ts"])) for m in data.get("messages") or [] if m.get("ts")]
            if stamps:
                scan["latest"] = ts(min(stamps))
            page_cursor = next_cursor(data)
            if not (data.get("has_more") and page_cursor):
                break
            yield Checkpoint("")
        gone = []
        for tombstone in self._deleted(channel, state.get("known") or [], scan):
            gone.append(tombstone.item_id)
            yield tombstone
        keys = {k for k in state.get("known") or [] if item_id(channel, k) not in gone} | listed
        state["known"] = sorted(k for k in keys if self._key_end(k) >= window_start)[-self._max_known :]
        state["watermark"] = ts(Decimal(scan["id"]) - CLOCK_MARGIN)
        del state["scan"]
        yield Checkpoint("")

    def _deleted(self, channel: str, known: Sequence[str], scan: Mapping[str, Any]) -> Iterator[Tombstone]:
        """Known threads (days) inside the finished scan's window that history no longer listed."""
        listed = set(scan["seen"])
        oldest, latest = Decimal(scan["oldest"]), Decimal(scan["id"])
        for key in sorted(known):
            if key in listed or self._key_start(key) < oldest or self._key_end(key) > latest:
                continue
            if self.group_by == "day":
                gone = not self.api.day_messages(channel, date.fromisoformat(key))
            else:
                gone = self.api.replies(channel, key) is None
            if gone:
                yield Tombstone(item_id(channel, key))

    # -- thread (or day) keys ---------------------------------------------------------------------

    def _key(self, message: Mapping[str, Any]) -> str:
        if self.group_by == "day":
            return day_of(Decimal(str(message["ts"]))).isoformat()
        return str(message.get("thread_ts") or message["ts"])

    def _key_start(self, key: str) -> Decimal:
        if self.group_by == "day":
            return day_start(date.fromisoformat(key))
        return Decimal(key)

    def _key_end(self, key: str) -> Decimal:
        return self._key_start(key) + (Decimal(86400) if self.group_by == "day" else 0)
