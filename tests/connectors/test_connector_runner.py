"""The connector runner with its real adapters (DynamoDB state, S3 landing; moto) and a scripted
connector: landing with sidecars the pipeline reads, fingerprints, tombstones, budgets and resume,
mark and sweep with its cap, the lease, and the configuration's checks."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sluice.adapters.aws.connector_state import DynamoDBConnectorState
from sluice.adapters.aws.s3 import S3BucketWriter
from sluice.connectors import (
    Change,
    Checkpoint,
    ConnectorConfigError,
    Instance,
    Item,
    SourceError,
    Tombstone,
    Unchanged,
)
from sluice.connectors.config import parse_config, read_config
from sluice.connectors.runner import ConnectorRunner, RunState, run_instance, select
from sluice.pipeline.metadata import parse_metadata
from support.awsfixtures import create_connector_state_table

RAW = "raw-bucket"


class Scripted:
    """Yields its script from the position after ``cursor`` (a Checkpoint's cursor names the script
    and its index; another script's cursor means a source that changed: it starts over)."""

    def __init__(self, script: list[Change], complete_listing: bool = False, fail_at: int | None = None) -> None:
        self.script = script
        self.complete_listing = complete_listing
        self.fail_at = fail_at
        self.started_from: list[str | None] = []
        self.tag = uuid.uuid4().hex  # not id(self): a collected script's id comes back

    def changes(self, cursor: str | None) -> Iterator[Change]:
        self.started_from.append(cursor)
        tag, _, position = (cursor or "").partition(":")
        start = int(position) + 1 if tag == self.tag else 0
        for index in range(start, len(self.script)):
            if index == self.fail_at:
                raise RuntimeError("the source went away")
            change = self.script[index]
            yield Checkpoint(f"{self.tag}:{index}", change.ends_pass) if isinstance(change, Checkpoint) else change


class Counting(S3BucketWriter):
    def __init__(self, client: Any, bucket: str) -> None:
        super().__init__(client, bucket)
        self.puts: list[str] = []

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.puts.append(key)
        super().put(key, body, content_type)


@pytest.fixture
def aws() -> Iterator[tuple[Any, DynamoDBConnectorState]]:
    with mock_aws():
        s3, ddb = boto3.client("s3"), boto3.client("dynamodb")
        s3.create_bucket(Bucket=RAW)
        create_connector_state_table(ddb, "connector-state")
        yield s3, DynamoDBConnectorState(ddb, "connector-state")


def _page(n: int, text: str = "Pilots board at the buoy.", **kw: Any) -> Item:
    return Item(f"pages/p{n}", f"# Page {n}\n\n{text}\n".encode(), "md", title=f"Page {n}", **kw)


def _keys(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", [])}


def _run(s3: Any, state: Any, connector: Any, instance: Instance | None = None, seconds: float = 60) -> Any:
    instance = instance or Instance("docs", "web", {})
    landing = Counting(s3, RAW)
    report = ConnectorRunner(instance, connector, state, landing, seconds=seconds).run()
    return report, landing


def test_items_land_with_a_sidecar_the_pipeline_reads_and_unchanged_ones_are_not_written_again(aws: Any) -> None:
    s3, state = aws
    item = _page(
        1,
        source_url="https://docs.example.com/p1",
        author="Ana",
        updated_at="2026-11-01T10:00:00Z",
        allow=("group:support", "user:Ana@Example.com"),
        attributes={"space": "ops", "tags": ["a", "b"], "title": "ignored: reserved"},
    )
    report, landing = _run(s3, state, Scripted([item, Checkpoint("")]))
    assert (report.landed, report.stopped, report.pass_complete) == (1, "done", True)
    assert _keys(s3) == {"connectors/docs/pages/p1.md", "connectors/docs/pages/p1.md.metadata.json"}
    assert landing.puts[0].endswith(".metadata.json")  # the sidecar first
    sidecar = s3.get_object(Bucket=RAW, Key="connectors/docs/pages/p1.md.metadata.json")["Body"].read()
    metadata = parse_metadata(sidecar)
    assert metadata.title == "Page 1" and metadata.source_url == "https://docs.example.com/p1"
    assert metadata.allowed() == ["group:support", "user:ana@example.com"]
    attributes = json.loads(sidecar)["metadataAttributes"]
    assert attributes["author"] == "Ana" and attributes["space"] == "ops" and "title" not in attributes
    assert attributes["connector"] == "web" and attributes["connector_instance"] == "docs"

    again, landing = _run(s3, state, Scripted([item, Checkpoint("")]))
    assert (again.landed, again.unchanged, landing.puts) == (0, 1, [])


def test_a_change_relands_a_new_extension_replaces_the_old_key_and_a_tombstone_deletes(aws: Any) -> None:
    s3, state = aws
    _run(s3, state, Scripted([_page(1), _page(2), Checkpoint("")]))
    changed = _page(1, "Pilots board at the outer buoy.")
    as_html = Item("pages/p2", b"<h1>Page 2</h1>", "html", title="Page 2")
    report, _ = _run(s3, state, Scripted([changed, as_html, Checkpoint("")]))
    assert report.landed == 2
    assert b"outer buoy" in s3.get_object(Bucket=RAW, Key="connectors/docs/pages/p1.md")["Body"].read()
    assert "connectors/docs/pages/p2.md" not in _keys(s3) and "connectors/docs/pages/p2.html" in _keys(s3)
    report, _ = _run(s3, state, Scripted([Tombstone("pages/p1"), Tombstone("never/landed"), Checkpoint("")]))
    assert report.deleted == 1
    assert _keys(s3) == {"connectors/docs/pages/p2.html", "connectors/docs/pages/p2.html.metadata.json"}
    assert state.item("docs", "pages/p1") is None
    assert state.count("docs") == len(list(state.items("docs"))) == 1  # the run record is not an item


def test_an_interrupted_run_resumes_from_its_checkpoint_without_losing_or_rewriting_anything(aws: Any) -> None:
    s3, state = aws
    script: list[Change] = []
    for n in range(10):
        script += [_page(n), Checkpoint("")] if n % 2 else [_page(n)]
    connector = Scripted(script)
    first, landing_1 = _run(s3, state, connector, Instance("docs", "web", {}, max_items_per_run=5))
    assert (first.stopped, first.landed) == ("item budget", 5)
    assert first.cursor == f"{connector.tag}:5"  # the checkpoint after page 3: page 4 landed after it
    second, landing_2 = _run(s3, state, connector, Instance("docs", "web", {}, max_items_per_run=5))
    assert connector.started_from == [None, f"{connector.tag}:5"]
    assert (second.stopped, second.landed, second.unchanged) == ("done", 5, 1)  # page 4 is recognised
    documents = sorted(k for k in landing_1.puts + landing_2.puts if not k.endswith(".metadata.json"))
    assert documents == sorted(f"connectors/docs/pages/p{n}.md" for n in range(10))  # each exactly once


def test_a_failing_source_is_recorded_and_the_next_run_carries_on(aws: Any) -> None:
    s3, state = aws
    script: list[Change] = [_page(1), Checkpoint(""), _page(2), _page(3), Checkpoint("")]
    connector = Scripted(script, fail_at=3)
    report, _ = _run(s3, state, connector)
    assert report.stopped == "error" and report.errors == ["RuntimeError: the source went away"]
    assert state.run_state("docs").cursor.endswith(":1") and state.run_state("docs").last_run["stopped"] == "error"
    connector.fail_at = None
    again, _ = _run(s3, state, connector)  # from the checkpoint after page 1: page 2 again, then page 3
    assert (again.stopped, again.landed, again.unchanged) == ("done", 1, 1)


def test_a_finished_pass_sweeps_what_it_did_not_see_but_never_too_much_at_once(aws: Any) -> None:
    s3, state = aws
    pages = [_page(n) for n in range(10)]
    _run(s3, state, Scripted([*pages, Checkpoint("")], complete_listing=True))
    # A pass spread over two runs: the first run's stop must not sweep anything.
    second_pass = [*pages[:5], Checkpoint(""), Unchanged("pages/p5"), *pages[6:9], Checkpoint("")]
    connector = Scripted(second_pass, complete_listing=True)
    partial, _ = _run(s3, state, connector, Instance("docs", "web", {}, max_items_per_run=0))
    assert partial.stopped == "item budget" and partial.swept == 0 and len(_keys(s3)) == 20
    report, _ = _run(s3, state, connector)
    assert (report.pass_complete, report.swept) == (True, 1)  # page 9 vanished
    assert "connectors/docs/pages/p9.md" not in _keys(s3) and state.run_state("docs").cursor is None
    # Most of the site "vanished": an outage, not a deletion.
    outage, _ = _run(s3, state, Scripted([*pages[:2], Checkpoint("")], complete_listing=True))
    assert outage.swept == 0 and "did not see 7 of 9 items" in outage.errors[0] and len(_keys(s3)) == 18


def test_the_last_checkpoint_of_a_pass_can_carry_over_to_the_next(aws: Any) -> None:
    s3, state = aws
    connector = Scripted([_page(1), Checkpoint("", ends_pass=True)], complete_listing=True)
    report, _ = _run(s3, state, connector)
    assert report.pass_complete and state.run_state("docs").cursor == f"{connector.tag}:1"


def test_one_run_per_instance_at_a_time(aws: Any) -> None:
    s3, state = aws
    assert state.acquire("docs", "other-run", until=4_000_000_000, now=1_000)
    report, landing = _run(s3, state, Scripted([_page(1)]))
    assert report.stopped == "busy" and landing.puts == []
    state.release("docs", "other-run")
    assert _run(s3, state, Scripted([_page(1)]))[0].landed == 1


def test_the_time_budget_stops_a_run(aws: Any) -> None:
    s3, state = aws
    report, _ = _run(s3, state, Scripted([_page(1), Checkpoint("")]), seconds=0)
    assert report.stopped == "time budget" and report.landed == 0


def test_a_connector_that_cannot_be_built_is_a_recorded_run(aws: Any) -> None:
    s3, state = aws
    instance = Instance("docs", "s3", {"bucket": "Not A Bucket!", "bogus": 1})
    report = run_instance(
        instance, secret=lambda name: {}, aws=boto3.client, state=state, landing=S3BucketWriter(s3, RAW),
        seconds=10, owner="t",
    )  # fmt: skip
    assert report.stopped == "error" and report.errors[0].startswith("cannot start:")
    assert state.run_state("docs").last_run["stopped"] == "error"


def test_the_configuration_names_every_problem() -> None:
    text = json.dumps({"instances": [
        {"name": "Docs Site", "type": "web"},
        {"name": "ok", "type": "ftp", "secrt": "x"},
        {"name": "ok", "type": "s3", "max_items_per_run": 0, "max_delete_share": 2},
        {"name": "slack", "type": "slack", "secret": "sluice/slack", "settings": {"channels": ["C1"]}},
    ]})  # fmt: skip
    with pytest.raises(ConnectorConfigError) as caught:
        parse_config(text)
    problems = caught.value.problems
    assert len(problems) == 6, problems
    assert any("name must be" in p for p in problems) and any("'secrt' (did you mean 'secret'?)" in p for p in problems)
    assert any("type must be one of" in p for p in problems) and any("max_delete_share" in p for p in problems)
    with pytest.raises(ConnectorConfigError, match="not JSON"):
        parse_config("{")


def test_an_invocation_selects_its_instances() -> None:
    instances = parse_config(
        {"instances": [{"name": "a", "type": "web"}, {"name": "b", "type": "web"}, {"name": "c", "type": "s3"}]}
    )
    assert [i.name for i in select(instances, {"connector": "web"})] == ["a", "b"]
    assert [i.name for i in select(instances, {"instance": "c"})] == ["c"]
    assert len(select(instances, {})) == 3
    # `sluice connector run web` on a deployed stack sends {"instance": "web"}: no instance is so
    # named, so it means every instance of that type, as it does on the local stack.
    assert [i.name for i in select(instances, {"instance": "web"})] == ["a", "b"]
    assert select(instances, {"instance": "nothing"}) == []


def test_an_item_the_runner_cannot_land_is_skipped_and_the_run_goes_on(aws: Any) -> None:
    s3, state = aws
    bad_id = Item("../escape", b"x", "md")
    bad_ext = Item("pages/binary", b"\x00", "exe")
    bad_principal = _page(3, allow=("everyone",))
    report, _ = _run(s3, state, Scripted([bad_id, bad_ext, bad_principal, _page(4), Checkpoint("")]))
    assert (report.stopped, report.landed, report.skipped) == ("done", 1, 3)
    assert any("not a safe key part" in e for e in report.errors) and any("'exe'" in e for e in report.errors)
    assert any("user:NAME or group:NAME" in e for e in report.errors)


def test_a_state_that_forgot_items_the_source_calls_unchanged_gets_a_full_pass_next(aws: Any) -> None:
    s3, state = aws
    connector = Scripted([Unchanged("pages/p1"), _page(2), Checkpoint("", ends_pass=True)], complete_listing=True)
    report, _ = _run(s3, state, connector)
    assert report.pass_complete and state.run_state("docs").cursor is None  # not the carry-over
    assert "1 items the source called unchanged were not in the state" in report.errors[0]


def test_a_cursor_too_large_to_keep_stops_the_run_before_it_is_saved(aws: Any) -> None:
    s3, state = aws

    class Huge(Scripted):
        def changes(self, cursor: str | None) -> Iterator[Change]:
            yield _page(1)
            yield Checkpoint("x" * 400_000)

    report, _ = _run(s3, state, Huge([]))
    assert report.stopped == "error" and "400000 bytes" in report.errors[0]
    assert state.run_state("docs").cursor is None and state.run_state("docs").last_run["stopped"] == "error"


def test_a_run_whose_state_cannot_be_saved_reports_it_instead_of_raising(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, state = aws

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("DynamoDB is throttling")

    monkeypatch.setattr(state, "save_run", refuse)
    report, _ = _run(s3, state, Scripted([_page(1), Checkpoint("")]))
    assert report.stopped == "error" and "DynamoDB is throttling" in report.errors[-1]
    assert state.run_state("docs").last_run["stopped"] == "error"  # the report alone was still saved
    assert state.acquire("docs", "next-run", until=4_000_000_000, now=2_000_000_000)  # the lease was released


def test_a_run_that_lost_its_lease_saves_nothing_over_the_new_owner(aws: Any) -> None:
    _, state = aws
    assert state.acquire("docs", "new-owner", until=4_000_000_000, now=1_000)
    with pytest.raises(SourceError, match="another run took the lease"):
        state.save_run("docs", RunState(cursor="stale"), owner="old-owner", until=4_000_000_000)
    assert state.run_state("docs").cursor is None


def test_one_bad_instance_leaves_the_others_to_run() -> None:
    instances, problems = read_config({"instances": [{"name": "ok", "type": "web"}, {"name": "Bad", "type": "web"}]})
    assert [i.name for i in instances] == ["ok"] and len(problems) == 1


def test_a_json_cursor_of_another_shape_is_refused_with_what_to_do() -> None:
    from sluice.connectors import SourceError, load_json_cursor

    assert load_json_cursor(None, "Slack", "channels") == {"v": 1, "channels": {}}
    kept = '{"v": 1, "objects": {"Case": {"since": "2026-01-01"}}}'
    assert load_json_cursor(kept, "Salesforce", "objects")["objects"] == {"Case": {"since": "2026-01-01"}}
    for bad, says in (("not json", "(JSON); reset it"), ('{"v": 1, "channels": []}', "Slack connector cursor; reset")):
        with pytest.raises(SourceError, match=re.escape(says)):
            load_json_cursor(bad, "Slack", "channels")
