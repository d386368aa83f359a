"""The Salesforce connector against a fake org that speaks the documented shapes: the OAuth 2.0
client credentials token endpoint, SOQL through ``/query`` with ``nextRecordsUrl`` pages, 401
``INVALID_SESSION_ID``, ``[{"errorCode", "message"}]`` errors, and the ``/sobjects/X/deleted/``
delete log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakeapi import FakeAPI, Reply, Request, client, reply, serve
from yielded import items, last_cursor

from sluice.connectors import Checkpoint, ConnectorConfigError, Context, Instance, SourceError, Tombstone
from sluice.connectors.salesforce import SalesforceConnector

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
API = "/services/data/v60.0"
CASES = [
    # Id, SystemModstamp: the second and third share a timestamp, across a page boundary
    ("500A00000000001AAA", "2027-01-10T09:00:00.000+0000"),
    ("500A00000000002AAA", "2027-01-10T09:30:00.000+0000"),
    ("500A00000000003AAA", "2027-01-10T09:30:00.000+0000"),
    ("500A00000000004AAA", "2027-01-11T12:00:00.000+0000"),
    ("500A00000000005AAA", "2027-01-12T15:45:10.000+0000"),
]


class FakeOrg:
    def __init__(self) -> None:
        self.url = ""
        self.page = 2
        self.records: dict[str, list[dict[str, Any]]] = {"Case": [], "Knowledge__kav": []}
        self.deleted: dict[str, list[dict[str, str]]] = {}
        self.tokens: set[str] = set()
        self.issued = 0
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.http_429_once = True
        self.expire_after_first_page = False
        self.never_valid = False
        for number, (record_id, stamp) in enumerate(CASES, 1):
            self.records["Case"].append(
                {
                    "attributes": {"type": "Case", "url": f"{API}/sobjects/Case/{record_id}"},
                    "Id": record_id,
                    "SystemModstamp": stamp,
                    "CreatedDate": "2027-01-01T08:00:00.000+0000",
                    "Subject": f"Printer {number} jams",
                    "CaseNumber": f"0000100{number}",
                    "Status": "New",
                    "Description": f"Paper jam on floor {number}.\nTried turning it off and on.",
                    "Owner": {"attributes": {"type": "Name"}, "Name": "Ana Lima"},
                }
            )
        self.records["Knowledge__kav"].append(
            {
                "attributes": {"type": "Knowledge__kav"},
                "Id": "ka0A0000000001vAAA",
                "KnowledgeArticleId": "kA0A0000000001AAA",
                "SystemModstamp": "2027-01-09T10:00:00.000+0000",
                "CreatedDate": "2027-01-02T10:00:00.000+0000",
                "Title": "Resetting a password",
                "Summary": "<p>Open <b>Settings</b>.</p><h2>If locked out</h2><p>Call the desk.</p>",
                "ArticleNumber": "000001001",
                "UrlName": "resetting-a-password",
                "PublishStatus": "Online",
            }
        )

    def __call__(self, request: Request) -> Reply:
        if request.path == "/services/oauth2/token":
            return self._token(request)
        auth = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.never_valid or auth not in self.tokens:
            return reply([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401)
        if request.path == f"{API}/query":
            if self.http_429_once:
                self.http_429_once = False
                return reply([{"errorCode": "REQUEST_LIMIT", "message": "slow down"}], 429, {"Retry-After": "1"})
            return self._query(request.query["q"])
        if request.path.startswith(f"{API}/query/"):
            return self._page(request.path.rsplit("/", 1)[1])
        found = re.fullmatch(rf"{API}/sobjects/(\w+)/deleted/", request.path)
        if found:
            return self._deleted(found.group(1), request.query)
        return reply([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}], 404)

    def _token(self, request: Request) -> Reply:
        form = request.form()
        if request.headers.get("content-type") != "application/x-www-form-urlencoded" or form != {
            "grant_type": "client_credentials",
            "client_id": "cid",
            "client_secret": "shh",
        }:
            return reply({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        self.issued += 1
        token = f"00D!token{self.issued}"
        self.tokens.add(token)
        return reply({"access_token": token, "instance_url": self.url, "token_type": "Bearer", "issued_at": "1"})

    def _query(self, soql: str) -> Reply:
        found = re.fullmatch(r"SELECT (.+) FROM (\w+)(?: WHERE (.+))? ORDER BY SystemModstamp, Id", soql)
        if not found or found.group(2) not in self.records:
            return reply([{"errorCode": "INVALID_TYPE", "message": f"sObject type in {soql!r} is not supported."}], 400)
        where = found.group(3) or ""
        since = re.search(r"SystemModstamp >= (\S+)", where)
        rows = [
            r
            for r in self.records[found.group(2)]
            if not since or _when(r["SystemModstamp"]) >= _when(since.group(1))
            if "PublishStatus = 'Online'" not in where or r["PublishStatus"] == "Online"
        ]
        rows.sort(key=lambda r: (_when(r["SystemModstamp"]), r["Id"]))
        return self._page_of(rows)

    def _page_of(self, rows: list[dict[str, Any]]) -> Reply:
        head, rest = rows[: self.page], rows[self.page :]
        body: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": head}
        if rest:
            locator = f"01gQRY-{len(self.cursors)}"
            self.cursors[locator] = rest
            body["nextRecordsUrl"] = f"{API}/query/{locator}"
        if self.expire_after_first_page:
            self.expire_after_first_page = False
            self.tokens.clear()
        return reply(body)

    def _page(self, locator: str) -> Reply:
        return self._page_of(self.cursors.pop(locator))

    def _deleted(self, name: str, query: dict[str, str]) -> Reply:
        start, end = _when(query["start"]), _when(query["end"])
        hits = [d for d in self.deleted.get(name, []) if start <= _when(d["deletedDate"]) <= end]
        return reply(
            {
                "deletedRecords": hits,
                "earliestDateAvailable": "2027-01-01T00:00:00.000+0000",
                "latestDateCovered": query["end"],
            }
        )


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture
def org() -> Iterator[tuple[FakeOrg, FakeAPI]]:
    fake = FakeOrg()
    with serve(fake) as api:
        fake.url = api.url
        yield fake, api


CASE = {"name": "Case", "author_field": "Owner.Name", "acl_group": "support"}


def connector(
    url: str, sleeps: list[float], clock: list[float], secret: str = "shh", **settings: Any
) -> SalesforceConnector:
    merged = {
        "instance_url": url,
        "allowed_networks": ["127.0.0.1/32"],
        "objects": [CASE, "Knowledge__kav"],
        **settings,
    }
    context = Context(secret={"client_id": "cid", "client_secret": secret}, http=client(sleeps), now=lambda: clock[0])
    return SalesforceConnector.from_instance(Instance("crm", "salesforce", merged, "sluice/salesforce"), context)


ALL = {f"Case/{record_id}" for record_id, _ in CASES} | {"Knowledge__kav/kA0A0000000001AAA"}


def test_records_become_markdown_documents_through_client_credentials_and_pages(org: tuple[FakeOrg, FakeAPI]) -> None:
    fake, api = org
    sleeps: list[float] = []
    changes = list(connector(api.url, sleeps, [NOW]).changes(None))

    docs = items(changes)
    assert set(docs) == ALL
    case = docs["Case/500A00000000001AAA"]
    assert case.body.decode() == (
        "# Printer 1 jams\n\n- **Object:** Case\n- **CaseNumber:** 00001001\n- **Status:** New\n\n"
        "## Description\n\nPaper jam on floor 1.\nTried turning it off and on.\n"
    )
    assert case.source_url == f"{api.url}/500A00000000001AAA"
    assert (case.author, case.allow, case.ext) == ("Ana Lima", ("group:support",), "md")
    assert (case.created_at, case.updated_at) == ("2027-01-01T08:00:00Z", "2027-01-10T09:00:00Z")
    article = docs["Knowledge__kav/kA0A0000000001AAA"].body.decode()
    assert "## Summary\n\nOpen Settings.\n\n### If locked out\n\nCall the desk." in article
    assert "- **ArticleNumber:** 000001001" in article
    # One token (client credentials, form-encoded), then SOQL pages through nextRecordsUrl.
    queries = [r.query["q"] for r in api.requests if r.path == f"{API}/query"]
    assert queries[-2:] == [
        "SELECT Id, SystemModstamp, CreatedDate, Subject, CaseNumber, Status, Description, Owner.Name FROM Case "
        "ORDER BY SystemModstamp, Id",
        "SELECT Id, SystemModstamp, CreatedDate, KnowledgeArticleId, Title, ArticleNumber, UrlName, Summary "
        "FROM Knowledge__kav WHERE (PublishStatus = 'Online') ORDER BY SystemModstamp, Id",
    ]
    assert fake.issued == 1 and sleeps == [1.0]  # the 429 was waited out as its Retry-After asked
    assert sum(isinstance(c, Checkpoint) for c in changes) == 4  # three Case pages, one Knowledge page


def test_an_expired_session_gets_one_new_token_and_the_request_again(org: tuple[FakeOrg, FakeAPI]) -> None:
    fake, api = org
    fake.expire_after_first_page = True
    assert set(items(list(connector(api.url, [], [NOW]).changes(None)))) == ALL
    assert fake.issued == 2

    fake.never_valid = True
    with pytest.raises(SourceError, match="HTTP 401 INVALID_SESSION_ID: Session expired or invalid"):
        list(connector(api.url, [], [NOW]).changes(None))
    assert fake.issued == 4  # one token, one retry with a fresh one, then it stops


def test_the_delete_log_becomes_tombstones_before_the_changes(org: tuple[FakeOrg, FakeAPI]) -> None:
    fake, api = org
    clock = [NOW + 17]
    cursor = last_cursor(list(connector(api.url, [], clock).changes(None)))

    fake.deleted["Case"] = [{"id": "500A00000000004AAA", "deletedDate": "2027-01-15T08:30:00.000+0000"}]
    fake.deleted["Knowledge__ka"] = [{"id": "kA0A0000000001AAA", "deletedDate": "2027-01-15T08:40:00.000+0000"}]
    fake.records["Case"][0]["SystemModstamp"] = "2027-01-15T08:45:00.000+0000"
    clock[0] = NOW + 3600 + 29
    second = list(connector(api.url, [], clock).changes(cursor))

    assert [c for c in second if not isinstance(c, Checkpoint)] == [
        Tombstone("Case/500A00000000004AAA"),
        items(second)["Case/500A00000000001AAA"],
        Tombstone("Knowledge__kav/kA0A0000000001AAA"),
    ]
    logs = [r.query for r in api.requests if r.path.endswith("/deleted/")]
    assert logs == [
        {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T09:00:00Z"},
        {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T09:00:00Z"},
    ]
    assert [r.path for r in api.requests if r.path.endswith("/deleted/")][1] == f"{API}/sobjects/Knowledge__ka/deleted/"
    assert '"deleted_until":"2027-01-15T09:00:00Z"' in last_cursor(second)


def test_a_cursor_older_than_the_delete_log_warns_and_reads_what_is_left(
    org: tuple[FakeOrg, FakeAPI], caplog: pytest.LogCaptureFixture
) -> None:
    _, api = org
    clock = [NOW]
    cursor = last_cursor(list(connector(api.url, [], clock, objects=[CASE]).changes(None)))

    clock[0] = NOW + 20 * 86400
    with caplog.at_level(logging.WARNING, logger="sluice.connectors.salesforce"):
        list(connector(api.url, [], clock, objects=[CASE]).changes(cursor))

    assert "no longer in the delete log; reset this instance's cursor" in caplog.text
    logs = [r.query for r in api.requests if r.path.endswith("/deleted/")]
    assert logs == [{"start": "2027-01-20T08:05:00Z", "end": "2027-02-04T08:00:00Z"}]


def test_a_run_resumed_from_its_first_checkpoint_loses_nothing_and_repeats_nothing(
    org: tuple[FakeOrg, FakeAPI],
) -> None:
    _, api = org
    first: list[Any] = []
    for change in connector(api.url, [], [NOW]).changes(None):
        first.append(change)
        if isinstance(change, Checkpoint):
            break
    resumed = list(connector(api.url, [], [NOW]).changes(first[-1].cursor))

    # The first page ended on a record whose timestamp the next page's first record shares.
    assert set(items(first)) == {"Case/500A00000000001AAA", "Case/500A00000000002AAA"}
    assert not set(items(first)) & set(items(resumed))
    assert set(items(first)) | set(items(resumed)) == ALL
    assert any("SystemModstamp >= 2027-01-10T09:30:00Z" in r.query.get("q", "") for r in api.requests)

    assert items(list(connector(api.url, [], [NOW]).changes(last_cursor(resumed)))) == {}


def test_refused_credentials_and_bad_queries_stop_the_run_with_salesforce_s_reason(
    org: tuple[FakeOrg, FakeAPI],
) -> None:
    _, api = org
    with pytest.raises(SourceError, match=r"refused the client credentials .* HTTP 400 invalid_client invalid client"):
        list(connector(api.url, [], [NOW], secret="wrong").changes(None))

    bogus = {"name": "Bogus__c", "fields": ["Name"], "title_field": "Name"}
    with pytest.raises(SourceError, match=r"query of Bogus__c: HTTP 400 INVALID_TYPE: sObject type .* not supported"):
        list(connector(api.url, [], [NOW], objects=[bogus]).changes(None))


def test_settings_problems_are_reported_together() -> None:
    settings = {
        "instance_url": "http://acme.my.salesforce.com",
        "api_version": "60",
        "objects": ["Case", {"name": "Widget__c", "fields": ["Name"]}, {"name": "Case", "fields": ["Bad Field"]}],
        "acl_group": "",
    }
    with pytest.raises(ConnectorConfigError) as caught:
        SalesforceConnector.from_instance(Instance("crm", "salesforce", settings), Context(secret={"client_id": "x"}))
    problems = "\n".join(caught.value.problems)
    for expected in (
        'the secret needs "client_secret"',
        "instance_url must use https",
        'api_version must look like "v60.0"',
        "acl_group must be a group name",
        "objects[1] (Widget__c): fields and title_field are needed",
        "objects[2] (Case): fields must be a list of field API names",
    ):
        assert expected in problems
