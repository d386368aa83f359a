"""The Snowflake connector against a fake SQL API v2 that checks every request's key-pair JWT (its
RS256 signature against the user's public key, its iss and sub) and speaks the documented shapes:
202 + statementHandle while the statement runs, resultSetMetaData.rowType and partitionInfo, rows as
arrays of strings, ``?partition=N``, 422 for SQL it refuses, a 429 with Retry-After."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fakeapi import FakeAPI, Reply, Request, client, reply, serve
from yielded import items

from sluice.connectors import Checkpoint, ConnectorConfigError, Context, Instance, SourceError, Tombstone
from sluice.connectors.snowflake import SnowflakeConnector

NOW = 1_800_000_000.0
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
COLUMNS = ["ID", "UPDATED", "TITLE", "BODY", "URL", "READERS"]
ROWS = [  # kb-2 and kb-3 share a cursor value, across a partition boundary
    [
        "kb-1",
        "2027-01-10 09:00:00.000",
        "Printers",
        "Paper jams: open tray 2.",
        "https://wiki.example.com/1",
        "group:it",
    ],
    ["kb-2", "2027-01-10 09:30:00.000", "VPN", "Use the new profile.", None, "group:it, user:Ana@Example.com"],
    ["kb-3", "2027-01-10 09:30:00.000", "Email", "Quota is 50 GB.", "https://wiki.example.com/3", "group:it"],
    ["kb-4", "2027-01-12 15:45:10.000", "Badges", "Lost badge: call security.", None, ""],
    ["kb-5", "2027-01-13 07:00:00.000", "Laptops", "Refresh every 3 years.", None, "everyone"],
]
SQL = "SELECT ID, UPDATED, TITLE, BODY, URL, READERS FROM KB WHERE UPDATED >= TO_TIMESTAMP_NTZ(?) ORDER BY UPDATED, ID"


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeSnowflake:
    def __init__(self, account: str = "XY12345", user: str = "SLUICE_READER") -> None:
        self.expected_iss = f"{account}.{user}.{fingerprint(KEY)}"
        self.expected_sub = f"{account}.{user}"
        self.claims: list[dict[str, Any]] = []
        self.statements: list[dict[str, Any]] = []
        self.handles: dict[str, list[list[list[Any]]]] = {}
        self.polls_left = 0
        self.http_429_once = True

    def __call__(self, request: Request) -> Reply:
        refusal = self._check_jwt(request)
        if refusal:
            return reply({"code": "390144", "message": refusal}, 401)
        if request.method == "POST" and request.path == "/api/v2/statements":
            assert request.query.get("requestId")
            return self._submit(request.json())
        handle = request.path.removeprefix("/api/v2/statements/")
        if handle not in self.handles:
            return reply({"code": "000709", "message": "Statement not found"}, 404)
        if "partition" in request.query:
            if self.http_429_once:
                self.http_429_once = False
                return reply({"code": "390400", "message": "Too many requests"}, 429, {"Retry-After": "1"})
            return reply({"data": self.handles[handle][int(request.query["partition"])]})
        if self.polls_left:
            self.polls_left -= 1
            return self._running(handle)
        return self._first_partition(handle)

    def _check_jwt(self, request: Request) -> str:
        if request.headers.get("x-snowflake-authorization-token-type") != "KEYPAIR_JWT":
            return "missing token type"
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        header, payload, signature = token.split(".")
        try:
            KEY.public_key().verify(
                _unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:  # noqa: BLE001 - any failure is a refused token
            return "JWT token is invalid."
        claims = json.loads(_unb64(payload))
        self.claims.append({"header": json.loads(_unb64(header)), **claims})
        if claims["iss"] != self.expected_iss or claims["sub"] != self.expected_sub:
            return "JWT token is invalid."
        if not 0 < claims["exp"] - claims["iat"] <= 3600:
            return "JWT token lifetime is invalid."
        return ""

    def _submit(self, body: dict[str, Any]) -> Reply:
        self.statements.append(body)
        if "NOPE" in body["statement"]:
            return reply(
                {
                    "code": "002003",
                    "sqlState": "42S02",
                    "message": "SQL compilation error:\nObject 'NOPE' does not exist or not authorized.",
                    "statementHandle": "01b2-fail",
                },
                422,
            )
        bound = body["bindings"]["1"]
        assert bound["type"] == "TEXT"
        rows = [r for r in ROWS if r[1] >= bound["value"]]
        handle = f"01b2-{len(self.handles):04d}"
        self.handles[handle] = [rows[i : i + 2] for i in range(0, len(rows), 2)] or [[]]
        self.polls_left = 1
        return self._running(handle)

    def _running(self, handle: str) -> Reply:
        return reply(
            {
                "code": "333334",
                "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
                "statementHandle": handle,
                "statementStatusUrl": f"/api/v2/statements/{handle}",
            },
            202,
        )

    def _first_partition(self, handle: str) -> Reply:
        partitions = self.handles[handle]
        return reply(
            {
                "resultSetMetaData": {
                    "numRows": sum(len(p) for p in partitions),
                    "format": "jsonv2",
                    "partitionInfo": [{"rowCount": len(p), "uncompressedSize": 100} for p in partitions],
                    "rowType": [{"name": name, "type": "text", "nullable": True} for name in COLUMNS],
                },
                "data": partitions[0],
                "code": "090001",
                "statementStatusUrl": f"/api/v2/statements/{handle}",
                "statementHandle": handle,
                "message": "Statement executed successfully.",
            }
        )


@pytest.fixture
def snowflake() -> Iterator[tuple[FakeSnowflake, FakeAPI]]:
    fake = FakeSnowflake()
    with serve(fake) as api:
        yield fake, api


def settings(api: str, **overrides: Any) -> dict[str, Any]:
    return {
        "account": "xy12345.us-east-1",
        "user": "sluice_reader",
        "api_url": api,
        "allowed_networks": ["127.0.0.1/32"],
        "warehouse": "READER_WH",
        "database": "DOCS",
        "schema": "PUBLIC",
        "role": "SLUICE_RO",
        "sql": SQL,
        "id_column": "id",
        "cursor_column": "UPDATED",
        "title_column": "TITLE",
        "url_column": "URL",
        "template": "# {TITLE}\n\n{body}\n\nUpdated {UPDATED}.",
        "initial_cursor": "1970-01-01 00:00:00",
        "acl_group": "analysts",
        **overrides,
    }


def connector(
    api: str, sleeps: list[float], secret: dict[str, str] | None = None, **overrides: Any
) -> SnowflakeConnector:
    context = Context(secret=secret or {"private_key": PEM}, http=client(sleeps), now=lambda: NOW)
    return SnowflakeConnector.from_instance(
        Instance("kb", "snowflake", settings(api, **overrides), "sluice/sf"), context
    )


def test_rows_become_documents_through_a_verified_key_pair_jwt(snowflake: tuple[FakeSnowflake, FakeAPI]) -> None:
    fake, api = snowflake
    sleeps: list[float] = []
    changes = list(connector(api.url, sleeps).changes(None))

    docs = items(changes)
    assert set(docs) == {f"kb-{n}" for n in range(1, 6)}
    first = docs["kb-1"]
    assert first.body == b"# Printers\n\nPaper jams: open tray 2.\n\nUpdated 2027-01-10 09:00:00.000."
    assert (first.title, first.source_url, first.allow, first.ext) == (
        "Printers",
        "https://wiki.example.com/1",
        ("group:analysts",),
        "md",
    )
    assert docs["kb-2"].source_url is None
    assert docs["kb-2"].updated_at == "2027-01-10T09:30:00"
    # Every request carried a JWT the fake verified with the public key: RS256, iss and sub per the docs.
    assert fake.claims and all(c["header"] == {"alg": "RS256", "typ": "JWT"} for c in fake.claims)
    assert fake.claims[0]["iss"] == f"XY12345.SLUICE_READER.{fingerprint(KEY)}"
    assert fake.claims[0]["sub"] == "XY12345.SLUICE_READER"
    assert fake.claims[0]["iat"] == int(NOW) and fake.claims[0]["exp"] - fake.claims[0]["iat"] <= 3600
    assert fake.statements == [
        {
            "statement": SQL,
            "timeout": 600,
            "warehouse": "READER_WH",
            "database": "DOCS",
            "schema": "PUBLIC",
            "role": "SLUICE_RO",
            "bindings": {"1": {"type": "TEXT", "value": "1970-01-01 00:00:00"}},
        }
    ]
    # 202 on submitting and on the first poll: two growing poll waits; then partition 1's 429 waited
    # out its Retry-After.
    assert sleeps == [0.5, 1.0, 1.0]
    cursors = [json.loads(c.cursor) for c in changes if isinstance(c, Checkpoint)]
    assert cursors == [
        {"v": 1, "cursor": "2027-01-10 09:30:00.000", "ids": ["kb-2"]},
        {"v": 1, "cursor": "2027-01-12 15:45:10.000", "ids": ["kb-4"]},
        {"v": 1, "cursor": "2027-01-13 07:00:00.000", "ids": ["kb-5"]},
    ]
    assert [r.query.get("partition") for r in api.requests if "partition" in r.query] == ["1", "1", "2"]


def test_a_run_resumed_from_its_first_checkpoint_loses_nothing_and_repeats_nothing(
    snowflake: tuple[FakeSnowflake, FakeAPI],
) -> None:
    fake, api = snowflake
    first: list[Any] = []
    for change in connector(api.url, []).changes(None):
        first.append(change)
        if isinstance(change, Checkpoint):
            break
    resumed = list(connector(api.url, []).changes(first[-1].cursor))

    # kb-3 shares kb-2's cursor value: read again by >=, it is yielded once, and kb-2 not again.
    assert set(items(first)) == {"kb-1", "kb-2"}
    assert set(items(resumed)) == {"kb-3", "kb-4", "kb-5"}
    assert fake.statements[-1]["bindings"]["1"]["value"] == "2027-01-10 09:30:00.000"
    done = [c for c in resumed if isinstance(c, Checkpoint)][-1].cursor
    assert items(list(connector(api.url, []).changes(done))) == {}


def test_an_acl_column_allows_each_row_to_its_principals_and_withdraws_rows_without_a_readable_list(
    snowflake: tuple[FakeSnowflake, FakeAPI],
) -> None:
    _, api = snowflake
    changes = list(connector(api.url, [], acl_group=None, acl_column="readers").changes(None))

    docs = items(changes)
    assert docs["kb-2"].allow == ("group:it", "user:ana@example.com")
    assert docs["kb-1"].allow == ("group:it",)
    # An empty list and one that is not principals: default deny, the documents are withdrawn.
    assert [c for c in changes if isinstance(c, Tombstone)] == [Tombstone("kb-4"), Tombstone("kb-5")]


def test_sql_snowflake_refuses_stops_the_run_with_its_message(snowflake: tuple[FakeSnowflake, FakeAPI]) -> None:
    _, api = snowflake
    with pytest.raises(
        SourceError, match=r"refused the statement: SQL compilation error:\nObject 'NOPE' does not exist"
    ):
        list(connector(api.url, [], sql="SELECT * FROM NOPE WHERE X > ?").changes(None))


def test_a_key_the_user_does_not_have_is_refused_with_the_fingerprint_to_compare(
    snowflake: tuple[FakeSnowflake, FakeAPI],
) -> None:
    _, api = snowflake
    other = OTHER_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    with pytest.raises(
        SourceError, match=f"HTTP 401: JWT token is invalid.*RSA_PUBLIC_KEY_FP = {re.escape(fingerprint(OTHER_KEY))}$"
    ):
        list(connector(api.url, [], secret={"private_key": other}).changes(None))


@pytest.mark.parametrize(
    ("account", "named"),
    [("xy12345.us-east-1", "XY12345"), ("myorg-analytics", "MYORG-ANALYTICS"), ("xy12345", "XY12345")],
)
def test_the_jwt_names_the_account_as_snowflake_expects(account: str, named: str) -> None:
    fake = FakeSnowflake(account=named)
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    secret = {"private_key": encrypted.replace("\n", "\\n"), "private_key_passphrase": "pw"}
    with serve(fake) as api:
        assert len(items(list(connector(api.url, [], secret=secret, account=account).changes(None)))) == 5
    assert fake.claims[0]["sub"] == f"{named}.SLUICE_READER"


def test_the_template_allows_plain_column_fields_only_and_other_problems_are_listed_too() -> None:
    for template in ("{row.__class__}", "{TITLE[0]}", "{}", "{0}", "{TITLE!r}", "{TITLE:>{WIDTH}}", "{TITLE"):
        with pytest.raises(ConnectorConfigError, match="template"):
            SnowflakeConnector.from_instance(
                Instance("kb", "snowflake", settings("https://x.snowflakecomputing.com", template=template)),
                Context(secret={"private_key": PEM}),
            )

    broken = settings(
        "http://x.example.com",
        sql="SELECT * FROM KB",
        ext="exe",
        initial_cursor=None,
        role="bad role",
        acl_column="READERS",
        cursr=1,
    )
    del broken["allowed_networks"]
    with pytest.raises(ConnectorConfigError) as caught:
        SnowflakeConnector.from_instance(Instance("kb", "snowflake", broken), Context(secret={"private_key": "nope"}))
    problems = "\n".join(caught.value.problems)
    for expected in (
        "unknown setting 'cursr'",
        'the secret needs "private_key"',
        "api_url must use https",
        "role must be a Snowflake identifier",
        "sql must have exactly one ? (the cursor), not 0",
        "ext must be one of md, txt, html, json",
        "initial_cursor is needed",
        "acl_group and acl_column exclude each other",
    ):
        assert expected in problems

    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    with pytest.raises(ConnectorConfigError, match="it is encrypted: add private_key_passphrase"):
        SnowflakeConnector.from_instance(
            Instance("kb", "snowflake", settings("https://x.snowflakecomputing.com")),
            Context(secret={"private_key": encrypted}),
        )
    # A ? inside a string literal or a comment is not the bind.
    sql = "SELECT 'why?' AS Q, ID FROM KB WHERE UPDATED > ? -- newest?"
    SnowflakeConnector.from_instance(
        Instance("kb", "snowflake", settings("https://x.snowflakecomputing.com", sql=sql)),
        Context(secret={"private_key": PEM}),
    )
