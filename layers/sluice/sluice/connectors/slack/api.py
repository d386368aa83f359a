"""Slack's Web API as the connector uses it: a GET per call through the guarded HTTP client, pages
followed, ``ok: false`` turned into a SourceError with a hint, and ``ratelimited`` waited out like an
HTTP 429 (``Retry-After``), or left to the next run when the wait is longer than a run should sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sluice.connectors import SourceError
from sluice.connectors.http import RateLimitedError, Response
from sluice.connectors.slack.messages import day_of, day_start, renders, ts

PAGE = 200
RATELIMIT_RETRIES = 5
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
Message = Mapping[str, Any]


class SlackApi:
    def __init__(self, token: str, http: Any, api_url: str = "https://slack.com/api") -> None:
        self._token = token
        self.http = http
        self.api_url = api_url.rstrip("/")
        self._sleep: Callable[[float], None] = getattr(http, "sleep", time.sleep)
        self._max_wait = float(getattr(http, "max_retry_after", 60.0))

    def replies(self, channel: str, thread_ts: str) -> list[Message] | None:
        """The thread, parent first; None when Slack says it is gone."""
        messages: list[Message] = []
        params = {"channel": channel, "ts": thread_ts}
        for data in self.pages("conversations.replies", params, channel, missing_ok=tuple(GONE)):
            if data.get("error") in GONE:
                return None
            messages.extend(data.get("messages") or [])
        unique = {str(m["ts"]): m for m in messages if m.get("ts")}
        return [unique[stamp] for stamp in sorted(unique, key=Decimal)]

    def day_messages(self, channel: str, day: date) -> list[Message]:
        """A UTC day's top-level messages (and broadcast replies), oldest first."""
        start = day_start(day)
        params = {"channel": channel, "oldest": ts(start), "latest": ts(start + 86400), "inclusive": "true"}
        found: dict[str, Message] = {}
        for data in self.pages("conversations.history", params, channel):
            for message in data.get("messages") or []:
                if renders(message) and day_of(Decimal(str(message["ts"]))) == day:
                    found[str(message["ts"])] = message
        return [found[stamp] for stamp in sorted(found, key=Decimal)]

    def pages(
        self, method: str, params: Mapping[str, str], channel: str | None, missing_ok: tuple[str, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        page_cursor = ""
        while True:
            query = {**params, "limit": str(PAGE)}
            if page_cursor:
                query["cursor"] = page_cursor
            data = self.call(method, query, channel, missing_ok=missing_ok)
            yield data
            page_cursor = next_cursor(data)
            if not page_cursor or data.get("error"):
                return

    def call(
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


def next_cursor(data: Mapping[str, Any]) -> str:
    return str((data.get("response_metadata") or {}).get("next_cursor") or "")


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default
