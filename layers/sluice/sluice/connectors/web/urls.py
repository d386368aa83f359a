"""URLs in the one form the crawl compares, and the item id a URL becomes."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, urljoin, urlsplit

from sluice.connectors import MAX_ITEM_ID, safe_item_id

MAX_URL_CHARS = 1000  # longer links are not followed


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


def path_and_query(url: str) -> str:
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
