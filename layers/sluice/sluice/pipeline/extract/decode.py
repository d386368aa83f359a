"""Bytes to text, strictly: BOMs honoured, UTF-16 without BOM recognised, mixed encodings repaired
line by line, and anything else refused rather than guessed."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from sluice.errors import QuarantineError, Reason

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
MAX_INVALID_RATIO = 0.001  # replacement characters tolerated, as a share of the text


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str
    repaired: bool = False  # some lines were not UTF-8 and were read as Windows-1252

    def notes(self) -> dict[str, str]:
        """What the document's record says about how it was decoded."""
        notes = {"encoding": self.encoding}
        if self.repaired:
            notes["encoding_repaired"] = "true"
        return notes


def unix_newlines(text: str) -> str:
    """CRLF and lone CR as LF (a look for CR first: most text has none, and replacing scans twice)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text of mostly ASCII characters has a NUL in every other byte."""
    sample = data[:4096]
    if len(sample) < 4 or sample.count(0) / len(sample) < 0.25:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    return "utf-16-be" if even_nuls > odd_nuls else "utf-16-le"


def decode(data: bytes, declared: str | None = None) -> Decoded:
    """Decode document bytes; ``declared`` is a charset named by the document itself (HTML meta)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data[len(bom) :].decode(encoding).replace("\x00", ""), encoding)
            except UnicodeDecodeError as exc:
                raise QuarantineError(Reason.ENCODING_UNKNOWN, f"invalid {encoding} after its BOM: {exc}") from exc
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        try:
            return Decoded(data.decode(utf16).replace("\x00", ""), utf16)
        except UnicodeDecodeError:
            pass  # not UTF-16 after all; the NULs are stripped below
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            codec = None
        if codec and codec not in ("utf-8", "ascii"):
            try:
                return Decoded(data.decode(codec).replace("\x00", ""), codec)
            except UnicodeDecodeError:
                pass
    try:
        return Decoded(data.decode("utf-8").replace("\x00", ""), "utf-8")
    except UnicodeDecodeError:
        return _repair_lines(data)


def _repair_lines(data: bytes) -> Decoded:
    """UTF-8 per line, Windows-1252 for the lines that are not; refuse when too much is unreadable."""
    lines = []
    invalid = 0
    for line in data.splitlines(keepends=True):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            text = line.decode("cp1252", errors="replace")
            invalid += text.count("\ufffd")
            lines.append(text)
    text = "".join(lines).replace("\x00", "")
    if invalid > max(1, len(text) * MAX_INVALID_RATIO):
        raise QuarantineError(
            Reason.ENCODING_UNKNOWN,
            f"{invalid} bytes are neither UTF-8 nor Windows-1252; refusing to guess the encoding",
        )
    return Decoded(text, "utf-8+cp1252", repaired=True)
