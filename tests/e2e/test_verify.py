"""`sluice verify` on the local stack: it passes when the emulated services behave as Sluice assumes
AWS does, and when the emulator breaks one assumption, the step that checks it fails, with a fix,
and the steps after it are skipped; the canary is cleaned up either way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.pipeline.files import chunk_prefix
from sluice_cli.verify import STEPS, StepResult, Verifier, passed, to_json, verify
from sluice_local import emulators
from sluice_local.stack import LocalStack
from support.localcli import sluice_on

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK = "sluice-verify"  # moto keeps one set of resources per process: a name of its own
PATIENCE = 60.0  # what a passing wait may take on a loaded machine
SHORT = 8.0  # a wait that cannot end (the assumption is broken); the waits before it take 1-3 s here


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, state_dir=tmp_path_factory.mktemp("local"), stack_name=STACK) as running:
        yield running


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[emulators.Emulator]:
    emulator = emulators.install(stack.emulator_dir)
    yield emulator
    for name in emulators.ASSUMPTIONS:
        emulator.break_assumption(name, broken=False)


def test_verify_passes_on_a_stack_that_works(stack: LocalStack, emulator: emulators.Emulator) -> None:
    results = verify(stack.outputs(), stack.client, timeout=PATIENCE, poll=0.3)
    assert [r.step for r in results] == list(STEPS)
    assert passed(results), [r for r in results if r.status != "pass"]


# The assumption each step checks, in the order the steps run (deletion last: its canary stays indexed).
BROKEN = [
    ("model_access", "models"),
    ("knowledge_base", "resources"),
    ("indexing", "indexed"),
    ("metadata", "retrieve"),
    ("citations", "ask"),
    ("filters", "access"),
    ("client_token", "client-token"),
    ("deletion", "deletion"),
]


def test_every_assumption_has_a_step_that_catches_it() -> None:
    assert {name for name, _ in BROKEN} == set(emulators.ASSUMPTIONS)


@pytest.mark.parametrize(("assumption", "step"), BROKEN)
def test_a_broken_assumption_fails_its_own_step(
    stack: LocalStack, emulator: emulators.Emulator, assumption: str, step: str
) -> None:
    emulator.break_assumption(assumption)
    waits_forever = step in ("indexed", "deletion")
    results = verify(stack.outputs(), stack.client, timeout=SHORT if waits_forever else PATIENCE, poll=0.3)
    by_step = {r.step: r for r in results}
    failed = [r for r in results if r.status == "fail"]
    assert [r.step for r in failed] == [step], results
    assert failed[0].fix, failed[0]
    assert all(by_step[s].status == "pass" for s in STEPS[: STEPS.index(step)])
    assert all(by_step[s].status == "skipped" for s in STEPS[STEPS.index(step) + 1 : -1])
    assert by_step["cleanup"].status == "pass", by_step["cleanup"]
    assert not passed(results)


def test_cleanup_fails_when_the_canary_leaves_something_behind(stack: LocalStack, emulator: emulators.Emulator) -> None:
    outputs = stack.outputs()
    verifier = Verifier(outputs, stack.client, timeout=SHORT, poll=0.3)

    def leave_a_stray(result: StepResult) -> None:
        if result.step == "deletion":  # after the pipeline removed the canary's files: one more
            key = f"{chunk_prefix(verifier.canary.doc_id)}stray.txt"
            stack.client("s3").put_object(Bucket=outputs["ProcessedBucketName"], Key=key, Body=b"x")

    verifier.on_step = leave_a_stray
    results = verifier.run()
    assert [r.step for r in results if r.status == "fail"] == ["cleanup"]
    assert "stray.txt" in results[-1].detail


def test_sluice_verify_from_the_command_line(stack: LocalStack) -> None:
    with sluice_on(stack) as sluice:
        printed = sluice("verify", "--local", "--keep", check=False)
        assert printed.returncode == 0, printed.stdout + printed.stderr
        lines = [line.split()[:2] for line in printed.stdout.splitlines() if line.startswith("  ")]
        assert lines == [["PASS", step] for step in STEPS[:-1]] + [["skip", "cleanup"]]
        assert printed.stdout.rstrip().endswith("verified: every step passed")


def test_the_json_report_says_whether_every_step_passed(stack: LocalStack, emulator: emulators.Emulator) -> None:
    emulator.break_assumption("model_access")
    report = json.loads(to_json(verify(stack.outputs(), stack.client, timeout=PATIENCE, poll=0.3)))
    assert not report["passed"]
    assert [(s["step"], s["status"]) for s in report["steps"]][:2] == [("models", "fail"), ("resources", "skipped")]
    assert "model access has not been granted" in report["steps"][0]["detail"]
