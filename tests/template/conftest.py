"""template.yaml, as written and as the SAM transform expands it (offline, with samtranslator)."""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="session")
def source() -> dict[str, Any]:
    return dict(yaml_parse(TEMPLATE.read_text()))


@pytest.fixture(scope="session")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return sam_transform(TEMPLATE)


@pytest.fixture(scope="session")
def transformed_file(transformed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "transformed.json"
    path.write_text(json.dumps(transformed, indent=1))
    return path
