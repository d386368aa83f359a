"""Another bucket (or a prefix of one), read directly or through an assumed role.

S3 does not report deletions to a reader, so every pass lists the whole prefix (ListObjectsV2, in
key order) and the runner sweeps what a finished pass did not see. Within a pass the cursor holds
the last key listed, so an interrupted pass resumes after it (StartAfter).

Listing is cheap; downloading is not. The cursor also remembers the version (ETag and
LastModified, with its sidecar's) of each object landed, compacted to 12 bytes an object, and a
later pass answers ``Unchanged`` for an object whose version it remembers instead of reading it
again. Clear the instance's cursor to read everything again.

Each object's ``<key>.metadata.json`` sidecar, the convention Bedrock uses for S3 data sources,
travels with it: its access list becomes the item's principals, its attributes the item's. An
object whose sidecar cannot be read exactly is skipped rather than indexed without the access list
its owner gave it. Sidecars are never items themselves.

Objects of other types, over ``max_object_bytes``, archived (Glacier) or with an unreadable sidecar
are skipped with a warning, not failed: they are not items, so a landed copy is swept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code, is_transient
from sluice.connectors import (
    EXTENSIONS,
    MAX_ITEM_ID,
    Checkpoint,
    Context,
    Instance,
    Item,
    SourceError,
    Unchanged,
    safe_item_id,
)
from sluice.connectors.settings import Problems, aws_factory, unknown_settings_listed
from sluice.errors import QuarantineError
from sluice.pipeline.metadata import MAX_SIDECAR_BYTES, document_of, parse_metadata, sidecar_of

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SETTINGS = ("bucket", "prefix", "role_arn", "extensions", "max_object_bytes")
ALIASES = {"markdown": "md", "htm": "html", "text": "txt"}
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
MAX_OBJECT_BYTES = 100 * MiB  # the pipeline's own limit (MAX_DOCUMENT_BYTES) applies after landing
PAGE_SIZE = 1000  # keys a ListObjectsV2 call returns at most: a checkpoint after each page
CHECKPOINT_ITEMS = 100  # and after this many downloads, so a run stopped by its budget keeps its work
MAX_PREFIX_BYTES = 1024  # S3's key length limit
GONE = frozenset({"NoSuchKey", "NotFound", "404"})
ARCHIVED = "InvalidObjectState"  # Glacier and Deep Archive objects, and archived Intelligent-Tiering ones
REFUSALS = {
    "AccessDenied": "access denied: the connector's role needs s3:ListBucket on the bucket, s3:GetObject on "
    "its objects, and kms:Decrypt when they are encrypted with a customer managed key",
    "AllAccessDisabled": "all access to this bucket has been disabled",
    "NoSuchBucket": "the bucket does not exist (check its name, and the account the role belongs to)",
    "InvalidAccessKeyId": "the credentials were refused",
}
DIGEST = 6  # bytes of a key's digest, and of a version's: a remembered object costs 12
MAX_REMEMBERED = 10_000  # objects: a cursor of 160 KB, twice that at most mid-pass (a DynamoDB item holds 400 KB)
FORMAT = "1"  # what an Item carries; changing it makes every remembered version stale

Version = tuple[str, int, str, int]  # ETag and LastModified of the object, then of its sidecar ("", 0: none)


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    prefix: str = ""
    role_arn: str | None = None
    extensions: frozenset[str] = EXTENSIONS
    max_object_bytes: int = MAX_OBJECT_BYTES

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> S3Settings:
        problems = Problems()
        unknown_settings_listed(raw, SETTINGS, problems)
        bucket = raw.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            problems.add("bucket is required: the name of the bucket to read")
        else:
            _check_bucket(bucket, problems)
        prefix = raw.get("prefix", "")
        if not isinstance(prefix, str) or len(prefix.encode()) > MAX_PREFIX_BYTES:
            problems.add(f"prefix must be a string of at most {MAX_PREFIX_BYTES} bytes")
        role_arn = raw.get("role_arn")
        if role_arn is not None and not (isinstance(role_arn, str) and ROLE_ARN.match(role_arn)):
            problems.add(f"role_arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)")
        extensions = _extensions(raw.get("extensions"), problems)
        max_bytes = raw.get("max_object_bytes", MAX_OBJECT_BYTES)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            problems.add("max_object_bytes must be a positive whole number of bytes")
        problems.raise_any()
        return cls(str(bucket), str(prefix), role_arn, extensions, int(max_bytes))


def _check_bucket(bucket: str, problems: Problems) -> None:
    if bucket.endswith("--x-s3"):
        problems.add(
            f"bucket {bucket!r} is a directory bucket, which does not list keys in order: resuming needs order"
        )
    elif not BUCKET.match(bucket) or ".." in bucket or IP_ADDRESS.match(bucket):
        problems.add(f"bucket {bucket!r} is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)")


def _extensions(raw: Any, problems: Problems) -> frozenset[str]:
    if raw is None:
        return EXTENSIONS
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        problems.add(f"extensions must be a non-empty list of file types, from {', '.join(sorted(EXTENSIONS))}")
        return EXTENSIONS
    canonical = {ALIASES.get(e.lower().lstrip("."), e.lower().lstrip(".")): e for e in raw}
    unknown = [written for ext, written in canonical.items() if ext not in EXTENSIONS]
    if unknown:
        problems.add(f"extensions {unknown} are not types Sluice reads ({', '.join(sorted(EXTENSIONS))})")
        return EXTENSIONS
    return frozenset(canonical)


def extension(key: str) -> str:
    """The file type a key names, aliases folded (``.markdown`` is md); "" when it names none."""
    ext = posixpath.splitext(key)[1][1:].lower()
    return ALIASES.get(ext, ext)


def item_id_of(key: str, prefix: str) -> str:
    """The key below the prefix, without its extension: ``docs/guide/setup.md`` under ``docs/`` is
    ``guide/setup``. Each folder is made safe on its own, so the id keeps the source's layout."""
    relative = key[len(prefix) :].lstrip("/") or posixpath.basename(key)
    stem = posixpath.splitext(relative)[0]
    item_id = safe_item_id(*stem.split("/"))
    return item_id if len(item_id) <= MAX_ITEM_ID else safe_item_id(stem)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=DIGEST).digest()


