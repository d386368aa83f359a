"""A fake HTTP API on 127.0.0.1 for the connector tests: the local HTTP server on a free port, handing
each request to a test's handler and recording it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sluice.connectors.http import HttpClient
from sluice_local.httpserver import HttpServer, Reply, Request

__all__ = ["FakeAPI", "Handler", "Reply", "Request", "client", "reply", "serve"]

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

    def answer(request: Request) -> Reply:
        requests.append(request)
        return handler(request)

    with HttpServer(answer) as server:
        yield FakeAPI(f"http://127.0.0.1:{server.port}", requests)


def client(sleeps: list[float]) -> HttpClient:
    """The SSRF-guarded client, allowed onto loopback, sleeping into ``sleeps``."""
    return HttpClient(allowed_networks=["127.0.0.1/32"], sleep=sleeps.append, timeout=5)
