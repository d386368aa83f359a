"""A small PDF writer for samples, tests and benchmarks: real text PDFs (Helvetica, WinAnsi) with
headings in larger or bold type, several pages, optional compression and encryption.

Tests build every PDF they use with this, so nothing outside the repository is assumed.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    text: str
    size: float = 11.0
    bold: bool = False
    gap_before: float = 0.0  # extra vertical space above the line, in points


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    out = bytearray()
    for b in raw:
        if b in b"()\\":
            out += b"\\" + bytes([b])
        elif b < 32 or b > 126:
            out += b"\\%03o" % b
        else:
            out.append(b)
    return bytes(out)


def _content(lines: list[Line], top: float = 770.0, left: float = 72.0) -> bytes:
    y = top
    ops = []
    for line in lines:
        y -= line.gap_before
        font = b"/F2" if line.bold else b"/F1"
        ops.append(b"BT %s %.1f Tf 1 0 0 1 %.1f %.1f Tm (%s) Tj ET" % (font, line.size, left, y, _escape(line.text)))
        y -= line.size * 1.35
    return b"\n".join(ops)


def make_pdf(
    pages: list[list[Line]], *, title: str | None = None, compress: bool = True, image_bytes: int = 0
) -> bytes:
    """A PDF with one page per list of lines; ``image_bytes`` > 0 adds a noise image of about that
    size to every page (scans and figures are what make real PDFs large)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_obj = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for number, lines in enumerate(pages):
        stream = _content(lines)
        image = b""
        if image_bytes:
            side = max(1, int(image_bytes**0.5))
            noise = random.Random(number).randbytes(side * side)
            xobject = add(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(noise)) + noise + b"\nendstream"
            )
            stream += b"\nq 200 0 0 200 300 40 cm /Im0 Do Q"
            image = b" /XObject << /Im0 %d 0 R >>" % xobject
        if compress:
            stream = zlib.compress(stream)
            head = b"<< /Length %d /Filter /FlateDecode >>" % len(stream)
        else:
            head = b"<< /Length %d >>" % len(stream)
        content = add(head + b"\nstream\n" + stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >>%s >> >>" % (pages_obj, content, font, bold, image)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objects[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    info = add(b"<< /Title (%s) /Producer (sluice pdfwriter) >>" % _escape(title)) if title else None
    return assemble(objects, root=catalog, trailer_extra=b"/Info %d 0 R " % info if info else b"")


def assemble(objects: list[bytes], *, root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A PDF file from object bodies (numbered from 1) with a correct cross-reference table:
    the tests build hostile PDFs from raw objects with it."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = b"<< /Size %d /Root %d 0 R %s>>" % (len(objects) + 1, root, trailer_extra)
    out.write(b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    """The same PDF, AES-256 encrypted (needs the cryptography package)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def document(
    sections: list[tuple[str, list[str]]],
    *,
    title: str,
    lines_per_page: int = 40,
    running_header: str | None = None,
    page_numbers: bool = False,
    hyphenate: bool = False,
) -> list[list[Line]]:
    """Lay out a titled document of (heading, paragraphs) sections over pages, wrapping paragraphs at
    about 90 characters, headings in 15 pt bold, the title in 20 pt bold. Optionally with a running
    header and page numbers in 9 pt, and with long words split by a hyphen at line ends."""
    flow: list[Line] = [Line(title, size=20, bold=True)]
    for heading, paragraphs in sections:
        flow.append(Line(heading, size=15, bold=True, gap_before=10))
        for para in paragraphs:
            words = para.split()
            current: list[str] = []
            first = True
            for word in words:
                rest = word
                if current and len(" ".join([*current, word])) > 90:
                    room = 90 - len(" ".join(current)) - 2
                    if hyphenate and word.isalpha() and len(word) >= 8 and room >= 4:
                        current.append(word[:room] + "-")
                        rest = word[room:]
                    flow.append(Line(" ".join(current), gap_before=8 if first else 0))
                    current, first = [], False
                current.append(rest)
            if current:
                flow.append(Line(" ".join(current), gap_before=8 if first else 0))
    pages = [flow[i : i + lines_per_page] for i in range(0, len(flow), lines_per_page)]
    for number, page in enumerate(pages, start=1):
        if running_header:
            page.insert(0, Line(running_header, size=9))
            page[1] = Line(page[1].text, page[1].size, page[1].bold, gap_before=12)
        if page_numbers:
            page.append(Line(f"Page {number} of {len(pages)}", size=9, gap_before=24))
    return pages
