"""The Slack connector against a fake Web API that speaks Slack's shapes: cursor pagination in
``response_metadata``, newest-first history, threads through ``conversations.replies``, a 429 with
Retry-After, ``ok: false`` errors (``ratelimited``, ``invalid_auth``, ``not_in_channel``,
``thread_not_found``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fakeapi import Reply, Request, client, reply, serve
from yielded import items, last_cursor

from sluice.connectors import Checkpoint, ConnectorConfigError, Context, Instance, SourceError, Tombstone
from sluice.connectors.slack import SlackConnector

TOKEN = "xoxb-test-token"
NOW = 1_800_000_000.0
A = "1799900000.000100"  # a thread with two replies
B = "1799900500.000100"  # a lone message
C = "1799900700.000100"  # a lone message
JOIN = "1799900600.000100"  # housekeeping, never a document
OLD = "1799000000.000100"  # a thread older than the lookback window


class FakeSlack:
    def __init__(self) -> None:
        self.page = 2  # Slack may return fewer than ``limit``; small pages exercise pagination
        self.messages: dict[str, dict[str, dict[str, Any]]] = {"C024BE91L": {}, "G0PRIVATE": {}}
        self.names = {"C024BE91L": "support", "G0PRIVATE": "secret-club"}
        self.members = {"C024BE91L": ["U1", "U2", "U3"], "G0PRIVATE": ["U1"]}
        self.users = {
            "U1": {"name": "ana", "profile": {"display_name": "Ana", "email": "Ana@Example.com"}},
            "U2": {"name": "bob", "profile": {"real_name": "Bob Stone", "email": "bob@example.com"}},
            "U3": {"name": "cy", "profile": {"real_name": "Cy"}},
        }
        self.channel_errors: dict[str, str] = {}
        self.http_429_once = {"conversations.history"}
        self.ratelimited_once = {"conversations.replies"}
        self.calls: list[tuple[str, dict[str, str]]] = []

    def post(self, ts: str, user: str, text: str, thread: str | None = None, channel: str = "C024BE91L") -> None:
        message: dict[str, Any] = {"type": "message", "ts": ts, "user": user, "text": text}
        if thread:
            message["thread_ts"] = thread
            parent = self.messages[channel][thread]
            parent["thread_ts"] = thread
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = max(parent.get("latest_reply", ts), ts, key=Decimal)
        self.messages[channel][ts] = message

    def delete(self, ts: str, channel: str = "C024BE91L") -> None:
        for key in [k for k, m in self.messages[channel].items() if k == ts or m.get("thread_ts") == ts]:
            del self.messages[channel][key]

    def __call__(self, request: Request) -> Reply:
        method = request.path.removeprefix("/api/")
        self.calls.append((method, request.query))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return reply({"ok": False, "error": "invalid_auth"})
        if method in self.http_429_once:
            self.http_429_once.discard(method)
            return reply({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": "1"})
        if method in self.ratelimited_once:
            self.ratelimited_once.discard(method)
            return reply({"ok": False, "error": "ratelimited"}, 200, {"Retry-After": "2"})
        q = request.query
        channel = q.get("channel", "")
        if channel and channel not in self.messages:
            return reply({"ok": False, "error": "channel_not_found"})
        if channel in self.channel_errors:
            return reply({"ok": False, "error": self.channel_errors[channel]})
        if method == "auth.test":
            return reply({"ok": True, "url": "https://acme.slack.com/", "team": "Acme"})
        if method == "conversations.info":
            return reply({"ok": True, "channel": {"id": channel, "name": self.names[channel]}})
        if method == "users.info":
            user = self.users.get(q["user"])
            return reply(
                {"ok": True, "user": {"id": q["user"], **user}} if user else {"ok": False, "error": "user_not_found"}
            )
        if method == "users.list":
            return self._paged(q, [{"id": uid, **user} for uid, user in self.users.items()], "members")
        if method == "conversations.members":
            return self._paged(q, self.members[channel], "members")
        if method == "conversations.history":
            return self._history(q)
        if method == "conversations.replies":
            return self._replies(q)
        return reply({"ok": False, "error": "unknown_method"})

    def _history(self, q: dict[str, str]) -> Reply:
        inclusive = q.get("inclusive") in ("true", "1")
        oldest, latest = Decimal(q.get("oldest", "0")), Decimal(q.get("latest", str(NOW * 2)))
        top = [
            dict(m)
            for m in self.messages[q["channel"]].values()
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
        ]
        inside = [
            m
            for m in top
            if (oldest <= Decimal(m["ts"]) <= latest)
            if inclusive or (Decimal(m["ts"]) not in (oldest, latest))
        ]
        inside.sort(key=lambda m: Decimal(m["ts"]), reverse=True)
        return self._paged(q, inside, "messages")

    def _replies(self, q: dict[str, str]) -> Reply:
        messages = self.messages[q["channel"]]
        parent = messages.get(q["ts"])
        if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
            return reply({"ok": False, "error": "thread_not_found"})
        replies = sorted(
            (m for m in messages.values() if m.get("thread_ts") == q["ts"] and m["ts"] != q["ts"]),
            key=lambda m: Decimal(m["ts"]),
        )
        start = int(q.get("cursor") or 0)
        size = min(int(q.get("limit", 100)), self.page)
        chunk = [dict(parent), *replies[start : start + size]]  # Slack repeats the parent on each page
        more = start + size < len(replies)
        return reply(
            {
                "ok": True,
                "messages": chunk,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + size) if more else ""},
            }
        )

    def _paged(self, q: dict[str, str], values: list[Any], field: str) -> Reply:
        start = int(q.get("cursor") or 0)
        size = min(int(q.get("limit", 100)), self.page)
        more = start + size < len(values)
        return reply(
            {
                "ok": True,
                field: values[start : start + size],
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + size) if more else ""},
            }
        )


@pytest.fixture
def slack() -> FakeSlack:
    fake = FakeSlack()
    fake.post(OLD, "U3", "Old question")
    fake.post("1799000100.000100", "U1", "Old answer", thread=OLD)
    fake.post(A, "U1", "How do I reset <@U2>'s password?")
    fake.post("1799900060.000100", "U2", "Use the <https://help.example.com/reset|reset page>", thread=A)
    fake.post("1799900120.000100", "U3", "thanks &amp; bye", thread=A)
    fake.post(B, "U2", "Deploy done :tada:")
    fake.messages["C024BE91L"][JOIN] = {
        "type": "message",
        "subtype": "channel_join",
        "ts": JOIN,
        "user": "U3",
        "text": "joined",
    }
    fake.post(C, "U1", "Anyone around?")
    return fake


@pytest.fixture
def api(slack: FakeSlack) -> Iterator[str]:
    with serve(slack) as fake:
        yield fake.url


def connector(api: str, sleeps: list[float], clock: list[float], token: str = TOKEN, **settings: Any) -> SlackConnector:
    merged = {"channels": ["C024BE91L"], "api_url": f"{api}/api", "allowed_networks": ["127.0.0.1/32"], **settings}
    context = Context(secret={"token": token}, http=client(sleeps), now=lambda: clock[0])
    return SlackConnector.from_instance(Instance("support", "slack", merged, "sluice/slack"), context)


def test_each_thread_becomes_one_markdown_document_allowed_to_the_channel_members(api: str) -> None:
    sleeps: list[float] = []
    changes = list(connector(api, sleeps, [NOW]).changes(None))

    docs = items(changes)
    assert set(docs) == {f"C024BE91L/{ts}" for ts in (A, B, C, OLD)}
    thread = docs[f"C024BE91L/{A}"]
    text = thread.body.decode()
    assert text.startswith("# #support: How do I reset @Bob Stone's password?\n")
    assert "**Ana** (2027-01-14 04:13): How do I reset @Bob Stone's password?" in text
    assert "**Bob Stone** (04:14): Use the [reset page](https://help.example.com/reset)" in text
    assert "**Cy** (04:15): thanks & bye" in text
    assert "joined" not in "".join(d.body.decode() for d in docs.values())
    assert thread.allow == ("user:U3", "user:ana@example.com", "user:bob@example.com")
    assert thread.source_url == "https://acme.slack.com/archives/C024BE91L/p1799900000000100"
    assert thread.created_at == "2027-01-14T04:13:20Z" and thread.updated_at == "2027-01-14T04:15:20Z"
    assert thread.author == "Ana" and thread.ext == "md"
    assert thread.attributes == {"channel": "support", "channel_id": "C024BE91L", "thread_ts": A, "reply_count": 2}
    # A 429 with Retry-After and an ``ok: false, ratelimited`` were both waited out, as asked.
    assert sleeps == [1.0, 2.0]
    # A checkpoint after each history page (three pages of two) and one when the channel is done.
    assert sum(isinstance(c, Checkpoint) for c in changes) == 3


def test_a_new_reply_renders_its_thread_again_and_leaves_the_others_alone(api: str, slack: FakeSlack) -> None:
    sleeps: list[float] = []
    clock = [NOW]
    cursor = last_cursor(list(connector(api, sleeps, clock).changes(None)))

    clock[0] = NOW + 3600
    slack.post("1800001000.000100", "U2", "Fixed in 2.1", thread=A)
    slack.post("1800002000.000100", "U3", "New topic")
    second = list(connector(api, sleeps, clock).changes(cursor))

    docs = items(second)
    assert set(docs) == {f"C024BE91L/{A}", "C024BE91L/1800002000.000100"}
    assert "**Bob Stone** (2027-01-15 08:16): Fixed in 2.1" in docs[f"C024BE91L/{A}"].body.decode()
    assert docs[f"C024BE91L/{A}"].attributes["reply_count"] == 3

    clock[0] = NOW + 7200
    assert items(list(connector(api, sleeps, clock).changes(last_cursor(second)))) == {}


def test_a_thread_gone_within_the_lookback_becomes_a_tombstone(api: str, slack: FakeSlack) -> None:
    sleeps: list[float] = []
    clock = [NOW]
    cursor = last_cursor(list(connector(api, sleeps, clock).changes(None)))

    slack.delete(A)
    slack.delete(OLD)  # older than lookback_days: not checked, not removed (a documented limit)
    clock[0] = NOW + 3600
    second = list(connector(api, sleeps, clock).changes(cursor))

    assert [c for c in second if isinstance(c, Tombstone)] == [Tombstone(f"C024BE91L/{A}")]
    assert items(second) == {}


def test_a_run_resumed_from_its_first_checkpoint_loses_nothing_and_repeats_nothing(api: str) -> None:
    clock = [NOW]
    first: list[Any] = []
    for change in connector(api, [], clock).changes(None):
        first.append(change)
        if isinstance(change, Checkpoint):
            break  # the run stops here (its budget ran out); the runner committed this cursor
    resumed = list(connector(api, [], clock).changes(first[-1].cursor))

    assert set(items(first)) == {f"C024BE91L/{C}"}
    assert not set(items(first)) & set(items(resumed))
    assert set(items(first)) | set(items(resumed)) == {f"C024BE91L/{ts}" for ts in (A, B, C, OLD)}


def test_a_large_channel_reads_the_user_directory_instead_of_one_look_up_per_member(api: str, slack: FakeSlack) -> None:
    crowd = {f"U9{n:03d}": {"name": f"p{n}", "profile": {"email": f"p{n}@example.com"}} for n in range(150)}
    slack.users.update(crowd)
    slack.members["C024BE91L"] += list(crowd)
    slack.page = 100

    thread = items(list(connector(api, [], [NOW]).changes(None)))[f"C024BE91L/{A}"]

    assert len(thread.allow) == 153 and "user:p7@example.com" in thread.allow
    assert sum(method == "users.list" for method, _ in slack.calls) == 2  # 153 people, 100 a page
    assert {q["user"] for method, q in slack.calls if method == "users.info"} <= {"U1", "U2", "U3"}


def test_day_grouping_makes_one_document_per_channel_and_day(api: str, slack: FakeSlack) -> None:
    clock = [NOW]
    changes = list(connector(api, [], clock, group_by="day", channel_members_as_acl=False).changes(None))

    docs = items(changes)
    assert set(docs) == {"C024BE91L/2027-01-03", "C024BE91L/2027-01-14"}
    day = docs["C024BE91L/2027-01-14"].body.decode()
    assert day.index("How do I reset") < day.index("> **Bob Stone** (04:14): Use the") < day.index("Deploy done")
    assert day.index("Deploy done") < day.index("Anyone around?")
    assert docs["C024BE91L/2027-01-14"].allow == ()
    assert docs["C024BE91L/2027-01-14"].title == "#support — 2027-01-14"

    slack.delete(A)
    slack.delete(B)
    slack.delete(C)
    clock[0] = NOW + 3600
    second = list(connector(api, [], clock, group_by="day").changes(last_cursor(changes)))
    assert [c for c in second if isinstance(c, Tombstone)] == [Tombstone("C024BE91L/2027-01-14")]


def test_a_refused_token_or_channel_stops_the_run_naming_the_channel(api: str, slack: FakeSlack) -> None:
    with pytest.raises(SourceError, match="invalid_auth: the token in the secret was refused"):
        list(connector(api, [], [NOW], token="xoxb-wrong").changes(None))

    slack.channel_errors["G0PRIVATE"] = "not_in_channel"
    run = connector(api, [], [NOW], channels=["C024BE91L", "G0PRIVATE"]).changes(None)
    with pytest.raises(SourceError, match=r"channel G0PRIVATE: not_in_channel: invite the app"):
        list(run)


def test_settings_problems_are_reported_together() -> None:
    settings = {
        "channels": ["#general"],
        "group_by": "week",
        "lookback_days": 365,
        "api_url": "http://slack.internal/api",
        "oldest": "last tuesday",
        "chanels": [],
    }
    with pytest.raises(ConnectorConfigError) as caught:
        SlackConnector.from_instance(Instance("s", "slack", settings), Context(secret={}))
    problems = "\n".join(caught.value.problems)
    for expected in (
        "unknown setting 'chanels' (did you mean 'channels'?)",
        '"token"',
        "'#general' is not a channel ID",
        "group_by",
        "lookback_days",
        "api_url must use https",
        "oldest",
    ):
        assert expected in problems
    assert len(caught.value.problems) == 7
