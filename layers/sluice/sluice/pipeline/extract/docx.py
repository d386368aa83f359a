"""Word documents (DOCX), read with the standard library's zip reader and defusedxml: headings,
paragraphs, lists and tables in document order.

A DOCX is a ZIP of XML parts, so both are treated as hostile: entry count, declared sizes and
compression ratios are checked before anything is inflated, every part is read with a byte cap
(declared sizes are the attacker's to choose), and XML may not declare a DTD or entities
(OOXML never needs one; a billion-laughs or XXE part is refused).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from sluice.errors import QuarantineError, Reason
from sluice.model import Block, BlockKind, ExtractedDocument, Kind

MiB = 1024 * 1024
MAX_ENTRIES = 10_000
MAX_TOTAL_BYTES = 200 * MiB
MAX_PART_BYTES = 64 * MiB
MAX_RATIO = 100
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"^(?:heading|titre|überschrift|título|titolo)\s*(\d)$", re.I)
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise QuarantineError(Reason.MALFORMED, f"not a readable ZIP archive: {exc}") from exc
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise QuarantineError(Reason.ZIP_TOO_MANY_ENTRIES, f"{len(infos)} entries; the limit is {MAX_ENTRIES}")
    declared = sum(i.file_size for i in infos)
    if declared > MAX_TOTAL_BYTES:
        raise QuarantineError(
            Reason.ZIP_BOMB, f"{declared} bytes declared uncompressed; the limit is {MAX_TOTAL_BYTES}"
        )
    for info in infos:
        if info.file_size > MiB and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise QuarantineError(
                Reason.ZIP_BOMB, f"{info.filename} inflates {info.file_size // max(info.compress_size, 1)}:1"
            )
    return archive


def _read(archive: zipfile.ZipFile, name: str, required: bool = True) -> bytes | None:
    """A part's bytes, read in pieces and stopped at MAX_PART_BYTES whatever its header claims."""
    try:
        handle = archive.open(name)
    except KeyError as exc:
        if required:
            raise QuarantineError(Reason.MALFORMED, f"a Word document has {name}; this archive does not") from exc
        return None
    out = bytearray()
    try:
        with handle:
            while piece := handle.read(1 << 20):
                out += piece
                if len(out) > MAX_PART_BYTES:
                    raise QuarantineError(Reason.ZIP_BOMB, f"{name} inflates past {MAX_PART_BYTES} bytes")
    except (zipfile.BadZipFile, EOFError, OSError) as exc:  # bad CRC, lying sizes, truncation
        raise QuarantineError(Reason.MALFORMED, f"{name}: {exc}") from exc
    return bytes(out)


def _xml(data: bytes, name: str) -> Element:
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise QuarantineError(
            Reason.XML_DTD_FORBIDDEN, f"{name} declares a DTD or entities: {type(exc).__name__}"
        ) from exc
    except SafeET.ParseError as exc:
        raise QuarantineError(Reason.MALFORMED, f"{name} is not well-formed XML: {exc}") from exc
    return root


def _styles(archive: zipfile.ZipFile) -> dict[str, int]:
    """Paragraph style id → heading level (0 for the Title style)."""
    data = _read(archive, "word/styles.xml", required=False)
    if data is None:
        return {}
    levels = {}
    for style in _xml(data, "word/styles.xml").iter(f"{W}style"):
        style_id = style.get(f"{W}styleId", "")
        name_el = style.find(f"{W}name")
        name = name_el.get(f"{W}val", "") if name_el is not None else ""
        outline = style.find(f"{W}pPr/{W}outlineLvl")
        match = _HEADING_STYLE.match(name) or _HEADING_STYLE.match(style_id)
        if name.lower() == "title" or style_id.lower() == "title":
            levels[style_id] = 0
        elif match:
            levels[style_id] = min(int(match.group(1)), 6)
        elif outline is not None and outline.get(f"{W}val", "").isdigit():
            levels[style_id] = min(int(outline.get(f"{W}val", "0")) + 1, 6)
    return levels


def _text(element: Element) -> str:
    """The visible text of a paragraph: runs, tabs and breaks; not deleted text or field codes."""
    parts = []
    for node in element.iter():
        tag = node.tag
        if tag == f"{W}t":
            parts.append(node.text or "")
        elif tag == f"{W}tab":
            parts.append("\t")
        elif tag in (f"{W}br", f"{W}cr"):
            parts.append("\n")
    return "".join(parts)


def _paragraph(p: Element, styles: dict[str, int]) -> Block | None:
    text = _text(p).strip()
    if not text:
        return None
    ppr = p.find(f"{W}pPr")
    style = ""
    level: int | None = None
    if ppr is not None:
        style_el = ppr.find(f"{W}pStyle")
        style = style_el.get(f"{W}val", "") if style_el is not None else ""
        outline = ppr.find(f"{W}outlineLvl")
        if outline is not None and outline.get(f"{W}val", "").isdigit():
            level = min(int(outline.get(f"{W}val", "0")) + 1, 6)
        if ppr.find(f"{W}numPr") is not None and style not in styles:
            return Block(BlockKind.PARAGRAPH, f"- {text}")
    level = styles.get(style, level)
    if level is not None:
        return Block(BlockKind.HEADING, text, level=max(level, 1))
    return Block(BlockKind.PARAGRAPH, text)


def _table(tbl: Element) -> Block | None:
    rows = []
    for tr in tbl.iter(f"{W}tr"):
        cells = [" ".join(_text(p).split()) for tc in tr.findall(f"{W}tc") for p in [tc]]
        if any(cells):
            rows.append(" | ".join(c.replace("|", "\\|") for c in cells))
    return Block(BlockKind.PREFORMATTED, "\n".join(rows)) if rows else None


def _body(element: Element, styles: dict[str, int]) -> Iterator[Block | None]:
    for child in element:
        if child.tag == f"{W}p":
            yield _paragraph(child, styles)
        elif child.tag == f"{W}tbl":
            yield _table(child)
        elif child.tag == f"{W}sdt":  # content controls wrap ordinary body content
            content = child.find(f"{W}sdtContent")
            if content is not None:
                yield from _body(content, styles)


def extract_docx(data: bytes) -> ExtractedDocument:
    archive = _open(data)
    document = _xml(_read(archive, "word/document.xml") or b"", "word/document.xml")
    styles = _styles(archive)
    body = document.find(f"{W}body")
    blocks = [b for b in _body(body if body is not None else document, styles) if b is not None]
    title = None
    core = _read(archive, "docProps/core.xml", required=False)
    if core is not None:
        element = _xml(core, "docProps/core.xml").find(_DC_TITLE)
        title = (element.text or "").strip() or None if element is not None else None
    if title is None:
        title = next((b.text for b in blocks if b.kind is BlockKind.HEADING), None)
    notes = {"parts": str(len(archive.infolist()))}
    return ExtractedDocument(Kind.DOCX, title, blocks, parser="sluice-docx", notes=notes)
