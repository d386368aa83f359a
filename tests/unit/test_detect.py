"""Type detection: magic bytes first, extension second; every refusal has a reason code."""

from __future__ import annotations

import pytest

from sluice.errors import QuarantineError, Reason
from sluice.model import Kind
from sluice.pipeline.detect import detect


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (b"%PDF-1.7\n...", "report.pdf", Kind.PDF),
        (b"%PDF-1.4\n...", "report", Kind.PDF),
        (b"\n\n%PDF-1.4 after junk", "scan.PDF", Kind.PDF),
        (b"<!DOCTYPE html><html><body>x</body></html>", "page.html", Kind.HTML),
        (b"  <html><body>x</body></html>", "no-extension", Kind.HTML),
        (b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'>x</html>", "page", Kind.HTML),
        (b"# Title\n\ntext", "notes.md", Kind.MARKDOWN),
        (b"# Title\n\ntext", "notes.markdown", Kind.MARKDOWN),
        (b"plain words", "notes.txt", Kind.TEXT),
        (b"plain words", "README", Kind.TEXT),
        (b"<html>markup in a text file</html>", "notes.txt", Kind.TEXT),  # the extension decides among text types
        ("caf\u00e9".encode("utf-16"), "utf16.txt", Kind.TEXT),
        ("plain utf-16 without a byte order mark".encode("utf-16-le"), "x.txt", Kind.TEXT),
    ],
)
def test_kinds(data: bytes, name: str, kind: Kind) -> None:
    assert detect(data, name) is kind


@pytest.mark.parametrize(
    ("data", "name", "reason", "says"),
    [
        (b"", "empty.txt", Reason.EMPTY, "empty"),
        (b"  \n\t ", "blank.md", Reason.EMPTY, "white space"),
        (b"PK\x03\x04\x14\x00", "fake.pdf", Reason.TYPE_MISMATCH, "ZIP"),
        (b"\x89PNG\r\n\x1a\n....", "photo.txt", Reason.TYPE_MISMATCH, "PNG"),
        (b"%PDF-1.4\n", "doc.html", Reason.TYPE_MISMATCH, "PDF"),
        (b"just text", "doc.pdf", Reason.TYPE_MISMATCH, "%PDF-"),
        (b"\x89PNG\r\n\x1a\n....", "photo", Reason.UNSUPPORTED, "PNG"),
        (b"\xff\xd8\xff\xe0 jpeg", "image.jpeg", Reason.UNSUPPORTED, "JPEG"),
        (bytes(range(0, 32)) * 20, "blob.bin", Reason.UNSUPPORTED, "binary"),
        (bytes(range(0, 32)) * 20, "notes.md", Reason.TYPE_MISMATCH, "binary"),
    ],
)
def test_refusals(data: bytes, name: str, reason: Reason, says: str) -> None:
    with pytest.raises(QuarantineError) as info:
        detect(data, name)
    assert info.value.reason is reason
    assert says in info.value.detail
