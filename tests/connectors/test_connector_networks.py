"""Where the HTTP client every connector uses may go: the web's ports only (80 and 443), private
networks only when an operator's allowed_networks names them, and the link-local and
instance-metadata ranges never, whatever a connector's settings say."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sluice.connectors import ConnectorConfigError, Context, Instance, connector_class
from sluice.connectors.http import BlockedAddressError, HttpClient


def _resolving_to(address: str) -> Any:
    return lambda *args: [(10 if ":" in address else 2, 1, 6, "", (address, 0))]


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


# -- allowed_networks never reopens the instance metadata service ---------------------------------

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

# Each connector that takes allowed_networks, with settings and a secret it otherwise accepts.
CONNECTORS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "web": ({"start_urls": ["http://wiki.internal/"]}, {}),
    "slack": ({"channels": ["C024BE91L"], "api_url": "http://slack.internal/api"}, {"token": "xoxb-test"}),
    "salesforce": ({"instance_url": "http://crm.internal"}, {"client_id": "id", "client_secret": "secret"}),
    "snowflake": (
        {
            "account": "xy12345.us-east-1",
            "user": "reader",
            "api_url": "http://snowflake.internal",
            "sql": "select * from docs where updated > ?",
            "id_column": "ID",
            "cursor_column": "UPDATED",
            "initial_cursor": "1970-01-01",
        },
        {"private_key": _PEM.decode()},
    ),
}
METADATA_CIDRS = ["0.0.0.0/0", "169.254.0.0/16", "169.254.169.254/32", "::/0", "fd00:ec2::/32", "fd00:ec2::254/128"]


def _build(kind: str, networks: list[str]) -> object:
    settings, secret = CONNECTORS[kind]
    instance = Instance("internal", kind, {**settings, "allowed_networks": networks}, "sluice/test")
    return connector_class(kind).from_instance(instance, Context(secret=secret, http=HttpClient()))


@pytest.mark.parametrize("cidr", METADATA_CIDRS)
@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_an_allowed_network_covering_instance_metadata_is_a_settings_problem(kind: str, cidr: str) -> None:
    with pytest.raises(ConnectorConfigError) as error:
        _build(kind, ["10.0.0.0/8", cidr])

    assert error.value.problems == [
        f"allowed_networks: {cidr} covers link-local or instance-metadata addresses, which stay refused"
    ]


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_an_ordinary_private_network_is_accepted(kind: str) -> None:
    connector = _build(kind, ["10.0.0.0/8", "fd12:3456::/32"])

    client = connector.api.http if kind == "slack" else connector.http  # type: ignore[attr-defined]
    assert list(client.allowed_networks) == ["10.0.0.0/8", "fd12:3456::/32"]


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_every_bad_entry_is_named_at_once(kind: str) -> None:
    with pytest.raises(ConnectorConfigError) as error:
        _build(kind, ["nope", "169.254.0.0/16", "::/0"])

    assert error.value.problems == [
        "allowed_networks: 'nope' is not a CIDR",
        "allowed_networks: 169.254.0.0/16 covers link-local or instance-metadata addresses, which stay refused",
        "allowed_networks: ::/0 covers link-local or instance-metadata addresses, which stay refused",
    ]


@pytest.mark.parametrize(
    ("networks", "address"),
    [
        (["0.0.0.0/0"], "169.254.169.254"),
        (["169.254.0.0/16"], "169.254.170.2"),
        (["::/0"], "fd00:ec2::254"),
        (["::/0"], "::ffff:169.254.169.254"),
        (["::/0"], "64:ff9b::a9fe:a9fe"),
    ],
)
def test_the_guard_refuses_metadata_addresses_even_to_a_client_built_with_a_wide_network(
    networks: list[str], address: str
) -> None:
    client = HttpClient(allowed_networks=networks, resolve=_resolving_to(address))

    with pytest.raises(BlockedAddressError, match="is not a public address"):
        client.check("http://metadata.internal/latest/meta-data/")
