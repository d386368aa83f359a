"""The DynamoDB registry on moto: leases, commits, the outbox fields and the status index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sluice.adapters.aws.registry import DynamoDBRegistry, from_item, to_item
from sluice.errors import DocumentBusyError, LeaseLostError
from sluice.registry import DocumentRecord, Status
from support.awsfixtures import create_documents_table


@pytest.fixture
def registry() -> Iterator[DynamoDBRegistry]:
    with mock_aws():
        ddb = boto3.client("dynamodb")
        create_documents_table(ddb, "docs")
        yield DynamoDBRegistry(ddb, "docs")


def _record(doc_id: str = "d1", status: Status = Status.PROCESSED, **kw: Any) -> DocumentRecord:
    return DocumentRecord(
        doc_id=doc_id,
        source_uri=f"s3://raw/{doc_id}",
        bucket="raw",
        key=doc_id,
        status=status,
        updated_at="2026-11-28T00:00:00.000Z",
        **kw,
    )


def test_records_round_trip_every_field() -> None:
    record = _record(
        sequencer="0A",
        version_id="v1",
        etag="e",
        size=10,
        raw_sha256="r",
        text_sha256="t",
        fingerprint="f",
        kind="pdf",
        title="T",
        page_count=3,
        parser="pypdf@7",
        chunks=("a", "b"),
        token_count=99,
        reason=None,
        notes={"encoding": "utf-8"},
        pending_event="Document Changed",
        pending_added=("a",),
        pending_removed=("z",),
        metadata_etag="m",
        doc_metadata={"acl": [{"name": "g", "type": "GROUP", "access": "ALLOW"}], "attributes": {"y": 1.0}},
    )
    assert from_item(to_item(record)) == record


def test_a_new_document_gets_a_lease_and_no_record(registry: DynamoDBRegistry) -> None:
    assert registry.acquire("d1", "me", now=100.0, lease_seconds=30) is None
    with pytest.raises(DocumentBusyError):
        registry.acquire("d1", "you", now=120.0, lease_seconds=30)
    registry.release("d1", "me")
    assert registry.get("d1") is None  # the placeholder is gone
    assert list(registry.records()) == []


def test_a_retried_acquire_whose_first_answer_was_lost_gets_the_lease_it_took(registry: DynamoDBRegistry) -> None:
    # botocore retries a call whose answer timed out; the first attempt may have taken the lease.
    assert registry.acquire("d1", "me", now=100.0, lease_seconds=30) is None
    assert registry.acquire("d1", "me", now=100.5, lease_seconds=30) is None
    registry.commit(_record(), "me", keep_lease_until=None)
    registry.acquire("d1", "me2", now=101.0, lease_seconds=30)
    assert registry.acquire("d1", "me2", now=101.5, lease_seconds=30) == _record()
    with pytest.raises(DocumentBusyError):
        registry.acquire("d1", "you", now=102.0, lease_seconds=30)


def test_an_expired_lease_can_be_taken_over_and_the_old_owner_cannot_commit(registry: DynamoDBRegistry) -> None:
    registry.acquire("d1", "me", now=100.0, lease_seconds=30)
    registry.acquire("d1", "you", now=131.0, lease_seconds=30)
    with pytest.raises(LeaseLostError):
        registry.commit(_record(), "me", keep_lease_until=None)
    registry.commit(_record(), "you", keep_lease_until=None)
    assert registry.get("d1") == _record()


def test_commit_keeping_the_lease_blocks_others_until_release(registry: DynamoDBRegistry) -> None:
    registry.acquire("d1", "me", now=100.0, lease_seconds=30)
    registry.commit(_record(pending_event="Document Changed"), "me", keep_lease_until=160.0)
    with pytest.raises(DocumentBusyError):
        registry.acquire("d1", "you", now=150.0, lease_seconds=30)
    registry.commit(_record(), "me", keep_lease_until=None)
    assert registry.acquire("d1", "you", now=150.0, lease_seconds=30) == _record()


def test_release_keeps_an_existing_record(registry: DynamoDBRegistry) -> None:
    registry.acquire("d1", "me", now=100.0, lease_seconds=30)
    registry.commit(_record(), "me", keep_lease_until=None)
    registry.acquire("d1", "me2", now=101.0, lease_seconds=30)
    registry.release("d1", "me2")
    assert registry.get("d1") == _record()
    assert registry.acquire("d1", "me3", now=102.0, lease_seconds=30) == _record()


def test_status_index_counts_and_lists(registry: DynamoDBRegistry) -> None:
    for i, status in enumerate([Status.PROCESSED, Status.PROCESSED, Status.QUARANTINED, Status.DELETED]):
        registry.acquire(f"d{i}", "me", now=1.0, lease_seconds=30)
        registry.commit(
            _record(f"d{i}", status, reason="encrypted" if status is Status.QUARANTINED else None),
            "me",
            keep_lease_until=None,
        )
    registry.acquire("d9", "me", now=1.0, lease_seconds=30)  # a placeholder is not a document
    assert {s: registry.count(s) for s in Status} == {Status.PROCESSED: 2, Status.QUARANTINED: 1, Status.DELETED: 1}
    assert [r.reason for r in registry.records(Status.QUARANTINED)] == ["encrypted"]
    assert len(list(registry.records())) == 4


def test_the_status_index_counts_records_changed_since_a_time(registry: DynamoDBRegistry) -> None:
    for i, updated in enumerate(["2026-11-28T00:00:00.000Z", "2026-11-28T00:00:01.000Z", "2026-11-28T00:00:02.500Z"]):
        registry.acquire(f"d{i}", "me", now=1.0, lease_seconds=30)
        registry.commit(_record(f"d{i}").evolve(updated_at=updated), "me", keep_lease_until=None)
    assert registry.count(Status.PROCESSED, since="2026-11-28T00:00:01.000Z") == 2
    assert registry.count(Status.PROCESSED, since="2026-11-28T00:00:03.000Z") == 0
    assert registry.count(Status.PROCESSED) == 3
