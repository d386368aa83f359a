"""A small web site on 127.0.0.1 for the demo's web connector (dev-only): pages from a dict, each
with an ETag and Last-Modified, answering conditional GETs with 304 and removed pages with 404."""

from __future__ import annotations

import email.utils
import hashlib
import time
from pathlib import Path

from sluice_local.httpserver import HttpServer, Reply, Request

TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".xml": "application/xml"}


class Site:
    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = dict(pages)  # path ("/tides.html") → body; "/" serves "/index.html"
        self.modified: dict[str, float] = {path: time.time() for path in pages}
        self.requests: list[tuple[str, int]] = []  # (path, status), in order
        self._server: HttpServer | None = None

    @classmethod
    def from_directory(cls, directory: Path) -> Site:
        return cls({f"/{p.name}": p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()})

    def put(self, path: str, body: bytes) -> None:
        self.pages[path] = body
        self.modified[path] = time.time()

    def remove(self, path: str) -> None:
        self.pages.pop(path, None)

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url("/")

    def start(self) -> Site:
        self._server = HttpServer(self._answer).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _answer(self, request: Request) -> Reply:
        status, headers, body = self._page(request)
        self.requests.append((request.target, status))
        return status, headers, body

    def _page(self, request: Request) -> Reply:
        path = "/index.html" if request.path == "/" else request.path
        body = self.pages.get(path)
        if body is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {
            "Content-Type": TYPES.get(Path(path).suffix, "application/octet-stream"),
            "ETag": etag,
            "Last-Modified": email.utils.formatdate(self.modified[path], usegmt=True),
        }
        if request.headers.get("if-none-match") == etag:
            return 304, headers, b""
        return 200, headers, body