def _seconds(moment: datetime) -> int:
    """LastModified to the second: a listing gives milliseconds, GetObject and HeadObject do not."""
    return int(moment.timestamp())


def _metadata_text(value: str) -> str:
    """S3 user metadata is ASCII; other text arrives RFC 2047-encoded (``=?UTF-8?B?...?=``)."""
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeDecodeError, ValueError):
        return value


@dataclass
class Memory:
    """The cursor: where the pass is, and the versions the connector has landed.

    ``known`` holds what the last finished pass landed and shrinks as this pass lists each key;
    ``landed`` grows with what this pass lands or finds unchanged, and is ``known`` to the next.
    """

    scope: str  # the bucket and prefix the versions belong to
    after: str = ""
    known: dict[bytes, bytes] = field(default_factory=dict)
    landed: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def resume(cls, cursor: str | None, scope: str) -> Memory:
        if not cursor:
            return cls(scope)
        try:
            doc = json.loads(cursor)
            if doc["scope"] != scope:
                return cls(scope)
            return cls(scope, str(doc.get("after", "")), _unpack(doc.get("known", "")), _unpack(doc.get("landed", "")))
        except (ValueError, KeyError, TypeError):
            log.warning("s3 connector: the cursor is not one this connector wrote; listing from the start")
            return cls(scope)

    def unchanged(self, key: str, version: Version) -> bool:
        key_digest = _digest(key)
        remembered = self.known.pop(key_digest, None)
        if remembered is not None and remembered == _digest(repr(version)):
            self.remember(key, version)
            return True
        return False

    def forget(self, key: str) -> None:
        self.known.pop(_digest(key), None)

    def remember(self, key: str, version: Version) -> None:
        if len(self.landed) < MAX_REMEMBERED:
            self.landed[_digest(key)] = _digest(repr(version))

    def checkpoint(self) -> Checkpoint:
        doc = {"scope": self.scope, "after": self.after, "known": _pack(self.known), "landed": _pack(self.landed)}
        return Checkpoint(json.dumps(doc, separators=(",", ":")))

    def end_of_pass(self) -> Checkpoint:
        """The next pass lists from the start, knowing what this one landed."""
        doc = {"scope": self.scope, "known": _pack(self.landed)}
        return Checkpoint(json.dumps(doc, separators=(",", ":")), ends_pass=True)


