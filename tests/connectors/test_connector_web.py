"""The web connector against a fake site on 127.0.0.1: what a crawl lands, what it leaves out, how a
second pass asks conditionally, how an interrupted pass resumes; and the HTTP client's SSRF guard
with the default client (no allowed networks, no real DNS: resolvers are injected)."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fakesite import FakeSite, Page, html
from yielded import last_cursor

from sluice.connectors import (
    Change,
    Checkpoint,
    ConnectorConfigError,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    Unchanged,
    connector_class,
)
from sluice.connectors.http import BlockedAddressError, HttpClient, HttpError
from sluice.connectors.web import WebConnector
from sluice.connectors.web.cursor import MAX_CURSOR_CHARS, Crawl, KnownPage
from sluice.connectors.web.robots import Robots
from sluice.connectors.web.urls import item_id_for

LAST_MODIFIED = 1_700_000_000.0
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ROBOTS = (
    "User-agent: *\nDisallow: /\n\n"  # not for us: a group names SluiceConnector
    "User-agent: SluiceConnector\nDisallow: /private\nAllow: /private/open\n"
)
LANDED = {"/", "/a", "/a/deeper", "/b", "/c", "/private/open", "/notes.txt", "/docs/guide.pdf"}


def build(site: FakeSite) -> None:
    site.pages.update(
        {
            "/robots.txt": Page(ROBOTS, content_type="text/plain"),
            "/": Page(
                html(
                    "Home",
                    "/a",
                    "/b#top",
                    "/private/secret",
                    "/private/open",
                    "notes.txt",
                    "/docs/guide.pdf",
                    "/moved",
                    "http://elsewhere.test/",
                    "mailto:team@example.com",
                    "/logo.png",
                    extra='<a rel="external nofollow" href="/hidden">hidden</a>',
                ),
                etag='"home-1"',
            ),
            "/a": Page(html("Page A", "/a/deeper"), etag='"a-1"', last_modified=LAST_MODIFIED),
            "/a/deeper": Page(html("Deeper", "/a/deepest")),
            "/a/deepest": Page(html("Deepest")),
            "/b": Page(html("Page B", "/gone", "/quiet"), etag='"b-1"'),
            "/gone": Page(status=410),
            "/quiet": Page(html("Quiet", extra='<meta name="robots" content="noindex">')),
            "/private/secret": Page(html("Secret")),
            "/private/open": Page(html("Open"), last_modified=LAST_MODIFIED),
            "/notes.txt": Page("plain notes", content_type="text/plain; charset=utf-8", etag='"n-1"'),
            "/docs/guide.pdf": Page(PDF, content_type="application/pdf", etag='"g-1"'),
            "/moved": Page(status=301, headers={"Location": "/c"}),
            "/c": Page(html("Page C", extra='<link rel="canonical" href="/c-canonical">')),
            "/hidden": Page(html("Hidden")),
            "/logo.png": Page(b"\x89PNG", content_type="image/png"),
        }
    )


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with FakeSite() as fake:
        build(fake)
        yield fake


class Resolver:
    """No real DNS: 127.0.0.1 and the names given, every lookup recorded."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = {"127.0.0.1": ["127.0.0.1"], **(names or {})}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any) -> list[Any]:
        self.calls.append(host)
        if host not in self.names:
            raise OSError(f"{host}: no DNS in tests")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self.names[host]
        ]


def numeric_only(host: str, port: int, family: int = 0, kind: int = 0, proto: int = 0, flags: int = 0) -> list[Any]:
    """getaddrinfo as the guard uses it (glibc's inet_aton forms included), but never DNS."""
    return socket.getaddrinfo(host, port, family, kind, proto, flags | socket.AI_NUMERICHOST)


def make(
    site: FakeSite, sleeps: list[float] | None = None, resolver: Resolver | None = None, **settings: Any
) -> WebConnector:
    http = HttpClient(
        allowed_networks=["127.0.0.1/32"],
        sleep=(sleeps if sleeps is not None else []).append,
        resolve=resolver or Resolver(),
    )
    settings.setdefault("start_urls", [site.url("/")])
    built = connector_class("web").from_instance(Instance("docs-site", "web", settings), Context(http=http))
    assert isinstance(built, WebConnector)
    return built


def by_path(changes: list[Change]) -> dict[str, Item]:
    return {urlsplit(c.source_url or "").path: c for c in changes if isinstance(c, Item)}


