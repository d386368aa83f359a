"""A web site, crawled from start URLs and/or sitemaps: HTML pages, and the text files and PDFs they link.

Settings::

    {"start_urls": ["https://docs.example.com/"],       pages the crawl starts from (depth 0)
     "sitemaps": ["https://docs.example.com/sitemap.xml"],  sitemaps or sitemap indexes, .xml or .xml.gz
     "same_site": true,          only the hosts of start_urls and sitemaps; a redirect elsewhere is not followed
     "include": ["/docs/", "re:\\\\.pdf$"],  when given, only URLs matching one of them are fetched
     "exclude": ["/docs/old/"],  URLs matching one of them are never fetched
     "max_depth": 2,             link hops from a start URL (0: the start URLs alone), at most 10
     "max_pages": 500,           URLs queued (each requested once) per pass, at most 5000
     "respect_robots": true,     robots.txt and <meta name="robots"> (see below)
     "allowed_networks": []}     CIDRs that are not public but may be reached (an intranet site)

``include``/``exclude`` entries are path prefixes (``"/docs/"``), or regular expressions after ``re:``
searched in the path and query (``"re:\\\\?page=\\\\d+$"``). A start URL must pass them. Every URL
(start, sitemap, link, redirect target) goes through the same checks: http or https, same site,
include/exclude, robots, then the HttpClient's SSRF guard on each request.

One pass visits the site breadth first: the start URLs, then what they link to, to ``max_depth``.
Pages listed in a sitemap are fetched but their links are not followed (the sitemap is the listing;
add start URLs to crawl from them too). A page is text/html (or XHTML), text/plain or a PDF; other
types are skipped, and links to images, scripts, archives and the like are not fetched at all. Links
come from ``<a href>`` (``rel="nofollow"`` skipped, fragments dropped, ``<base href>`` honoured);
``<link rel="canonical">`` on the same host names the item instead of the URL. Redirects are not
followed blindly: the target is queued like a link (same checks, same depth). An item's id is the
host (``-port`` when not the default), then the path (``index`` for one ending in ``/``, ``+q<hash>``
for a query): ``docs.example.com/guide/install``; the scheme is not part of it.

robots.txt (RFC 9309): the group for ``SluiceConnector``, else ``*``; the longest matching Allow or
Disallow wins (Allow on a tie), ``*`` and ``$`` understood; ``Crawl-delay`` honoured up to 10 s
between requests to a host. A 4xx robots.txt allows everything; a 5xx or an unreachable one stops the
run (RFC 9309 says assume everything disallowed, and a pass that sees nothing would sweep everything),
and so does a start URL it disallows.
``<meta name="robots" content="noindex">`` keeps a page out, ``nofollow`` keeps its links out.

What a pass yields, per URL: an ``Item`` when the page is new or its body changed; ``Unchanged``
when the server answers 304 to a conditional GET, or sends the same body again; a ``Tombstone``
when a page that is linked or listed answers 404 or 410; nothing for a page that is skipped (it is
then swept by the runner after the pass, like a page no longer linked). A page that fails (5xx,
timeout) answers ``Unchanged`` when the last pass had it, so a hiccup deletes nothing. A start URL
or sitemap that fails stops the run instead (``SourceError``/``HttpError``; the cursor stays).
A ``Checkpoint`` follows every page; the one that ends a pass says ``ends_pass``.

Conditional GETs: a 304 carries no body, hence no links, so only pages whose links are not needed
are asked conditionally: pages at ``max_depth`` (sitemap pages among them) and non-HTML files. Other
pages are read in full and compared by digest (equal → ``Unchanged``). For the cheapest recrawl, list
the pages in a sitemap and set ``max_depth`` to 0.

The cursor (compact JSON, opaque to the runner)::

    {"v": 1, "g": 7,                          the pass number
     "o": ["https://docs.example.com"],       origins; keys below start with their index
     "k": {"0/guide": [7, "9f86d081884c7d65", "\\"abc\\"", 1700000000, "pdf", "item/id"], ...},
     "q": [["0/"], ["0/a", "0/b"], []]}       only while a pass is open: pending URLs by depth

``k`` holds every URL of the open pass (visited: ``[g]``) and what the last passes learnt of each
page: pass, body digest, ETag, Last-Modified, extension when not html, item id when not the URL's
own (trailing empty fields dropped). A finished pass keeps only the pages it saw. Bound: at most
``max_pages`` (≤ 5000) URLs a pass, and no more URLs than fit in 250 000 characters of keys; the
whole cursor is kept under 300 000 characters (a DynamoDB item holds 400 KB) by forgetting
validators when needed, older passes' first (a forgotten page is read in full next time).
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import email.utils
import hashlib
import ipaddress
import json
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urljoin, urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from sluice.connectors import (
    MAX_ITEM_ID,
    Change,
    Checkpoint,
    ConnectorConfigError,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    Unchanged,
    safe_item_id,
)
from sluice.connectors.http import REDIRECTS, BlockedAddressError, HttpClient, HttpError, RateLimitedError, Response
from sluice.connectors.settings import http_client, unknown_settings_listed

AGENT = "SluiceConnector"  # the robots.txt product token (the HttpClient's User-Agent starts with it)
SETTINGS = (
    "start_urls",
    "sitemaps",
    "same_site",
    "include",
    "exclude",
    "max_depth",
    "max_pages",
    "respect_robots",
    "allowed_networks",
)
MiB = 1024 * 1024
DEFAULT_MAX_DEPTH, MAX_DEPTH = 2, 10
DEFAULT_MAX_PAGES, MAX_PAGES = 500, 5000
MAX_CRAWL_DELAY = 10.0  # seconds; a longer Crawl-delay is shortened to this
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309's minimum a crawler must read
MAX_SITEMAP_BYTES = 50 * MiB  # decompressed (sitemaps.org's limit): a gzip bomb stops here
MAX_SITEMAP_FILES = 50  # per pass, indexes included
MAX_SITEMAP_NESTING = 2  # an index of indexes, no deeper
MAX_URL_CHARS = 1000  # longer links are not followed
MAX_PARSED_BYTES = 5 * MiB  # of a page, read for its title and links
MAX_TITLE_CHARS = 500
MAX_ETAG_CHARS = 200  # a longer ETag is not remembered
DIGEST_CHARS = 16  # hex characters of a body's SHA-256 kept in the cursor
MAX_CURSOR_CHARS = 300_000
PASS_URL_CHARS = 250_000  # what a pass's URLs may take of the cursor
URL_OVERHEAD = 12  # characters a URL costs in the cursor besides its key
GONE = frozenset({404, 410})
CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
PAGE_TYPES = {"text/html": "html", "application/xhtml+xml": "html", "text/plain": "txt", "application/pdf": "pdf"}
# Links with these extensions are not fetched: they are never a page.
SKIPPED = re.compile(
    r"\.(png|jpe?g|gif|webp|svg|ico|bmp|tiff?|avif|css|m?js|map|json|xml|rss|atom|woff2?|ttf|otf|eot|zip|gz|tgz|bz2|xz"
    r"|7z|rar|tar|jar|dmg|exe|msi|iso|apk|bin|mp[34]|m4[av]|wav|ogg|webm|avi|mov|mkv|flv|docx?|xlsx?|pptx?|od[tsp]|epub)$",
    re.IGNORECASE,
)
# Never reachable on purpose, whatever allowed_networks says: instance metadata and task credentials.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::/32", "::ffff:169.254.0.0/112", "64:ff9b::a9fe:0/112")
)


# -- URLs ----------------------------------------------------------------------------------------


def normalise(url: str, base: str | None = None) -> str | None:
    """The URL in the one form the crawl compares: absolute http(s), lower-case scheme and host, no
    default port, no fragment, dot segments resolved, unsafe characters percent-encoded. None for
    anything else (mailto:, javascript:, credentials in the URL, a bad port, too long)."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    try:
        host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, 80 if scheme == "http" else 443) else f"{host}:{port}"
    path = quote(_without_dot_segments(parts.path) or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    out = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    return out if len(out) <= MAX_URL_CHARS else None


def _without_dot_segments(path: str) -> str:
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/".join(out)


def origin_of(url: str) -> str:
    """scheme://host[:port] of a normalised URL (whose path always starts with "/"), without parsing."""
    return url[: url.index("/", url.index("//") + 2)]


def _target(url: str) -> str:
    """Path and query: what robots.txt rules and include/exclude regexes are matched against."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def item_id_for(url: str) -> str:
    """host[-port]/path segments; a path ending in / gets "index", a query a hash: ``+q<10 hex>``."""
    parts = urlsplit(url)
    host = parts.hostname or "host"
    if parts.port is not None:
        host = f"{host}-{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    if not segments or parts.path.endswith("/"):
        segments.append("index")
    if parts.query:
        segments[-1] += "+q" + hashlib.sha256(parts.query.encode()).hexdigest()[:10]
    item_id = safe_item_id(host, *segments)
    if len(item_id) > MAX_ITEM_ID:
        item_id = safe_item_id(host, "long-" + hashlib.sha256(url.encode()).hexdigest()[:20])
    return item_id


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathRules:
    """Path prefixes, and regular expressions searched in path + query."""

    prefixes: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.patterns)

    def match(self, url: str) -> bool:
        path = urlsplit(url).path
        return any(path.startswith(p) for p in self.prefixes) or any(p.search(_target(url)) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class WebSettings:
    start_urls: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    same_site: bool = True
    include: PathRules = PathRules()
    exclude: PathRules = PathRules()
    max_depth: int = DEFAULT_MAX_DEPTH
    max_pages: int = DEFAULT_MAX_PAGES
    respect_robots: bool = True
    allowed_networks: tuple[str, ...] = ()
    sites: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        hosts = {urlsplit(u).hostname or "" for u in self.start_urls + self.sitemaps}
        object.__setattr__(self, "sites", frozenset(hosts))

    def wants(self, url: str) -> bool:
        """Whether a (normalised) URL is one this crawl may fetch, robots.txt aside."""
        parts = urlsplit(url)
        if self.same_site and parts.hostname not in self.sites:
            return False
        if SKIPPED.search(parts.path):
            return False
        if self.include and not self.include.match(url):
            return False
        return not self.exclude.match(url)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> WebSettings:
        problems = unknown_settings_listed(raw, SETTINGS)
        start_urls = _urls(raw, "start_urls", problems)
        sitemaps = _urls(raw, "sitemaps", problems)
        if not start_urls and not sitemaps and not problems:
            problems.append("start_urls or sitemaps is required: the pages to start from, or the site's sitemaps")
        include = _rules(raw, "include", problems)
        exclude = _rules(raw, "exclude", problems)
        settings = cls(
            start_urls,
            sitemaps,
            _flag(raw, "same_site", True, problems),
            include,
            exclude,
            _whole(raw, "max_depth", DEFAULT_MAX_DEPTH, 0, MAX_DEPTH, problems),
            _whole(raw, "max_pages", DEFAULT_MAX_PAGES, 1, MAX_PAGES, problems),
            _flag(raw, "respect_robots", True, problems),
            _networks(raw.get("allowed_networks"), problems),
        )
        for url in start_urls:
            if not settings.wants(url):
                problems.append(f"start URL {url} is left out by include/exclude (or is not a page type)")
        if problems:
            raise ConnectorConfigError(problems)
        return settings


def _urls(raw: Mapping[str, Any], name: str, problems: list[str]) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        problems.append(f"{name} must be a list of http(s) URLs")
        return ()
    out: list[str] = []
    for given in value:
        url = normalise(given)
        if url is None:
            problems.append(f"{name}: {given!r} is not an http(s) URL with a host (and no user name or password)")
        elif url not in out:
            out.append(url)
    return tuple(out)


def _rules(raw: Mapping[str, Any], name: str, problems: list[str]) -> PathRules:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        problems.append(f'{name} must be a list of path prefixes ("/docs/") or regular expressions ("re:\\\\.pdf$")')
        return PathRules()
    prefixes, patterns = [], []
    for rule in value:
        if rule.startswith("re:"):
            try:
                patterns.append(re.compile(rule[3:]))
            except re.error as exc:
                problems.append(f"{name}: {rule!r} is not a regular expression: {exc}")
        elif rule.startswith("/"):
            prefixes.append(rule)
        else:
            problems.append(f'{name}: {rule!r} is neither a path prefix (starting with /) nor "re:<regex>"')
    return PathRules(tuple(prefixes), tuple(patterns))


def _flag(raw: Mapping[str, Any], name: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        problems.append(f"{name} must be true or false")
        return default
    return value


def _whole(raw: Mapping[str, Any], name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{name} must be a whole number from {low} to {high}")
        return default
    return value


def _networks(value: Any, problems: list[str]) -> tuple[str, ...]:
    """Stricter than the shared ``settings.allowed_networks``, and worded as the web connector's
    settings always were: a crawl follows links and redirects to wherever a page points, so the
    instance-metadata ranges stay refused whatever an operator allows."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        problems.append('allowed_networks must be a list of CIDRs ("10.1.2.0/24")')
        return ()
    for cidr in value:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"allowed_networks: {cidr!r} is not a CIDR")
            continue
        if any(network.version == bad.version and network.overlaps(bad) for bad in METADATA_NETWORKS):
            problems.append(
                f"allowed_networks: {cidr} covers link-local or instance-metadata addresses, which stay refused"
            )
    return tuple(value)


