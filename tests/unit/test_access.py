"""Who may read a chunk (sluice.access), and the emulator's filters agreeing with it: the allow filter
admits exactly the chunks open to everyone or allowing one of the principals; deny wins."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.access import EVERYONE, allow_filter, allowed, attribute_filter, combine, may_read, principal
from sluice_local.emulators.filters import matches


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("user:Alice@Example.com", "user:alice@example.com"),
        ("group:Finance", "group:Finance"),
        (" GROUP : finance ", "group:finance"),
    ],
)
def test_principals_are_written_as_the_sidecars_write_them(text: str, token: str) -> None:
    assert principal(text) == token


@pytest.mark.parametrize("text", ["alice", "role:admin", "user:", ":x", ""])
def test_a_malformed_principal_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(ValueError, match="user:NAME or group:NAME"):
        principal(text)


def test_an_open_document_says_so() -> None:
    assert allowed([]) == [EVERYONE]
    assert allowed(["group:a"]) == ["group:a"]


def test_deny_wins_over_allow() -> None:
    chunk = {"acl_allow": ["group:finance"], "acl_deny": ["user:bob@example.com"]}
    assert may_read(chunk, ["group:finance"])
    assert not may_read(chunk, ["group:finance", "user:bob@example.com"])
    assert not may_read(chunk, ["group:sales"])
    assert may_read({"acl_allow": [EVERYONE]}, ["user:anyone@example.com"])
    assert not may_read({}, ["group:finance"])  # without acl_allow: readable only unfiltered


def test_filters_combine_as_bedrock_wants_them() -> None:
    assert combine([]) is None
    one = attribute_filter({"year": "2024"})
    assert combine(one) == one[0]
    assert combine(one + one) == {"andAll": one + one}


TOKENS = st.sampled_from(["group:a", "group:b", "user:x@example.com", "user:y@example.com", EVERYONE])


@given(
    allow=st.lists(TOKENS, min_size=1, max_size=3, unique=True),
    deny=st.lists(TOKENS.filter(lambda t: t != EVERYONE), max_size=2, unique=True),
    who=st.lists(TOKENS.filter(lambda t: t != EVERYONE), min_size=1, max_size=3, unique=True),
)
def test_the_allow_filter_admits_what_may_read_allows_before_deny(
    allow: list[str], deny: list[str], who: list[str]
) -> None:
    metadata: dict[str, Any] = {"acl_allow": allow, "acl_deny": deny} if deny else {"acl_allow": allow}
    admitted = matches(allow_filter(who), metadata)
    assert admitted == may_read({"acl_allow": allow}, who)  # the filter is the allow half
    assert may_read(metadata, who) == (admitted and not set(deny) & set(who))  # deny is checked afterwards
