"""A tiny web site on 127.0.0.1 for crawler tests, on the local HTTP server: pages by path (edit
``site.pages`` while it runs), ETag/Last-Modified with 304s, one-shot responses (``site.once``), and
every request recorded.

    with FakeSite() as site:
        site.pages["/"] = Page(html("Home", "/a"), etag='"v1"')
        HttpClient(allowed_networks=["127.0.0.1/32"]).get(site.url("/"))
"""

from __future__ import annotations

import email.utils
import threading
from dataclasses import dataclass, field

from sluice_local.httpserver import HttpServer, Reply, Request


@dataclass
class Page:
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent, and a matching If-None-Match answers 304
    last_modified: float | None = None  # epoch seconds; a later If-Modified-Since answers 304


@dataclass(frozen=True)
class Served:
    path: str  # with the query
    headers: dict[str, str]  # lower-case names
    status: int


def html(title: str, *links: str, extra: str = "") -> str:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{anchors}{extra}</body></html>"


class FakeSite(HttpServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self.pages: dict[str, Page] = {}
        self.once: dict[str, list[Page]] = {}  # served (and consumed) before pages[path]
        self.requests: list[Served] = []
        self._lock = threading.Lock()

    def paths(self, status: int | None = None) -> list[str]:
        return [r.path for r in self.requests if status is None or r.status == status]

    def _answer(self, request: Request) -> Reply:
        status, sent, body = self._page(request.path, request.headers)
        with self._lock:
            self.requests.append(Served(request.target, request.headers, status))
        return status, sent, body

    def _page(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            queued = self.once.get(path)
            page = queued.pop(0) if queued else self.pages.get(path)
        if page is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        sent = {"Content-Type": page.content_type, **page.headers}
        if page.etag:
            sent["ETag"] = page.etag
        if page.last_modified is not None:
            sent["Last-Modified"] = email.utils.formatdate(page.last_modified, usegmt=True)
        if page.status == 200 and _not_modified(page, headers):
            return 304, sent, b""
        body = page.body.encode() if isinstance(page.body, str) else page.body
        return page.status, sent, body


def _not_modified(page: Page, headers: dict[str, str]) -> bool:
    if page.etag and "if-none-match" in headers:
        return headers["if-none-match"] == page.etag
    since = headers.get("if-modified-since")
    if page.last_modified is None or not since:
        return False
    return email.utils.parsedate_to_datetime(since).timestamp() >= int(page.last_modified)
