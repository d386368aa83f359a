"""statemachine/finetune.asl.json: valid Amazon States Language (asl-validator), and the rules a
console user relies on: every Task retries transient errors and catches the rest into a failure
notification, every Choice has a Default, ARNs arrive only through DefinitionSubstitutions."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from template.conftest import ROOT

pytestmark = pytest.mark.template
ASL = ROOT / "statemachine" / "finetune.asl.json"
VALIDATOR = ROOT / ".venv" / "tools" / "node" / "node_modules" / ".bin" / "asl-validator"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


def test_asl_validator_accepts_the_definition() -> None:
    assert VALIDATOR.exists(), "asl-validator is not installed; run make install"
    result = subprocess.run([str(VALIDATOR), "--json-path", str(ASL)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_task_retries_and_catches(definition: dict[str, Any]) -> None:
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        assert state.get("Retry"), f"{name} has no Retry"
        assert all(rule.get("JitterStrategy") == "FULL" for rule in state["Retry"]), name
        catches = state.get("Catch") or []
        assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} does not catch everything"
        targets = {c["Next"] for c in catches}
        assert targets <= {"NotifyFailure", "ReadProblems", "ErrorNamed?", "Done"}, (name, targets)


def test_every_choice_has_a_default_and_every_failure_path_ends_in_the_fail_state(definition: dict[str, Any]) -> None:
    states = definition["States"]
    for name, state in states.items():
        if state["Type"] == "Choice":
            assert "Default" in state, f"{name} has no Default"
    assert states["NotifyFailure"]["Next"] == "ErrorNamed?"
    assert {states["ErrorNamed?"]["Default"], states["NameStepFailure"]["Next"]} == {"FineTuneFailed"}
    assert states["FineTuneFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def test_arns_arrive_only_through_definition_substitutions(definition: dict[str, Any], source: dict[str, Any]) -> None:
    text = ASL.read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    machine = source["Resources"]["FineTuneStateMachine"]["Properties"]
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert not re.search(r"arn:aws:(?!states:::)", text), "a literal ARN other than a service integration"
    assert machine["DefinitionUri"] == "statemachine/finetune.asl.json"


def test_the_workflow_reads_as_the_issue_describes(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] == "ValidateInput"
    assert states["ValidateInput"]["Next"] == "RetrainRequested?"
    assert states["PrepareDataset"]["Next"] == "HasValidationSet?"
    assert states["WaitForJob"]["SecondsPath"] == "$.settings.poll_seconds"  # waits come from the input
    assert states["JobStatus?"]["Default"] == "WaitForJob"
    assert states["NotifySuccess"]["Next"] == "Done"
