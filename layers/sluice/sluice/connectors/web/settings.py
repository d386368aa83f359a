"""The web connector's settings (listed in the package's docstring), every problem reported at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sluice.connectors.settings import Problems, allowed_networks, unknown_settings_listed
from sluice.connectors.web.urls import normalise, path_and_query

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
DEFAULT_MAX_DEPTH, MAX_DEPTH = 2, 10
DEFAULT_MAX_PAGES, MAX_PAGES = 500, 5000
# Links with these extensions are not fetched: they are never a page.
SKIPPED = re.compile(
    r"\.(png|jpe?g|gif|webp|svg|ico|bmp|tiff?|avif|css|m?js|map|json|xml|rss|atom|woff2?|ttf|otf|eot|zip|gz|tgz|bz2|xz"
    r"|7z|rar|tar|jar|dmg|exe|msi|iso|apk|bin|mp[34]|m4[av]|wav|ogg|webm|avi|mov|mkv|flv|docx?|xlsx?|pptx?|od[tsp]|epub)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PathRules:
    """Path prefixes, and regular expressions searched in path + query."""

    prefixes: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.patterns)

    def match(self, url: str) -> bool:
        path = urlsplit(url).path
        return any(path.startswith(p) for p in self.prefixes) or any(
            p.search(path_and_query(url)) for p in self.patterns
        )


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
        problems = Problems()
        unknown_settings_listed(raw, SETTINGS, problems)
        start_urls = _urls(raw, "start_urls", problems)
        sitemaps = _urls(raw, "sitemaps", problems)
        if not start_urls and not sitemaps and not problems:
            problems.add("start_urls or sitemaps is required: the pages to start from, or the site's sitemaps")
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
            allowed_networks(raw.get("allowed_networks"), problems),
        )
        for url in start_urls:
            if not settings.wants(url):
                problems.add(f"start URL {url} is left out by include/exclude (or is not a page type)")
        problems.raise_any()
        return settings


def _urls(raw: Mapping[str, Any], name: str, problems: Problems) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        problems.add(f"{name} must be a list of http(s) URLs")
        return ()
    out: list[str] = []
    for given in value:
        url = normalise(given)
        if url is None:
            problems.add(f"{name}: {given!r} is not an http(s) URL with a host (and no user name or password)")
        elif url not in out:
            out.append(url)
    return tuple(out)


def _rules(raw: Mapping[str, Any], name: str, problems: Problems) -> PathRules:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        problems.add(f'{name} must be a list of path prefixes ("/docs/") or regular expressions ("re:\\\\.pdf$")')
        return PathRules()
    prefixes, patterns = [], []
    for rule in value:
        if rule.startswith("re:"):
            try:
                patterns.append(re.compile(rule[3:]))
            except re.error as exc:
                problems.add(f"{name}: {rule!r} is not a regular expression: {exc}")
        elif rule.startswith("/"):
            prefixes.append(rule)
        else:
            problems.add(f'{name}: {rule!r} is neither a path prefix (starting with /) nor "re:<regex>"')
    return PathRules(tuple(prefixes), tuple(patterns))


def _flag(raw: Mapping[str, Any], name: str, default: bool, problems: Problems) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        problems.add(f"{name} must be true or false")
        return default
    return value


def _whole(raw: Mapping[str, Any], name: str, default: int, low: int, high: int, problems: Problems) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(f"{name} must be a whole number from {low} to {high}")
        return default
    return value