# -- robots.txt ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    length: int  # the more octets, the more specific (RFC 9309)
    allow: bool
    parts: tuple[str, ...]  # the pattern split on "*"
    anchored: bool  # it ended with "$"

    def matches(self, target: str) -> bool:
        # Literal pieces found left to right: no regular expression, so no pattern backtracks.
        first, rest = self.parts[0], self.parts[1:]
        if not target.startswith(first):
            return False
        if not rest:
            return not self.anchored or target == first
        position, end, middle = len(first), len(target), rest
        if self.anchored:
            end -= len(rest[-1])
            if end < position or not target.endswith(rest[-1]):
                return False
            middle = rest[:-1]
        for part in middle:
            found = target.find(part, position, end)
            if found < 0:
                return False
            position = found + len(part)
        return True


@dataclass(frozen=True, slots=True)
class Robots:
    """The rules of one robots.txt that apply to one user agent."""

    rules: tuple[_Rule, ...] = ()
    crawl_delay: float = 0.0

    @classmethod
    def parse(cls, text: str, agent: str = AGENT) -> Robots:
        groups: list[tuple[list[str], list[_Rule], list[float]]] = []
        reading_agents = False
        for line in text.splitlines():
            name, colon, value = line.split("#", 1)[0].partition(":")
            name, value = name.strip().lower(), value.strip()
            if not colon:
                continue
            if name == "user-agent":
                if not reading_agents:
                    groups.append(([], [], []))
                    reading_agents = True
                groups[-1][0].append(value.split("/")[0].strip().lower())
            elif name in ("allow", "disallow", "crawl-delay"):
                reading_agents = False
                if not groups:
                    continue
                if name != "crawl-delay":
                    if value:
                        anchored = value.endswith("$")
                        parts = tuple((value[:-1] if anchored else value).split("*"))
                        groups[-1][1].append(_Rule(len(value), name == "allow", parts, anchored))
                    continue
                try:
                    groups[-1][2].append(max(0.0, float(value)))
                except ValueError:
                    continue
        token = agent.lower()
        chosen = [g for g in groups if token in g[0]] or [g for g in groups if "*" in g[0]]
        return cls(
            tuple(rule for g in chosen for rule in g[1]),
            max((delay for g in chosen for delay in g[2]), default=0.0),
        )

    def allows(self, target: str) -> bool:
        if target == "/robots.txt":
            return True
        best: _Rule | None = None
        for rule in self.rules:
            better = best is None or rule.length > best.length or (rule.length == best.length and rule.allow)
            if better and rule.matches(target):
                best = rule
        return best is None or best.allow


