"""A tiny web site on 127.0.0.1 for crawler tests and demos: pages by path (edit ``site.pages`` while it
runs), ETag/Last-Modified with 304s, one-shot responses (``site.once``), and every request recorded.

    with FakeSite() as site:
        site.pages["/"] = Page(html("Home", "/a"), etag='"v1"')
        HttpClient(allowed_networks=["127.0.0.1/32"]).get(site.url("/"))
"""

from __future__ import annotations

import email.utils
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Page:
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent, and a matching If-None-Match answers 304
    last_modified: float | None = None  # epoch seconds; a later If-Modified-Since answers 304


@dataclass(frozen=True)
class Request:
    path: str  # with the query
    headers: dict[str, str]  # lower-case names
    status: int


def html(title: str, *links: str, extra: str = "") -> str:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{anchors}{extra}</body></html>"


class FakeSite:
    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.once: dict[str, list[Page]] = {}  # served (and consumed) before pages[path]
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self, status: int | None = None) -> list[str]:
        return [r.path for r in self.requests if status is None or r.status == status]

    def start(self) -> FakeSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSite:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
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


def _handler(site: FakeSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, sent, body = site.respond(self.path.split("?")[0], headers)
            with site._lock:
                site.requests.append(Request(self.path, headers, status))
            self.send_response(status)
            for name, value in sent.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