def ids(changes: list[Change], kind: type) -> set[str]:
    return {c.item_id for c in changes if isinstance(c, kind)}


def page_requests(site: FakeSite) -> list[str]:
    return [p for p in site.paths() if p != "/robots.txt"]


def item_id(site: FakeSite, path: str) -> str:
    return item_id_for(site.url(path))


# -- what a crawl lands ---------------------------------------------------------------------------


def test_a_first_crawl_lands_every_reachable_page_with_its_title_url_and_type(site: FakeSite) -> None:
    resolver = Resolver()
    changes = list(make(site, resolver=resolver).changes(None))

    items = by_path(changes)
    assert set(items) == LANDED
    assert {p: i.title for p, i in items.items()} == {
        "/": "Home",
        "/a": "Page A",
        "/a/deeper": "Deeper",
        "/b": "Page B",
        "/c": "Page C",
        "/private/open": "Open",
        "/notes.txt": "notes.txt",
        "/docs/guide.pdf": "guide.pdf",
    }
    assert {p: i.ext for p, i in items.items() if i.ext != "html"} == {"/notes.txt": "txt", "/docs/guide.pdf": "pdf"}
    assert items["/docs/guide.pdf"].body == PDF
    assert items["/a"].source_url == site.url("/a")
    assert items["/a"].updated_at == "2023-11-14T22:13:20+00:00"
    port = site.port
    assert items["/"].item_id == f"127.0.0.1-{port}/index"
    assert items["/docs/guide.pdf"].item_id == f"127.0.0.1-{port}/docs/guide.pdf"
    # the redirect was followed on the same site; the canonical link names the item
    assert items["/c"].item_id == f"127.0.0.1-{port}/c-canonical"
    # a linked page that is gone is a tombstone; a noindex page is read but not landed
    assert ids(changes, Tombstone) == {item_id(site, "/gone")}
    assert "/quiet" in site.paths() and "/quiet" not in items
    # nofollow, images, mailto:, other sites and fragments: never fetched, fetched once
    requested = page_requests(site)
    assert not {"/hidden", "/logo.png", "/a/deepest"} & set(requested)
    assert requested.count("/b") == 1
    assert resolver.calls and set(resolver.calls) == {"127.0.0.1"}
    # a checkpoint after every page; only the last ends the pass
    checkpoints = [c for c in changes if isinstance(c, Checkpoint)]
    assert len(checkpoints) == len(requested) + 1
    assert [c.ends_pass for c in checkpoints] == [False] * (len(checkpoints) - 1) + [True]
    assert len(last_cursor(changes)) < 2000


def test_robots_txt_the_group_naming_us_wins_and_the_longest_rule_decides(site: FakeSite) -> None:
    items = by_path(list(make(site).changes(None)))

    assert "/private/open" in items  # Allow: /private/open is longer than Disallow: /private
    assert "/private/secret" not in site.paths()
    assert "/" in items  # the "*" group's Disallow: / is not ours


def test_robots_txt_is_ignored_when_respect_robots_is_off(site: FakeSite) -> None:
    items = by_path(list(make(site, respect_robots=False).changes(None)))

    assert {"/private/secret", "/quiet"} <= set(items)
    assert "/robots.txt" not in site.paths()


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/docs/a.pdf", False),
        ("/docs/a.pdf?download=1", True),  # "$" anchors the end
        ("/private/x", False),
        ("/private/public-page", True),
        ("/private/public-page-2", True),
        ("/shop/cart?id=1", False),
        ("/shop/list", True),
        ("/robots.txt", True),
        ("/" + "a" * 900, True),  # many wildcards, a long path: no backtracking blow-up
    ],
)
def test_robots_rules_match_wildcards_and_anchors(target: str, allowed: bool) -> None:
    robots = Robots.parse(
        "# comment\nUser-agent: other\nDisallow: /\n\n"
        "User-agent: sluiceconnector/2.0\nUser-agent: *\n"
        "Disallow: /*.pdf$\nDisallow: /private\nAllow: /private/public-page\nDisallow: /*?id=\n"
        "Disallow: /" + "*a" * 40 + "b\nCrawl-delay: 3\nSitemap: https://example.com/sitemap.xml\n"
    )

    assert robots.allows(target) is allowed
    assert robots.crawl_delay == 3