def _pack(versions: dict[bytes, bytes]) -> str:
    return base64.b64encode(b"".join(k + v for k, v in versions.items())).decode()


def _unpack(text: str) -> dict[bytes, bytes]:
    raw = base64.b64decode(text, validate=True)
    step = 2 * DIGEST
    if len(raw) % step:
        raise ValueError("truncated versions")
    return {raw[i : i + DIGEST]: raw[i + DIGEST : i + step] for i in range(0, len(raw), step)}


def _read(response: Mapping[str, Any], limit: int | None = None) -> bytes:
    stream = response["Body"]
    try:
        data: bytes = stream.read(limit)
    finally:
        stream.close()
    return data


class Skipped(Exception):
    """This object is not an item this pass, for the reason given (it is logged, not failed)."""


@dataclass(frozen=True, slots=True)
class Page:
    objects: Mapping[str, Mapping[str, Any]]  # key → its ListObjectsV2 entry
    last: str
    truncated: bool


class S3Connector:
    complete_listing: ClassVar[bool] = True

    def __init__(self, settings: S3Settings, aws: Callable[..., Any]) -> None:
        self.settings = settings
        self._aws = aws

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> S3Connector:
        settings = S3Settings.parse(instance.settings)
        return cls(settings, aws_factory(context, "s3"))

    def changes(self, cursor: str | None) -> Iterator[Item | Unchanged | Checkpoint]:
        s = self.settings
        s3 = self._aws("s3", role_arn=s.role_arn) if s.role_arn else self._aws("s3")
        memory = Memory.resume(cursor, _digest(f"{s.bucket}/{s.prefix}/{FORMAT}").hex())
        claimed: set[str] = set()
        downloaded = 0
        for page in self._pages(s3, memory.after):
            for key in page.objects:
                change = self._change(s3, key, page, memory, claimed)
                if change is None:
                    continue
                yield change
                downloaded += isinstance(change, Item)
                if downloaded % CHECKPOINT_ITEMS == 0 and isinstance(change, Item):
                    memory.after = key
                    yield memory.checkpoint()
            memory.after = page.last
            yield memory.checkpoint()
        yield memory.end_of_pass()

    def _pages(self, s3: Any, after: str) -> Iterator[Page]:
        s = self.settings
        request = {"Bucket": s.bucket, "Prefix": s.prefix}
        if after:
            request["StartAfter"] = after
        pages = iter(s3.get_paginator("list_objects_v2").paginate(**request, PaginationConfig={"PageSize": PAGE_SIZE}))
        while True:
            with self._refusals(f"listing s3://{s.bucket}/{s.prefix}"):
                response = next(pages, None)
            if response is None or not response.get("Contents"):
                return
            objects = {o["Key"]: o for o in response["Contents"]}
            yield Page(objects, response["Contents"][-1]["Key"], bool(response.get("IsTruncated")))

    def _change(self, s3: Any, key: str, page: Page, memory: Memory, claimed: set[str]) -> Item | Unchanged | None:
        s = self.settings
        ext = extension(key)
        if document_of(key) is not None or ext not in s.extensions:
            return None
        item_id = item_id_of(key, s.prefix)
        if item_id in claimed:  # a.md and a.txt: the first in key order keeps the id
            log.warning(
                "s3 connector: s3://%s/%s skipped: another object already has item id %s", s.bucket, key, item_id
            )
            return None
        claimed.add(item_id)
        listed = page.objects[key]
        if listed["Size"] > s.max_object_bytes:
            log.warning("s3 connector: s3://%s/%s skipped: %d bytes", s.bucket, key, listed["Size"])
            memory.forget(key)
            return None
        sidecar = self._sidecar_version(s3, key, page)
        if memory.unchanged(key, (listed["ETag"], _seconds(listed["LastModified"]), *sidecar)):
            return Unchanged(item_id)
        return self._item(s3, key, item_id, ext, has_sidecar=bool(sidecar[0]), memory=memory)

    def _sidecar_version(self, s3: Any, key: str, page: Page) -> tuple[str, int]:
        """The sidecar's version, from the listing when it is on this page or certainly absent (keys
        come in order, and the sidecar sorts after its object), else from a HEAD."""
        name = sidecar_of(key)
        if name in page.objects:
            return page.objects[name]["ETag"], _seconds(page.objects[name]["LastModified"])
        if not page.truncated or name <= page.last:
            return "", 0
        with self._refusals(f"reading s3://{self.settings.bucket}/{name}"):
            try:
                head = s3.head_object(Bucket=self.settings.bucket, Key=name)
            except ClientError as exc:
                if error_code(exc) in GONE:
                    return "", 0
                raise
        return head["ETag"], _seconds(head["LastModified"])

    def _item(self, s3: Any, key: str, item_id: str, ext: str, *, has_sidecar: bool, memory: Memory) -> Item | None:
        try:
            return self._read_item(s3, key, item_id, ext, has_sidecar=has_sidecar, memory=memory)
        except Skipped as exc:
            log.warning("s3 connector: s3://%s/%s skipped: %s", self.settings.bucket, key, exc)
            return None

    def _read_item(
        self, s3: Any, key: str, item_id: str, ext: str, *, has_sidecar: bool, memory: Memory
    ) -> Item | None:
        s = self.settings
        got = self._get(s3, key)
        if got is None:
            return None
        if got["ContentLength"] > s.max_object_bytes:
            got["Body"].close()
            raise Skipped(f"{got['ContentLength']} bytes")
        body = _read(got)
        sidecar = self._get(s3, sidecar_of(key)) if has_sidecar else None
        sidecar_body = _read(sidecar, MAX_SIDECAR_BYTES + 1) if sidecar else None  # parse_metadata refuses more
        user_metadata = {k.lower(): _metadata_text(v) for k, v in (got.get("Metadata") or {}).items()}
        try:
            meta = parse_metadata(sidecar_body, user_metadata)
        except QuarantineError as exc:
            raise Skipped(exc.detail) from exc
        sidecar_version = (sidecar["ETag"], _seconds(sidecar["LastModified"])) if sidecar else ("", 0)
        memory.remember(key, (got["ETag"], _seconds(got["LastModified"]), *sidecar_version))
        return Item(
            item_id=item_id,
            body=body,
            ext=ext,
            title=meta.title,
            source_url=meta.source_url or f"s3://{s.bucket}/{key}",
            updated_at=got["LastModified"].isoformat(),
            allow=tuple(meta.allowed()),
            deny=tuple(meta.denied()),
            attributes=dict(meta.attributes),
        )

    def _get(self, s3: Any, key: str) -> dict[str, Any] | None:
        """The object, or None when it was deleted since it was listed."""
        with self._refusals(f"reading s3://{self.settings.bucket}/{key}"):
            try:
                response: dict[str, Any] = s3.get_object(Bucket=self.settings.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == ARCHIVED:
                    raise Skipped(f"{key} is archived; restore it to read it") from exc
                if error_code(exc) in GONE:
                    return None
                raise
        return response

    @contextmanager
    def _refusals(self, doing: str) -> Iterator[None]:
        """A refusal stops the run with a reason an operator can act on; throttling and 5xx reach
        here only after botocore's retries, and are left to the run's own failure handling."""
        try:
            yield
        except ClientError as exc:
            if is_transient(exc):
                raise
            code = error_code(exc)
            message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
            raise SourceError(f"{doing}: {REFUSALS.get(code, f'{code}: {message}')}") from exc
