"""The crawl's state between runs: what each URL was last time, and the open pass's queue.

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

import email.utils
import json
from dataclasses import dataclass, field
from typing import Any

from sluice.connectors.web.urls import item_id_for, origin_of

MAX_CURSOR_CHARS = 300_000
PASS_URL_CHARS = 250_000  # what a pass's URLs may take of the cursor
URL_OVERHEAD = 12  # characters a URL costs in the cursor besides its key


@dataclass(slots=True)
class KnownPage:
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
    def unpack(cls, raw: list[Any]) -> KnownPage:
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
class Crawl:
    gen: int = 0
    pages: dict[str, KnownPage] = field(default_factory=dict)  # URL → what is remembered
    pending: list[dict[str, None]] | None = None  # by depth, in discovery order; None: no pass open
    emitted: set[str] = field(default_factory=set)  # item ids yielded by this pass
    used: int = 0  # cursor characters this pass's URLs take
    count: int = 0  # URLs this pass queued
    origins: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, cursor: str | None, max_depth: int) -> Crawl:
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
        self.pages = {url(k): KnownPage.unpack(v) for k, v in doc["k"].items()}
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
                self.pages[url] = KnownPage(self.gen)
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

    def pop(self) -> tuple[str, int, KnownPage | None] | None:
        """The next URL (shallowest first), now counted as visited, with what was known of it."""
        for depth, bucket in enumerate(self.pending or []):
            if bucket:
                url = next(iter(bucket))
                del bucket[url]
                known = self.pages.get(url)
                self.pages[url] = KnownPage(self.gen)
                return url, depth, known
        return None

    def keep(self, url: str, page: KnownPage, item_id: str) -> None:
        self.pages[url] = page
        self.emitted.add(item_id)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
