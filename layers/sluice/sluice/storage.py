"""Object storage ports: reading an object (``ObjectReader``), writing, listing and deleting in one
bucket (``BucketWriter``: processed files, or connector items landed in RawBucket), listing a bucket a
page at a time (``BucketListing``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ObjectHead:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* (title, source-url, ...)


class ObjectReader(Protocol):
    def head(self, bucket: str, key: str) -> ObjectHead | None:
        """The object's current state, or None when it does not exist (deleted)."""

    def get(self, head: ObjectHead) -> bytes:
        """The bytes of exactly the version ``head`` describes."""


class BucketWriter(Protocol):
    bucket: str

    def put(self, key: str, body: bytes, content_type: str) -> None: ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""

    def delete(self, keys: Sequence[str]) -> None:
        """Delete every key; absent keys are not an error."""


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str
    etag: str
    modified: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class ObjectPage:
    objects: list[ListedObject]  # in key order
    truncated: bool  # more objects follow the last of this page


class BucketListing(Protocol):
    def page(self, bucket: str, *, prefix: str, start_after: str | None, limit: int) -> ObjectPage:
        """At most ``limit`` objects under ``prefix`` whose keys come after ``start_after``."""
