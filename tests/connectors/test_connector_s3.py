"""The S3 connector against moto: what a pass yields, how it resumes, what it does not download
again, and how it refuses. Error paths use botocore's Stubber (requests checked against the model)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sluice.connectors import (
    Checkpoint,
    ConnectorConfigError,
    Context,
    Instance,
    Item,
    SourceError,
    Unchanged,
    connector_class,
)
from sluice.connectors import s3 as s3_connector
from sluice.connectors.s3 import S3Connector, item_id_of

BUCKET = "source-docs"
ROLE = "arn:aws:iam::123456789012:role/sluice-reader"
ACL_SIDECAR = {
    "metadataAttributes": {"department": "support", "year": 2024},
    "accessControlList": [
        {"name": "support", "type": "GROUP", "access": "ALLOW"},
        {"name": "Ana@Example.com", "type": "USER", "access": "ALLOW"},
        {"name": "contractors", "type": "GROUP", "access": "DENY"},
    ],
}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def factory(calls: list[tuple[str, str | None]]) -> Callable[..., Any]:
    def aws(service: str, role_arn: str | None = None) -> Any:
        calls.append((service, role_arn))
        return boto3.client(service, region_name="us-east-1")

    return aws


def connector(settings: dict[str, Any], aws: Callable[..., Any] | None = None) -> S3Connector:
    instance = Instance("kb-bucket", "s3", settings)
    built = connector_class("s3").from_instance(instance, Context(aws=aws or factory([])))
    assert isinstance(built, S3Connector)
    return built


def put(s3: Any, key: str, body: bytes | str, **kwargs: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body, **kwargs)


def items(changes: list[Any]) -> dict[str, Item]:
    return {c.item_id: c for c in changes if isinstance(c, Item)}


def count_gets(s3_client_factory: list[Any]) -> Callable[..., Any]:
    """A factory whose clients count GetObject calls into ``s3_client_factory``."""

    def aws(service: str, role_arn: str | None = None) -> Any:
        client = boto3.client(service, region_name="us-east-1")
        client.meta.events.register(
            "before-parameter-build.s3.GetObject", lambda params, **_: s3_client_factory.append(params)
        )
        return client

    return aws


def test_a_first_pass_lands_every_readable_object_with_its_metadata(s3: Any) -> None:
    put(s3, "kb/guide/setup.md", "# Setup", Metadata={"title": "=?UTF-8?B?w4lsw6k=?="})
    put(s3, "kb/guide/setup.md.metadata.json", json.dumps(ACL_SIDECAR))
    put(s3, "kb/notes.markdown", "notes")
    put(s3, "kb/page.HTM", "<p>page</p>")
    put(s3, "kb/old file.text", "plain")
    put(s3, "kb/logo.png", b"\x89PNG")  # not a type Sluice reads
    put(s3, "kb/huge.pdf", b"%PDF" + b"0" * 2000)  # over max_object_bytes
    put(s3, "elsewhere/outside.md", "not under the prefix")

    changes = list(connector({"bucket": BUCKET, "prefix": "kb/", "max_object_bytes": 1000}).changes(None))

    landed = items(changes)
    assert {i: (item.ext, item.body) for i, item in landed.items()} == {
        "guide/setup": ("md", b"# Setup"),
        "notes": ("md", b"notes"),
        "page": ("html", b"<p>page</p>"),
        landed_id("old file"): ("txt", b"plain"),
    }
    setup = landed["guide/setup"]
    assert setup.title == "Élé"  # x-amz-meta-title, RFC 2047-decoded
    assert setup.source_url == f"s3://{BUCKET}/kb/guide/setup.md"
    assert setup.updated_at and setup.updated_at.startswith("20")
    assert setup.allow == ("group:support", "user:ana@example.com")
    assert setup.deny == ("group:contractors",)
    assert setup.attributes == {"department": "support", "year": 2024.0}
    assert landed["notes"].allow == () and landed["notes"].title is None
    assert isinstance(changes[-1], Checkpoint) and changes[-1].ends_pass
    assert isinstance(changes[-2], Checkpoint) and json.loads(changes[-2].cursor)["after"] == "kb/page.HTM"


def landed_id(stem: str) -> str:
    return item_id_of(f"kb/{stem}.txt", "kb/")


def test_item_ids_keep_the_layout_below_the_prefix_and_are_always_safe() -> None:
    assert item_id_of("docs/guide/setup.md", "docs/") == "guide/setup"
    assert item_id_of("docs/guide/setup.md", "docs") == "guide/setup"
    assert item_id_of("docs/a b/c.md", "docs/").startswith("a-b-")
    assert item_id_of("docs/a b/c.md", "docs/").endswith("/c")
    assert item_id_of("docs/only.md", "docs/only.md") == "only"
    assert len(item_id_of("d/" + "x/" * 400 + "y.md", "d/")) <= 512


def test_an_interrupted_pass_resumes_after_the_last_key_listed(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_connector, "PAGE_SIZE", 2)
    for name in "abcde":
        put(s3, f"{name}.md", name)
    first = connector({"bucket": BUCKET})
    changes = list(first.changes(None))
    checkpoints = [c for c in changes if isinstance(c, Checkpoint)]
    assert [json.loads(c.cursor).get("after") for c in checkpoints] == ["b.md", "d.md", "e.md", None]

    # The run stopped after the first page's checkpoint; the next one starts after b.md.
    resumed = list(first.changes(checkpoints[0].cursor))
    assert sorted(items(resumed)) == ["c", "d", "e"]
    assert isinstance(resumed[-1], Checkpoint) and resumed[-1].ends_pass


def test_a_long_page_is_checkpointed_every_few_downloads(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_connector, "CHECKPOINT_ITEMS", 2)
    for name in "abcde":
        put(s3, f"{name}.md", name)
    changes = list(connector({"bucket": BUCKET}).changes(None))
    kinds = "".join("C" if isinstance(c, Checkpoint) else "I" for c in changes)
    assert kinds == "IICIICICC"  # two downloads, the page's end, the pass's end
    assert [json.loads(c.cursor).get("after") for c in changes if isinstance(c, Checkpoint)] == [
        "b.md",
        "d.md",
        "e.md",
        None,
    ]


def test_the_next_pass_downloads_only_what_changed(s3: Any) -> None:
    put(s3, "same.md", "same")
    put(s3, "edited.md", "v1")
    put(s3, "relabelled.md", "body")
    put(s3, "relabelled.md.metadata.json", json.dumps(ACL_SIDECAR))
    put(s3, "gone.md", "bye")
    gets: list[Any] = []
    source = connector({"bucket": BUCKET}, count_gets(gets))
    first = list(source.changes(None))
    end = first[-1]
    assert isinstance(end, Checkpoint) and end.ends_pass

    put(s3, "edited.md", "v2")
    put(s3, "relabelled.md.metadata.json", json.dumps({"accessControlList": [ACL_SIDECAR["accessControlList"][0]]}))
    s3.delete_object(Bucket=BUCKET, Key="gone.md")
    put(s3, "new.md", "new")
    gets.clear()
    second = list(source.changes(end.cursor))

    assert {c.item_id for c in second if isinstance(c, Unchanged)} == {"same"}
    assert items(second)["edited"].body == b"v2"
    assert items(second)["relabelled"].allow == ("group:support",)
    assert set(items(second)) == {"edited", "relabelled", "new"}
    assert sorted(g["Key"] for g in gets) == ["edited.md", "new.md", "relabelled.md", "relabelled.md.metadata.json"]


def test_a_sidecar_listed_on_the_next_page_still_applies(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_connector, "PAGE_SIZE", 2)
    put(s3, "a.md", "a")
    put(s3, "a.md.bak", "between the object and its sidecar in key order")
    put(s3, "a.md.metadata.json", json.dumps(ACL_SIDECAR))
    put(s3, "b.md", "b")  # no sidecar; its absence is certain from the listing
    changes = list(connector({"bucket": BUCKET}).changes(None))
    assert items(changes)["a"].allow == ("group:support", "user:ana@example.com")
    assert items(changes)["b"].allow == ()
    assert set(items(changes)) == {"a", "b"}


def test_an_object_whose_sidecar_cannot_be_read_is_not_indexed(s3: Any) -> None:
    put(s3, "secret.md", "for finance only")
    put(s3, "secret.md.metadata.json", '{"accessControlList": [{"name": "finance", "type": "TEAM"}]}')
    put(s3, "open.md", "for everyone")
    assert set(items(list(connector({"bucket": BUCKET}).changes(None)))) == {"open"}


def test_archived_objects_and_objects_with_archived_sidecars_are_skipped(s3: Any) -> None:
    put(s3, "cold.md", "in Glacier", StorageClass="GLACIER")
    put(s3, "guarded.md", "its access list is in Glacier")
    put(s3, "guarded.md.metadata.json", json.dumps(ACL_SIDECAR), StorageClass="DEEP_ARCHIVE")
    put(s3, "warm.md", "readable")
    assert set(items(list(connector({"bucket": BUCKET}).changes(None)))) == {"warm"}


def test_two_objects_that_would_share_an_id_do_not_overwrite_each_other(s3: Any) -> None:
    put(s3, "faq.md", "markdown")
    put(s3, "faq.txt", "text")
    landed = items(list(connector({"bucket": BUCKET}).changes(None)))
    assert {i: item.body for i, item in landed.items()} == {"faq": b"markdown"}


def test_role_arn_reads_through_the_assumed_role(s3: Any) -> None:
    put(s3, "a.md", "a")
    calls: list[tuple[str, str | None]] = []

    def aws(service: str, role_arn: str | None = None) -> Any:
        calls.append((service, role_arn))
        if role_arn is None:
            return Stubber(boto3.client(service, region_name="us-east-1")).__enter__()  # answers nothing
        creds = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="sluice")["Credentials"]
        return boto3.client(
            service,
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    changes = list(connector({"bucket": BUCKET, "role_arn": ROLE}, aws).changes(None))
    assert calls == [("s3", ROLE)]
    assert set(items(changes)) == {"a"}


def test_every_configuration_problem_is_listed() -> None:
    settings = {
        "bucket": "Not_A_Bucket",
        "prefx": "docs/",
        "role_arn": "arn:aws:iam::123:user/me",
        "extensions": ["md", "exe"],
        "max_object_bytes": 0,
    }
    with pytest.raises(ConnectorConfigError) as caught:
        connector(settings)
    problems = caught.value.problems
    assert len(problems) == 5
    assert any("'prefx'" in p and "did you mean 'prefix'" in p for p in problems)
    assert any("Not_A_Bucket" in p for p in problems)
    assert any("role_arn" in p for p in problems)
    assert any("'exe'" in p for p in problems)
    assert any("max_object_bytes" in p for p in problems)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "bucket is required"),
        ({"bucket": "fast--use1-az4--x-s3"}, "directory bucket"),
        ({"bucket": "192.168.1.1"}, "not a bucket name"),
        ({"bucket": "ok-bucket", "extensions": "md"}, "non-empty list"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConnectorConfigError, match=problem):
        connector(settings)


def test_extension_aliases_are_accepted_in_the_allow_list(s3: Any) -> None:
    put(s3, "a.markdown", "a")
    put(s3, "b.pdf", b"%PDF-1.7")
    assert set(items(list(connector({"bucket": BUCKET, "extensions": [".Markdown"]}).changes(None)))) == {"a"}


@pytest.mark.parametrize(
    ("code", "status", "message"), [("AccessDenied", 403, "s3:ListBucket"), ("NoSuchBucket", 404, "does not exist")]
)
def test_a_refused_listing_is_a_source_error(code: str, status: int, message: str) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "list_objects_v2",
        service_error_code=code,
        http_status_code=status,
        expected_params={"Bucket": BUCKET, "Prefix": "kb/", "MaxKeys": 1000},
    )
    source = connector({"bucket": BUCKET, "prefix": "kb/"}, lambda service, **_: client)
    with stubber, pytest.raises(SourceError, match=message) as caught:
        list(source.changes(None))
    assert f"s3://{BUCKET}/kb/" in str(caught.value)


def test_a_missing_bucket_is_a_source_error_in_moto_too(s3: Any) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list(connector({"bucket": "no-such-bucket"}).changes(None))


def test_throttling_is_left_to_botocore_and_the_run() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
    source = connector({"bucket": BUCKET}, lambda service, **_: client)
    with stubber, pytest.raises(Exception, match="SlowDown") as caught:
        list(source.changes(None))
    assert not isinstance(caught.value, SourceError)


def test_a_cursor_from_another_bucket_or_prefix_starts_over(s3: Any) -> None:
    put(s3, "a.md", "a")
    put(s3, "b.md", "b")
    foreign = json.dumps({"scope": "elsewhere", "after": "a.md", "known": "", "landed": ""})
    assert set(items(list(connector({"bucket": BUCKET}).changes(foreign)))) == {"a", "b"}
    assert set(items(list(connector({"bucket": BUCKET}).changes("not json")))) == {"a", "b"}
