"""Who may read a chunk, and the knowledge-base filter that keeps to it.

Every chunk's sidecar carries ``acl_allow`` and ``acl_deny``: lists of principal tokens
(``user:alice@example.com``, ``group:finance``). A document whose access list allows nobody in
particular is open, and says so with ``acl_allow: ["*"]`` (a filter cannot ask for a key that is
missing, so openness must be written down). A set of principals may read a chunk when the chunk is
open or allows one of them, and denies none of them: deny wins.

Bedrock's filters have ``listContains`` but nothing for "a list contains none of", so the allow half
is a filter and the deny half is checked on the metadata Bedrock returns (``may_read``); the ask
command turns what it finds denied into a ``notIn`` on ``doc_id`` before generating an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EVERYONE = "*"  # acl_allow of a document open to every reader
ALLOW, DENY = "acl_allow", "acl_deny"
_TYPES = ("user", "group")


def principal(text: str) -> str:
    """``user:NAME`` or ``group:NAME`` as the sidecars write it: users lower-cased, groups as given."""
    kind, sep, name = text.strip().partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if not sep or kind not in _TYPES or not name:
        raise ValueError(f"{text!r}: a principal is user:NAME or group:NAME (user:alice@example.com, group:finance)")
    return f"{kind}:{name.lower() if kind == 'user' else name}"


def allowed(principals: Iterable[str]) -> list[str]:
    """What a document's acl_allow holds: its allowed principals, or ``*`` when it names none."""
    return list(principals) or [EVERYONE]


def allow_filter(principals: Iterable[str]) -> dict[str, Any]:
    """The Retrieve filter admitting the chunks open to everyone or allowing one of ``principals``."""
    clauses = [{"listContains": {"key": ALLOW, "value": p}} for p in [EVERYONE, *principals]]
    return {"orAll": clauses}


def attribute_filter(pairs: Mapping[str, str]) -> list[dict[str, Any]]:
    """``--filter KEY=VALUE`` clauses: equality on a sidecar attribute."""
    return [{"equals": {"key": key, "value": value}} for key, value in pairs.items()]


def combine(clauses: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One filter from several clauses (Bedrock's andAll needs two or more)."""
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"andAll": clauses}


def may_read(metadata: Mapping[str, Any], principals: Iterable[str]) -> bool:
    """Whether ``principals`` may read a chunk with this (plain, untyped) metadata. A chunk without
    acl_allow predates the open marker or comes from elsewhere: it is readable only when unfiltered."""
    who = set(principals)
    allow, deny = _listed(metadata.get(ALLOW)), _listed(metadata.get(DENY))
    return (EVERYONE in allow or bool(allow & who)) and not deny & who


def _listed(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value}
