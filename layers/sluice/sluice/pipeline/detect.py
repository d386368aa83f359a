"""Choose a document's type: magic bytes first, the file name's extension second."""

from __future__ import annotations

from pathlib import PurePosixPath

from sluice.errors import QuarantineError, Reason
from sluice.model import Kind

EXTENSIONS: dict[str, Kind] = {
    ".pdf": Kind.PDF,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
    ".xhtml": Kind.HTML,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".mdown": Kind.MARKDOWN,
    ".txt": Kind.TEXT,
    ".text": Kind.TEXT,
    ".rst": Kind.TEXT,
    ".log": Kind.TEXT,
    ".docx": Kind.DOCX,
    ".docm": Kind.DOCX,
    ".csv": Kind.CSV,
    ".tsv": Kind.CSV,
    ".json": Kind.JSON,
    ".jsonl": Kind.JSONL,
    ".ndjson": Kind.JSONL,
}
_ZIP_KINDS = frozenset({Kind.DOCX})

# Binary formats recognised by their first bytes, so that a mislabelled file gets a precise reason.
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "ZIP archive (DOCX, XLSX, ...)"),
    (b"PK\x05\x06", "empty ZIP archive"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x1f\x8b", "gzip data"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (DOC, XLS, PPT)"),
    (b"{\\rtf", "RTF document"),
    (b"%!PS", "PostScript document"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"RIFF", "RIFF media (WAV, AVI, WebP)"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
)
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_SNIFF = 4096
# Control bytes that no text encoding produces: all below 32 but tab, LF, VT, FF, CR and ESC.
_CONTROL_BYTES = bytes(b for b in range(32) if b < 9 or (13 < b < 32 and b != 27))


def _binary_magic(head: bytes) -> str | None:
    for magic, name in _BINARY_MAGIC:
        if head.startswith(magic):
            return name
    if head[4:12] in (b"ftypisom", b"ftypmp42", b"ftypqt  ") or head[4:8] == b"ftyp":
        return "MP4/QuickTime media"
    return None


def _looks_binary(head: bytes) -> bool:
    """Control bytes that no text encoding produces (UTF-16 is recognised before this is asked)."""
    if not head:
        return False
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls >= 8 and controls / len(head) > 0.02  # a stray NUL in a short text is not binary


def _looks_utf16(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    sample = head[:512]
    return len(sample) >= 4 and sample.count(0) / len(sample) > 0.25


def _looks_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html")) or (text.startswith(b"<?xml") and b"<html" in text[:1024])


def detect(data: bytes, name: str) -> Kind:
    """The document's kind, or a QuarantineError saying why it cannot be read."""
    head = data[:_SNIFF]
    if not head.strip() and not data.strip():  # the head alone answers for most files
        raise QuarantineError(Reason.EMPTY, "the file is empty or holds only white space")
    suffix = PurePosixPath(name).suffix.lower()
    by_extension = EXTENSIONS.get(suffix)

    if b"%PDF-" in data[:1024]:
        if by_extension in (None, Kind.PDF):
            return Kind.PDF
        raise QuarantineError(Reason.TYPE_MISMATCH, f"the content is a PDF but the name ends in {suffix}")
    binary = _binary_magic(head)
    if binary is not None and head.startswith(b"PK\x03\x04") and by_extension in _ZIP_KINDS:
        return by_extension
    if binary is not None:
        if by_extension is not None:
            raise QuarantineError(Reason.TYPE_MISMATCH, f"the name ends in {suffix} but the content is a {binary}")
        raise QuarantineError(Reason.UNSUPPORTED, f"{binary} is not a supported document type")
    if not head.startswith(_TEXT_BOMS) and not _looks_utf16(head) and _looks_binary(head):
        if by_extension is not None:
            raise QuarantineError(Reason.TYPE_MISMATCH, f"the name ends in {suffix} but the content is binary data")
        raise QuarantineError(Reason.UNSUPPORTED, "binary data of an unknown format")

    if by_extension is Kind.PDF:
        raise QuarantineError(Reason.TYPE_MISMATCH, "the name ends in .pdf but the content does not start with %PDF-")
    if by_extension in _ZIP_KINDS:
        raise QuarantineError(Reason.TYPE_MISMATCH, f"the name ends in {suffix} but the content is not a ZIP archive")
    if by_extension is not None:
        return by_extension
    if _looks_html(head):
        return Kind.HTML
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return Kind.JSON
    return Kind.TEXT  # text content under an unknown (or no) extension is read as plain text
