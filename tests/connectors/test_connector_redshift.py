"""The Redshift connector through boto3 and moto's redshift-data.

moto runs ExecuteStatement (it records the SQL and its parameters) and CancelStatement, but leaves
every statement STARTED and answers GetStatementResult with the same three canned rows whatever
the query. So ``Warehouse`` replaces those two answers: it runs the one query shape these tests use
(rows whose updated_at is after :cursor, in cursor order, up to a LIMIT) over rows a test controls,
pages it by NextToken, and reports the statuses a test scripts. Requests and answers still cross
moto's HTTP layer, so botocore checks them against the Data API's model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.redshiftdata.models import redshiftdata_backends
from moto.redshiftdata.responses import RedshiftDataAPIServiceResponse

from sluice.connectors import (
    Checkpoint,
    ConnectorConfigError,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    connector_class,
)
from sluice.connectors.redshift import RedshiftConnector, RedshiftSettings
from sluice.connectors.settings import principals

SQL = "select id, title, body, updated_at from kb where updated_at > :cursor order by updated_at, id"
SETTINGS: dict[str, Any] = {
    "cluster_identifier": "analytics",
    "database": "dev",
    "db_user": "sluice_reader",
    "sql": SQL,
    "id_column": "id",
    "cursor_column": "updated_at",
    "title_column": "title",
    "template": "# {title}\n\n{body}",
}
T1, T2, T3, T4 = (f"2024-05-0{d} 10:00:00" for d in (1, 2, 3, 4))


@dataclass
class Warehouse:
    rows: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    limit: int | None = None
    in_order: bool = True
    statuses: list[str] = field(default_factory=lambda: ["FINISHED"])  # the last one repeats
    error: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)  # ExecuteStatement parameters, as sent
    tokens: list[str | None] = field(default_factory=list)  # the NextToken of each GetStatementResult

    def select(self, cursor: str) -> list[dict[str, Any]]:
        chosen = [r for r in self.rows if r["updated_at"] > cursor]
        if self.in_order:
            chosen.sort(key=lambda r: (r["updated_at"], r["id"]))
        return chosen[: self.limit] if self.limit else chosen

    def describe(self, response: Any) -> tuple[int, dict[str, str], str]:
        statement = response.redshiftdata_backend.describe_statement(statement_id=response._get_param("Id"))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        answer = {**dict(statement), "Status": status, "HasResultSet": status == "FINISHED"}
        if status == "FAILED":
            answer["Error"] = self.error
        return 200, {}, json.dumps(answer)

    def result(self, response: Any) -> tuple[int, dict[str, str], str]:
        statement = response.redshiftdata_backend.describe_statement(statement_id=response._get_param("Id"))
        rows = self.select(statement.query_parameters[0]["value"])
        token = response._get_param("NextToken")
        self.tokens.append(token)
        start = int(token or 0)
        columns = list(self.rows[0]) if self.rows else ["id", "title", "body", "updated_at"]
        answer: dict[str, Any] = {
            "ColumnMetadata": [{"name": c, "label": c, "typeName": "varchar"} for c in columns],
            "Records": [[_field(row[c]) for c in columns] for row in rows[start : start + self.page_size]],
            "TotalNumRows": len(rows),
        }
        if start + self.page_size < len(rows):
            answer["NextToken"] = str(start + self.page_size)
        return 200, {}, json.dumps(answer)


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    return {"stringValue": str(value)}


def row(id: int, updated_at: str, title: str | None = None, body: str | None = None, **more: Any) -> dict[str, Any]:
    title = f"Article {id}" if title is None else title
    return {"id": id, "title": title, "body": f"Body {id}." if body is None else body, "updated_at": updated_at, **more}


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    fake = Warehouse()

    # moto dispatches only to plain functions of the response class, not to bound methods.
    def describe_statement(response: Any) -> tuple[int, dict[str, str], str]:
        return fake.describe(response)

    def get_statement_result(response: Any) -> tuple[int, dict[str, str], str]:
        return fake.result(response)

    monkeypatch.setattr(RedshiftDataAPIServiceResponse, "describe_statement", describe_statement)
    monkeypatch.setattr(RedshiftDataAPIServiceResponse, "get_statement_result", get_statement_result)
    with mock_aws():
        yield fake


def factory(warehouse: Warehouse) -> Callable[..., Any]:
    def aws(service: str, **_: Any) -> Any:
        client = boto3.client(service, region_name="us-east-1")
        client.meta.events.register(
            "before-parameter-build.redshift-data.ExecuteStatement",
            lambda params, **_: warehouse.requests.append(dict(params)),
        )
        return client

    return aws


def connector(warehouse: Warehouse, **settings: Any) -> RedshiftConnector:
    instance = Instance("kb-warehouse", "redshift", {**SETTINGS, **settings})
    built = connector_class("redshift").from_instance(instance, Context(aws=factory(warehouse)))
    assert isinstance(built, RedshiftConnector)
    return built


def checkpoints(changes: list[Any]) -> list[str]:
    return [c.cursor for c in changes if isinstance(c, Checkpoint)]


def ids(changes: list[Any]) -> list[str]:
    return [c.item_id for c in changes if isinstance(c, Item)]


def test_the_cursor_is_bound_as_a_parameter_never_formatted_into_the_sql(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1), row(2, T3)]
    source = connector(warehouse)
    list(source.changes(None))
    list(source.changes(T2))
    first, resumed = warehouse.requests
    assert first["Parameters"] == [{"name": "cursor", "value": "1970-01-01"}]
    assert resumed["Parameters"] == [{"name": "cursor", "value": T2}]
    assert first["Sql"] == SQL
    assert (first["ClusterIdentifier"], first["Database"], first["DbUser"]) == ("analytics", "dev", "sluice_reader")
    assert first["StatementName"] == "sluice-kb-warehouse"
    statements = redshiftdata_backends["123456789012"]["us-east-1"].statements.values()
    assert [s.query_parameters for s in statements] == [[{"name": "cursor", "value": c}] for c in ("1970-01-01", T2)]


def test_a_serverless_workgroup_with_a_secret_is_addressed_by_name(warehouse: Warehouse) -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift-reader-AbCdEf"
    source = connector(warehouse, cluster_identifier=None, db_user=None, workgroup_name="kb-wg", secret_arn=secret)
    list(source.changes(None))
    request = warehouse.requests[0]
    assert (request["WorkgroupName"], request["SecretArn"]) == ("kb-wg", secret)
    assert "ClusterIdentifier" not in request and "DbUser" not in request


def test_pages_follow_next_token_with_a_checkpoint_after_each(warehouse: Warehouse) -> None:
    warehouse.rows = [row(i, f"2024-05-0{i} 10:00:00") for i in range(1, 6)]
    changes = list(connector(warehouse).changes(None))
    assert warehouse.tokens == [None, "2", "4"]
    kinds = ["C" if isinstance(c, Checkpoint) else "I" for c in changes]
    assert kinds == ["I", "I", "C", "I", "I", "C", "I", "C"]
    # Each checkpoint is the last value before the page's last row: every row up to it has been read.
    assert checkpoints(changes) == ["2024-05-01 10:00:00", "2024-05-03 10:00:00", "2024-05-04 10:00:00"]


def test_an_interrupted_run_loses_no_row_that_shares_the_boundary_value(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1), row(2, T2), row(3, T2), row(4, T3)]
    source = connector(warehouse)
    first_page = list(source.changes(None))[:3]  # the runner stopped after the first checkpoint
    assert ids(first_page) == ["1", "2"] and checkpoints(first_page) == [T1]
    resumed = list(source.changes(T1))
    assert ids(resumed) == ["2", "3", "4"]  # 2 again (the runner lands nothing if it is unchanged), 3 not lost


def test_a_limit_that_cuts_through_equal_values_loses_nothing(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1), row(2, T2), row(3, T3), row(4, T3), row(5, T4)]
    warehouse.limit = 3
    source = connector(warehouse, sql=SQL + " limit 3")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(4):
        changes = list(source.changes(cursor))
        seen += ids(changes)
        cursor = checkpoints(changes)[-1]
    assert sorted(set(seen), key=int) == ["1", "2", "3", "4", "5"]
    assert cursor == T3  # the rows at T4 are read again each run until a later value arrives


def test_a_limit_full_of_one_value_is_reported_rather_than_read_forever(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1), row(2, T1), row(3, T1)]
    warehouse.limit = 2
    with pytest.raises(SourceError, match="raise the sql's LIMIT"):
        list(connector(warehouse, sql=SQL + " LIMIT 2").changes(None))


def test_rows_out_of_cursor_order_stop_the_run(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T2), row(2, T1)]
    warehouse.in_order = False
    with pytest.raises(SourceError, match="order by updated_at"):
        list(connector(warehouse).changes(None))


def test_the_template_renders_each_row_into_its_document(warehouse: Warehouse) -> None:
    warehouse.rows = [
        row(7, "2024-05-01 10:00:00.25", title="Reset a password", body="Open settings.", owner=None),
        row(8, T2, title="", body="No title.", owner="ops"),
    ]
    changes = list(connector(warehouse, id_column="ID", template="# {title}\n\n{body}\n\nOwner: {owner}").changes(None))
    first, second = (c for c in changes if isinstance(c, Item))
    assert first.item_id == "7" and first.ext == "md"
    assert first.body == b"# Reset a password\n\nOpen settings.\n\nOwner: "
    assert first.title == "Reset a password"
    assert first.updated_at == "2024-05-01T10:00:00.250000"
    assert second.title is None and second.body.endswith(b"Owner: ops")


@pytest.mark.parametrize(
    "template",
    ["{title.__class__}", "{body[0]}", "{0}", "# {}", "{title!r}", "{title:>99999999}", "{title", "{title:{body}}"],
)
def test_a_template_that_reaches_beyond_plain_columns_is_refused_at_configuration(template: str) -> None:
    with pytest.raises(ConnectorConfigError, match="template"):
        RedshiftSettings.parse({**SETTINGS, "template": template})


def test_a_column_the_query_does_not_return_is_named(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1)]
    with pytest.raises(SourceError, match=r"no column summary \(it returns id, title, body, updated_at\)"):
        list(connector(warehouse, template="{summary}").changes(None))


def test_every_configuration_problem_is_listed() -> None:
    settings = {
        "cluster_identifier": "analytics",
        "workgroup_name": "kb-wg",
        "db_user": "reader",
        "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        "sql": "select * from kb",
        "id_col": "id",
        "cursor_column": "updated_at",
        "template": "{body}",
        "ext": "pdf",
    }
    with pytest.raises(ConnectorConfigError) as caught:
        RedshiftSettings.parse(settings)
    problems = caught.value.problems
    for expected in (
        "did you mean 'id_column'",
        "one of cluster_identifier",
        "database is required",
        "db_user is for provisioned clusters",
        "not both",
        "id_column is required",
        ":cursor",
        "order by",
        "ext must be one of",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    assert len(problems) == 9


def test_a_failed_statement_is_a_source_error_with_redshift_s_reason(warehouse: Warehouse) -> None:
    warehouse.statuses = ["SUBMITTED", "FAILED"]
    warehouse.error = 'ERROR: relation "kb" does not exist'
    source = RedshiftConnector("kb", RedshiftSettings.parse(SETTINGS), factory(warehouse), sleep=lambda _: None)
    with pytest.raises(SourceError, match='relation "kb" does not exist'):
        list(source.changes(None))


def test_the_wait_polls_with_growing_pauses_until_finished(warehouse: Warehouse) -> None:
    warehouse.rows = [row(1, T1)]
    warehouse.statuses = ["SUBMITTED", "PICKED", "STARTED", "FINISHED"]
    pauses: list[float] = []
    source = RedshiftConnector("kb", RedshiftSettings.parse(SETTINGS), factory(warehouse), sleep=pauses.append)
    assert ids(list(source.changes(None))) == ["1"]
    assert pauses == [0.2, 0.5, 1.0]


def test_a_query_that_outlasts_the_wait_is_cancelled(warehouse: Warehouse) -> None:
    warehouse.statuses = ["STARTED"]
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    settings = RedshiftSettings.parse({**SETTINGS, "max_wait_seconds": 10})
    source = RedshiftConnector("kb", settings, factory(warehouse), now=lambda: clock[0], sleep=sleep)
    with pytest.raises(SourceError, match="did not finish within 10 s"):
        list(source.changes(None))
    (statement,) = redshiftdata_backends["123456789012"]["us-east-1"].statements.values()
    assert statement.status == "ABORTED"
    assert 10 <= clock[0] <= 12


def test_the_access_column_becomes_principals_and_an_unreadable_one_withdraws_the_row(warehouse: Warehouse) -> None:
    warehouse.rows = [
        row(1, T1, acl="group:support, user:Ana@Example.com"),
        row(2, T2, acl=""),
        row(3, T3, acl="support"),
    ]
    changes = [c for c in connector(warehouse, acl_column="acl").changes(None) if not isinstance(c, Checkpoint)]
    assert isinstance(changes[0], Item) and changes[0].allow == ("group:support", "user:ana@example.com")
    assert changes[1:] == [Tombstone("2"), Tombstone("3")]


def test_principals_are_read_whole_or_not_at_all() -> None:
    assert principals("group:Support,user:A@B.com,group:Support") == ("group:Support", "user:a@b.com")
    assert principals("group:support,everyone") == ()
    assert principals("user:") == ()
