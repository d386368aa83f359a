"""Snowflake: the rows of an incremental query as documents, through the SQL API v2 with key-pair
(JWT) authentication. No driver: the layer's ``cryptography`` signs the token.

Secret ``{"private_key": "-----BEGIN PRIVATE KEY-----...", "private_key_passphrase": "..."}``
(the passphrase only for an encrypted key): the private half of the key assigned to ``user`` with
``ALTER USER ... SET RSA_PUBLIC_KEY = '...'``. Give that user a read-only role.

Settings:
    account         the account identifier: a locator (``xy12345.us-east-1``) or ``orgname-account``
    user            the Snowflake user the key belongs to
    api_url         default ``https://<account>.snowflakecomputing.com``
    warehouse, database, schema, role   the statement's context (default: the user's defaults)
    sql             one SELECT with exactly one ``?``: the cursor, bound as TEXT, ordered by the cursor:
                    ``... WHERE UPDATED_AT >= TO_TIMESTAMP_NTZ(?) ORDER BY UPDATED_AT, ID``. Use ``>=``:
                    the rows at the cursor's own value are read again and the ones already seen are
                    skipped, so rows sharing a value are neither lost nor repeated across a checkpoint
    id_column       names each item (one document per id; a newer row replaces the older)
    cursor_column   the value the next run binds to ``?`` (the last row's); if it reads as an ISO time
                    it is also the document's ``updated_at``. Select it as sortable text, e.g.
                    ``TO_VARCHAR(UPDATED_AT, 'YYYY-MM-DD HH24:MI:SS.FF3') AS CURSOR``
    title_column    optional: the document's title
    template        optional: the body, ``str.format`` style over column names (``# {TITLE}\\n\\n{BODY}``);
                    only plain ``{COLUMN}`` fields (no attributes, indexes, conversions or format specs;
                    names match columns case-insensitively, NULL renders as nothing). Default: each
                    column as a line (a section when the value is long)
    ext             md (default), txt, html or json: how the pipeline reads the body
    initial_cursor  bound to ``?`` on the first run (for instance ``1970-01-01 00:00:00``)
    url_column, attribute_columns   optional: the source URL, and columns copied into attributes
    acl_group       optional: one principal every row is allowed to (``group:analysts``)
    acl_column      optional, instead: a column with each row's principals (``group:support,
                    user:ana@example.com``); a row without a readable list is withdrawn (a Tombstone)
    timeout         the statement's timeout in seconds (default 600, at most 3600)
    allowed_networks  CIDRs the HTTP client may reach although they are not public (tests)

A run submits the statement (``POST /api/v2/statements``); a 202 is polled
(``GET /api/v2/statements/{handle}``) until the result is there; a result in several partitions is
fetched partition by partition (``?partition=N``), with a Checkpoint after each. A 422 (the SQL was
refused) stops the run with Snowflake's message.

Cursor (JSON): ``{"v": 1, "cursor": "<the last row's cursor_column>", "ids": ["<ids read at that
value>"]}`` (at most 5000 ids; past that a resumed run may yield a few rows again, which the runner
does not land twice); a plain string is taken as the cursor itself (handy to set one by hand).

Limitations: a query cursor sees inserts and updates, never deletions (``complete_listing`` is
false: nothing is swept); delete documents by hand, or return soft-deleted rows with an empty
``acl_column`` so they are withdrawn. A row committed late with a cursor value below one already read
is missed (as with any cursor query). Row access policies and masking apply to the connector's role,
and the documents are then readable by ``acl_group``/``acl_column`` (or whoever the index lets in
without either).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import string
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
from sluice.connectors.http import Response
from sluice.connectors.settings import (
    Problems,
    allowed_networks,
    check_url,
    http_client,
    principals,
    unknown_settings,
)

log = logging.getLogger(__name__)

SETTINGS = (
    "account",
    "user",
    "api_url",
    "warehouse",
    "database",
    "schema",
    "role",
    "sql",
    "id_column",
    "cursor_column",
    "title_column",
    "template",
    "ext",
    "initial_cursor",
    "url_column",
    "attribute_columns",
    "acl_group",
    "acl_column",
    "timeout",
    "allowed_networks",
)
ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
HANDLE = re.compile(r"^[0-9A-Za-z-]{1,100}$")
PRINCIPAL = re.compile(r"^(user|group):\S+$")
TEXT_EXTENSIONS = ("md", "txt", "html", "json")
JWT_LIFETIME = 3540  # Snowflake accepts at most an hour
JWT_RENEW = 300  # a token this close to expiry is replaced
POLL_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0)  # then 8 s each
LONG_VALUE = 200
MAX_DONE = 5000  # ids kept for the cursor's last value; past it, resuming may read a few rows again


class SnowflakeConnector:
    complete_listing: ClassVar[bool] = False

    def __init__(
        self,
        *,
        private_key: rsa.RSAPrivateKey,
        account: str,
        user: str,
        sql: str,
        id_column: str,
        cursor_column: str,
        initial_cursor: str,
        http: Any,
        api_url: str | None = None,
        context: Mapping[str, str] | None = None,  # warehouse, database, schema, role
        title_column: str | None = None,
        template: str | None = None,
        ext: str = "md",
        url_column: str | None = None,
        attribute_columns: Sequence[str] = (),
        acl_group: str | None = None,
        acl_column: str | None = None,
        timeout: int = 600,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._key = private_key
        self.account = account
        self.user = user
        self.api_url = (api_url or f"https://{account.lower()}.snowflakecomputing.com").rstrip("/")
        self.statement_context = dict(context or {})
        self.sql = sql
        self.id_column = id_column
        self.cursor_column = cursor_column
        self.title_column = title_column
        self.template = template
        self.ext = ext
        self.initial_cursor = initial_cursor
        self.url_column = url_column
        self.attribute_columns = tuple(attribute_columns)
        self.acl_group = acl_group
        self.acl_column = acl_column
        self.timeout = timeout
        self.http = http
        self.now = now
        self._sleep: Callable[[float], None] = getattr(http, "sleep", time.sleep)
        self._token = ""
        self._token_expires = 0
        public = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode()

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> SnowflakeConnector:
        settings = instance.settings
        problems = Problems()
        unknown_settings(settings, SETTINGS, problems)
        key = _private_key(context.secret, problems)
        account, user = settings.get("account"), settings.get("user")
        if not (isinstance(account, str) and ACCOUNT.match(account)):
            problems.add(f"account must be an account identifier (xy12345.us-east-1 or org-account), not {account!r}")
        if not (isinstance(user, str) and user.strip()):
            problems.add("user must name the Snowflake user the key belongs to")
        networks = allowed_networks(settings.get("allowed_networks"), problems)
        if settings.get("api_url") is not None:
            check_url("api_url", settings["api_url"], networks, problems)
        statement_context = {}
        for name in ("warehouse", "database", "schema", "role"):
            value = settings.get(name)
            if value is None:
                continue
            if isinstance(value, str) and IDENTIFIER.match(value):
                statement_context[name] = value
            else:
                problems.add(f"{name} must be a Snowflake identifier, not {value!r}")
        sql = settings.get("sql")
        if not (isinstance(sql, str) and sql.strip()):
            problems.add("sql must be the query, with one ? for the cursor")
        elif _placeholders(sql) != 1:
            problems.add(f"sql must have exactly one ? (the cursor), not {_placeholders(sql)}")
        columns = {}
        for name in ("id_column", "cursor_column", "title_column", "url_column", "acl_column"):
            value = settings.get(name)
            required = name in ("id_column", "cursor_column")
            if value is None and not required:
                continue
            if isinstance(value, str) and COLUMN.match(value):
                columns[name] = value
            else:
                problems.add(f"{name} must be a column name, not {value!r}")
        attribute_columns = settings.get("attribute_columns", [])
        if not (
            isinstance(attribute_columns, list)
            and all(isinstance(c, str) and COLUMN.match(c) for c in attribute_columns)
        ):
            problems.add(f"attribute_columns must be a list of column names, not {attribute_columns!r}")
            attribute_columns = []
        template = settings.get("template")
        if template is not None:
            _check_template(template, problems)
        ext = settings.get("ext", "md")
        if ext not in TEXT_EXTENSIONS:
            problems.add(f"ext must be one of {', '.join(TEXT_EXTENSIONS)}, not {ext!r}")
        initial = settings.get("initial_cursor")
        if isinstance(initial, bool) or not isinstance(initial, str | int | float):
            problems.add("initial_cursor is needed: the value bound to ? on the first run (e.g. '1970-01-01')")
        acl = settings.get("acl_group")
        if acl is not None:
            acl = acl if isinstance(acl, str) and acl.startswith(("user:", "group:")) else f"group:{acl}"
            if not PRINCIPAL.match(acl):
                problems.add(
                    f"acl_group must be a group name or a user:/group: principal, not {settings['acl_group']!r}"
                )
        if acl is not None and settings.get("acl_column") is not None:
            problems.add("acl_group and acl_column exclude each other: one principal for all rows, or one list per row")
        timeout = settings.get("timeout", 600)
        if not (isinstance(timeout, int) and not isinstance(timeout, bool) and 1 <= timeout <= 3600):
            problems.add(f"timeout must be a whole number of seconds from 1 to 3600, not {timeout!r}")
        problems.raise_any()
        assert key is not None  # _private_key adds a problem when it returns None
        return cls(
            private_key=key,
            account=str(account),
            user=str(user),
            api_url=settings.get("api_url"),
            context=statement_context,
            sql=str(sql),
            id_column=columns["id_column"],
            cursor_column=columns["cursor_column"],
            title_column=columns.get("title_column"),
            template=template,
            ext=str(ext),
            initial_cursor=str(initial),
            url_column=columns.get("url_column"),
            attribute_columns=[str(c) for c in attribute_columns],
            acl_group=acl,
            acl_column=columns.get("acl_column"),
            timeout=int(timeout),
            http=http_client(context, networks),
            now=context.now or time.time,
        )

    # -- the sync --------------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> Iterator[Change]:
        value, done = _load_cursor(cursor, self.initial_cursor)
        result = self._execute(value)
        handle = str(result.get("statementHandle") or "")
        meta = result.get("resultSetMetaData") or {}
        if meta.get("format", "jsonv2") != "jsonv2":
            raise SourceError(f"Snowflake answered in format {meta.get('format')!r}, not jsonv2")
        names = [str(c.get("name")) for c in meta.get("rowType") or []]
        columns = self._columns(names)
        partitions = len(meta.get("partitionInfo") or []) or 1
        for number in range(partitions):
            rows = (result.get("data") or []) if number == 0 else self._partition(handle, number)
            for row in rows:
                record = dict(zip(names, row, strict=False))
                identity = _text(record.get(columns["id_column"])).strip()
                if not identity:
                    raise SourceError(f"a row has no {columns['id_column']} (the id column); every row needs one")
                stamp = record.get(columns["cursor_column"])
                if stamp is not None and str(stamp) == value and identity in done:
                    continue  # read before the cursor was committed (the query's >= reads it again)
                yield self._change(identity, record, columns)
                if stamp is None:
                    continue
                if str(stamp) != value:
                    value, done = str(stamp), set()
                if len(done) < MAX_DONE:
                    done.add(identity)
            yield Checkpoint(json.dumps({"v": 1, "cursor": value, "ids": sorted(done)}, separators=(",", ":")))

    def _columns(self, names: Sequence[str]) -> dict[str, str]:
        """The settings' column names as the result spells them (names match case-insensitively)."""
        wanted = {
            "id_column": self.id_column,
            "cursor_column": self.cursor_column,
            "title_column": self.title_column,
            "url_column": self.url_column,
            "acl_column": self.acl_column,
        }
        wanted.update({f"attribute {c}": c for c in self.attribute_columns})
        if self.template:
            wanted.update({f"template field {f}": f for f in _template_fields(self.template)})
        found: dict[str, str] = {}
        missing = []
        for role, column in wanted.items():
            if column is None:
                continue
            match = _column(names, column)
            if match is None:
                missing.append(f"{role} {column!r}" if not role.startswith(("attribute", "template")) else role)
            else:
                found[role] = match
        if missing:
            raise SourceError(f"the query returns no column for {', '.join(missing)}; it returns {', '.join(names)}")
        return found

    def _change(self, identity: str, record: Mapping[str, Any], columns: Mapping[str, str]) -> Item | Tombstone:
        allow: tuple[str, ...] = (self.acl_group,) if self.acl_group else ()
        if self.acl_column:
            allow = principals(_text(record.get(columns["acl_column"])))
            if not allow:  # default deny: a row nobody is granted is withdrawn, never made public
                log.warning("snowflake connector: row %s has no readable %s; not indexed", identity, self.acl_column)
                return Tombstone(safe_item_id(identity))
        title = _text(record.get(columns["title_column"])) if "title_column" in columns else ""
        url = _text(record.get(columns["url_column"])) if "url_column" in columns else ""
        attributes = {c: _text(record.get(columns[f"attribute {c}"])) for c in self.attribute_columns}
        return Item(
            item_id=safe_item_id(identity),
            body=self._body(record, title).encode(),
            ext=self.ext,
            title=title or None,
            source_url=url if url.startswith(("https://", "http://")) else None,
            updated_at=_iso(_text(record.get(columns["cursor_column"]))),
            allow=allow,
            attributes={k: v for k, v in attributes.items() if v},
        )

    def _body(self, record: Mapping[str, Any], title: str) -> str:
        if self.template is not None:
            out = []
            for literal, field, _, _ in string.Formatter().parse(self.template):
                out.append(literal)
                if field is not None:
                    out.append(_text(record.get(_column(list(record), field) or field)))
            return "".join(out)
        lines = [f"# {title}", ""] if title else []
        for name, value in record.items():
            text = _text(value)
            if not text:
                continue
            if "\n" in text or len(text) > LONG_VALUE:
                lines.extend(["", f"## {name}", "", text, ""])
            else:
                lines.append(f"- **{name}:** {text}")
        return "\n".join(lines).strip() + "\n"

    # -- the SQL API -----------------------------------------------------------------------------

    def _execute(self, cursor: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "statement": self.sql,
            "timeout": self.timeout,
            **self.statement_context,
            "bindings": {"1": {"type": "TEXT", "value": cursor}},
        }
        url = f"{self.api_url}/api/v2/statements?requestId={uuid.uuid4()}"
        response = self._request("POST", url, json.dumps(body).encode())
        waited = 0.0
        polls = 0
        while response.status == 202:
            handle = _handle(_json(response))
            if waited > self.timeout + 60:
                self._request("POST", f"{self.api_url}/api/v2/statements/{handle}/cancel", b"")
                raise SourceError(f"Snowflake statement {handle} still runs after {waited:.0f} s; it was cancelled")
            wait = POLL_WAITS[min(polls, len(POLL_WAITS) - 1)]
            self._sleep(wait)
            waited += wait
            polls += 1
            response = self._request("GET", f"{self.api_url}/api/v2/statements/{handle}")
        return self._result(response)

    def _partition(self, handle: str, number: int) -> list[list[Any]]:
        if not HANDLE.match(handle):
            raise SourceError(f"Snowflake answered an unexpected statement handle: {handle!r}")
        result = self._result(self._request("GET", f"{self.api_url}/api/v2/statements/{handle}?partition={number}"))
        rows = result.get("data") or []
        return list(rows)

    def _result(self, response: Response) -> dict[str, Any]:
        data = _json(response)
        if response.status == 200 and isinstance(data, dict):
            return data
        message = str(data.get("message") or "") if isinstance(data, dict) else ""
        code = str(data.get("code") or "") if isinstance(data, dict) else ""
        if response.status == 422:
            state = data.get("sqlState") if isinstance(data, dict) else None
            raise SourceError(
                f"Snowflake refused the statement: {message}" + (f" (code {code}, SQLSTATE {state})" if code else "")
            )
        if response.status in (401, 403):
            raise SourceError(
                f"Snowflake refused the key-pair JWT (HTTP {response.status}: {message or code}); check account and "
                f"user, and that DESCRIBE USER shows RSA_PUBLIC_KEY_FP = {self.fingerprint}"
            )
        if response.status == 408:
            raise SourceError(f"Snowflake statement timed out after {self.timeout} s (raise timeout): {message}")
        raise SourceError(f"Snowflake answered HTTP {response.status}: {message or code or 'no message'}")

    def _request(self, method: str, url: str, body: bytes | None = None) -> Response:
        headers = {
            "Authorization": f"Bearer {self._jwt()}",
            "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        response: Response = self.http.request(method, url, headers=headers, body=body)
        return response

    def _jwt(self) -> str:
        now = int(self.now())
        if self._token and self._token_expires - now > JWT_RENEW:
            return self._token
        account, user = jwt_account(self.account), self.user.upper()
        claims = {
            "iss": f"{account}.{user}.{self.fingerprint}",
            "sub": f"{account}.{user}",
            "iat": now,
            "exp": now + JWT_LIFETIME,
        }
        signing_input = (
            _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        self._token, self._token_expires = f"{signing_input}.{_b64url(signature)}", now + JWT_LIFETIME
        return self._token


def jwt_account(account: str) -> str:
    """The account as a key-pair JWT names it: upper case, without the region or cloud of a locator
    (``xy12345.us-east-1`` → ``XY12345``); a ``.global`` URL's account ends before its first hyphen."""
    if ".global" in account:
        return account.partition("-")[0].upper()
    return account.partition(".")[0].upper()


# -- settings -------------------------------------------------------------------------------------


def _private_key(secret: Mapping[str, Any], problems: Problems) -> rsa.RSAPrivateKey | None:
    pem = secret.get("private_key")
    if not (isinstance(pem, str) and "PRIVATE KEY" in pem):
        problems.add('the secret needs "private_key": the PEM of the user\'s RSA private key')
        return None
    if "\\n" in pem and "\n" not in pem:  # a PEM pasted into JSON with its line breaks escaped twice
        pem = pem.replace("\\n", "\n")
    passphrase = secret.get("private_key_passphrase")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        reason = (
            "it is encrypted: add private_key_passphrase" if "encrypted" in str(exc).lower() else type(exc).__name__
        )
        problems.add(f"the secret's private_key cannot be read ({reason}); check the PEM and the passphrase")
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        problems.add("the secret's private_key must be an RSA key (Snowflake key-pair authentication)")
        return None
    return key


def _check_template(template: Any, problems: Problems) -> None:
    if not isinstance(template, str):
        problems.add(f"template must be a string, not {template!r}")
        return
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        problems.add(f"template cannot be read: {exc} (write {{{{ and }}}} for literal braces)")
        return
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not COLUMN.match(field):
            problems.add(
                f"template: {{{field}}} is not a plain column field; attributes, indexes and positions are refused"
            )
        elif conversion or spec:
            problems.add(f"template: {{{field}}} has a conversion or format spec; only plain {{COLUMN}} is allowed")


def _template_fields(template: str) -> list[str]:
    return list(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f is not None))


def _placeholders(sql: str) -> int:
    """The ``?`` outside quoted strings, quoted identifiers and comments."""
    count, i, quote_char = 0, 0, ""
    while i < len(sql):
        char = sql[i]
        if quote_char:
            if char == "\\" and quote_char == "'":
                i += 1
            elif char == quote_char:
                quote_char = ""
        elif char in "'\"":
            quote_char = char
        elif sql.startswith("--", i) or sql.startswith("//", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 1
        elif char == "?":
            count += 1
        i += 1
    return count


def _column(names: Sequence[str], wanted: str) -> str | None:
    if wanted in names:
        return wanted
    return next((n for n in names if n.lower() == wanted.lower()), None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _handle(data: Any) -> str:
    handle = str(data.get("statementHandle") or "") if isinstance(data, dict) else ""
    if not HANDLE.match(handle):
        raise SourceError(f"Snowflake answered 202 without a usable statement handle: {handle!r}")
    return handle


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _load_cursor(cursor: str | None, initial: str) -> tuple[str, set[str]]:
    """(the value to bind, the ids already read at that value)."""
    if not cursor:
        return initial, set()
    try:
        state = json.loads(cursor)
    except ValueError:
        return cursor, set()  # a cursor set by hand
    if isinstance(state, dict) and isinstance(state.get("cursor"), str):
        return str(state["cursor"]), {str(i) for i in state.get("ids") or []}
    return cursor, set()


def _iso(value: str) -> str | None:
    """An ISO 8601 time from a cursor that reads as one (``2027-01-10 09:30:00.000``), else None."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.isoformat()