# -- pages ---------------------------------------------------------------------------------------


class _PageParser(HTMLParser):
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


def _parse_html(response: Response) -> _PageParser:
    match = CHARSET.search(response.header("content-type") or "") or CHARSET.search(
        response.body[:4096].decode("ascii", errors="replace")  # <meta charset> or http-equiv, near the top
    )
    charset = "utf-8"
    if match:
        with contextlib.suppress(LookupError):
            charset = codecs.lookup(match.group(1)).name
    parser = _PageParser()
    parser.feed(response.body[:MAX_PARSED_BYTES].decode(charset, errors="replace"))
    parser.close()
    return parser


def _page_type(response: Response) -> str | None:
    content_type = (response.header("content-type") or "").split(";")[0].strip().lower()
    if content_type in PAGE_TYPES:
        return PAGE_TYPES[content_type]
    return "pdf" if response.body.startswith(b"%PDF-") else None


def _epoch(http_date: str | None) -> int:
    if not http_date:
        return 0
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return 0
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def _gunzip(data: bytes, url: str) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_SITEMAP_BYTES + 1)
    except zlib.error as exc:
        raise SourceError(f"sitemap {url} is not valid gzip: {exc}") from exc
    if len(out) > MAX_SITEMAP_BYTES:
        raise SourceError(f"sitemap {url} decompresses to more than {MAX_SITEMAP_BYTES // MiB} MB: refused")
    return out


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _local_name(tag: Any) -> str:
    return str(tag).rpartition("}")[2]


