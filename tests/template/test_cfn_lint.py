"""cfn-lint finds nothing in template.yaml, as written and as the SAM transform expands it, in each
KnowledgeBaseMode (conftest.mode_files). It runs once over every file, as starting it costs more than
linting one; the tests read its findings per file. checkov: test_checkov.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from template.conftest import SCANNED, tool

pytestmark = pytest.mark.template


@pytest.fixture(scope="module")
def cfn_lint(mode_files: dict[tuple[str, str], Path]) -> dict[Path, list[str]]:
    """Each file's findings: errors, warnings and informational ones alike."""
    result = subprocess.run(
        [tool("cfn-lint"), "--format", "json", *map(str, mode_files.values())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip().startswith("["), result.stdout + result.stderr  # it ran (rc: what it found)
    findings: dict[Path, list[str]] = {path.resolve(): [] for path in mode_files.values()}
    for match in json.loads(result.stdout):
        line = match["Location"]["Start"]["LineNumber"]
        findings[Path(match["Filename"]).resolve()].append(f"{match['Rule']['Id']} {match['Message']} (line {line})")
    return findings


@pytest.mark.parametrize(("mode", "which"), SCANNED)
def test_cfn_lint_finds_nothing(
    mode: str, which: str, mode_files: dict[tuple[str, str], Path], cfn_lint: dict[Path, list[str]]
) -> None:
    assert cfn_lint[mode_files[mode, which].resolve()] == []
