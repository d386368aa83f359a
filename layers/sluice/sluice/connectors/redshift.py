"""A warehouse query through the Redshift Data API: each row a document, rendered by a template.

The query names the cursor as a parameter and orders by it::

    select id, title, body, updated_at from kb where updated_at > :cursor order by updated_at, id limit 1000

ExecuteStatement runs it with the cursor bound (never formatted into the SQL), DescribeStatement is
polled until it finishes (up to ``max_wait_seconds``, then it is cancelled), and GetStatementResult
pages through the rows, a Checkpoint after each page. The statement runs as ``db_user`` (temporary
credentials, provisioned clusters only), as the user in the ``secret_arn`` secret, or, with neither,
as the function's own IAM identity; make it a user that can only read what should be indexed.

Rows that share a cursor value can straddle a page, a LIMIT or a run, and rows committed later can
arrive with a value already read (two updates in one second). So the cursor committed is never the
last row's value but the last value *before* it: every row at or below that value has been read.
The next run reads the rows at the last value again, and the runner lands nothing for those whose
body and metadata are unchanged. Should every row of a full LIMIT share one value, the cursor
could not move, and the run says so rather than read the same rows forever.

Rows cannot say that a row was deleted (``complete_listing`` is False, nothing is swept). With
``acl_column``, a row whose access list is empty or unreadable withdraws its document (a Tombstone):
default deny, never a document open to everyone.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code, is_transient
from sluice.connectors import (
    EXTENSIONS,
    Checkpoint,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    safe_item_id,
)
from sluice.connectors.settings import Problems, aws_factory, principals, unknown_settings_listed

log = logging.getLogger(__name__)

SETTINGS = (
    "cluster_identifier",
    "workgroup_name",
    "database",
    "db_user",
    "secret_arn",
    "sql",
    "id_column",
    "cursor_column",
    "title_column",
    "template",
    "ext",
    "initial_cursor",
    "acl_column",
    "max_wait_seconds",
)
TEXT_EXTENSIONS = EXTENSIONS - {"pdf", "docx"}  # what a template can render
CLUSTER = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
WORKGROUP = re.compile(
    r"^([a-z0-9-]{3,63}|arn:aws[a-z-]*:redshift-serverless:[a-z0-9-]+:\d{12}:workgroup/[a-z0-9-/]+)$"
)
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
CURSOR_PARAMETER = re.compile(r"(?<![:\w]):cursor\b")
ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
LIMIT = re.compile(r"\blimit\s+(\d+)\s*;?\s*$", re.IGNORECASE)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
MAX_WAIT_SECONDS = 300
MAX_WAIT_LIMIT = 840  # a Lambda function has 900 s; leave time to land what was read
POLL_SECONDS = (0.2, 0.5, 1.0, 2.0)  # then every 2 s: DescribeStatement has its own rate quota
BUSY = frozenset({"ActiveStatementsExceededException", "ActiveSessionsExceededException"})


class Template:
    """A document body from a row: ``str.format`` syntax restricted to plain ``{column}`` fields.

    No attribute or index access, conversion or format spec, so a template can reach nothing but
    the row's values; rendering joins text and values without calling ``str.format`` at all.
    """

    def __init__(self, text: str) -> None:
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(f"template is not a format string: {exc}") from exc
        pieces: list[tuple[str, str | None]] = []
        for literal, name, spec, conversion in parsed:
            if name is not None and (not NAME.match(name) or spec or conversion):
                field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                raise ValueError(f"template field {field} is not allowed: only plain {{column}} fields")
            pieces.append((literal, name))
        self.pieces = tuple(pieces)
        self.fields = tuple(dict.fromkeys(name for _, name in pieces if name))

    def render(self, row: Mapping[str, Any]) -> str:
        return "".join(literal + (_text(row[name]) if name else "") for literal, name in self.pieces)


@dataclass(frozen=True)
class RedshiftSettings:
    database: str
    sql: str
    id_column: str
    cursor_column: str
    template: Template
    cluster_identifier: str | None = None
    workgroup_name: str | None = None
    db_user: str | None = None
    secret_arn: str | None = None
    title_column: str | None = None
    ext: str = "md"
    initial_cursor: str = "1970-01-01"
    acl_column: str | None = None
    max_wait_seconds: int = MAX_WAIT_SECONDS

    @property
    def limit(self) -> int | None:
        found = LIMIT.search(self.sql)
        return int(found.group(1)) if found else None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> RedshiftSettings:
        problems = Problems()
        unknown_settings_listed(raw, SETTINGS, problems)
        text = {name: raw.get(name) for name in SETTINGS if name != "max_wait_seconds"}
        for name, value in text.items():
            if value is not None and (not isinstance(value, str) or not value.strip()):
                problems.add(f"{name} must be a non-empty string")
                text[name] = None
        _check_target(text, problems)
        _check_query(text, problems)
        template: Template | None = None
        if text["template"] is None:
            problems.add('template is required: the document body, e.g. "# {title}\\n\\n{body}"')
        else:
            try:
                template = Template(text["template"])
            except ValueError as exc:
                problems.add(str(exc))
        ext = text["ext"] or "md"
        if ext not in TEXT_EXTENSIONS:
            problems.add(f"ext must be one of {', '.join(sorted(TEXT_EXTENSIONS))}")
        wait = raw.get("max_wait_seconds", MAX_WAIT_SECONDS)
        if isinstance(wait, bool) or not isinstance(wait, int) or not 1 <= wait <= MAX_WAIT_LIMIT:
            problems.add(f"max_wait_seconds must be a whole number from 1 to {MAX_WAIT_LIMIT}")
        problems.raise_any()
        assert template is not None  # a missing or unreadable template is a problem above
        return cls(
            database=str(text["database"]),
            sql=str(text["sql"]),
            id_column=str(text["id_column"]),
            cursor_column=str(text["cursor_column"]),
            template=template,
            cluster_identifier=text["cluster_identifier"],
            workgroup_name=text["workgroup_name"],
            db_user=text["db_user"],
            secret_arn=text["secret_arn"],
            title_column=text["title_column"],
            ext=ext,
            initial_cursor=text["initial_cursor"] or "1970-01-01",
            acl_column=text["acl_column"],
            max_wait_seconds=int(wait),
        )


def _check_target(text: Mapping[str, str | None], problems: Problems) -> None:
    """Where the query runs and as whom: the combinations the Data API accepts."""
    cluster, workgroup = text["cluster_identifier"], text["workgroup_name"]
    if (cluster is None) == (workgroup is None):
        problems.add("give one of cluster_identifier (a provisioned cluster) or workgroup_name (serverless)")
    if cluster is not None and (len(cluster) > 63 or not CLUSTER.match(cluster)):
        problems.add(f"cluster_identifier {cluster!r} is not a cluster identifier")
    if workgroup is not None and not WORKGROUP.match(workgroup):
        problems.add(f"workgroup_name {workgroup!r} is not a workgroup name or ARN")
    if text["database"] is None:
        problems.add("database is required")
    if text["db_user"] is not None and workgroup is not None:
        problems.add("db_user is for provisioned clusters; a workgroup uses secret_arn or the caller's IAM identity")
    if text["db_user"] is not None and text["secret_arn"] is not None:
        problems.add("give db_user (temporary credentials) or secret_arn (a Secrets Manager secret), not both")
    secret = text["secret_arn"]
    if secret is not None and not SECRET_ARN.match(secret):
        problems.add(f"secret_arn {secret!r} is not a Secrets Manager secret ARN")


def _check_query(text: Mapping[str, str | None], problems: Problems) -> None:
    for name in ("sql", "id_column", "cursor_column"):
        if text[name] is None:
            problems.add(f"{name} is required")
    sql = text["sql"]
    if sql is not None and not CURSOR_PARAMETER.search(sql):
        problems.add("sql must use the named parameter :cursor, e.g. where updated_at > :cursor")
    if sql is not None and not ORDER_BY.search(sql):
        problems.add("sql must order by the cursor column, e.g. order by updated_at, id")


def _value(field: Mapping[str, Any]) -> Any:
    """A Data API field's value (one of its typed members), None for SQL NULL."""
    if field.get("isNull"):
        return None
    for member in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue"):
        if member in field:
            return field[member]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ordering(value: Any) -> tuple[str, Any] | None:
    """How two cursor values compare in the warehouse, where Python can tell: numbers (DECIMAL
    arrives as text) and timestamps. None for text, whose order depends on the collation."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ("number", value)
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
        if number.is_finite():
            return ("number", number)
    except InvalidOperation:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ("aware" if moment.tzinfo else "naive", moment)


def _iso(value: str) -> str | None:
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        return None


@dataclass
class Progress:
    """The cursor that is safe to commit: every row at or below it has been read."""

    start: str
    safe: str
    last: Any = None  # the last row's cursor value, typed as the Data API returned it
    rows: int = 0

    def advance(self, value: Any, cursor_column: str) -> None:
        if value is None or value == "":
            raise SourceError(f"a row has no {cursor_column}: the sql must leave out rows whose cursor is null")
        if self.last is not None and value != self.last:
            before, now = _ordering(self.last), _ordering(value)
            if before and now and before[0] == now[0] and now[1] < before[1]:
                raise SourceError(
                    f"rows are not in {cursor_column} order ({_text(value)} after {_text(self.last)}): "
                    f"the sql must order by {cursor_column} so that no row is skipped"
                )
            self.safe = _text(self.last)
        self.last = value
        self.rows += 1


class RedshiftConnector:
    complete_listing: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        settings: RedshiftSettings,
        aws: Callable[..., Any],
        *,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self._aws = aws
        self._now = now
        self._sleep = sleep

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> RedshiftConnector:
        settings = RedshiftSettings.parse(instance.settings)
        return cls(instance.name, settings, aws_factory(context, "redshift"), now=context.now or time.time)

    def changes(self, cursor: str | None) -> Iterator[Item | Tombstone | Checkpoint]:
        s = self.settings
        client = self._aws("redshift-data")
        progress = Progress(start=cursor or s.initial_cursor, safe=cursor or s.initial_cursor)
        statement = self._execute(client, progress.start)
        self._wait(client, statement)
        names: list[str] = []
        columns: dict[str, str] = {}
        for page in self._pages(client, statement):
            names = [str(c.get("name") or c.get("label") or "") for c in page.get("ColumnMetadata") or []] or names
            for record in page.get("Records") or []:
                columns = columns or self._columns(names)
                row = {name: _value(field) for name, field in zip(names, record, strict=True)}
                progress.advance(row[columns[s.cursor_column]], s.cursor_column)
                yield self._change(row, columns)
            yield Checkpoint(progress.safe)
        if s.limit and progress.rows >= s.limit and progress.safe == progress.start:
            raise SourceError(
                f"all {progress.rows} rows of the result have {s.cursor_column} = {_text(progress.last)}, so the "
                "cursor cannot move past them: raise the sql's LIMIT above the rows that share one value"
            )

    def _execute(self, client: Any, cursor: str) -> str:
        s = self.settings
        request: dict[str, Any] = {
            "Database": s.database,
            "Sql": s.sql,
            "Parameters": [{"name": "cursor", "value": cursor}],
            "StatementName": f"sluice-{self.name}",
        }
        optional = {
            "ClusterIdentifier": s.cluster_identifier,
            "WorkgroupName": s.workgroup_name,
            "DbUser": s.db_user,
            "SecretArn": s.secret_arn,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        with _refusals("running the query"):
            statement: str = client.execute_statement(**request)["Id"]
        return statement

    def _wait(self, client: Any, statement: str) -> None:
        deadline = self._now() + self.settings.max_wait_seconds
        delays = iter(POLL_SECONDS)
        while True:
            with _refusals("following the query"):
                described = client.describe_statement(Id=statement)
            status = described.get("Status")
            if status == "FINISHED":
                if not described.get("HasResultSet"):
                    raise SourceError("the sql returned no result set: it must be a select")
                return
            if status == "FAILED":
                raise SourceError(f"the query failed: {described.get('Error') or 'Redshift gave no reason'}")
            if status == "ABORTED":
                raise SourceError("the query was cancelled before it finished")
            if self._now() >= deadline:
                self._cancel(client, statement)
                raise SourceError(
                    f"the query did not finish within {self.settings.max_wait_seconds} s and was cancelled: "
                    "lower its LIMIT, or raise max_wait_seconds"
                )
            self._sleep(next(delays, POLL_SECONDS[-1]))

    @staticmethod
    def _cancel(client: Any, statement: str) -> None:
        try:
            client.cancel_statement(Id=statement)
        except ClientError as exc:  # it may have finished meanwhile; the timeout is what gets reported
            log.warning("redshift connector: cancelling statement %s: %s", statement, error_code(exc))

    @staticmethod
    def _pages(client: Any, statement: str) -> Iterator[dict[str, Any]]:
        request = {"Id": statement}
        while True:
            with _refusals("reading the query's result"):
                page: dict[str, Any] = client.get_statement_result(**request)
            yield page
            if not page.get("NextToken"):
                return
            request["NextToken"] = page["NextToken"]

    def _columns(self, names: Sequence[str]) -> dict[str, str]:
        """The result's column for each one the settings and template name: as written, else the one
        that differs only in case (Redshift folds unquoted identifiers to lower case)."""
        s = self.settings
        wanted = [s.id_column, s.cursor_column, *s.template.fields]
        wanted += [name for name in (s.title_column, s.acl_column) if name]
        folded = {name.casefold(): name for name in names}
        found = {w: w if w in names else folded.get(w.casefold(), "") for w in wanted}
        missing = [w for w, name in found.items() if not name]
        if missing:
            raise SourceError(f"the query returns no column {', '.join(missing)} (it returns {', '.join(names)})")
        return found

    def _change(self, row: Mapping[str, Any], columns: Mapping[str, str]) -> Item | Tombstone:
        s = self.settings
        raw_id = _text(row[columns[s.id_column]])
        if not raw_id:
            raise SourceError(f"a row has no {s.id_column}: every document needs an id")
        item_id = safe_item_id(raw_id)
        allow: tuple[str, ...] = ()
        if s.acl_column:
            allow = principals(_text(row[columns[s.acl_column]]))
            if not allow:  # default deny: a row nobody is granted is withdrawn, not made public
                log.warning("redshift connector: row %s has no readable %s; not indexed", raw_id, s.acl_column)
                return Tombstone(item_id)
        title = _text(row[columns[s.title_column]]) if s.title_column else ""
        return Item(
            item_id=item_id,
            body=s.template.render({field: row[columns[field]] for field in s.template.fields}).encode(),
            ext=s.ext,
            title=title or None,
            updated_at=_iso(_text(row[columns[s.cursor_column]])),
            allow=allow,
        )


@contextmanager
def _refusals(doing: str) -> Iterator[None]:
    """A refusal stops the run with the service's reason; throttling, 5xx and the Data API's limit on
    concurrent statements are left to botocore's retries and the next run."""
    try:
        yield
    except ClientError as exc:
        if is_transient(exc) or error_code(exc) in BUSY:
            raise
        message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
        raise SourceError(f"{doing}: {error_code(exc)}: {message}") from exc