# -- the crawl's state (the cursor) --------------------------------------------------------------


@dataclass(slots=True)
class _Page:
    """What the cursor remembers of a URL."""

    gen: int  # the pass that last reached it
    digest: str = ""  # of the body last landed; "" when the URL was merely visited (skipped, redirected, gone)
    etag: str = ""
    modified: int = 0  # Last-Modified, epoch seconds
    ext: str = "html"
    item_id: str = ""  # when it is not the URL's own (a canonical link)

    def pack(self) -> list[Any]:
        packed: list[Any] = [self.gen, self.digest, self.etag, self.modified, "" if self.ext == "html" else self.ext]
        packed.append(self.item_id)
        while len(packed) > 1 and not packed[-1]:
            packed.pop()
        return packed

    @classmethod
    def unpack(cls, raw: list[Any]) -> _Page:
        defaults: list[Any] = [0, "", "", 0, "", ""]
        gen, digest, etag, modified, ext, item_id = [*raw[:6], *defaults[len(raw) :]]
        return cls(int(gen), str(digest), str(etag), int(modified), str(ext or "html"), str(item_id))

    def validators(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = email.utils.formatdate(self.modified, usegmt=True)
        return headers


@dataclass
class _Crawl:
    gen: int = 0
    pages: dict[str, _Page] = field(default_factory=dict)  # URL → what is remembered
    pending: list[dict[str, None]] | None = None  # by depth, in discovery order; None: no pass open
    emitted: set[str] = field(default_factory=set)  # item ids yielded by this pass
    used: int = 0  # cursor characters this pass's URLs take
    count: int = 0  # URLs this pass queued
    origins: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, cursor: str | None, max_depth: int) -> _Crawl:
        crawl = cls()
        if cursor:
            try:
                crawl._read(json.loads(cursor))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                crawl = cls()  # not a cursor of this version: a new pass from scratch
        if crawl.pending is not None:
            crawl.pending = (crawl.pending + [{} for _ in range(max_depth + 1)])[: max_depth + 1]
        for url, page in crawl.pages.items():
            if page.gen == crawl.gen and crawl.pending is not None:
                crawl._count(url)
                if page.digest:
                    crawl.emitted.add(page.item_id or item_id_for(url))
        for bucket in crawl.pending or []:
            for url in bucket:
                crawl._count(url)
        return crawl

    def _read(self, doc: dict[str, Any]) -> None:
        if doc["v"] != 1:
            raise ValueError("another version")
        origins = [str(o) for o in doc["o"]]

        def url(key: str) -> str:
            index, _, path = key.partition("/")
            return f"{origins[int(index)]}/{path}"

        self.gen = int(doc["g"])
        self.pages = {url(k): _Page.unpack(v) for k, v in doc["k"].items()}
        if "q" in doc:
            self.pending = [dict.fromkeys(url(k) for k in bucket) for bucket in doc["q"]]

    def dump(self) -> str:
        text = self._serialise()
        while len(text) > MAX_CURSOR_CHARS and self._forget(len(text) - MAX_CURSOR_CHARS):
            text = self._serialise()
        return text

    def _serialise(self) -> str:
        origins: dict[str, int] = {}

        def key(url: str) -> str:
            origin = origin_of(url)
            return f"{origins.setdefault(origin, len(origins))}{url[len(origin) :]}"

        doc: dict[str, Any] = {"v": 1, "g": self.gen, "k": {key(u): p.pack() for u, p in self.pages.items()}}
        if self.pending is not None:
            doc["q"] = [[key(u) for u in bucket] for bucket in self.pending]
        doc["o"] = list(origins)
        return _compact(doc)

    def _forget(self, excess: int) -> bool:
        """Validators dropped until about ``excess`` characters are saved: older passes' pages, then
        this pass's (kept as visited). False when nothing is left to drop. What a pass queues is
        bounded by PASS_URL_CHARS, so the cursor then fits."""
        forgotten = False
        for url in [u for u, p in self.pages.items() if p.gen != self.gen]:
            if excess <= 0:
                return True
            excess -= len(url) - len(origin_of(url)) + len(_compact(self.pages.pop(url).pack())) + 4
            forgotten = True
        for url, page in self.pages.items():
            if excess <= 0:
                return True
            if page.digest:
                excess -= len(_compact(page.pack())) - len(_compact([page.gen]))
                self.pages[url] = _Page(self.gen)
                forgotten = True
        return forgotten

    def _cost(self, url: str) -> int:
        origin = origin_of(url)
        return len(url) - len(origin) + URL_OVERHEAD + (0 if origin in self.origins else len(origin) + 4)

    def _count(self, url: str) -> None:
        self.used += self._cost(url)
        self.count += 1
        self.origins.add(origin_of(url))

    def start(self, max_depth: int) -> None:
        self.gen += 1
        self.pending = [{} for _ in range(max_depth + 1)]
        self.emitted, self.used, self.count, self.origins = set(), 0, 0, set()

    def finish(self) -> None:
        self.pages = {u: p for u, p in self.pages.items() if p.gen == self.gen and p.digest}
        self.pending = None

    def visited(self, url: str) -> bool:
        page = self.pages.get(url)
        return page is not None and page.gen == self.gen

    def queued_at(self, url: str) -> int | None:
        for depth, bucket in enumerate(self.pending or []):
            if url in bucket:
                return depth
        return None

    def has_room(self, url: str, max_pages: int) -> bool:
        return self.count < max_pages and self.used + self._cost(url) <= PASS_URL_CHARS

    def push(self, url: str, depth: int) -> None:
        assert self.pending is not None
        self._count(url)
        self.pending[depth][url] = None

    def move(self, url: str, old: int, new: int) -> None:
        assert self.pending is not None
        del self.pending[old][url]
        self.pending[new][url] = None

    def pop(self) -> tuple[str, int, _Page | None] | None:
        """The next URL (shallowest first), now counted as visited, with what was known of it."""
        for depth, bucket in enumerate(self.pending or []):
            if bucket:
                url = next(iter(bucket))
                del bucket[url]
                known = self.pages.get(url)
                self.pages[url] = _Page(self.gen)
                return url, depth, known
        return None

    def keep(self, url: str, page: _Page, item_id: str) -> None:
        self.pages[url] = page
        self.emitted.add(item_id)


