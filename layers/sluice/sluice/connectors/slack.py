"""Slack: one Markdown document per thread (or per channel and day) of the channels a bot is in.

Secret ``{"token": "xoxb-..."}``: a bot token with ``channels:history`` (``groups:history`` for
private channels), ``channels:read``/``groups:read`` (names and members), and ``users:read`` plus
``users:read.email`` when ``resolve_users`` is on. The bot must be a member of every channel.

Settings:
    channels                list of channel IDs (``C0123ABCD``, not names)
    api_url                 default ``https://slack.com/api`` (tests point it at a fake server)
    group_by                ``"thread"`` (default): a document per thread, a lone message being a
                            thread of one; ``"day"``: a document per channel and UTC day, replies
                            quoted under their parent
    oldest                  where the first run starts: an ISO date or time, or epoch seconds
                            (default: the whole history)
    lookback_days           how far back each run looks for new replies, edits of parents and
                            deleted threads (default 7, at most 90); it costs one history page per
                            200 messages in that window per run
    channel_members_as_acl  allow-list each document to the channel's members (default true)
    resolve_users           look users up with ``users.info`` (``users.list`` for a channel of more
                            than 100 members; cached per run): names in the text, and ``user:<email>``
                            principals (lower-cased) instead of ``user:<id>`` when the token may read
                            emails (default true)
    allowed_networks        CIDRs the HTTP client may reach although they are not public (tests)

How a run works, per channel: one scan of ``conversations.history`` (200 a page) from the cursor's
watermark, or ``lookback_days`` back if that is older, up to the run's start. A thread is rendered
(``conversations.replies``) when its parent, its latest reply or its parent's last edit is newer
than the watermark; other threads are left alone. When the scan is through, threads the cursor knows
within the window that history no longer listed are checked with ``conversations.replies``, and the
ones Slack answers ``thread_not_found`` for become Tombstones (in day mode: a day with no messages
left). Slack's ``ok: false, error: ratelimited`` is waited out like an HTTP 429 (``Retry-After``);
``invalid_auth``, ``not_in_channel``, ``channel_not_found``, ``missing_scope`` stop the run with a
SourceError naming the channel.

Cursor (JSON; a Checkpoint follows every history page, so a run resumes mid-channel):
    {"v": 1, "channels": {"C0123ABCD": {
        "watermark": "1718000000.000000",   # a finished scan saw everything up to here
        "known": ["1717990000.000100", ...],  # threads (days) within the lookback, for deletion checks
        "scan": {"id": ..., "oldest": ..., "latest": ..., "seen": [...], "done": [...]}  # while open
    }}}
``scan.latest`` moves down page by page (history is newest first), so a resumed scan asks for what
is older than the last page it finished; the watermark trails the scan's start by a minute (clock
skew), so a message of that last minute may be rendered again by the next run (an unchanged
document, which the runner does not land twice). ``known`` keeps the newest 4000 keys shared by the
channels (at least 200 each), which bounds the cursor's size and the deletion checks.

Limitations:
- Deleted messages are not in history and Slack reports no deletions: a deleted reply, or an edited
  reply, shows only when the thread is rendered again; a whole thread (or day) that disappears is
  removed only while it is within ``lookback_days``. ``complete_listing`` is false, so nothing else
  is ever swept.
- Channel membership is read when a document is rendered: someone who leaves a channel keeps access
  to its unchanged threads until they change (re-run from an empty cursor to refresh every ACL).
  Members of a public channel are fewer than the people who may read it: set
  ``channel_members_as_acl`` to false (and govern access elsewhere) to index it as open.
- Times and days are UTC. Files are listed by name, not downloaded.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlencode

from sluice.connectors import (
    Change,
    Checkpoint,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    safe_item_id,
)
from sluice.connectors.http import RateLimitedError, Response
from sluice.connectors.settings import Problems, allowed_networks, check_url, http_client, unknown_settings

log = logging.getLogger(__name__)

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
PAGE = 200
MAX_KNOWN = 4000  # threads (or days) remembered for deletion checks, shared by the channels
MIN_KNOWN = 200  # per channel, however many channels there are
DIRECTORY = 100  # a channel with more members than this loads users.list instead of users.info each
CLOCK_MARGIN = Decimal(60)  # the watermark stays this far behind the scan's start (clock skew)
RATELIMIT_RETRIES = 5
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
GONE = frozenset({"thread_not_found", "message_not_found"})
HINTS = {
    "not_in_channel": "invite the app to the channel (/invite @your-app)",
    "channel_not_found": "check the channel ID; a private channel also needs the app as a member and groups:history",
    "invalid_auth": "the token in the secret was refused",
    "not_authed": "the token in the secret was refused",
    "token_revoked": "the token in the secret was revoked",
    "token_expired": "the token in the secret has expired",
    "account_inactive": "the token's user or bot is deactivated",
    "missing_scope": "the token lacks a scope",
}


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
        self._token = token
        self.channels = list(channels)
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.group_by = group_by
        self.oldest = oldest
        self.lookback = Decimal(lookback_days * 86400)
        self.members_as_acl = channel_members_as_acl
        self.resolve_users = resolve_users
        self.now = now
        self._sleep: Callable[[float], None] = getattr(http, "sleep", time.sleep)
        self._max_wait = float(getattr(http, "max_retry_after", 60.0))
        self._max_known = max(MIN_KNOWN, MAX_KNOWN // max(1, len(self.channels)))
        self._reset()

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
            oldest = _epoch(settings["oldest"])
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
        self._reset()
        state = _load_cursor(cursor)
        state["channels"] = {c: s for c, s in state["channels"].items() if c in self.channels}
        auth = self._call("auth.test", {})
        self._workspace = str(auth.get("url") or "")
        for channel in self.channels:
            channel_state = state["channels"].setdefault(channel, {})
            for change in self._channel(channel, channel_state):
                if isinstance(change, Checkpoint):
                    yield Checkpoint(json.dumps(state, separators=(",", ":"), sort_keys=True))
                else:
                    yield change

    def _reset(self) -> None:
        self._users: dict[str, tuple[str, str]] = {}
        self._members: dict[str, tuple[str, ...]] = {}
        self._names: dict[str, str] = {}
        self._directory_read = False
        self._workspace = ""

    def _channel(self, channel: str, state: dict[str, Any]) -> Iterator[Change]:
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
            scan = {"id": _ts(start), "oldest": _ts(oldest), "latest": _ts(start), "seen": [], "done": []}
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
            data = self._call("conversations.history", params, channel)
            for message in [m for m in data.get("messages") or [] if _renders(m)]:
                key = self._key(message)
                if key not in listed and self._key_end(key) >= window_start and len(seen) < self._max_known:
                    listed.add(key)
                    seen.append(key)
                if not _dirty(message, watermark):
                    continue
                if self.group_by == "day":
                    if key in done:  # a day goes on over the next page
                        continue
                    done.append(key)
                    yield self._render_day(channel, date.fromisoformat(key))
                elif key == message["ts"]:
                    yield self._render_thread(channel, key, message)
                elif Decimal(key) < Decimal(scan["oldest"]) and key not in done:
                    # A reply also sent to the channel, whose parent this scan will not reach (a parent in
                    # reach is dirty too, since its latest reply is, and renders the thread itself).
                    done.append(key)
                    yield self._render_thread(channel, key, message)
            stamps = [Decimal(str(m["ts"])) for m in data.get("messages") or [] if m.get("ts")]
            if stamps:
                scan["latest"] = _ts(min(stamps))
            page_cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not (data.get("has_more") and page_cursor):
                break
            yield Checkpoint("")
        gone = []
        for tombstone in self._deleted(channel, state.get("known") or [], scan):
            gone.append(tombstone.item_id)
            yield tombstone
        keys = {k for k in state.get("known") or [] if self._item_id(channel, k) not in gone} | listed
        state["known"] = sorted(k for k in keys if self._key_end(k) >= window_start)[-self._max_known :]
        state["watermark"] = _ts(Decimal(scan["id"]) - CLOCK_MARGIN)
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
                gone = not self._day_messages(channel, date.fromisoformat(key))
            else:
                gone = self._replies(channel, key) is None
            if gone:
                yield Tombstone(self._item_id(channel, key))

    # -- rendering -------------------------------------------------------------------------------

    def _key(self, message: Mapping[str, Any]) -> str:
        if self.group_by == "day":
            return _day(Decimal(str(message["ts"]))).isoformat()
        return str(message.get("thread_ts") or message["ts"])

    def _key_start(self, key: str) -> Decimal:
        if self.group_by == "day":
            return Decimal(int(datetime.combine(date.fromisoformat(key), datetime.min.time(), UTC).timestamp()))
        return Decimal(key)

    def _key_end(self, key: str) -> Decimal:
        return self._key_start(key) + (Decimal(86400) if self.group_by == "day" else 0)

    def _item_id(self, channel: str, key: str) -> str:
        return safe_item_id(channel, key)

    def _render_thread(self, channel: str, key: str, message: Mapping[str, Any]) -> Item | Tombstone:
        if key == message.get("ts") and not message.get("reply_count"):
            thread: list[Mapping[str, Any]] | None = [message]
        else:
            thread = self._replies(channel, key)
        thread = [m for m in thread or [] if _renders(m)]
        if not thread:
            return Tombstone(self._item_id(channel, key))
        name = self._channel_name(channel)
        parent = thread[0]
        started = Decimal(str(parent["ts"]))
        replies = len(thread) - 1
        snippet = _snippet(self._text(parent))
        title = f"#{name}: {snippet}" if snippet else f"#{name} thread {_when(started)}"
        lines = [
            f"# {title}",
            "",
            f"Channel: #{name} · Started: {_when(started)} UTC · Replies: {replies}",
            "",
        ]
        previous: date | None = None
        for each in thread:
            lines.extend(self._message_lines(each, previous))
            lines.append("")
            previous = _day(Decimal(str(each["ts"])))
        return self._item(
            channel,
            key,
            lines,
            title=title,
            created=started,
            updated=max(_touched(m) for m in thread),
            author=self._speaker(parent),
            url=self._permalink(channel, key),
            attributes={"channel": name, "channel_id": channel, "thread_ts": key, "reply_count": replies},
        )

    def _render_day(self, channel: str, day: date) -> Item | Tombstone:
        parents = self._day_messages(channel, day)
        key = day.isoformat()
        if not parents:
            return Tombstone(self._item_id(channel, key))
        name = self._channel_name(channel)
        title = f"#{name} — {key}"
        lines = [f"# {title}", "", f"Channel: #{name} · Day: {key} (UTC) · Messages: {len(parents)}", ""]
        touched = [_touched(m) for m in parents]
        for parent in parents:
            lines.extend(self._message_lines(parent, day))
            lines.append("")
            if parent.get("reply_count") and parent.get("thread_ts") == parent.get("ts"):
                replies = [m for m in (self._replies(channel, str(parent["ts"])) or [])[1:] if _renders(m)]
                touched.extend(_touched(m) for m in replies)
                for reply in replies:
                    lines.extend("> " + line if line else ">" for line in self._message_lines(reply, day))
                    lines.append("")
        return self._item(
            channel,
            key,
            lines,
            title=title,
            created=Decimal(str(parents[0]["ts"])),
            updated=max(touched),
            author=None,
            url=f"{self._workspace}archives/{channel}" if self._workspace else None,
            attributes={"channel": name, "channel_id": channel, "day": key},
        )

    def _item(
        self,
        channel: str,
        key: str,
        lines: list[str],
        *,
        title: str,
        created: Decimal,
        updated: Decimal,
        author: str | None,
        url: str | None,
        attributes: Mapping[str, str | int],
    ) -> Item:
        return Item(
            item_id=self._item_id(channel, key),
            body=("\n".join(lines).rstrip() + "\n").encode(),
            ext="md",
            title=title,
            source_url=url,
            created_at=_iso(created),
            updated_at=_iso(updated),
            author=author,
            allow=self._acl(channel),
            attributes=dict(attributes),
        )

    def _message_lines(self, message: Mapping[str, Any], previous: date | None) -> list[str]:
        stamp = Decimal(str(message["ts"]))
        shown = _clock(stamp) if previous == _day(stamp) else _when(stamp)
        text = self._text(message) or ("(message deleted)" if message.get("subtype") == "tombstone" else "")
        extras = [f"[file: {f.get('name') or f.get('title') or 'file'}]" for f in message.get("files") or []]
        for attachment in message.get("attachments") or []:
            extra = attachment.get("text") or attachment.get("fallback")
            if extra:
                extras.append(self._mrkdwn(str(extra)))
        body = "\n".join([text, *extras]).strip()
        return f"**{self._speaker(message)}** ({shown}): {body}".splitlines()

    def _speaker(self, message: Mapping[str, Any]) -> str:
        if message.get("user"):
            return self._user(str(message["user"]))[0]
        profile = message.get("bot_profile") or {}
        return str(message.get("username") or profile.get("name") or message.get("bot_id") or "unknown")

    def _text(self, message: Mapping[str, Any]) -> str:
        return self._mrkdwn(str(message.get("text") or ""))

    def _mrkdwn(self, text: str) -> str:
        """Slack's escaped mrkdwn as readable Markdown: mentions named, links as links."""

        def user(match: re.Match[str]) -> str:
            return "@" + (match.group(2) or self._user(match.group(1))[0])

        text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>", user, text)
        text = re.sub(r"<#(C[A-Z0-9]+)\|([^>]*)>", lambda m: f"#{m.group(2) or m.group(1)}", text)
        text = re.sub(r"<#(C[A-Z0-9]+)>", lambda m: f"#{m.group(1)}", text)
        text = re.sub(r"<!subteam\^[A-Z0-9]+\|([^>]*)>", r"\1", text)
        text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", r"@\1", text)
        text = re.sub(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>", r"[\2](\1)", text)
        text = re.sub(r"<((?:https?|mailto):[^|>]+)>", r"\1", text)
        return html.unescape(text)

    def _permalink(self, channel: str, thread_ts: str) -> str | None:
        if not self._workspace:
            return None
        return f"{self._workspace}archives/{channel}/p{thread_ts.replace('.', '')}"

    # -- Slack look-ups (cached per run) -----------------------------------------------------------

    def _channel_name(self, channel: str) -> str:
        if channel not in self._names:
            info = self._call("conversations.info", {"channel": channel}, channel)
            self._names[channel] = str((info.get("channel") or {}).get("name") or channel)
        return self._names[channel]

    def _acl(self, channel: str) -> tuple[str, ...]:
        if not self.members_as_acl:
            return ()
        if channel not in self._members:
            ids: list[str] = []
            for data in self._pages("conversations.members", {"channel": channel}, channel):
                ids.extend(str(m) for m in data.get("members") or [])
            if self.resolve_users and len(ids) > DIRECTORY:
                self._directory()  # one users.list page per 200 people beats one users.info each
            principals = {self._user(uid)[1] for uid in ids}
            self._members[channel] = tuple(sorted(p for p in principals if p))
        return self._members[channel]

    def _directory(self) -> None:
        if self._directory_read:
            return
        self._directory_read = True
        for data in self._pages("users.list", {}, None):
            for user in data.get("members") or []:
                if user.get("id"):
                    self._users[str(user["id"])] = _identity(str(user["id"]), user)

    def _user(self, uid: str) -> tuple[str, str]:
        """(display name, principal) for a user ID; the principal is "" for a deactivated user."""
        if uid not in self._users:
            if not self.resolve_users:
                self._users[uid] = (uid, f"user:{uid}")
                return self._users[uid]
            data = self._call("users.info", {"user": uid}, missing_ok=("user_not_found",))
            self._users[uid] = _identity(uid, data.get("user") or {})
        return self._users[uid]

    def _replies(self, channel: str, thread_ts: str) -> list[Mapping[str, Any]] | None:
        """The thread, parent first; None when Slack says it is gone."""
        messages: list[Mapping[str, Any]] = []
        params = {"channel": channel, "ts": thread_ts}
        for data in self._pages("conversations.replies", params, channel, missing_ok=tuple(GONE)):
            if data.get("error") in GONE:
                return None
            messages.extend(data.get("messages") or [])
        unique = {str(m["ts"]): m for m in messages if m.get("ts")}
        return [unique[ts] for ts in sorted(unique, key=Decimal)]

    def _day_messages(self, channel: str, day: date) -> list[Mapping[str, Any]]:
        """A UTC day's top-level messages (and broadcast replies), oldest first."""
        start = Decimal(int(datetime.combine(day, datetime.min.time(), UTC).timestamp()))
        params = {"channel": channel, "oldest": _ts(start), "latest": _ts(start + 86400), "inclusive": "true"}
        found: dict[str, Mapping[str, Any]] = {}
        for data in self._pages("conversations.history", params, channel):
            for message in data.get("messages") or []:
                if _renders(message) and _day(Decimal(str(message["ts"]))) == day:
                    found[str(message["ts"])] = message
        return [found[ts] for ts in sorted(found, key=Decimal)]

    def _pages(
        self, method: str, params: Mapping[str, str], channel: str | None, missing_ok: tuple[str, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        page_cursor = ""
        while True:
            query = {**params, "limit": str(PAGE)}
            if page_cursor:
                query["cursor"] = page_cursor
            data = self._call(method, query, channel, missing_ok=missing_ok)
            yield data
            page_cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not page_cursor or data.get("error"):
                return

    def _call(
        self, method: str, params: Mapping[str, str], channel: str | None = None, missing_ok: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """One Web API call; ``ok: false`` becomes a SourceError unless its error is ``missing_ok``."""
        url = f"{self.api_url}/{method}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        for attempt in range(RATELIMIT_RETRIES + 1):
            response: Response = self.http.request(
                "GET", f"{url}?{urlencode(params)}" if params else url, headers=headers
            )
            where = f"Slack {method}" + (f" for channel {channel}" if channel else "")
            if response.status != 200:
                raise SourceError(f"{where}: HTTP {response.status}")
            try:
                data = response.json()
            except ValueError as exc:
                raise SourceError(f"{where}: the answer is not JSON") from exc
            if not isinstance(data, dict):
                raise SourceError(f"{where}: the answer is not a JSON object")
            if data.get("ok"):
                return data
            error = str(data.get("error") or "unknown_error")
            if error in missing_ok:
                return data
            if error == "ratelimited":
                wait = _seconds(response.header("retry-after"), default=2.0**attempt)
                if wait > self._max_wait:
                    raise RateLimitedError(url, wait)
                if attempt < RATELIMIT_RETRIES:
                    self._sleep(wait)
                    continue
            hint = HINTS.get(error, "")
            if error == "missing_scope" and data.get("needed"):
                hint += f" ({data['needed']})"
            raise SourceError(f"{where}: {error}" + (f": {hint}" if hint else ""))
        raise SourceError(f"Slack {method}: still rate limited after {RATELIMIT_RETRIES + 1} attempts")


# -- helpers shared by the module -----------------------------------------------------------------


def _identity(uid: str, user: Mapping[str, Any]) -> tuple[str, str]:
    """(display name, principal): ``user:<email>`` (lower-cased) when Slack shares it, else
    ``user:<id>``; no principal for a deactivated user."""
    profile = user.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
    email = str(profile.get("email") or "").strip().lower()
    principal = "" if user.get("deleted") else (f"user:{email}" if email else f"user:{uid}")
    return str(name or uid), principal


def _renders(message: Mapping[str, Any]) -> bool:
    return bool(message.get("ts")) and message.get("subtype") not in SKIPPED


def _dirty(message: Mapping[str, Any], watermark: Decimal | None) -> bool:
    return watermark is None or _touched(message) > watermark


def _touched(message: Mapping[str, Any]) -> Decimal:
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


def _ts(value: Decimal) -> str:
    return f"{value:.6f}"


def _day(stamp: Decimal) -> date:
    return datetime.fromtimestamp(float(stamp), UTC).date()


def _when(stamp: Decimal) -> str:
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M")


def _clock(stamp: Decimal) -> str:
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%H:%M")


def _iso(stamp: Decimal) -> str:
    return datetime.fromtimestamp(float(stamp), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _snippet(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _epoch(value: Any) -> Decimal | None:
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


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {"v": 1, "channels": {}}
    try:
        state = json.loads(cursor)
    except ValueError as exc:
        raise SourceError("the cursor is not a Slack connector cursor (JSON); reset it to start over") from exc
    if not (isinstance(state, dict) and isinstance(state.get("channels"), dict)):
        raise SourceError("the cursor is not a Slack connector cursor; reset it to start over")
    return state
