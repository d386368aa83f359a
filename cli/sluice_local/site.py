"""A small web site on 127.0.0.1 for the demo's web connector (dev-only): pages from a dict, each
with an ETag and Last-Modified, answering conditional GETs with 304 and removed pages with 404."""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".xml": "application/xml"}


class Site:
    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = dict(pages)  # path ("/tides.html") → body; "/" serves "/index.html"
        self.modified: dict[str, float] = {path: time.time() for path in pages}
        self.requests: list[tuple[str, int]] = []  # (path, status), in order
        self._server: ThreadingHTTPServer | None = None

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
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                path = "/index.html" if path == "/" else path
                body = site.pages.get(path)
                if body is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                headers = {
                    "Content-Type": TYPES.get(Path(path).suffix, "application/octet-stream"),
                    "ETag": etag,
                    "Last-Modified": email.utils.formatdate(site.modified[path], usegmt=True),
                }
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", headers)
                else:
                    self._send(200, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                site.requests.append((self.path, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