# -- the connector -------------------------------------------------------------------------------


class WebConnector:
    complete_listing: ClassVar[bool] = True

    def __init__(self, settings: WebSettings, http: HttpClient, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.http = http
        self.now = now
        self._robots: dict[str, Robots | None] = {}  # origin → its rules; None: the origin is refused
        self._last_request: dict[str, float] = {}  # origin → when, for Crawl-delay

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> WebConnector:
        settings = WebSettings.parse(instance.settings)
        return cls(settings, http_client(context, settings.allowed_networks), context.now or time.time)

    def changes(self, cursor: str | None) -> Iterator[Change]:
        settings = self.settings
        crawl = _Crawl.load(cursor, settings.max_depth)
        self._robots.clear()
        if crawl.pending is None:
            crawl.start(settings.max_depth)
            for url in settings.start_urls:
                if settings.respect_robots and not self._robots_allow(url):
                    raise SourceError(
                        f"robots.txt disallows start URL {url} for {AGENT} (respect_robots: false to override)"
                    )
                self._enqueue(crawl, url, 0)
            for url in self._sitemap_pages(crawl):
                self._enqueue(crawl, url, settings.max_depth)
            yield Checkpoint(crawl.dump())
        while (step := crawl.pop()) is not None:
            yield from self._visit(crawl, *step)
            if not any(crawl.pending or ()):
                break
            yield Checkpoint(crawl.dump())
        crawl.finish()
        yield Checkpoint(crawl.dump(), ends_pass=True)

    # -- what gets fetched -----------------------------------------------------------------------

    def _enqueue(self, crawl: _Crawl, url: str, depth: int) -> None:
        if depth > self.settings.max_depth or not self.settings.wants(url):
            return
        queued = crawl.queued_at(url)
        if queued is not None:
            if depth < queued:
                crawl.move(url, queued, depth)
            return
        if crawl.visited(url) or not crawl.has_room(url, self.settings.max_pages):
            return
        if self.settings.respect_robots and not self._robots_allow(url):
            return
        crawl.push(url, depth)

    def _robots_allow(self, url: str) -> bool:
        origin = origin_of(url)
        if origin not in self._robots:
            self._robots[origin] = self._read_robots(origin)
        robots = self._robots[origin]
        return robots is not None and robots.allows(_target(url))

    def _read_robots(self, origin: str) -> Robots | None:
        """A site's own robots.txt failing stops the run; another site's refuses that site."""
        ours = urlsplit(origin).hostname in self.settings.sites
        url = f"{origin}/robots.txt"
        try:
            response = self.http.get(url)
        except RateLimitedError:
            raise
        except (HttpError, BlockedAddressError):
            if ours:
                raise
            return None
        if response.status >= 500:
            if ours:
                raise HttpError(f"{url} answered {response.status}: not crawling until it can be read", response.status)
            return None
        if response.status != 200:
            return Robots()  # RFC 9309: no robots.txt (any 4xx), no rules
        return Robots.parse(response.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"))

    def _sitemap_pages(self, crawl: _Crawl) -> Iterator[str]:
        """The pages the configured sitemaps list, indexes followed, until the pass is full."""
        todo = [(url, 0) for url in self.settings.sitemaps]
        read = 0
        while todo and crawl.count < self.settings.max_pages:
            url, level = todo.pop(0)
            read += 1
            if read > MAX_SITEMAP_FILES:
                raise SourceError(f"the sitemaps name more than {MAX_SITEMAP_FILES} sitemap files; list fewer")
            root = self._read_sitemap(url)
            kind = _local_name(root.tag)
            locs = [(loc.text or "").strip() for entry in root for loc in entry if _local_name(loc.tag) == "loc"]
            if kind == "urlset":
                yield from filter(None, (normalise(loc) for loc in locs))
            elif kind == "sitemapindex" and level < MAX_SITEMAP_NESTING:
                for loc in locs:
                    target = normalise(loc)
                    if target and (not self.settings.same_site or urlsplit(target).hostname in self.settings.sites):
                        todo.append((target, level + 1))
            else:
                raise SourceError(f"sitemap {url}: <{kind}> is not a <urlset> or a <sitemapindex> (nested ≤ 2)")

    def _read_sitemap(self, url: str) -> Any:
        response = self.http.get(url)
        if response.status >= 500:
            raise HttpError(f"sitemap {url} answered {response.status}", response.status)
        if response.status != 200:
            raise SourceError(f"sitemap {url} answered {response.status}")
        data = response.body
        if data[:2] == b"\x1f\x8b":
            data = _gunzip(data, url)
        try:
            return fromstring(data, forbid_dtd=True)
        except (ParseError, DefusedXmlException) as exc:
            raise SourceError(f"sitemap {url} is not readable XML: {exc}") from exc

    # -- one page --------------------------------------------------------------------------------

    def _visit(self, crawl: _Crawl, url: str, depth: int, known: _Page | None) -> Iterator[Change]:
        start = url in self.settings.start_urls
        if self.settings.respect_robots and not self._robots_allow(url):
            return  # a resumed pass: robots.txt changed since the URL was queued
        leaf = depth >= self.settings.max_depth or (known is not None and known.ext != "html")
        headers = known.validators() if known is not None and known.digest and leaf else {}
        self._pause(url)
        try:
            response = self.http.request("GET", url, headers=headers, follow_redirects=False)
        except RateLimitedError:
            raise
        except BlockedAddressError:
            if start:
                raise
            return
        except HttpError:
            if start:
                raise
            yield from self._still_there(crawl, url, known)
            return
        status = response.status
        if status in REDIRECTS:
            target = normalise(response.header("location") or "", url)
            if target and target != url:
                self._enqueue(crawl, target, depth)
        elif status == 304 and known is not None and known.digest:
            yield from self._still_there(crawl, url, known)
        elif status in GONE:
            if start:
                raise SourceError(f"start URL {url} answered {status}")
            item_id = known.item_id if known is not None and known.item_id else item_id_for(url)
            if item_id not in crawl.emitted:
                yield Tombstone(item_id)
        elif status >= 500:
            if start:
                raise HttpError(f"start URL {url} answered {status}", status)
            yield from self._still_there(crawl, url, known)
        elif status == 200:
            yield from self._page(crawl, url, depth, known, response)
        elif start:
            raise SourceError(f"start URL {url} answered {status}")

    def _still_there(self, crawl: _Crawl, url: str, known: _Page | None) -> Iterator[Change]:
        if known is None or not known.digest:
            return
        item_id = known.item_id or item_id_for(url)
        if item_id not in crawl.emitted:
            crawl.keep(url, dataclasses.replace(known, gen=crawl.gen), item_id)
            yield Unchanged(item_id)

    def _page(self, crawl: _Crawl, url: str, depth: int, known: _Page | None, response: Response) -> Iterator[Change]:
        ext = _page_type(response)
        if ext is None:
            return
        own_id = item_id = item_id_for(url)
        title = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]) or None
        if ext == "html":
            parsed = _parse_html(response)
            base = normalise(parsed.base, url) if parsed.base else url
            if depth < self.settings.max_depth and not (self.settings.respect_robots and parsed.nofollow):
                for href in parsed.links:
                    link = normalise(href, base)
                    if link:
                        self._enqueue(crawl, link, depth + 1)
            if self.settings.respect_robots and parsed.noindex:
                return
            canonical = normalise(parsed.canonical, base) if parsed.canonical else None
            if canonical and urlsplit(canonical).hostname == urlsplit(url).hostname:
                item_id = item_id_for(canonical)
            title = parsed.title or title
        if item_id in crawl.emitted:
            return
        etag = response.header("etag") or ""
        etag = etag if len(etag) <= MAX_ETAG_CHARS and etag.isascii() else ""
        modified = _epoch(response.header("last-modified"))
        digest = hashlib.sha256(response.body).hexdigest()[:DIGEST_CHARS]
        page = _Page(crawl.gen, digest, etag, modified, ext, "" if item_id == own_id else item_id)
        crawl.keep(url, page, item_id)
        if known is not None and (known.digest, known.ext, known.item_id) == (digest, ext, page.item_id):
            yield Unchanged(item_id)
            return
        yield Item(
            item_id=item_id,
            body=response.body,
            ext=ext,
            title=title,
            source_url=url,
            updated_at=datetime.fromtimestamp(modified, UTC).isoformat(timespec="seconds") if modified else None,
        )

    def _pause(self, url: str) -> None:
        """Crawl-delay between two requests to one origin (the HttpClient's sleep, capped)."""
        origin = origin_of(url)
        robots = self._robots.get(origin)
        delay = min(robots.crawl_delay, MAX_CRAWL_DELAY) if robots is not None else 0.0
        last = self._last_request.get(origin)
        if delay > 0 and last is not None:
            wait = last + delay - self.now()
            if wait > 0:
                self.http.sleep(wait)
        self._last_request[origin] = self.now()
