"""A document's own metadata: custom attributes and access-control principals, from a
``<key>.metadata.json`` object next to it in RawBucket (the convention Bedrock Knowledge Bases use
for S3 data sources), and ``title`` / ``source-url`` from the object's S3 user metadata.

    report.pdf
    report.pdf.metadata.json   {"metadataAttributes": {"department": "finance", "year": 2024},
                                "accessControlList": [{"name": "finance", "type": "GROUP", "access": "ALLOW"}],
                                "title": "Annual report"}

Attribute values may be plain (string, number, boolean, list of strings) or Bedrock's typed form
(``{"value": {"type": "STRING", "stringValue": ...}}``). A sidecar that cannot be read exactly is
refused (``metadata_invalid``): indexing a document without the access list its owner meant to
give it would expose it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sluice.errors import QuarantineError, Reason

SIDECAR_SUFFIX = ".metadata.json"
MAX_SIDECAR_BYTES = 64 * 1024
MAX_STRING = 2048
MAX_LIST = 10  # Bedrock's STRING_LIST holds at most ten values
MAX_PRINCIPALS = 200  # Kendra's AccessControlList limit
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
# Attributes Sluice sets on every chunk; a document's metadata may not replace them.
RESERVED = frozenset(
    {"source_uri", "doc_id", "title", "content_type", "tokens", "page_start", "page_end", "heading_path", "headings",
     "acl_allow", "acl_deny"}
)  # fmt: skip


class PrincipalType(StrEnum):
    USER = "USER"
    GROUP = "GROUP"


class Access(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # users are canonical lower-case (e-mail addresses); groups are kept as written
    type: PrincipalType
    access: Access

    @property
    def token(self) -> str:
        """How the principal appears in chunk metadata filters: ``group:finance``, ``user:a@b.com``."""
        return f"{self.type.value.lower()}:{self.name}"


@dataclass(frozen=True, slots=True)
class DocumentMetadata:
    attributes: dict[str, str | float | bool | list[str]] = field(default_factory=dict)
    acl: tuple[Principal, ...] = ()
    title: str | None = None
    source_url: str | None = None

    def allowed(self) -> list[str]:
        return [p.token for p in self.acl if p.access is Access.ALLOW]

    def denied(self) -> list[str]:
        return [p.token for p in self.acl if p.access is Access.DENY]

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.attributes,
            "acl": [{"name": p.name, "type": p.type.value, "access": p.access.value} for p in self.acl],
        }


def sidecar_of(key: str) -> str:
    return f"{key}{SIDECAR_SUFFIX}"


def document_of(key: str) -> str | None:
    """The document a ``.metadata.json`` key describes, or None for a document key."""
    return key[: -len(SIDECAR_SUFFIX)] if key.endswith(SIDECAR_SUFFIX) and len(key) > len(SIDECAR_SUFFIX) else None


def _invalid(detail: str) -> QuarantineError:
    return QuarantineError(Reason.METADATA_INVALID, f"metadata sidecar: {detail}")


def _value(key: str, raw: Any) -> str | float | bool | list[str]:
    if isinstance(raw, dict) and "value" in raw:  # Bedrock's typed form
        typed = raw["value"]
        kinds = {
            "STRING": "stringValue",
            "NUMBER": "numberValue",
            "BOOLEAN": "booleanValue",
            "STRING_LIST": "stringListValue",
        }
        field_name = kinds.get(str(typed.get("type"))) if isinstance(typed, dict) else None
        if field_name is None or field_name not in typed:
            raise _invalid(f"attribute {key!r} has an unknown typed value")
        raw = typed[field_name]
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        if not 1 <= len(raw) <= MAX_STRING:
            raise _invalid(f"attribute {key!r} must be 1 to {MAX_STRING} characters")
        return raw
    if isinstance(raw, list) and raw and all(isinstance(v, str) and 1 <= len(v) <= MAX_STRING for v in raw):
        if len(raw) > MAX_LIST:
            raise _invalid(f"attribute {key!r} lists {len(raw)} values; Bedrock takes at most {MAX_LIST}")
        return list(raw)
    raise _invalid(f"attribute {key!r} must be a string, number, boolean or a list of 1 to {MAX_LIST} strings")


def _principal(raw: Any) -> Principal:
    if not isinstance(raw, dict):
        raise _invalid("every accessControlList entry is an object with name, type and access")
    name = str(raw.get("name") or raw.get("Name") or "").strip()
    try:
        kind = PrincipalType(str(raw.get("type") or raw.get("Type") or "").upper())
        access = Access(str(raw.get("access") or raw.get("Access") or "").upper())
    except ValueError as exc:
        raise _invalid("principal type must be USER or GROUP, access ALLOW or DENY") from exc
    if not 1 <= len(name) <= 200:
        raise _invalid("principal names are 1 to 200 characters")
    return Principal(name.lower() if kind is PrincipalType.USER else name, kind, access)


def parse_metadata(data: bytes | None, s3_metadata: dict[str, str] | None = None) -> DocumentMetadata:
    """The document's metadata from its sidecar (None when there is none) and S3 user metadata."""
    s3_metadata = s3_metadata or {}
    title = s3_metadata.get("title") or None
    source_url = s3_metadata.get("source-url") or None
    if data is None:
        return DocumentMetadata(title=title, source_url=source_url)
    if len(data) > MAX_SIDECAR_BYTES:
        raise _invalid(f"{len(data)} bytes; the limit is {MAX_SIDECAR_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _invalid(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise _invalid("the top level must be an object")
    raw_attributes = doc.get("metadataAttributes") or {}
    raw_acl = doc.get("accessControlList") or []
    if not isinstance(raw_attributes, dict) or not isinstance(raw_acl, list):
        raise _invalid("metadataAttributes is an object and accessControlList a list")
    attributes = {}
    for key, raw in raw_attributes.items():
        if not _KEY.match(str(key)) or key in RESERVED:
            raise _invalid(f"attribute name {key!r} is not allowed (letters, digits, _ and -; not one of Sluice's own)")
        attributes[str(key)] = _value(str(key), raw)
    if len(raw_acl) > MAX_PRINCIPALS:
        raise _invalid(f"{len(raw_acl)} principals; the limit is {MAX_PRINCIPALS}")
    acl = tuple(dict.fromkeys(_principal(p) for p in raw_acl))
    title = str(doc["title"]).strip() if isinstance(doc.get("title"), str) and doc["title"].strip() else title
    source_url = doc.get("sourceUrl") if isinstance(doc.get("sourceUrl"), str) else source_url
    return DocumentMetadata(attributes, acl, title, source_url)
