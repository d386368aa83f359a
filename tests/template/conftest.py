"""template.yaml, as written and as the SAM transform expands it (offline, with samtranslator)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# The knowledge base's three modes, as parameter values: create is the template's defaults.
MODES: dict[str, dict[str, str]] = {
    "create": {},
    "existing": {
        "KnowledgeBaseMode": "existing",
        "KnowledgeBaseId": "EXISTINGKB",
        "KnowledgeBaseRoleArn": "arn:aws:iam::123456789012:role/existing-knowledge-base",
    },
    "off": {"KnowledgeBaseMode": "off"},
}
SCANNED = [(mode, which) for mode in MODES for which in ("source", "transformed")]  # conftest.mode_files

# The knowledge base's id wherever it is used: the stack's own in create mode, KnowledgeBaseId's otherwise;
# and its ARN in IAM policies.
KNOWLEDGE_BASE_ID = {
    "Fn::If": ["CreatesKnowledgeBase", {"Fn::GetAtt": ["KnowledgeBase", "KnowledgeBaseId"]}, {"Ref": "KnowledgeBaseId"}]
}
KNOWLEDGE_BASE_ARN = [
    "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:knowledge-base/${Id}",
    {"Id": KNOWLEDGE_BASE_ID},
]


class _NoManagedPolicies:
    """The transform asks IAM for managed policy ARNs only when a template names them by name."""

    def load(self) -> dict[str, str]:
        return {}


def tool(name: str) -> str:
    path = ROOT / ".venv" / "bin" / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed; run make install"
    return found


def sam_transform(path: Path) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    document = yaml_parse(path.read_text())
    for resource in document["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            # What `sam package` does: local paths become S3 locations.
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://sluice-artifacts/{props[key].strip('/')}"
    return dict(transform(document, {}, _NoManagedPolicies()))


def with_defaults(path: Path, defaults: dict[str, str]) -> dict[str, Any]:
    """The template at ``path`` with these parameters' defaults changed: a deployment that sets them."""
    document = yaml_parse(path.read_text())
    for name, value in defaults.items():
        document["Parameters"][name]["Default"] = value
    return dict(document)


@pytest.fixture(scope="session")
def source() -> dict[str, Any]:
    return dict(yaml_parse(TEMPLATE.read_text()))


@pytest.fixture(scope="session")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return sam_transform(TEMPLATE)


@pytest.fixture(scope="session")
def mode_files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(mode, source|transformed) -> a file of the template in that KnowledgeBaseMode: create's source
    is template.yaml itself (its defaults are create's), the others copies with other defaults."""
    folder = tmp_path_factory.mktemp("modes")
    paths: dict[tuple[str, str], Path] = {}
    for mode, defaults in MODES.items():
        if defaults:
            source = folder / f"{mode}.json"
            source.write_text(json.dumps(with_defaults(TEMPLATE, defaults), indent=1))
        else:
            source = TEMPLATE
        transformed = folder / f"{mode}-transformed.json"
        transformed.write_text(json.dumps(sam_transform(source), indent=1))
        paths[mode, "source"], paths[mode, "transformed"] = source, transformed
    return paths