def test_max_depth_and_max_pages_bound_a_pass(site: FakeSite) -> None:
    shallow = by_path(list(make(site, max_depth=1).changes(None)))
    assert set(shallow) == LANDED - {"/a/deeper"}
    assert "/gone" not in site.paths()

    site.requests.clear()
    few = by_path(list(make(site, max_pages=3).changes(None)))
    assert page_requests(site) == ["/", "/a", "/b"]  # breadth first
    assert set(few) == {"/", "/a", "/b"}


def test_include_and_exclude_choose_what_is_fetched(site: FakeSite) -> None:
    excluded = by_path(list(make(site, exclude=["/a/", "re:\\.(txt|pdf)$"]).changes(None)))
    assert set(excluded) == LANDED - {"/a/deeper", "/notes.txt", "/docs/guide.pdf"}

    site.requests.clear()
    included = by_path(list(make(site, start_urls=[site.url("/a")], include=["/a"]).changes(None)))
    assert set(included) == {"/a", "/a/deeper", "/a/deepest"}  # depth counts from /a now


@pytest.mark.parametrize(
    ("page", "error"),
    [
        (Page(status=404), "start URL .* answered 404"),
        (Page(status=403), "start URL .* answered 403"),
        (Page(html("Home")), "robots.txt disallows start URL"),
    ],
)
def test_a_start_url_that_cannot_be_read_stops_the_run(site: FakeSite, page: Page, error: str) -> None:
    site.pages["/start"] = page
    site.pages["/robots.txt"] = Page("User-agent: *\nDisallow: /start\n" if page.status == 200 else "")

    with pytest.raises(SourceError, match=error):
        list(make(site, start_urls=[site.url("/start")]).changes(None))


def test_titles_are_read_in_the_page_s_own_charset(site: FakeSite) -> None:
    site.pages["/"] = Page(
        '<html><head><meta charset="iso-8859-1"><title>Caf\xe9 cr\xe8me</title></head></html>'.encode("latin-1"),
        content_type="text/html",
    )

    items = by_path(list(make(site).changes(None)))

    assert items["/"].title == "Café crème"


def test_a_redirect_to_another_site_is_not_followed(site: FakeSite) -> None:
    site.pages["/"] = Page(html("Home", "/away", "/a"))
    site.pages["/away"] = Page(status=302, headers={"Location": "http://elsewhere.test/landing"})
    resolver = Resolver()

    items = by_path(list(make(site, resolver=resolver).changes(None)))

    assert "/away" in site.paths() and set(items) == {"/", "/a", "/a/deeper"}
    assert "elsewhere.test" not in resolver.calls


# -- sitemaps ------------------------------------------------------------------------------------


def urlset(*urls: str) -> str:
    entries = "".join(f"<url><loc>{u}</loc><lastmod>2024-01-01</lastmod></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


def test_a_sitemap_index_with_a_gzip_sitemap_lists_the_pages(site: FakeSite) -> None:
    sitemaps = "".join(
        f"<sitemap><loc>{u}</loc></sitemap>"
        for u in (site.url("/sitemaps/one.xml.gz"), site.url("/sitemaps/two.xml"), "http://elsewhere.test/s.xml")
    )
    site.pages.update(
        {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/sitemap_index.xml": Page(
                f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemaps}</sitemapindex>',
                content_type="application/xml",
            ),
            "/sitemaps/one.xml.gz": Page(
                gzip.compress(urlset(site.url("/p1"), site.url("/p2")).encode()), content_type="application/gzip"
            ),
            "/sitemaps/two.xml": Page(urlset(site.url("/p3"), "http://elsewhere.test/x"), content_type="text/xml"),
            "/p1": Page(html("P1", "/p4")),
            "/p2": Page(html("P2")),
            "/p3": Page("three", content_type="text/plain"),
            "/p4": Page(html("P4")),
        }
    )
    resolver = Resolver()

    connector = make(site, resolver=resolver, start_urls=None, sitemaps=[site.url("/sitemap_index.xml")])
    items = by_path(list(connector.changes(None)))

    assert set(items) == {"/p1", "/p2", "/p3"}
    assert items["/p3"].ext == "txt"
    assert "/p4" not in site.paths()  # a sitemap page's links are not followed: the sitemap is the listing
    assert "elsewhere.test" not in resolver.calls


def test_a_gzip_bomb_sitemap_is_refused(site: FakeSite) -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * (51 * 1024 * 1024), compresslevel=1)  # 230 KB → 51 MB
    site.pages["/bomb.xml.gz"] = Page(bomb, content_type="application/gzip")

    with pytest.raises(SourceError, match="decompresses to more than 50 MB"):
        list(make(site, start_urls=None, sitemaps=[site.url("/bomb.xml.gz")]).changes(None))


