"""Connectors: scheduled, incremental pulls from where knowledge lives, landed in RawBucket.

A connector turns a source (a web site, Slack channels, a CRM, a warehouse query, another bucket)
into a stream of what changed since a cursor:

    Item        an upsert: bytes, an extension, and what the indexes should know about it
    Tombstone   the source says this item is gone
    Unchanged   the item is still there as it was (it counts as seen; nothing is landed)
    Checkpoint  everything yielded before it may be committed; a run resumes from its cursor

The runner (``sluice.connectors.runner``) lands each item as ``connectors/{instance}/{item_id}.{ext}``
with a ``.metadata.json`` sidecar, and from there the ordinary pipeline takes over: one path for
data. A connector never writes anything itself and never sees AWS credentials it does not need.

Sources that cannot report deletions declare ``complete_listing``: each pass lists every item, the
runner marks what it saw, and a finished pass sweeps the rest (mark and sweep, capped).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

# type name → "module:Class", imported on first use (a run loads only its own connector).
KINDS: dict[str, str] = {
    "web": "sluice.connectors.web:WebConnector",
    "s3": "sluice.connectors.s3:S3Connector",
    "slack": "sluice.connectors.slack:SlackConnector",
    "salesforce": "sluice.connectors.salesforce:SalesforceConnector",
    "redshift": "sluice.connectors.redshift:RedshiftConnector",
    "snowflake": "sluice.connectors.snowflake:SnowflakeConnector",
}
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=@+-]*(/[A-Za-z0-9][A-Za-z0-9._=@+-]*)*$")
MAX_ITEM_ID = 512
EXTENSIONS = frozenset({"html", "md", "txt", "json", "jsonl", "csv", "pdf", "docx"})
AttributeValue = str | int | float | bool | list[str]


class ConnectorConfigError(ValueError):
    """An instance's configuration is wrong; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class SourceError(RuntimeError):
    """The source refused or failed in a way a retry will not fix (401, 403, 404 of the root, a bad
    query). The run records it and stops; the cursor stays where it was."""


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str  # stable within the instance; becomes part of the S3 key (safe_item_id makes one)
    body: bytes
    ext: str  # one of EXTENSIONS: how the pipeline will read the body
    title: str | None = None
    source_url: str | None = None
    created_at: str | None = None  # ISO 8601
    updated_at: str | None = None
    author: str | None = None
    allow: tuple[str, ...] = ()  # principals: "user:ana@example.com", "group:support"
    deny: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tombstone:
    item_id: str


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The item is still there and unchanged (a 304, an equal ETag): counts as seen, nothing is landed."""

    item_id: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    cursor: str  # opaque to the runner; the connector's own resume point
    # A complete-listing connector's pass starts over from None once its listing is exhausted,
    # unless its last checkpoint says ends_pass: that cursor is what the next pass starts from
    # (for instance the web connector's ETags, for conditional GETs).
    ends_pass: bool = False


Change = Item | Tombstone | Unchanged | Checkpoint


@dataclass(frozen=True, slots=True)
class Instance:
    """One configured instance: a site, a workspace's channels, a query."""

    name: str  # [a-z0-9-], names the S3 prefix and the state
    type: str  # a key of KINDS
    settings: Mapping[str, Any]
    secret: str | None = None  # a Secrets Manager name or ARN (credentials never live in the config)
    max_items_per_run: int = 1000
    max_delete_share: float = 0.2  # a sweep that would delete more than this share of items stops


@dataclass
class Context:
    """What a connector may use: its secret's fields, an SSRF-guarded HTTP client, AWS clients,
    and the clock. Built by the runner's caller; tests pass fakes."""

    secret: Mapping[str, Any] = field(default_factory=dict)
    http: Any = None  # sluice.connectors.http.HttpClient
    aws: Callable[..., Any] | None = None  # boto3-style client factory: aws("s3"), aws("s3", role_arn=...)
    now: Callable[[], float] | None = None  # epoch seconds


class Connector(Protocol):
    complete_listing: ClassVar[bool]  # True: every pass lists every item, so deletions are swept

    def changes(self, cursor: str | None) -> Iterator[Change]:
        """What changed since ``cursor`` (None: everything), with Checkpoints along the way."""
        ...


class ConnectorFactory(Protocol):
    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> Connector:
        """The connector for a validated instance; ConnectorConfigError lists every settings problem."""
        ...


def connector_class(kind: str) -> ConnectorFactory:
    if kind not in KINDS:
        raise ConnectorConfigError([f"unknown connector type {kind!r}; the types are {', '.join(sorted(KINDS))}"])
    module, name = KINDS[kind].split(":")
    factory: ConnectorFactory = getattr(importlib.import_module(module), name)
    return factory


def safe_item_id(*parts: str) -> str:
    """An item id from source identifiers: each part kept when it is already safe, else replaced by
    its readable characters and a short hash (so two different ids never collide)."""
    import hashlib

    out = []
    for raw in parts:
        part = raw.strip("/")
        if part and ITEM_ID.match(part) and len(part) <= 200:
            out.append(part)
            continue
        readable = re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-._")[:80] or "item"
        out.append(f"{readable}-{hashlib.sha256(part.encode()).hexdigest()[:10]}")
    return "/".join(out)


def load_json_cursor(cursor: str | None, connector: str, table: str) -> dict[str, Any]:
    """A connector's JSON cursor, ``{"v": 1, table: {...}}`` (a fresh one when there is none); a
    cursor of another shape is refused with what to do about it."""
    if not cursor:
        return {"v": 1, table: {}}
    try:
        state = json.loads(cursor)
    except ValueError as exc:
        raise SourceError(f"the cursor is not a {connector} connector cursor (JSON); reset it to start over") from exc
    if not (isinstance(state, dict) and isinstance(state.get(table), dict)):
        raise SourceError(f"the cursor is not a {connector} connector cursor; reset it to start over")
    return state
