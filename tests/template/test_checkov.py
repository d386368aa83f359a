"""checkov finds no failed check in template.yaml, as written and as the SAM transform expands it, in
each KnowledgeBaseMode (conftest.mode_files), with the skips of .checkov.yaml and of each resource's
Metadata (test_template.py checks each says why). It runs once over every file: its start-up is most
of its time. cfn-lint: test_cfn_lint.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from template.conftest import MODES, ROOT, SCANNED, tool

pytestmark = pytest.mark.template


@pytest.fixture(scope="module")
def checkov(mode_files: dict[tuple[str, str], Path]) -> dict[str, Any]:
    arguments = [argument for path in mode_files.values() for argument in ("-f", str(path))]
    result = subprocess.run(
        [
            tool("checkov"),
            "--config-file",
            str(ROOT / ".checkov.yaml"),
            *arguments,
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report  # one framework: one report
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    return dict(report)


def test_the_template_deploys_create_mode_unless_told_otherwise(source: dict[str, Any]) -> None:
    """So template.yaml itself is the create-mode case scanned here."""
    assert source["Parameters"]["KnowledgeBaseMode"]["Default"] == "create"
    assert set(MODES) == set(source["Parameters"]["KnowledgeBaseMode"]["AllowedValues"])


@pytest.mark.parametrize(("mode", "which"), SCANNED)
def test_checkov_finds_no_failed_check(
    mode: str, which: str, mode_files: dict[tuple[str, str], Path], checkov: dict[str, Any]
) -> None:
    path = mode_files[mode, which].resolve()

    def of_this_file(kind: str) -> list[dict[str, Any]]:
        return [c for c in checkov["results"][kind] if Path(c["file_abs_path"]).resolve() == path]

    assert [f"{c['check_id']} {c['resource']}" for c in of_this_file("failed_checks")] == []
    assert len(of_this_file("passed_checks")) > 30  # it read the file (one it cannot parse passes nothing)