def test_a_sitemap_with_entities_is_refused(site: FakeSite) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><urlset>&b;</urlset>'
    )
    site.pages["/laughs.xml"] = Page(laughs, content_type="application/xml")

    with pytest.raises(SourceError, match="not readable XML"):
        list(make(site, start_urls=None, sitemaps=[site.url("/laughs.xml")]).changes(None))


# -- second passes -------------------------------------------------------------------------------


def test_a_second_pass_asks_conditionally_and_lands_only_what_changed(site: FakeSite) -> None:
    first = list(make(site, max_depth=1).changes(None))
    assert set(by_path(first)) == LANDED - {"/a/deeper"}
    site.pages["/b"] = Page(html("Page B, revised"), etag='"b-2"')
    site.requests.clear()

    second = list(make(site, max_depth=1).changes(last_cursor(first)))

    assert [i.title for i in by_path(second).values()] == ["Page B, revised"]
    unchanged = (LANDED - {"/a/deeper", "/b", "/c"}) | {"/c-canonical"}
    assert ids(second, Unchanged) == {item_id(site, p) for p in unchanged}
    # pages at max_depth and files were asked with their validators; the home page (its links are
    # needed) was read in full and found equal
    assert set(site.paths(304)) == {"/a", "/private/open", "/notes.txt", "/docs/guide.pdf"}
    sent = {r.path: r.headers for r in site.requests}
    assert sent["/a"]["if-none-match"] == '"a-1"'
    assert sent["/private/open"]["if-modified-since"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert sent["/b"]["if-none-match"] == '"b-1"'
    assert "if-none-match" not in sent["/"]
    assert ids(second, Tombstone) == set()
    assert [c.ends_pass for c in second if isinstance(c, Checkpoint)][-1] is True


def test_a_page_that_is_gone_becomes_a_tombstone_and_its_subtree_is_left_to_the_sweep(site: FakeSite) -> None:
    first = list(make(site).changes(None))
    del site.pages["/a"]

    second = list(make(site).changes(last_cursor(first)))

    assert item_id(site, "/a") in ids(second, Tombstone)
    seen = ids(second, Item) | ids(second, Unchanged)
    assert item_id(site, "/a/deeper") not in seen  # no longer linked: the runner's sweep removes it
    assert seen == {item_id(site, p) for p in LANDED - {"/a", "/a/deeper", "/c"}} | {item_id(site, "/c-canonical")}


def test_a_page_that_fails_counts_as_still_there(site: FakeSite) -> None:
    first = list(make(site).changes(None))
    site.pages["/notes.txt"] = Page(status=500)

    second = list(make(site).changes(last_cursor(first)))

    assert item_id(site, "/notes.txt") in ids(second, Unchanged)
    assert item_id(site, "/notes.txt") not in ids(second, Tombstone)


def test_an_interrupted_pass_resumes_from_its_last_checkpoint(site: FakeSite) -> None:
    whole = list(make(site).changes(None))
    site.requests.clear()

    before: list[Change] = []
    changes = make(site).changes(None)
    for change in changes:
        before.append(change)
        if sum(isinstance(c, Checkpoint) for c in before) == 5:
            break
    changes.close()
    fetched_before = page_requests(site)
    site.requests.clear()

    after = list(make(site).changes(last_cursor(before)))

    fetched_after = page_requests(site)
    assert len(fetched_before) == 4 and fetched_after
    assert not set(fetched_before) & set(fetched_after)
    landed = [c.item_id for c in before + after if isinstance(c, Item)]
    assert len(landed) == len(set(landed))
    assert set(landed) == ids(whole, Item)
    assert ids(before + after, Tombstone) == ids(whole, Tombstone)


def test_429_with_retry_after_is_waited_out_and_retried(site: FakeSite) -> None:
    site.once["/a"] = [Page(status=429, headers={"Retry-After": "1"})]
    sleeps: list[float] = []

    items = by_path(list(make(site, sleeps).changes(None)))

    assert sleeps == [1.0]
    assert "/a" in items
    assert site.paths().count("/a") == 2


def test_crawl_delay_is_honoured_up_to_its_cap(site: FakeSite) -> None:
    site.pages.update(
        {
            "/robots.txt": Page("User-agent: *\nCrawl-delay: 30\n", content_type="text/plain"),
            "/": Page(html("Home", "/one", "/two")),
            "/one": Page(html("One")),
            "/two": Page(html("Two")),
        }
    )
    sleeps: list[float] = []

    list(make(site, sleeps).changes(None))

    assert len(sleeps) == 2 and all(9.0 < s <= 10.0 for s in sleeps)


# -- settings and the cursor ---------------------------------------------------------------------


def test_every_settings_problem_is_reported_at_once() -> None:
    settings = {
        "start_urls": ["ftp://example.com/", "http://user:pw@example.com/"],
        "start_url": [],
        "same_site": "yes",
        "include": ["docs"],
        "exclude": ["re:("],
        "max_depth": 11,
        "max_pages": 0,
        "allowed_networks": ["10.1.0.0/16", "169.254.0.0/16", "::ffff:0:0/96", "nope"],
    }

    with pytest.raises(ConnectorConfigError) as error:
        WebConnector.from_instance(Instance("site", "web", settings), Context(http=HttpClient()))

    text = "\n".join(error.value.problems)
    for expected in (
        "'ftp://example.com/' is not an http(s) URL",
        "'http://user:pw@example.com/' is not an http(s) URL",
        "unknown setting 'start_url'; did you mean 'start_urls'?",
        "same_site must be true or false",
        "'docs' is neither a path prefix",
        "'re:(' is not a regular expression",
        "max_depth must be a whole number from 0 to 10",
        "max_pages must be a whole number from 1 to 5000",
        "169.254.0.0/16 covers link-local or instance-metadata addresses",
        "::ffff:0:0/96 covers link-local",
        "'nope' is not a CIDR",
    ):
        assert expected in text
    assert "10.1.0.0/16" not in text
    with pytest.raises(ConnectorConfigError, match="start_urls or sitemaps is required"):
        WebConnector.from_instance(Instance("site", "web", {}), Context(http=HttpClient()))
    with pytest.raises(ConnectorConfigError, match="left out by include/exclude"):
        WebConnector.from_instance(
            Instance("site", "web", {"start_urls": ["https://example.com/"], "include": ["/docs/"]}), Context()
        )


def test_allowed_networks_in_the_settings_give_the_connector_its_own_client(site: FakeSite) -> None:
    sleeps: list[float] = []
    shared = HttpClient(sleep=sleeps.append, resolve=Resolver())  # the runner's: public addresses only
    instance = Instance("site", "web", {"start_urls": [site.url("/")], "allowed_networks": ["127.0.0.1/32"]})

    connector = WebConnector.from_instance(instance, Context(http=shared))
    items = by_path(list(connector.changes(None)))

    assert set(items) == LANDED
    assert connector.http is not shared and connector.http.sleep == shared.sleep
    assert list(shared.allowed_networks) == []
    with pytest.raises(BlockedAddressError):
        list(
            WebConnector.from_instance(
                Instance("site", "web", {"start_urls": [site.url("/")]}), Context(http=shared)
            ).changes(None)
        )


def test_the_cursor_stays_under_its_bound_for_the_largest_pass() -> None:
    crawl = Crawl.load(None, max_depth=2)
    crawl.start(max_depth=2)
    origin = "https://docs.example.com"
    urls = [f"{origin}/guide/section-{n // 100}/a-rather-descriptive-page-title-{n}" for n in range(5000)]
    for url in urls:
        if crawl.has_room(url, max_pages=5000):
            crawl.push(url, 1)
    assert 3000 < crawl.count < 5000  # long paths: the pass stops growing before max_pages
    for n in range(crawl.count - 500):
        step = crawl.pop()
        assert step is not None
        crawl.keep(step[0], KnownPage(crawl.gen, f"{n:016x}", f'"{n:032x}"', 1_700_000_000 + n), f"id-{n}")

    cursor = crawl.dump()

    assert len(cursor) <= MAX_CURSOR_CHARS
    resumed = Crawl.load(cursor, max_depth=2)
    assert resumed.pending is not None and len(resumed.pending[1]) == 500
    assert len(resumed.pages) == crawl.count - 500 and all(p.gen == crawl.gen for p in resumed.pages.values())
    assert sum(bool(p.etag) for p in resumed.pages.values()) > 500  # validators kept as far as they fit
    assert json.loads(cursor)["o"] == [origin]


# -- the SSRF guard (the default client: public addresses only) ----------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://2130706433/",  # decimal
        "http://0177.0.0.1/",  # octal
        "http://0x7f.0.0.1/",  # hex
        "http://0xA9FEA9FE/",
        "http://127.1/",
        "http://0/",
        "http://[::1]/",
        "http://[::]/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
        "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64
        "http://[2002:a9fe:a9fe::1]/",  # 6to4
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://[::ffff:0:7f00:1]/",  # IPv4-translated
        "http://[fd00:ec2::254]/",  # IMDS over IPv6
        "http://100.64.1.1/",  # shared address space
        "http://10.0.0.5:8080/",
        "file:///proc/self/environ",
        "ftp://example.com/",
        "http://user:secret@example.com/",
        "http://@127.0.0.1/",
    ],
)
def test_the_guard_refuses_every_way_to_an_internal_address(url: str) -> None:
    with pytest.raises(BlockedAddressError):
        HttpClient(resolve=numeric_only).get(url)


