"""The configuration examples people copy (README and docs/connectors.md) are valid: the README's
document parses, and every connector builds from its example settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sluice.connectors import Context, Instance, connector_class
from sluice.connectors.config import parse_config
from sluice.connectors.http import HttpClient

ROOT = Path(__file__).resolve().parents[2]


def _json_blocks(path: Path) -> list[str]:
    return re.findall(r"```json\n(.*?)```", path.read_text(), re.DOTALL)


def _secrets() -> dict[str, dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "sluice/slack": {"token": "xoxb-example"},
        "sluice/salesforce": {"client_id": "id", "client_secret": "secret"},
        "sluice/snowflake": {"private_key": pem.decode()},
    }


def _build(instance: Instance, secrets: dict[str, dict[str, str]]) -> None:
    context = Context(secret=secrets.get(instance.secret or "", {}), http=HttpClient(), aws=lambda *a, **k: None)
    connector_class(instance.type).from_instance(instance, context)


def test_the_readme_configuration_has_one_valid_instance_per_connector() -> None:
    (document,) = [b for b in _json_blocks(ROOT / "README.md") if '"instances"' in b]
    instances = parse_config(document)
    assert sorted(i.type for i in instances) == ["redshift", "s3", "salesforce", "slack", "snowflake", "web"]
    assert len(_GUIDE_EXAMPLES) == 6
    secrets = _secrets()
    for instance in instances:
        _build(instance, secrets)


_GUIDE_EXAMPLES = [
    b for b in _json_blocks(ROOT / "docs" / "connectors.md") if '"type"' in b and "metadataAttributes" not in b
]


@pytest.mark.parametrize("block", _GUIDE_EXAMPLES)
def test_every_example_in_the_connector_guide_builds(block: str) -> None:
    (instance,) = parse_config({"instances": [json.loads(block)]})
    _build(instance, _secrets())
