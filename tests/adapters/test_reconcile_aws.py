"""The reconciler's AWS adapters: S3 listing pages, the registry scanned a page at a time and read in
batches, sink states read many at a time under their own keys, the pass's leased item (moto), and the
retries of BatchGetItem's unprocessed keys and of SendMessageBatch's failed entries (botocore's
Stubber, which checks each request against the service model)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sluice.adapters.aws.dynamodb import ATTEMPTS, batch_get
from sluice.adapters.aws.reconcile import DynamoDBPassStore
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import BATCH_ATTEMPTS, SqsBatchSender
from sluice.errors import TransientError
from sluice.reconcile import PassBusyError, Report
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkState, SinkStatus
from support.awsfixtures import create_documents_table

WHEN = "2027-01-15T08:00:00Z"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3, ddb = boto3.client("s3", region_name="us-east-1"), boto3.client("dynamodb", region_name="us-east-1")
        create_documents_table(ddb, "docs")
        yield s3, ddb


def _record(doc_id: str) -> DocumentRecord:
    return DocumentRecord(doc_id, f"s3://raw/{doc_id}", "raw", doc_id, Status.PROCESSED, WHEN, chunks=("a", "b"))


def test_a_bucket_is_listed_a_page_at_a_time_from_where_the_last_stopped(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    s3.create_bucket(Bucket="listed")
    for key in ("chunks/a", "chunks/b", "chunks/c", "documents/a"):
        s3.put_object(Bucket="listed", Key=key, Body=key.encode())
    listing = S3ObjectReader(s3)
    first = listing.page("listed", prefix="chunks/", start_after=None, limit=2)
    assert [o.key for o in first.objects] == ["chunks/a", "chunks/b"] and first.truncated
    assert first.objects[0].etag == hashlib.md5(b"chunks/a").hexdigest()  # without S3's quotes
    assert abs(first.objects[0].modified - time.time()) < 3600
    rest = listing.page("listed", prefix="chunks/", start_after="chunks/b", limit=2)
    assert [o.key for o in rest.objects] == ["chunks/c"] and not rest.truncated
    assert [o.key for o in listing.page("listed", prefix="", start_after=None, limit=10).objects][-1] == "documents/a"


def test_the_registry_is_scanned_a_page_at_a_time_records_and_sink_states_only(aws: tuple[Any, Any]) -> None:
    _, ddb = aws
    registry, states = DynamoDBRegistry(ddb, "docs"), DynamoDBSinkStates(ddb, "docs")
    records = [_record(f"doc{n}") for n in range(3)]
    for record in records:
        registry.acquire(record.doc_id, "me", 0.0, 60)
        registry.commit(record, "me", keep_lease_until=None)
    registry.acquire("under-way", "me", 0.0, 60)  # a lease placeholder: no record yet
    DynamoDBPassStore(ddb, "docs").acquire("me", 0.0, 60)  # the pass's own item
    state = SinkState("kb", "doc0", SinkStatus.INDEXED, WHEN, held=("a", "b"), version=1)
    states.put(state, expected_version=None)
    found_records, found_states, cursor, pages = [], [], None, 0
    while True:
        page_records, page_states, cursor = registry.scan_page(cursor, 2)
        found_records += page_records
        found_states += page_states
        pages += 1
        if cursor is None:
            break
    assert pages >= 3
    assert sorted(found_records, key=lambda r: r.doc_id) == records and found_states == [state]


def test_lookup_tells_records_from_first_ingestions_under_way(aws: tuple[Any, Any]) -> None:
    _, ddb = aws
    registry = DynamoDBRegistry(ddb, "docs")
    registry.acquire("doc1", "me", 0.0, 60)
    registry.commit(_record("doc1"), "me", keep_lease_until=None)
    registry.acquire("under-way", "me", 0.0, 60)
    found = registry.lookup(["doc1", "under-way", "absent", "doc1"])
    assert found == {"doc1": _record("doc1"), "under-way": None}


def test_sink_states_are_read_many_at_a_time_under_their_own_keys(aws: tuple[Any, Any]) -> None:
    _, ddb = aws
    states = DynamoDBSinkStates(ddb, "docs")
    written = [
        SinkState("kendra", f"doc{n:03d}", SinkStatus.INDEXED, WHEN, held=("f", "id"), version=1) for n in range(150)
    ]
    for state in written:
        states.put(state, expected_version=None)
    assert "Item" in ddb.get_item(TableName="docs", Key={"doc_id": {"S": "kendra#doc000"}})  # {sink}#{doc_id}
    wanted = [("kendra", s.doc_id) for s in written] + [("kb", "doc000"), ("kendra", "absent")]
    assert states.get_many(wanted) == {("kendra", s.doc_id): s for s in written}  # two BatchGetItem calls


def test_batch_get_asks_again_for_unprocessed_keys_then_gives_up() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    keys = [{"doc_id": {"S": "a"}}, {"doc_id": {"S": "b"}}]
    pauses: list[float] = []
    with Stubber(client) as stubber:
        stubber.add_response(
            "batch_get_item",
            {"Responses": {"t": [keys[0]]}, "UnprocessedKeys": {"t": {"Keys": [keys[1]]}}},
            {"RequestItems": {"t": {"Keys": keys, "ConsistentRead": True}}},
        )
        stubber.add_response(
            "batch_get_item",
            {"Responses": {"t": [keys[1]]}},
            {"RequestItems": {"t": {"Keys": [keys[1]], "ConsistentRead": True}}},
        )
        assert batch_get(client, "t", keys, sleep=pauses.append) == keys
        assert len(pauses) == 1
        for _ in range(ATTEMPTS):
            stubber.add_response("batch_get_item", {"Responses": {"t": []}, "UnprocessedKeys": {"t": {"Keys": keys}}})
        with pytest.raises(TransientError, match="2 keys stayed unprocessed"):
            batch_get(client, "t", keys, sleep=pauses.append)
        stubber.assert_no_pending_responses()


def _entries(bodies: list[str], ids: list[int] | None = None) -> list[dict[str, str]]:
    return [{"Id": str(n), "MessageBody": bodies[n]} for n in (ids if ids is not None else range(len(bodies)))]


def test_messages_go_ten_a_batch_and_failed_entries_are_sent_again() -> None:
    client = boto3.client("sqs", region_name="us-east-1")
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/ingest"
    bodies = [f"m{n}" for n in range(12)]
    pauses: list[float] = []
    failed = {"Id": "3", "SenderFault": False, "Code": "InternalError"}
    with Stubber(client) as stubber:
        stubber.add_response(
            "send_message_batch",
            {"Successful": [], "Failed": [failed]},
            {"QueueUrl": url, "Entries": _entries(bodies[:10])},
        )
        stubber.add_response(
            "send_message_batch",
            {"Successful": [], "Failed": []},
            {"QueueUrl": url, "Entries": _entries(bodies[:10], [3])},
        )
        stubber.add_response(
            "send_message_batch", {"Successful": [], "Failed": []}, {"QueueUrl": url, "Entries": _entries(bodies[10:])}
        )
        SqsBatchSender(client, sleep=pauses.append).send(url, bodies)
        stubber.assert_no_pending_responses()
    assert len(pauses) == 1


def test_entries_that_keep_failing_are_a_transient_error() -> None:
    client = boto3.client("sqs", region_name="us-east-1")
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/kb"
    failed = {"Id": "0", "SenderFault": False, "Code": "InternalError"}
    with Stubber(client) as stubber:
        for _ in range(BATCH_ATTEMPTS):
            stubber.add_response("send_message_batch", {"Successful": [], "Failed": [failed]})
        with pytest.raises(TransientError, match=r"1 messages to .* failed to send"):
            SqsBatchSender(client, sleep=lambda _: None).send(url, ["m0"])
        stubber.assert_no_pending_responses()


def test_the_pass_is_leased_and_resumes_where_it_stopped(aws: tuple[Any, Any]) -> None:
    _, ddb = aws
    passes = DynamoDBPassStore(ddb, "docs")
    fresh = passes.acquire("run1", 1000.0, 600)
    assert (fresh.current, fresh.cursor) == (None, None) and passes.last() is None
    with pytest.raises(PassBusyError):
        passes.acquire("run2", 1100.0, 600)
    current = Report("pass-1", WHEN, phase="registry", runs=1, found={"stale": 2})
    cursor = {"doc_id": {"S": "doc7"}}  # a scan's position, as DynamoDB gave it
    passes.save("run1", current=current, cursor=cursor, last=None, release=True)
    with pytest.raises(PassBusyError):  # the lease went back: run1 saves nothing more
        passes.save("run1", current=current, cursor=None, last=None, release=True)
    resumed = passes.acquire("run2", 1100.0, 600)
    assert (resumed.current, resumed.cursor) == (current, cursor)
    done = Report("pass-1", WHEN, phase="done", complete=True, runs=2)
    passes.save("run2", current=None, cursor=None, last=done, release=True)
    assert passes.last() == done and passes.acquire("run3", 1200.0, 600).current is None
    assert "Item" in ddb.get_item(TableName="docs", Key={"doc_id": {"S": "reconcile#pass"}})