@pytest.mark.parametrize(
    "addresses", [["10.0.0.5"], ["93.184.216.34", "10.0.0.5"], ["10.0.0.5", "93.184.216.34"], ["2606:4700::1", "::1"]]
)
def test_a_name_resolving_to_any_private_address_is_refused(addresses: list[str]) -> None:
    resolver = Resolver({"intranet.test": addresses})

    with pytest.raises(BlockedAddressError, match="not a public address"):
        HttpClient(resolve=resolver).get("http://intranet.test/")
    assert resolver.calls == ["intranet.test"]


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/"])
def test_a_redirect_to_the_metadata_service_is_refused(site: FakeSite, location: str) -> None:
    site.pages["/imds"] = Page(status=302, headers={"Location": location})

    with pytest.raises(BlockedAddressError):
        HttpClient(allowed_networks=["127.0.0.1/32"], resolve=numeric_only).get(site.url("/imds"))
    assert site.paths() == ["/imds"]


def test_a_crawl_skips_a_link_that_redirects_to_the_metadata_service(site: FakeSite) -> None:
    site.pages["/"] = Page(html("Home", "/imds", "http://169.254.169.254/latest/"))
    site.pages["/imds"] = Page(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    changes = list(make(site, same_site=False, max_depth=1).changes(None))

    assert set(by_path(changes)) == {"/"}
    assert "/imds" in site.paths()


def test_a_start_url_on_a_blocked_address_stops_the_run() -> None:
    instance = Instance("site", "web", {"start_urls": ["http://169.254.169.254/"]})
    connector = WebConnector.from_instance(instance, Context(http=HttpClient(resolve=numeric_only)))

    with pytest.raises(BlockedAddressError):
        list(connector.changes(None))


def test_the_connection_goes_to_the_address_checked_once(site: FakeSite) -> None:
    resolver = Resolver({"site.test": ["127.0.0.1"]})
    client = HttpClient(allowed_networks=["127.0.0.1/32"], resolve=resolver)

    response = client.get(f"http://site.test:{site.port}/a")

    assert response.status == 200 and b"Page A" in response.body
    assert site.requests[-1].headers["host"] == f"site.test:{site.port}"  # reached by address, named by host
    assert resolver.calls == ["site.test"]  # "site.test" exists nowhere else: no second resolution


def test_credentials_are_not_forwarded_to_another_origin(site: FakeSite) -> None:
    site.pages["/redirect"] = Page(status=302, headers={"Location": f"http://other.test:{site.port}/a"})
    resolver = Resolver({"site.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    client = HttpClient(allowed_networks=["127.0.0.1/32"], resolve=resolver)

    client.get(f"http://site.test:{site.port}/redirect", {"Authorization": "Bearer t", "Cookie": "s=1", "X-Trace": "1"})

    first, second = site.requests
    assert first.headers["authorization"] == "Bearer t" and first.headers["cookie"] == "s=1"
    assert "authorization" not in second.headers and "cookie" not in second.headers
    assert second.headers["x-trace"] == "1" and second.headers["host"] == f"other.test:{site.port}"


def test_a_path_http_client_cannot_send_fails_at_once(site: FakeSite) -> None:
    sleeps: list[float] = []

    with pytest.raises(HttpError, match="percent-encode"):
        HttpClient(allowed_networks=["127.0.0.1/32"], sleep=sleeps.append).get(site.url("/a b"))
    assert sleeps == [] and site.requests == []  # no retry, and nothing sent
