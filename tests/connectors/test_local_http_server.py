"""The local HTTP server the demo's web site and the tests' fakes stand on, and the demo's site itself
(conditional GETs, edits, removals), read through the connectors' own client."""

from __future__ import annotations

from pathlib import Path

from sluice.connectors.http import HttpClient
from sluice_local.httpserver import HttpServer, Reply, Request
from sluice_local.site import Site

LOOPBACK = HttpClient(allowed_networks=["127.0.0.1/32"], retries=0, timeout=5)


def test_each_request_reaches_the_function_and_its_answer_comes_back() -> None:
    seen: list[Request] = []

    def answer(request: Request) -> Reply:
        seen.append(request)
        return 201, {"X-Echo": request.query.get("q", "")}, request.body[::-1]

    with HttpServer(answer) as server:
        response = LOOPBACK.request("POST", server.url("/things?q=1&empty="), body=b"abc")

    assert (response.status, response.header("x-echo"), response.body) == (201, "1", b"cba")
    (request,) = seen
    assert (request.method, request.path, request.target) == ("POST", "/things", "/things?q=1&empty=")
    assert request.query == {"q": "1", "empty": ""} and request.headers["content-length"] == "3"


def test_a_function_that_raises_answers_500() -> None:
    def broken(request: Request) -> Reply:
        raise KeyError(request.path)

    with HttpServer(broken) as server:
        response = LOOPBACK.get(server.url("/nowhere"))

    assert response.status == 500 and b"KeyError('/nowhere')" in response.body


def test_the_demo_site_answers_conditional_gets_edits_and_removals(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_bytes(b"<title>Home</title>")
    (tmp_path / "notes.txt").write_bytes(b"tides")
    site = Site.from_directory(tmp_path).start()
    try:
        home = LOOPBACK.get(site.url)
        etag = home.header("etag") or ""
        again = LOOPBACK.get(site.url, headers={"If-None-Match": etag})
        site.put("/index.html", b"<title>Home, edited</title>")
        edited = LOOPBACK.get(site.url, headers={"If-None-Match": etag})
        notes = LOOPBACK.get(f"{site.url}notes.txt")
        site.remove("/notes.txt")
        gone = LOOPBACK.get(f"{site.url}notes.txt")
    finally:
        site.stop()

    assert (home.status, home.header("content-type"), home.body) == (
        200,
        "text/html; charset=utf-8",
        b"<title>Home</title>",
    )
    assert home.header("last-modified") and etag.startswith('"')
    assert (again.status, again.body) == (304, b"")
    assert (edited.status, edited.body) == (200, b"<title>Home, edited</title>")
    assert notes.header("content-type") == "text/plain; charset=utf-8"
    assert gone.status == 404
    assert [status for _, status in site.requests] == [200, 304, 200, 200, 404]
