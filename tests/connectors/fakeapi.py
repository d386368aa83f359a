"""A fake HTTP API on 127.0.0.1 for the connector tests: a threaded server on a free port that hands
each request to a test's handler and records it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sluice.connectors.http import HttpClient


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[Request], Reply]


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode()


@dataclass
class FakeAPI:
    url: str
    requests: list[Request]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@contextmanager
def serve(handler: Handler) -> Iterator[FakeAPI]:
    requests: list[Request] = []

    class _Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            requests.append(request)
            try:
                status, headers, body = handler(request)
            except Exception as exc:  # noqa: BLE001 - a handler bug shows as a 500 the test will see
                status, headers, body = 500, {}, repr(exc).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield FakeAPI(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()


def client(sleeps: list[float]) -> HttpClient:
    """The SSRF-guarded client, allowed onto loopback, sleeping into ``sleeps``."""
    return HttpClient(allowed_networks=["127.0.0.1/32"], sleep=sleeps.append, timeout=5)
