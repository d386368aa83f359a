"""Who and where, as Slack names them: channel names, channel members as principals, users as display
names and principals. Looked up once per run (a run starts with a fresh ``People``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.connectors.slack.api import SlackApi

DIRECTORY = 100  # a channel with more members than this loads users.list instead of users.info each


class People:
    def __init__(self, api: SlackApi, *, members_as_acl: bool, resolve_users: bool) -> None:
        self.api = api
        self.members_as_acl = members_as_acl
        self.resolve_users = resolve_users
        self._users: dict[str, tuple[str, str]] = {}
        self._members: dict[str, tuple[str, ...]] = {}
        self._names: dict[str, str] = {}
        self._directory_read = False

    def channel_name(self, channel: str) -> str:
        if channel not in self._names:
            info = self.api.call("conversations.info", {"channel": channel}, channel)
            self._names[channel] = str((info.get("channel") or {}).get("name") or channel)
        return self._names[channel]

    def acl(self, channel: str) -> tuple[str, ...]:
        """The channel's members as principals (none when channel_members_as_acl is off)."""
        if not self.members_as_acl:
            return ()
        if channel not in self._members:
            ids: list[str] = []
            for data in self.api.pages("conversations.members", {"channel": channel}, channel):
                ids.extend(str(m) for m in data.get("members") or [])
            if self.resolve_users and len(ids) > DIRECTORY:
                self._directory()  # one users.list page per 200 people beats one users.info each
            principals = {self.user(uid)[1] for uid in ids}
            self._members[channel] = tuple(sorted(p for p in principals if p))
        return self._members[channel]

    def user(self, uid: str) -> tuple[str, str]:
        """(display name, principal) for a user ID; the principal is "" for a deactivated user."""
        if uid not in self._users:
            if not self.resolve_users:
                self._users[uid] = (uid, f"user:{uid}")
                return self._users[uid]
            data = self.api.call("users.info", {"user": uid}, missing_ok=("user_not_found",))
            self._users[uid] = _identity(uid, data.get("user") or {})
        return self._users[uid]

    def _directory(self) -> None:
        if self._directory_read:
            return
        self._directory_read = True
        for data in self.api.pages("users.list", {}, None):
            for user in data.get("members") or []:
                if user.get("id"):
                    self._users[str(user["id"])] = _identity(str(user["id"]), user)


def _identity(uid: str, user: Mapping[str, Any]) -> tuple[str, str]:
    """(display name, principal): ``user:<email>`` (lower-cased) when Slack shares it, else
    ``user:<id>``; no principal for a deactivated user."""
    profile = user.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
    email = str(profile.get("email") or "").strip().lower()
    principal = "" if user.get("deleted") else (f"user:{email}" if email else f"user:{uid}")
    return str(name or uid), principal
