"""The connectors' configuration: one JSON document in SSM Parameter Store, every problem reported
at once (a schedule that fails at 3 a.m. on the second typo is worse than one that names both).

    {"instances": [
       {"name": "docs-site", "type": "web", "settings": {"start_urls": ["https://docs.example.com/"]}},
       {"name": "support", "type": "slack", "secret": "sluice/slack", "settings": {"channels": ["C0123"]},
        "max_items_per_run": 2000}
    ]}

Credentials never live here: ``secret`` names a Secrets Manager secret whose JSON fields the
connector reads. Each connector checks its own ``settings`` when it is built.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from sluice.connectors import KINDS, ConnectorConfigError, Instance

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SECRET = re.compile(r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}$")
FIELDS = ("name", "type", "settings", "secret", "max_items_per_run", "max_delete_share")


def parse_config(text: str | bytes | Mapping[str, Any]) -> list[Instance]:
    """Every instance, or ConnectorConfigError naming every problem (for checking a configuration)."""
    instances, problems = read_config(text)
    if problems:
        raise ConnectorConfigError(problems)
    return instances


def read_config(text: str | bytes | Mapping[str, Any]) -> tuple[list[Instance], list[str]]:
    """The valid instances and the problems of the others: a scheduled run syncs what it can
    rather than let one typo stop every instance. A document that is not a configuration at all
    raises ConnectorConfigError."""
    try:
        document = json.loads(text) if isinstance(text, str | bytes) else text
    except ValueError as exc:
        raise ConnectorConfigError([f"the configuration is not JSON: {exc}"]) from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("instances"), list):
        raise ConnectorConfigError(['the configuration is an object with a list "instances"'])
    problems: list[str] = []
    instances: list[Instance] = []
    seen: set[str] = set()
    for number, raw in enumerate(document["instances"], 1):
        where = f"instances[{number - 1}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where} is not an object")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name in seen:
            problems.append(f"{where}: the name {name!r} is used twice")
        seen.add(str(name))
        found = _instance(raw, where, problems)
        if found is not None:
            instances.append(found)
    names = [i.name for i in instances]
    return [i for i in instances if names.count(i.name) == 1], problems


def _instance(raw: Mapping[str, Any], where: str, problems: list[str]) -> Instance | None:
    before = len(problems)
    for key in raw:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            problems.append(f"{where}: unknown field {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    name, kind = raw.get("name"), raw.get("type")
    if not (isinstance(name, str) and NAME.match(name)):
        problems.append(f"{where}: name must be 1-40 lower-case letters, digits and hyphens, not {name!r}")
    else:
        where = f"{where} ({name})"
    if kind not in KINDS:
        problems.append(f"{where}: type must be one of {', '.join(sorted(KINDS))}, not {kind!r}")
    settings = raw.get("settings", {})
    if not isinstance(settings, Mapping):
        problems.append(f"{where}: settings must be an object")
    secret = raw.get("secret")
    if secret is not None and not (isinstance(secret, str) and SECRET.match(secret)):
        problems.append(f"{where}: secret must be a Secrets Manager secret name or ARN, not {secret!r}")
    items = raw.get("max_items_per_run", 1000)
    if not (isinstance(items, int) and not isinstance(items, bool) and 1 <= items <= 100_000):
        problems.append(f"{where}: max_items_per_run must be a whole number from 1 to 100000, not {items!r}")
    share = raw.get("max_delete_share", 0.2)
    if not (isinstance(share, int | float) and not isinstance(share, bool) and 0 <= share <= 1):
        problems.append(f"{where}: max_delete_share must be a number from 0 to 1, not {share!r}")
    if len(problems) > before:
        return None
    return Instance(str(name), str(kind), dict(settings), secret, int(items), float(share))
