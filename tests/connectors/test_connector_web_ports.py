"""The HTTP client every connector uses fetches from the web's ports only (SECURITY.md: 80 and 443);
an operator's allowed_networks may reach another port on purpose."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.connectors.http import BlockedAddressError, HttpClient


def _resolving_to(address: str) -> Any:
    return lambda *args: [(2, 1, 6, "", (address, 0))]


@pytest.mark.parametrize("url", ["http://example.com:9001/", "https://example.com:8443/", "http://example.com:22/"])
def test_other_ports_are_refused(url: str) -> None:
    with pytest.raises(BlockedAddressError, match="is not fetched"):
        HttpClient(resolve=_resolving_to("93.184.216.34")).check(url)


@pytest.mark.parametrize("url", ["http://example.com/", "https://example.com/", "http://example.com:80/"])
def test_the_web_ports_are_fetched(url: str) -> None:
    assert HttpClient(resolve=_resolving_to("93.184.216.34")).check(url)[3] == "93.184.216.34"


def test_an_allowed_network_may_be_reached_on_any_port() -> None:
    client = HttpClient(allowed_networks=["10.1.2.0/24"], resolve=_resolving_to("10.1.2.3"))
    assert client.check("http://wiki.internal:8080/")[2] == 8080
