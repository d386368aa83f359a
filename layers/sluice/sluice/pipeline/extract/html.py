"""HTML: the main content as headings, paragraphs, lists and tables; never navigation, scripts,
styles, comments, hidden elements or cookie banners.

The stdlib parser builds a small tree (fed the whole document at once: feeding it in pieces is
quadratic on unterminated comments), then an iterative walk emits blocks, so deep nesting cannot
exhaust the stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.decode import decode

_VOID = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]
)
_DROP = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "canvas",
        "iframe",
        "object",
        "embed",
        "head",
        "nav",
        "footer",
        "aside",
        "form",
        "button",
        "select",
        "option",
        "textarea",
        "dialog",
        "menu",
    ]
)
_BLOCK = frozenset(
    [
        "address",
        "article",
        "blockquote",
        "body",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "header",
        "hgroup",
        "html",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "caption",
        "center",
    ]
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that close an open element of the same kind (HTML's implied end tags, the common cases).
_SELF_CLOSING_SIBLINGS = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option"])
_NOISE = re.compile(
    r"cookie|consent|gdpr|banner|newsletter|subscribe|popup|modal|skip-?link|breadcrumb"
    r"|(?<![\w-])(?:hidden|d-none|is-hidden|visually-hidden|sr-only)(?![\w-])",
    re.I,
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_NOISE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "dialog", "alertdialog", "search"})
_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    children: list[_Node | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {})
        self.stack = [self.root]
        self.title: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _SELF_CLOSING_SIBLINGS and self.stack[-1].tag == tag:
            self.stack.pop()
        node = _Node(tag, {k: (v or "") for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Node(tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        # Look a bounded way up for the element to close: an unmatched end tag must not cost a scan
        # of the whole (possibly 100 000 deep) stack.
        for i in range(len(self.stack) - 1, max(0, len(self.stack) - 64), -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        else:
            self.stack[-1].children.append(data)

    # Comments, declarations and processing instructions are dropped: the default handlers do nothing.

    def updatepos(self, i: int, j: int) -> int:
        """Positions are for error messages, which this builder never gives: not tracked (the stdlib
        parser would count the newlines of every piece of the document)."""
        return j


def _is_noise(node: _Node) -> bool:
    attrs = node.attrs
    if not attrs:
        return False
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if attrs.get("role", "").lower() in _NOISE_ROLES:
        return True
    if _HIDDEN_STYLE.search(attrs.get("style", "")):
        return True
    marker = f"{attrs.get('id', '')} {attrs.get('class', '')} {attrs.get('aria-label', '')}"
    return bool(_NOISE.search(marker))


def _find_main(root: _Node) -> list[_Node]:
    """<main>, else the <article> elements, else the whole document."""
    mains: list[_Node] = []
    articles: list[_Node] = []
    stack: list[_Node] = [root]
    while stack:
        node = stack.pop()
        if node.tag == "main" or node.attrs.get("role") == "main":
            mains.append(node)
            continue
        if node.tag == "article":
            articles.append(node)
            continue
        stack.extend(c for c in reversed(node.children) if isinstance(c, _Node))
    return mains or articles or [root]


class _Emitter:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.inline: list[str] = []
        self.rows: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.pre_depth = 0

    def text(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.inline.append(data)

    def flush(self, kind: BlockKind = BlockKind.PARAGRAPH, level: int = 0) -> None:
        if not self.inline:
            return
        text = "".join(self.inline)
        self.inline = []
        stripped = text.strip()
        if stripped:
            if kind is BlockKind.PARAGRAPH and self.pre_depth:
                kind = BlockKind.PREFORMATTED
            self.blocks.append(Block(kind, text.strip("\n") if self.pre_depth else stripped, level=level))


def _collapse(text: str) -> str:
    """Each run of white space as one space: ``re.sub(r"\\s+", " ", text)``, as str.split() and the
    regex's \\s know the same white space (a test checks it). Splitting is the faster way."""
    words = text.split()
    if not words:
        return " " if text else ""
    inner = " ".join(words)
    if text[0].isspace():
        inner = " " + inner
    return inner + " " if text[-1].isspace() else inner


def _walk(roots: list[_Node]) -> list[Block]:
    out = _Emitter()
    # The elements open, innermost last, each with what is left of its children (None: the roots).
    stack: list[tuple[_Node | None, Iterator[_Node | str]]] = [(None, iter(roots))]
    while stack:
        parent, children = stack[-1]
        for child in children:
            if isinstance(child, str):
                out.text(child if out.pre_depth else _collapse(child))
            elif child.tag not in _DROP and not _is_noise(child):
                _open(out, child)
                stack.append((child, iter(child.children)))
                break
        else:
            stack.pop()
            if parent is not None:
                _close(out, parent)
    out.flush()
    return out.blocks


def _open(out: _Emitter, node: _Node) -> None:
    tag = node.tag
    if tag == "br":
        out.text("\n")
    elif tag in _HEADINGS or tag in _BLOCK:
        if out.cell is None:
            out.flush()
        if tag == "table":
            out.rows = []
        elif tag == "tr" and out.rows is not None:
            out.rows.append([])
        elif tag in ("td", "th") and out.rows is not None:
            out.cell = []
        elif tag == "li" and out.cell is None:
            out.inline.append("- ")
        elif tag == "pre":
            out.pre_depth += 1
    elif tag in ("img",) and node.attrs.get("alt"):
        out.text(f" {node.attrs['alt']} ")


def _close(out: _Emitter, node: _Node) -> None:
    tag = node.tag
    if tag in _HEADINGS:
        out.flush(BlockKind.HEADING, _HEADINGS[tag])
    elif tag in ("td", "th") and out.rows is not None and out.cell is not None:
        if not out.rows:
            out.rows.append([])
        out.rows[-1].append(" ".join("".join(out.cell).split()))
        out.cell = None
    elif tag == "table" and out.rows is not None:
        lines = [" | ".join(row) for row in out.rows if any(row)]
        if lines:
            out.blocks.append(Block(BlockKind.PREFORMATTED, "\n".join(lines)))
        out.rows = None
    elif tag == "pre":
        out.flush(BlockKind.PREFORMATTED)
        out.pre_depth -= 1
    elif tag in _BLOCK and out.cell is None:
        out.flush()


def _drop_unterminated_comment(text: str) -> str:
    """A comment left open runs to the end of the document, as browsers read it (the stdlib parser
    would hand it back as text, hidden content and all)."""
    last_close = text.rfind("-->")
    opener = text.find("<!--", last_close + 3 if last_close >= 0 else 0)
    return text[:opener] if opener >= 0 else text


def _declared_charset(data: bytes) -> str | None:
    match = _CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def extract_html(data: bytes) -> ExtractedDocument:
    decoded = decode(data, declared=_declared_charset(data))
    builder = _TreeBuilder()
    builder.feed(_drop_unterminated_comment(decoded.text))
    builder.close()
    blocks = _walk(_find_main(builder.root))
    title = " ".join("".join(builder.title).split()) or None
    if title is None:
        title = next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), None)
    return ExtractedDocument(Kind.HTML, title, blocks, parser="sluice-html", notes=decoded.notes())
