"""What a fetched page is: its type, and of an HTML page its title, links, canonical URL, base URL and
robots directives."""

from __future__ import annotations

import codecs
import contextlib
import email.utils
import re
from datetime import UTC
from html.parser import HTMLParser

from sluice.connectors.http import Response
from sluice.connectors.web.robots import AGENT

MiB = 1024 * 1024
MAX_PARSED_BYTES = 5 * MiB  # of a page, read for its title and links
MAX_TITLE_CHARS = 500
CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
PAGE_TYPES = {"text/html": "html", "application/xhtml+xml": "html", "text/plain": "txt", "application/pdf": "pdf"}


class PageParser(HTMLParser):
    """Title, links, canonical URL, base URL and robots directives of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.links: list[str] = []
        self.canonical: str | None = None
        self.base: str | None = None
        self.noindex = False
        self.nofollow = False
        self._title: list[str] | None = None
        self._titled = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        href = values.get("href", "").strip()
        if tag == "a" and href and "nofollow" not in rel:
            self.links.append(href)
        elif tag == "link" and "canonical" in rel and href and self.canonical is None:
            self.canonical = href
        elif tag == "base" and href and self.base is None:
            self.base = href
        elif tag == "meta" and values.get("name", "").lower() in ("robots", AGENT.lower()):
            directives = {d.strip() for d in values.get("content", "").lower().split(",")}
            self.noindex |= bool(directives & {"noindex", "none"})
            self.nofollow |= bool(directives & {"nofollow", "none"})
        elif tag == "title" and not self._titled:
            self._title, self._titled = [], True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.title = " ".join("".join(self._title).split())[:MAX_TITLE_CHARS] or None
            self._title = None

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)


def parse_html(response: Response) -> PageParser:
    match = CHARSET.search(response.header("content-type") or "") or CHARSET.search(
        response.body[:4096].decode("ascii", errors="replace")  # <meta charset> or http-equiv, near the top
    )
    charset = "utf-8"
    if match:
        with contextlib.suppress(LookupError):
            charset = codecs.lookup(match.group(1)).name
    parser = PageParser()
    parser.feed(response.body[:MAX_PARSED_BYTES].decode(charset, errors="replace"))
    parser.close()
    return parser


def page_type(response: Response) -> str | None:
    content_type = (response.header("content-type") or "").split(";")[0].strip().lower()
    if content_type in PAGE_TYPES:
        return PAGE_TYPES[content_type]
    return "pdf" if response.body.startswith(b"%PDF-") else None


def http_date_epoch(http_date: str | None) -> int:
    if not http_date:
        return 0
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return 0
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
