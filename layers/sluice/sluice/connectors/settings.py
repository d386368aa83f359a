"""Checks and helpers that every connector's settings go through, kept in one place so that an
operator gets the same answer from each connector for the same mistake (a misspelt setting, an
http URL, a bad CIDR), and so that a fix to one of them reaches all connectors at once.

Every check adds what is wrong to one ``Problems`` collector rather than raising; the connector
calls ``problems.raise_any()`` once its settings are read, so one ConnectorConfigError names every
problem at once (a schedule that fails on the second typo after the first is fixed wastes a night).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sluice.connectors import ConnectorConfigError, Context
from sluice.connectors.http import HttpClient, reaches_metadata


class Problems:
    """What is wrong with one instance's settings, collected while every setting is read."""

    def __init__(self) -> None:
        self._found: list[str] = []

    def add(self, problem: str) -> None:
        self._found.append(problem)

    def __len__(self) -> int:
        return len(self._found)

    def raise_any(self) -> None:
        """ConnectorConfigError naming every problem, when there is one."""
        if self._found:
            raise ConnectorConfigError(self._found)


def unknown_settings(settings: Mapping[str, Any], known: Sequence[str], problems: Problems, where: str = "") -> None:
    """One problem per setting no connector reads, with the likeliest intended name: a typo would
    otherwise leave a default in force without a word. ``where`` prefixes each (a nested object)."""
    for key in settings:
        if key not in known:
            close = _closest(key, known)
            problems.add(f"{where}unknown setting {key!r}" + (f" (did you mean {close!r}?)" if close else ""))


def unknown_settings_listed(settings: Mapping[str, Any], known: Sequence[str], problems: Problems) -> None:
    """Like ``unknown_settings``, in the wording of the connectors with a short, flat list of
    settings (s3, redshift, web): sorted, and naming them all when none is close."""
    for key in sorted(set(settings) - set(known), key=str):
        close = _closest(key, known)
        hint = f"; did you mean {close!r}?" if close else f"; the settings are {', '.join(known)}"
        problems.add(f"unknown setting {key!r}{hint}")


def _closest(key: Any, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(str(key), known, n=1)
    return close[0] if close else None


def allowed_networks(value: Any, problems: Problems) -> tuple[str, ...]:
    """The CIDRs the HTTP client may reach although they are not public (a test server, an intranet
    site, an internal proxy); checked here so that a bad entry is a settings problem, not a failure
    mid-run. An entry that covers the link-local or instance-metadata ranges (``0.0.0.0/0``,
    ``169.254.0.0/16``, ``::/0``, ``fd00:ec2::/32``) is refused for every connector: a link, a
    redirect or a configured URL could otherwise reach the instance's credentials."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        problems.add('allowed_networks must be a list of CIDRs ("10.1.2.0/24")')
        return ()
    for cidr in value:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.add(f"allowed_networks: {cidr!r} is not a CIDR")
            continue
        if reaches_metadata(network):
            problems.add(
                f"allowed_networks: {cidr} covers link-local or instance-metadata addresses, which stay refused"
            )
    return tuple(value)


def check_url(name: str, url: Any, networks: Sequence[str], problems: Problems) -> None:
    """https, or http only where an operator allowed a private network (a test, an internal proxy)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(f"{name} must be an https URL, not {url!r}")
    elif parts.scheme == "http" and not networks:
        problems.add(f"{name} must use https (credentials travel with every request): {url!r}")


def http_client(context: Context, networks: Sequence[str]) -> Any:
    """The context's client, widened to ``allowed_networks`` when the settings give some: a copy, so
    that one instance's exception reaches no other instance sharing the client."""
    base = context.http if context.http is not None else HttpClient()
    if networks and isinstance(base, HttpClient):
        return dataclasses.replace(base, allowed_networks=tuple(networks))
    return base


def aws_factory(context: Context, kind: str) -> Callable[..., Any]:
    """The context's AWS client factory, which a connector that reads AWS services cannot do without:
    refused when the instance is built rather than when the first call fails."""
    if context.aws is None:
        raise ConnectorConfigError([f"the {kind} connector needs an AWS client factory (context.aws)"])
    return context.aws


def principals(text: str) -> tuple[str, ...]:
    """``group:support, user:Ana@Example.com`` as principals; empty when any entry is not one,
    since a partly read access list is not the one its owner meant."""
    found = []
    for entry in (e.strip() for e in text.split(",")):
        kind, _, name = entry.partition(":")
        kind, name = kind.strip().lower(), name.strip()
        if kind not in ("user", "group") or not name:
            return ()
        found.append(f"{kind}:{name.lower() if kind == 'user' else name}")
    return tuple(dict.fromkeys(found))
