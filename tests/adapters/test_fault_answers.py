"""The local stack's fault injection, one client at a time: the answers it gives in place of the
service's are parsed by botocore as AWS's own (the error codes, the failed entries), for services
moto serves over HTTP and for the emulated ones, and each call is counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from sluice_local import emulators
from sluice_local.fault_answers import ERRORS
from sluice_local.faults import FaultPlan, Injector, read_counts, write_plan

INDEX = "10ca1000-0000-4000-8000-000000000001"
ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})  # the first answer surfaces


@pytest.fixture
def plan_path(tmp_path: Path) -> Iterator[Path]:
    with mock_aws():
        emulators.install(tmp_path / "emulators").create_index(INDEX, emulators.LOCAL_KENDRA_FIELDS)
        try:
            yield tmp_path / "faults" / "plan.json"
        finally:
            emulators.uninstall()


def _client(plan_path: Path, service: str, kind: str) -> tuple[Any, Injector]:
    write_plan(plan_path, FaultPlan(rate=1.0, kinds={kind: 1.0}, services=(service,), seed=7))
    injector = Injector(plan_path)
    client = boto3.client(service, config=ONE_ATTEMPT)
    injector.attach(client)
    return client, injector


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("s3", lambda c: c.put_object(Bucket="raw", Key="a.md", Body=b"x")),
        ("dynamodb", lambda c: c.get_item(TableName="stack-DocumentsTable", Key={"pk": {"S": "a"}})),
        ("events", lambda c: c.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])),
        ("sqs", lambda c: c.get_queue_url(QueueName="q")),
        ("kendra", lambda c: c.describe_index(Id=INDEX)),
    ],
)
@pytest.mark.parametrize("kind", ["throttle", "5xx"])
def test_an_injected_error_reaches_the_caller_as_the_services_own(
    plan_path: Path, service: str, call: Any, kind: str
) -> None:
    client, injector = _client(plan_path, service, kind)
    with pytest.raises(ClientError) as caught:
        call(client)
    answer = caught.value.response
    status, code = answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]
    assert (status, code) in {(s, c) for s, c, _ in ERRORS[service][kind]}
    injector.flush()
    surfaced = {key: n for key, n in read_counts(plan_path.parent).items() if key[0] == "surfaced"}
    assert list(surfaced.values()) == [1]
    assert [(s, k) for _, s, _, k in surfaced] == [(service, kind)]


def test_an_injected_error_on_a_head_request_has_no_body_as_in_s3(plan_path: Path) -> None:
    s3, _ = _client(plan_path, "s3", "throttle")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket="raw", Key="a.md")
    assert caught.value.response["Error"]["Code"] == "503"  # botocore's code for a bodiless 503


def test_a_batch_answer_can_fail_every_entry(plan_path: Path) -> None:
    events, _ = _client(plan_path, "events", "entries")
    answer = events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}] * 3)
    assert answer["FailedEntryCount"] == 3
    assert {e["ErrorCode"] for e in answer["Entries"]} == {"InternalFailure"}

    s3, _ = _client(plan_path, "s3", "entries")
    s3.create_bucket(Bucket="raw")  # not an entry operation: never faulted
    answer = s3.delete_objects(Bucket="raw", Delete={"Objects": [{"Key": "a.md"}, {"Key": "b&c.md"}]})
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("a.md", "InternalError"), ("b&c.md", "InternalError")]

    kendra, _ = _client(plan_path, "kendra", "entries")
    answer = kendra.batch_put_document(IndexId=INDEX, Documents=[{"Id": "a", "Blob": b"x"}, {"Id": "b", "Blob": b"y"}])
    assert [(d["Id"], d["ErrorCode"]) for d in answer["FailedDocuments"]] == [
        ("a", "InternalError"),
        ("b", "InternalError"),
    ]
