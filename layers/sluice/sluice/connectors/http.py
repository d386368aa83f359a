"""The one HTTP client connectors use: SSRF-guarded, rate-limit aware, bounded.

A connector fetches URLs that come from configuration and, worse, from the pages it fetches (links,
sitemaps, redirects). Any of them may point at the instance metadata service (169.254.169.254), at
localhost or at the VPC. So every request, and every redirect hop, is checked where it matters: the
host name is resolved once, *every* address it resolves to must be public (a name that also
resolves privately is refused: DNS rebinding), and the connection is made to that checked address
(pinned), never by resolving the name again. The forms that fool naive checks go through the same
path: ``http://2130706433/`` and ``http://0177.0.0.1/`` resolve to 127.0.0.1, ``[::ffff:7f00:1]``
is checked as its IPv4 address, NAT64 and 6to4 embed one too.

``allowed_networks`` lets an operator reach an internal site on purpose (and tests reach their
fake servers on 127.0.0.1); nothing else does. No entry may cover the link-local and instance-metadata
ranges (METADATA_NETWORKS): every connector's settings refuse such an entry (``reaches_metadata``),
and the guard never lets one through even if a client is built with it.

429 and 502/503/504 are retried, honouring ``Retry-After`` (seconds or an HTTP date) up to
``max_retry_after``; a longer wait raises RateLimitedError, so the run stops and resumes later
instead of sleeping out its budget. Bodies are capped at ``max_bytes``; nothing is decompressed
here (``Accept-Encoding: identity``), so a compression bomb cannot hide behind a small download.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from sluice.connectors import SourceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RETRYABLE = frozenset({429, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: site-local translation, never public
_6TO4 = ipaddress.ip_network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d, still routed by some stacks
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Never reachable on purpose, whatever allowed_networks says: the instance metadata service and the
# container credentials endpoint (link-local, and AWS's IPv6 fd00:ec2::254), with the IPv6 forms
# that embed 169.254.0.0/16 (mapped, NAT64, IPv4-compatible, SIIT, 6to4).
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::/32",
        "::ffff:169.254.0.0/112",
        "64:ff9b::a9fe:0/112",
        "::a9fe:0/112",
        "::ffff:0:a9fe:0/112",
        "2002:a9fe::/32",
    )
)


class BlockedAddressError(SourceError):
    """The URL leads somewhere a connector must not go."""


class HttpError(RuntimeError):
    """A transport failure, or a retryable status that stayed so after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimitedError(HttpError):
    """The server asked for a longer pause than a run should sleep; resume on the next run."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(f"{url} asks to wait {seconds:.0f} s (Retry-After); resuming on the next run", 429)
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    url: str  # after redirects
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _6TO4:
        return address.sixtofour
    return None


def is_public(address: IPAddress) -> bool:
    """Routable on the internet: not loopback, private, link-local, shared, reserved or multicast."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    if address in _NAT64_LOCAL:
        return False
    return address.is_global and not address.is_multicast


def reaches_metadata(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether a network an operator would allow overlaps the link-local or instance-metadata ranges
    (``0.0.0.0/0`` and ``::/0`` do): such an entry is refused, whichever connector it is given to."""
    return any(network.version == bad.version and network.overlaps(bad) for bad in METADATA_NETWORKS)


def _metadata(address: IPAddress) -> bool:
    inner = _embedded_ipv4(address) or address
    return any(inner in network for network in METADATA_NETWORKS)


@dataclass
class HttpClient:
    allowed_networks: Sequence[str] = ()
    allowed_ports: Sequence[int] = (80, 443)
    timeout: float = 20.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    retries: int = 4
    max_retry_after: float = 60.0
    user_agent: str = "SluiceConnector/1.0"
    sleep: Callable[[float], None] = time.sleep
    resolve: Callable[..., list[Any]] = socket.getaddrinfo
    _allowed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]

    # -- the guard -------------------------------------------------------------------------------

    def check(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, the address to connect to) for a URL a connector may fetch."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedAddressError(f"{url}: only http and https URLs are fetched")
        if parts.username or parts.password:
            raise BlockedAddressError(f"{url}: URLs with credentials in them are refused")
        host = parts.hostname
        if not host:
            raise BlockedAddressError(f"{url}: no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise BlockedAddressError(f"{url}: {exc}") from exc
        try:
            infos = self.resolve(host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise HttpError(f"{url}: cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise HttpError(f"{url}: {host} resolves to nothing")
        allowed = [
            any(address in network for network in self._allowed) and not _metadata(address) for address in addresses
        ]
        for address, on_purpose in zip(addresses, allowed, strict=True):
            if not (is_public(address) or on_purpose):
                raise BlockedAddressError(f"{url}: {host} resolves to {address}, which is not a public address")
        if port not in self.allowed_ports and not all(allowed):
            # Internal services listen on odd ports; the web is on 80 and 443 (an operator's
            # allowed_networks may reach others on purpose).
            raise BlockedAddressError(
                f"{url}: port {port} is not fetched (only {', '.join(map(str, self.allowed_ports))})"
            )
        return parts.scheme, host, port, str(addresses[0])

    # -- requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        follow_redirects: bool = True,
    ) -> Response:
        """The response (any status but a retryable one, which is retried), after redirects.

        A redirect to another origin (scheme, host or port) drops the credential headers
        (Authorization, Proxy-Authorization, Cookie): a token meant for one host never reaches another."""
        headers = dict(headers or {})
        for _ in range(self.max_redirects + 1):
            response = self._with_retries(method, url, headers, body)
            location = response.header("location")
            if not (follow_redirects and response.status in REDIRECTS and location):
                return response
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            url = target
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise HttpError(f"{url}: more than {self.max_redirects} redirects")

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("GET", url, headers=headers)

    def _with_retries(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        for attempt in range(self.retries + 1):
            try:
                response = self._once(method, url, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                if attempt == self.retries:
                    raise HttpError(f"{method} {url}: {exc}") from exc
                self.sleep(self._backoff(attempt))
                continue
            if response.status not in RETRYABLE:
                return response
            if attempt == self.retries:
                raise HttpError(
                    f"{method} {url}: HTTP {response.status} after {self.retries + 1} attempts", response.status
                )
            wait = _retry_after(response.header("retry-after"))
            if wait is not None and wait > self.max_retry_after:
                raise RateLimitedError(url, wait)
            self.sleep(wait if wait is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _backoff(attempt: int) -> float:
        return random.uniform(0, min(30.0, 0.5 * 2**attempt))  # jitter, not secrecy

    def _once(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        scheme, host, port, address = self.check(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not target.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
            # http.client would refuse it with an HTTPException, which would be retried in vain
            raise HttpError(f"{url}: the path has spaces, control or non-ASCII characters (percent-encode them)")
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = _PinnedHTTPS(host, port, address, self.timeout)
        else:
            connection = _PinnedHTTP(host, port, address, self.timeout)
        try:
            sent = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", **headers}
            connection.request(method, target, body=body, headers=sent)
            raw = connection.getresponse()
            data = raw.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise HttpError(f"{url}: response larger than {self.max_bytes} bytes")
            return Response(raw.status, url, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            connection.close()


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address, verified against the host name (SNI and certificate)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
