"""One pass of the crawl: start URLs and sitemap pages queued, each page visited breadth first."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from sluice.connectors import Change, Checkpoint, Context, Instance, Item, SourceError, Tombstone, Unchanged
from sluice.connectors.http import REDIRECTS, BlockedAddressError, HttpClient, HttpError, RateLimitedError, Response
from sluice.connectors.settings import http_client
from sluice.connectors.web.cursor import Crawl, KnownPage
from sluice.connectors.web.pages import http_date_epoch, page_type, parse_html
from sluice.connectors.web.robots import AGENT, SiteRobots
from sluice.connectors.web.settings import WebSettings
from sluice.connectors.web.sitemaps import sitemap_pages
from sluice.connectors.web.urls import item_id_for, normalise

MAX_ETAG_CHARS = 200  # a longer ETag is not remembered
DIGEST_CHARS = 16  # hex characters of a body's SHA-256 kept in the cursor
GONE = frozenset({404, 410})


class WebConnector:
    complete_listing: ClassVar[bool] = True

    def __init__(self, settings: WebSettings, http: HttpClient, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.http = http
        self.now = now
        self.robots = SiteRobots(http, settings.sites, now)

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> WebConnector:
        settings = WebSettings.parse(instance.settings)
        return cls(settings, http_client(context, settings.allowed_networks), context.now or time.time)

    def changes(self, cursor: str | None) -> Iterator[Change]:
        settings = self.settings
        crawl = Crawl.load(cursor, settings.max_depth)
        self.robots.forget()
        if crawl.pending is None:
            crawl.start(settings.max_depth)
            for url in settings.start_urls:
                if settings.respect_robots and not self.robots.allow(url):
                    raise SourceError(
                        f"robots.txt disallows start URL {url} for {AGENT} (respect_robots: false to override)"
                    )
                self._enqueue(crawl, url, 0)
            for url in sitemap_pages(self.http, settings, lambda: crawl.count < settings.max_pages):
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

    def _enqueue(self, crawl: Crawl, url: str, depth: int) -> None:
        if depth > self.settings.max_depth or not self.settings.wants(url):
            return
        queued = crawl.queued_at(url)
        if queued is not None:
            if depth < queued:
                crawl.move(url, queued, depth)
            return
        if crawl.visited(url) or not crawl.has_room(url, self.settings.max_pages):
            return
        if self.settings.respect_robots and not self.robots.allow(url):
            return
        crawl.push(url, depth)

    # -- one page --------------------------------------------------------------------------------

    def _visit(self, crawl: Crawl, url: str, depth: int, known: KnownPage | None) -> Iterator[Change]:
        start = url in self.settings.start_urls
        if self.settings.respect_robots and not self.robots.allow(url):
            return  # a resumed pass: robots.txt changed since the URL was queued
        leaf = depth >= self.settings.max_depth or (known is not None and known.ext != "html")
        headers = known.validators() if known is not None and known.digest and leaf else {}
        self.robots.pause(url)
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

    def _still_there(self, crawl: Crawl, url: str, known: KnownPage | None) -> Iterator[Change]:
        if known is None or not known.digest:
            return
        item_id = known.item_id or item_id_for(url)
        if item_id not in crawl.emitted:
            crawl.keep(url, dataclasses.replace(known, gen=crawl.gen), item_id)
            yield Unchanged(item_id)

    def _page(
        self, crawl: Crawl, url: str, depth: int, known: KnownPage | None, response: Response
    ) -> Iterator[Change]:
        ext = page_type(response)
        if ext is None:
            return
        own_id = item_id = item_id_for(url)
        title = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]) or None
        if ext == "html":
            parsed = parse_html(response)
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
        modified = http_date_epoch(response.header("last-modified"))
        digest = hashlib.sha256(response.body).hexdigest()[:DIGEST_CHARS]
        page = KnownPage(crawl.gen, digest, etag, modified, ext, "" if item_id == own_id else item_id)
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
