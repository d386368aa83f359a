"""S3 notification bodies, as they arrive on the ingest queue."""

from __future__ import annotations

import json

import pytest

from sluice.ingest import ObjectEvent
from sluice.s3events import MalformedMessageError, parse_message, recheck_message


def _classic(name: str, key: str, **obj: str) -> str:
    return json.dumps(
        {"Records": [{"eventName": name, "s3": {"bucket": {"name": "raw"}, "object": {"key": key, **obj}}}]}
    )


def test_created_event_with_a_url_encoded_key() -> None:
    (event,) = parse_message(
        _classic(
            "ObjectCreated:Put",
            "My+Report%282%29+%E2%80%94+%C3%A9t%C3%A9.pdf",
            sequencer="0A1B",
            versionId="v1",
            eTag="e",
        )
    )
    assert event == ObjectEvent(
        "raw", "My Report(2) — été.pdf", removed=False, sequencer="0A1B", version_id="v1", etag="e"
    )


@pytest.mark.parametrize(
    "name", ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "LifecycleExpiration:Delete"]
)
def test_removed_events(name: str) -> None:
    (event,) = parse_message(_classic(name, "a.txt", sequencer="01"))
    assert event.removed


def test_the_s3_test_event_holds_no_object_events() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "raw"})
    assert parse_message(body) == []


def test_sns_wrapped_notifications() -> None:
    body = json.dumps({"Type": "Notification", "Message": _classic("ObjectCreated:Put", "a+b.txt")})
    assert parse_message(body)[0].key == "a b.txt"


def test_eventbridge_s3_events() -> None:
    body = json.dumps(
        {
            "source": "aws.s3",
            "detail-type": "Object Deleted",
            "detail": {"bucket": {"name": "raw"}, "object": {"key": "a b.txt", "sequencer": "05", "version-id": "v9"}},
        }
    )
    assert parse_message(body) == [ObjectEvent("raw", "a b.txt", removed=True, sequencer="05", version_id="v9")]


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"hello": "world"}', '{"Records": [{"eventName": "x"}]}'])
def test_anything_else_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessageError):
        parse_message(body)


def test_idempotency_key_is_the_business_identity_not_the_message() -> None:
    a = ObjectEvent("raw", "k", removed=False, sequencer="01", version_id="v1")
    assert a.idempotency_key == "raw/k#created#01"
    assert ObjectEvent("raw", "k", removed=True, sequencer="02").idempotency_key == "raw/k#removed#02"


def test_a_reconciler_recheck_is_an_event_named_by_its_pass() -> None:
    (event,) = parse_message(recheck_message("raw", "a b+c.md", "reconcile:p1", rebuild=True))
    assert event == ObjectEvent("raw", "a b+c.md", removed=False, trigger="reconcile:p1", rebuild=True)
    assert event.idempotency_key == "raw/a b+c.md#rebuild#reconcile:p1"
    (plain,) = parse_message(recheck_message("raw", "a.md", "reconcile:p2"))
    assert not plain.rebuild and plain.idempotency_key == "raw/a.md#created#reconcile:p2"


def test_a_recheck_without_its_fields_is_malformed() -> None:
    with pytest.raises(MalformedMessageError, match="recheck without"):
        parse_message(json.dumps({"sluice": "recheck", "bucket": "raw"}))
