"""Checks and helpers that every connector's settings go through, kept in one place so that an
operator gets the same answer from each connector for the same mistake (a misspelt setting, an
http URL, a bad CIDR), and so that a fix to one of them reaches all connectors at once.

Each check appends what is wrong to ``problems`` (or returns a list of them) rather than raising:
a connector reports every problem of its settings in one ConnectorConfigError.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sluice.connectors import ConnectorConfigError, Context
from sluice.connectors.http import HttpClient


def unknown_settings(settings: Mapping[str, Any], known: Sequence[str], where: str = "") -> list[str]:
    """One problem per setting no connector reads, with the likeliest intended name: a typo would
    otherwise leave a default in force without a word. ``where`` prefixes each (a nested object)."""
    problems = []
    for key in settings:
        if key not in known:
            close = _closest(key, known)
            problems.append(f"{where}unknown setting {key!r}" + (f" (did you mean {close!r}?)" if close else ""))
    return problems


def unknown_settings_listed(settings: Mapping[str, Any], known: Sequence[str]) -> list[str]:
    """Like ``unknown_settings``, in the wording of the connectors with a short, flat list of
    settings (s3, redshift, web): sorted, and naming them all when none is close."""
    problems = []
    for key in sorted(set(settings) - set(known), key=str):
        close = _closest(key, known)
        hint = f"; did you mean {close!r}?" if close else f"; the settings are {', '.join(known)}"
        problems.append(f"unknown setting {key!r}{hint}")
    return problems


def _closest(key: Any, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(str(key), known, n=1)
    return close[0] if close else None


def allowed_networks(value: Any, problems: list[str]) -> tuple[str, ...]:
    """The CIDRs the HTTP client may reach although they are not public (a test server, an internal
    proxy); checked here so that a bad entry is a settings problem, not a failure mid-run."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append("allowed_networks must be a list of CIDRs")
        return ()
    for network in value:
        try:
            ipaddress.ip_network(str(network), strict=False)
        except ValueError:
            problems.append(f"allowed_networks: {network!r} is not a network (like 10.0.0.0/16)")
    return tuple(str(n) for n in value)


def check_url(name: str, url: Any, networks: Sequence[str], problems: list[str]) -> None:
    """https, or http only where an operator allowed a private network (a test, an internal proxy)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{name} must be an https URL, not {url!r}")
    elif parts.scheme == "http" and not networks:
        problems.append(f"{name} must use https (credentials travel with every request): {url!r}")


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
