"""The S3 storage adapters: moto for behaviour, botocore's Stubber for the error paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.errors import TransientError


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="raw")
        client.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
        client.create_bucket(Bucket="out")
        yield client


def test_head_reads_version_size_and_metadata(s3: Any) -> None:
    put = s3.put_object(Bucket="raw", Key="a b.txt", Body=b"hello", Metadata={"source-url": "https://x"})
    head = S3ObjectReader(s3).head("raw", "a b.txt")
    assert head is not None
    assert (head.size, head.version_id, head.metadata) == (5, put["VersionId"], {"source-url": "https://x"})


def test_head_of_a_missing_or_deleted_object_is_none(s3: Any) -> None:
    store = S3ObjectReader(s3)
    assert store.head("raw", "missing") is None
    s3.put_object(Bucket="raw", Key="k", Body=b"x")
    s3.delete_object(Bucket="raw", Key="k")  # a delete marker
    assert store.head("raw", "k") is None


def test_get_reads_exactly_the_version_headed(s3: Any) -> None:
    store = S3ObjectReader(s3)
    s3.put_object(Bucket="raw", Key="k", Body=b"first")
    head = store.head("raw", "k")
    s3.put_object(Bucket="raw", Key="k", Body=b"second")
    assert head is not None and store.get(head) == b"first"


def test_get_of_a_vanished_version_is_transient(s3: Any) -> None:
    store = S3ObjectReader(s3)
    s3.put_object(Bucket="raw", Key="k", Body=b"x")
    head = store.head("raw", "k")
    assert head is not None
    s3.delete_object(Bucket="raw", Key="k", VersionId=head.version_id)
    with pytest.raises(TransientError):
        store.get(head)


def test_delete_handles_more_keys_than_one_call_takes(s3: Any) -> None:
    store = S3BucketWriter(s3, "out")
    keys = [f"chunks/d/{i}.txt" for i in range(1500)]
    for key in keys[:3]:
        store.put(key, b"x", "text/plain")
    store.delete(keys)
    assert "Contents" not in s3.list_objects_v2(Bucket="out")


def test_a_partial_delete_failure_is_not_swallowed() -> None:
    client = boto3.client("s3")
    stubber = Stubber(client)
    stubber.add_response(
        "delete_objects",
        {"Errors": [{"Key": "chunks/d/1.txt", "Code": "SlowDown", "Message": "Reduce your request rate"}]},
        expected_params={
            "Bucket": "out",
            "Delete": {"Objects": [{"Key": "chunks/d/1.txt"}, {"Key": "chunks/d/2.txt"}], "Quiet": True},
        },
    )
    with stubber, pytest.raises(TransientError, match="1 of 2 deletes failed"):
        S3BucketWriter(client, "out").delete(["chunks/d/1.txt", "chunks/d/2.txt"])
