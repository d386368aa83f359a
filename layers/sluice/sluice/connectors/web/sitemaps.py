"""The pages a site's sitemaps list: sitemap indexes followed (nested at most twice), gzip inflated
within a bound, XML read without DTDs or entities."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from sluice.connectors import SourceError
from sluice.connectors.http import HttpClient, HttpError
from sluice.connectors.web.settings import WebSettings
from sluice.connectors.web.urls import normalise

MiB = 1024 * 1024
MAX_SITEMAP_BYTES = 50 * MiB  # decompressed (sitemaps.org's limit): a gzip bomb stops here
MAX_SITEMAP_FILES = 50  # per pass, indexes included
MAX_SITEMAP_NESTING = 2  # an index of indexes, no deeper


def sitemap_pages(http: HttpClient, settings: WebSettings, has_room: Callable[[], bool]) -> Iterator[str]:
    """The pages the configured sitemaps list, indexes followed, while the pass has room."""
    todo = [(url, 0) for url in settings.sitemaps]
    read = 0
    while todo and has_room():
        url, level = todo.pop(0)
        read += 1
        if read > MAX_SITEMAP_FILES:
            raise SourceError(f"the sitemaps name more than {MAX_SITEMAP_FILES} sitemap files; list fewer")
        root = _read_sitemap(http, url)
        kind = _local_name(root.tag)
        locs = [(loc.text or "").strip() for entry in root for loc in entry if _local_name(loc.tag) == "loc"]
        if kind == "urlset":
            yield from filter(None, (normalise(loc) for loc in locs))
        elif kind == "sitemapindex" and level < MAX_SITEMAP_NESTING:
            for loc in locs:
                target = normalise(loc)
                if target and (not settings.same_site or urlsplit(target).hostname in settings.sites):
                    todo.append((target, level + 1))
        else:
            raise SourceError(f"sitemap {url}: <{kind}> is not a <urlset> or a <sitemapindex> (nested ≤ 2)")


def _read_sitemap(http: HttpClient, url: str) -> Any:
    response = http.get(url)
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


def _gunzip(data: bytes, url: str) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_SITEMAP_BYTES + 1)
    except zlib.error as exc:
        raise SourceError(f"sitemap {url} is not valid gzip: {exc}") from exc
    if len(out) > MAX_SITEMAP_BYTES:
        raise SourceError(f"sitemap {url} decompresses to more than {MAX_SITEMAP_BYTES // MiB} MB: refused")
    return out


def _local_name(tag: Any) -> str:
    return str(tag).rpartition("}")[2]
