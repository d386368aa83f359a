"""Builders for the hostile files test_catalogue.py runs (docs/security.md): every
test creates the file it uses."""

from __future__ import annotations

import io
import zipfile
import zlib

from support.docxwriter import Docx
from support.pdfwriter import assemble, document, make_pdf


def _pdf(objects: list[bytes]) -> bytes:
    return assemble(objects)


def _page_objects(content: bytes, extra_page: bytes = b"") -> list[bytes]:
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> " + extra_page + b">>",
        content,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]


def pdf_flate_bomb(megabytes: int = 300) -> bytes:
    """~300 MB of text-showing operators deflated into a few hundred KB."""
    compressor = zlib.compressobj(9)
    chunk = b"BT /F1 1 Tf (A) Tj ET\n" * 50_000
    parts = [compressor.compress(chunk) for _ in range(megabytes * 1_000_000 // len(chunk))]
    stream = b"".join(parts) + compressor.flush()
    return _pdf(
        _page_objects(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    )


def pdf_circular_xref() -> bytes:
    """The trailer's /Prev points at its own xref table."""
    data = make_pdf(document([("Loop", ["text on the only page"])], title="Loop"), compress=False)
    xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    return data.replace(b"trailer\n<<", b"trailer\n<< /Prev %d" % xref)


def pdf_deep_nesting(depth: int = 100_000) -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (deep) Tj ET"
    objects = _page_objects(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R /Deep 6 0 R >>"
    objects.append(b"[" * depth + b"]" * depth)
    return _pdf(objects)


def pdf_huge_page_count(kids: int = 300_000) -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (page) Tj ET"
    objects = _page_objects(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects[1] = b"<< /Type /Pages /Kids [" + b"3 0 R " * kids + b"] /Count 2147483647 >>"
    return _pdf(objects)


def pdf_page_tree_cycle() -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (cycle) Tj ET"
    objects = _page_objects(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects[1] = b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>"
    return _pdf(objects)


def pdf_inline_image_without_end() -> bytes:
    import random

    noise = bytes(random.Random(1).getrandbits(8) for _ in range(4096)).replace(b"EI", b"XX")
    content = b"BT /F1 12 Tf 72 700 Td (before) Tj ET\nBI /W 8 /H 8 /BPC 8 /CS /G ID " + noise
    return _pdf(_page_objects(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)))


def docx_zip_bomb(gib: float = 1.0) -> bytes:
    """word/document.xml is one text run of 1 GiB of 'A' (deflated to about 1 MB)."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    head = f'<w:document xmlns:w="{w}"><w:body><w:p><w:r><w:t>'.encode()
    tail = b"</w:t></w:r></w:p></w:body></w:document>"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(head)
            block = b"A" * (1 << 24)
            for _ in range(int(gib * 64)):
                f.write(block)
            f.write(tail)
    return buf.getvalue()


def docx_lying_sizes() -> bytes:
    """A member whose headers claim 10 bytes but which inflates to 5 MB."""
    real = Docx(title="t").paragraph("x" * 5_000_000).build()
    with zipfile.ZipFile(io.BytesIO(real)) as z:
        info = z.getinfo("word/document.xml")
        size = info.file_size
    data = bytearray(real)
    packed = size.to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    start = 0
    while (i := data.find(packed, start)) >= 0:  # local header and central directory entries
        data[i : i + 4] = fake
        start = i + 4
    return bytes(data)


def docx_many_entries(count: int = 12_000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", Docx().paragraph("hi").document_xml())
        for i in range(count):
            z.writestr(f"junk/{i}", b"")
    return buf.getvalue()


def docx_billion_laughs() -> bytes:
    entities = '<!ENTITY a "lol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    xml = f'<?xml version="1.0"?><!DOCTYPE d [{entities}]><w:document xmlns:w="{w}"><w:body><w:p><w:r><w:t>&i;</w:t></w:r></w:p></w:body></w:document>'
    return Docx().build(document_xml=xml)


def docx_xxe() -> bytes:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    xml = f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///proc/self/environ">]><w:document xmlns:w="{w}"><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>'
    return Docx().build(document_xml=xml)


def docx_huge_text_node(megabytes: int = 20) -> bytes:
    return Docx().paragraph("B" * (megabytes * 1_000_000)).build()
