"""The benchmark's smoke run: every stage of bench/run.py on a tiny input, so a change that breaks a
benchmark (a fake missing a method the code now calls, a handler's builder renamed) fails the tests
rather than the next `make bench`. Nothing is asserted about the figures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"chunkers", "pipeline", "stages", "pdf", "memory", "cold", "imports", "sinks", "costs"}


def test_every_stage_runs_on_a_tiny_input(tmp_path: Path) -> None:
    report, results_file = tmp_path / "benchmarks.md", tmp_path / "results.json"
    published = (ROOT / "docs" / "benchmarks.md").read_bytes()
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--out", str(report), "--results", str(results_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    results = json.loads(results_file.read_text())
    assert results["errors"] == {}, f"failed stages:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
    assert results.keys() >= STAGES
    assert results["smoke"] is True
    # Sluice's own code paths ran whatever peers were missing
    assert any(row["name"] == "sluice (structure-aware)" for row in results["chunkers"])
    assert "sluice extract_pdf (pypdf)" in results["pdf"]["pages_per_second"]
    assert set(results["imports"]["handlers"]) == {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    assert "## Sink API calls" in report.read_text()
    # the costs stage measured every function and the AWS services' own work, and said so in the report
    assert results["costs"]["documents"] == 6
    assert results["costs"]["usage"].keys() >= {"ingest", "kb-direct", "kb-job", "kendra", "kb-service", "esm:ingest"}
    assert "## AWS requests and CPU per document" in report.read_text()
    assert (ROOT / "docs" / "benchmarks.md").read_bytes() == published


def test_smoke_refuses_to_write_the_published_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--out", "docs/benchmarks.md", "--results", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2 and "never writes docs/benchmarks.md" in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/run.py imported here (it points tiktoken at an offline cache and extends sys.path on
    import: both undone after the test)."""
    monkeypatch.setattr(sys, "path", [str(ROOT / "bench"), *sys.path])
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_a_failing_stage_loses_only_itself_and_is_reported(bench_run: ModuleType, tmp_path: Path) -> None:
    def broken() -> Any:
        raise AttributeError("'FakeBucketWriter' object has no attribute 'keys'")

    results: dict[str, Any] = {"date": "today", "versions": "", "smoke": True, "skipped": [], "errors": {}}
    results["corpus"] = {"documents": 1, "megabytes": 0.0}
    saved: list[set[str]] = []

    def save(done: dict[str, Any]) -> None:
        saved.append(set(done) - {"date", "versions", "smoke", "skipped", "errors", "corpus"})
        (tmp_path / "benchmarks.md").write_text(bench_run.report(done))

    memory = {"megabytes": 1.0, "pages": 2, "chunks": 3, "seconds": 0.5, "parent_mb": 80.0, "child_mb": 20.0}
    bench_run.run_stages({"sinks": broken, "memory": lambda: memory}, results, save)

    assert results["errors"] == {"sinks": "AttributeError: 'FakeBucketWriter' object has no attribute 'keys'"}
    assert results["memory"] == memory
    assert saved == [set(), {"memory"}]  # written after each stage, the failed one included
    text = (tmp_path / "benchmarks.md").read_text()
    assert "**The sinks stage failed**" in text and "has no attribute 'keys'" in text
    assert "A 1 MB PDF (2 pages, 3 chunks)" in text
    assert "The pdf stage did not run." in text


def test_a_stage_run_alone_keeps_the_other_stages_results(bench_run: ModuleType, tmp_path: Path) -> None:
    results_file, report = tmp_path / "results.json", tmp_path / "benchmarks.md"
    memory = {"megabytes": 1.0, "pages": 2, "chunks": 3, "seconds": 0.5, "parent_mb": 80.0, "child_mb": 20.0}
    earlier = {"date": "2026-12-01", "versions": "", "smoke": True, "skipped": [], "corpus": {"documents": 7, "megabytes": 0.1},
               "errors": {"sinks": "RuntimeError: an earlier failure"}, "memory": memory}  # fmt: skip
    results_file.write_text(json.dumps(earlier))

    results = bench_run.run(bench_run.SMOKE, report, results_file, ["sinks"])

    saved = json.loads(results_file.read_text())
    assert saved == results
    assert saved["memory"] == memory  # not run again, kept
    assert saved["corpus"] == earlier["corpus"]  # the corpus of the stages that were not run
    assert saved["errors"] == {}  # the stage run again succeeded
    assert saved["sinks"]["documents"] == bench_run.SMOKE.sink_documents
    assert "A 1 MB PDF (2 pages, 3 chunks)" in report.read_text()
