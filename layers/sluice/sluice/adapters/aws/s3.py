"""Amazon S3 adapters for the storage ports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.compat import batched
from sluice.errors import TransientError
from sluice.storage import ListedObject, ObjectHead, ObjectPage

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
DELETE_BATCH = 1000  # DeleteObjects accepts at most 1,000 keys


class S3ObjectReader:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        try:
            resp = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            raise
        return ObjectHead(
            bucket=bucket,
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")).strip('"'),
            version_id=resp.get("VersionId"),
            content_type=resp.get("ContentType"),
            metadata=dict(resp.get("Metadata") or {}),
        )

    def get(self, head: ObjectHead) -> bytes:
        kwargs = {"Bucket": head.bucket, "Key": head.key}
        if head.version_id and head.version_id != "null":
            kwargs["VersionId"] = head.version_id
        else:
            kwargs["IfMatch"] = f'"{head.etag}"'
        try:
            resp = self._s3.get_object(**kwargs)
        except ClientError as exc:
            if error_code(exc) in _MISSING or error_code(exc) == "PreconditionFailed":
                raise TransientError(f"s3://{head.bucket}/{head.key} changed while it was being read") from exc
            raise
        body: bytes = resp["Body"].read()
        return body

    def page(self, bucket: str, *, prefix: str, start_after: str | None, limit: int) -> ObjectPage:
        after = {"StartAfter": start_after} if start_after else {}
        resp = self._s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=limit, **after)
        objects = [
            ListedObject(o["Key"], str(o.get("ETag", "")).strip('"'), o["LastModified"].timestamp())
            for o in resp.get("Contents", [])
        ]
        return ObjectPage(objects, truncated=bool(resp.get("IsTruncated")))


class S3BucketWriter:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def keys(self, prefix: str) -> list[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def delete(self, keys: Sequence[str]) -> None:
        for batch in batched(keys, DELETE_BATCH):
            resp = self._s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise TransientError(
                    f"{len(errors)} of {len(batch)} deletes failed, e.g. {first.get('Key')}: {first.get('Code')}"
                )
