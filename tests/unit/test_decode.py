"""Strict text decoding (docs/security.md: BOMs, UTF-16 without BOM, mixed encodings)."""

from __future__ import annotations

import codecs

import pytest

from sluice.errors import QuarantineError, Reason
from sluice.pipeline.extract.decode import decode, unix_newlines


def test_utf8_bom_is_removed() -> None:
    assert decode(codecs.BOM_UTF8 + "héllo".encode()).text == "héllo"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_32_with_or_without_bom(codec: str) -> None:
    text = "Quarterly report: naïve café, 12 % growth"
    assert decode(text.encode(codec)).text == text


def test_nul_bytes_are_stripped_after_a_bom() -> None:
    assert decode(b"\xef\xbb\xbfhello\x00world").text == "helloworld"


def test_mixed_utf8_and_windows_1252_lines_are_repaired_line_by_line() -> None:
    data = "naïve café\n".encode() + "résumé “smart”\n".encode("cp1252")
    decoded = decode(data)
    assert decoded.text == "naïve café\nrésumé “smart”\n"
    assert decoded.repaired


def test_declared_charset_is_used() -> None:
    assert decode("Grüße".encode("latin-1"), declared="iso-8859-1").text == "Grüße"


def test_undecodable_bytes_are_refused_rather_than_guessed() -> None:
    with pytest.raises(QuarantineError) as info:
        decode(b"\x81\x8d\x8f\x90\x9d" * 20)
    assert info.value.reason is Reason.ENCODING_UNKNOWN


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        ("a\r\nb\rc\nd", "a\nb\nc\nd"),
        ("\r\r\n\n", "\n\n\n"),
        ("no carriage return\n", "no carriage return\n"),
        ("", ""),
    ],
)
def test_line_ends_become_newlines(text: str, unix: str) -> None:
    assert unix_newlines(text) == unix
