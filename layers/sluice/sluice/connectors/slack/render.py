"""A thread, or a channel's day, as one Markdown Item: who said what and when, mentions and links
made readable, files named, allowed to the channel's members."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from sluice.connectors import Item, Tombstone, safe_item_id
from sluice.connectors.slack.api import Message, SlackApi
from sluice.connectors.slack.messages import clock, day_of, iso, renders, touched, when
from sluice.connectors.slack.people import People


def item_id(channel: str, key: str) -> str:
    """A thread's item id (its parent's ts is the key), or a day's (the ISO date)."""
    return safe_item_id(channel, key)


class Renderer:
    def __init__(self, api: SlackApi, people: People, workspace: str) -> None:
        self.api = api
        self.people = people
        self.workspace = workspace  # https://acme.slack.com/ (auth.test), for links; "" when unknown

    def thread(self, channel: str, key: str, message: Message) -> Item | Tombstone:
        """The thread ``key`` (a parent's ts), of which ``message`` is the parent or a reply."""
        if key == message.get("ts") and not message.get("reply_count"):
            thread: list[Message] | None = [message]
        else:
            thread = self.api.replies(channel, key)
        thread = [m for m in thread or [] if renders(m)]
        if not thread:
            return Tombstone(item_id(channel, key))
        name = self.people.channel_name(channel)
        parent = thread[0]
        started = Decimal(str(parent["ts"]))
        replies = len(thread) - 1
        snippet = _snippet(self._text(parent))
        title = f"#{name}: {snippet}" if snippet else f"#{name} thread {when(started)}"
        lines = [
            f"# {title}",
            "",
            f"Channel: #{name} · Started: {when(started)} UTC · Replies: {replies}",
            "",
        ]
        previous: date | None = None
        for each in thread:
            lines.extend(self._message_lines(each, previous))
            lines.append("")
            previous = day_of(Decimal(str(each["ts"])))
        return self._item(
            channel,
            key,
            lines,
            title=title,
            created=started,
            updated=max(touched(m) for m in thread),
            author=self._speaker(parent),
            url=self._permalink(channel, key),
            attributes={"channel": name, "channel_id": channel, "thread_ts": key, "reply_count": replies},
        )

    def day(self, channel: str, day: date) -> Item | Tombstone:
        """A channel's UTC day: its messages, each thread's replies quoted under its parent."""
        parents = self.api.day_messages(channel, day)
        key = day.isoformat()
        if not parents:
            return Tombstone(item_id(channel, key))
        name = self.people.channel_name(channel)
        title = f"#{name} — {key}"
        lines = [f"# {title}", "", f"Channel: #{name} · Day: {key} (UTC) · Messages: {len(parents)}", ""]
        changed = [touched(m) for m in parents]
        for parent in parents:
            lines.extend(self._message_lines(parent, day))
            lines.append("")
            if parent.get("reply_count") and parent.get("thread_ts") == parent.get("ts"):
                replies = [m for m in (self.api.replies(channel, str(parent["ts"])) or [])[1:] if renders(m)]
                changed.extend(touched(m) for m in replies)
                for reply in replies:
                    lines.extend("> " + line if line else ">" for line in self._message_lines(reply, day))
                    lines.append("")
        return self._item(
            channel,
            key,
            lines,
            title=title,
            created=Decimal(str(parents[0]["ts"])),
            updated=max(changed),
            author=None,
            url=f"{self.workspace}archives/{channel}" if self.workspace else None,
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
            item_id=item_id(channel, key),
            body=("\n".join(lines).rstrip() + "\n").encode(),
            ext="md",
            title=title,
            source_url=url,
            created_at=iso(created),
            updated_at=iso(updated),
            author=author,
            allow=self.people.acl(channel),
            attributes=dict(attributes),
        )

    def _message_lines(self, message: Message, previous: date | None) -> list[str]:
        stamp = Decimal(str(message["ts"]))
        shown = clock(stamp) if previous == day_of(stamp) else when(stamp)
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
            return self.people.user(str(message["user"]))[0]
        profile = message.get("bot_profile") or {}
        return str(message.get("username") or profile.get("name") or message.get("bot_id") or "unknown")

    def _text(self, message: Mapping[str, Any]) -> str:
        return self._mrkdwn(str(message.get("text") or ""))

    def _mrkdwn(self, text: str) -> str:
        """Slack's escaped mrkdwn as readable Markdown: mentions named, links as links."""

        def user(match: re.Match[str]) -> str:
            return "@" + (match.group(2) or self.people.user(match.group(1))[0])

        text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>", user, text)
        text = re.sub(r"<#(C[A-Z0-9]+)\|([^>]*)>", lambda m: f"#{m.group(2) or m.group(1)}", text)
        text = re.sub(r"<#(C[A-Z0-9]+)>", lambda m: f"#{m.group(1)}", text)
        text = re.sub(r"<!subteam\^[A-Z0-9]+\|([^>]*)>", r"\1", text)
        text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", r"@\1", text)
        text = re.sub(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>", r"[\2](\1)", text)
        text = re.sub(r"<((?:https?|mailto):[^|>]+)>", r"\1", text)
        return html.unescape(text)

    def _permalink(self, channel: str, thread_ts: str) -> str | None:
        if not self.workspace:
            return None
        return f"{self.workspace}archives/{channel}/p{thread_ts.replace('.', '')}"


def _snippet(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
