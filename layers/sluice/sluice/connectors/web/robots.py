"""robots.txt, read once per origin per pass, and the pause between two requests it asks for.

robots.txt (RFC 9309): the group for ``SluiceConnector``, else ``*``; the longest matching Allow or
Disallow wins (Allow on a tie), ``*`` and ``$`` understood; ``Crawl-delay`` honoured up to 10 s
between requests to a host. A 4xx robots.txt allows everything; a 5xx or an unreachable one stops the
run (RFC 9309 says assume everything disallowed, and a pass that sees nothing would sweep everything),
and so does a start URL it disallows.
``<meta name="robots" content="noindex">`` keeps a page out, ``nofollow`` keeps its links out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sluice.connectors.http import BlockedAddressError, HttpClient, HttpError, RateLimitedError
from sluice.connectors.web.urls import origin_of, path_and_query

AGENT = "SluiceConnector"  # the robots.txt product token (the HttpClient's User-Agent starts with it)
MAX_CRAWL_DELAY = 10.0  # seconds; a longer Crawl-delay is shortened to this
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309's minimum a crawler must read


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


class SiteRobots:
    """The robots.txt of each origin a pass reaches, read on first use, and its Crawl-delay kept.

    A site's own robots.txt (a host of the start URLs or sitemaps) failing stops the run; another
    site's refuses that site."""

    def __init__(self, http: HttpClient, own_hosts: frozenset[str], now: Callable[[], float]) -> None:
        self.http = http
        self.own_hosts = own_hosts
        self.now = now
        self._robots: dict[str, Robots | None] = {}  # origin → its rules; None: the origin is refused
        self._last_request: dict[str, float] = {}  # origin → when, for Crawl-delay

    def forget(self) -> None:
        """A new run reads robots.txt again."""
        self._robots.clear()

    def allow(self, url: str) -> bool:
        origin = origin_of(url)
        if origin not in self._robots:
            self._robots[origin] = self._read(origin)
        robots = self._robots[origin]
        return robots is not None and robots.allows(path_and_query(url))

    def _read(self, origin: str) -> Robots | None:
        ours = urlsplit(origin).hostname in self.own_hosts
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

    def pause(self, url: str) -> None:
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
