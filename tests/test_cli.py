"""`sluice preview` as scripts and people use it: JSON lines, readable text, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.pipeline.tokens import encoding
from support import samples
from support.pdfwriter import document, make_pdf

ROOT = Path(__file__).resolve().parents[1]
SLUICE = [sys.executable, "-m", "sluice_cli.main"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SLUICE, *args], capture_output=True, text=True, check=False, cwd=ROOT)


def test_preview_json_lines(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(make_pdf(document([("Setup", ["Install it. " * 80]), ("Use", ["Run it. " * 80])], title="Manual")))
    md = tmp_path / "notes.md"
    md.write_text("# Notes\n\n" + "Some words here. " * 200)
    result = _run("preview", str(pdf), str(md), "--json", "--max-tokens", "128", "--overlap", "16")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["source"] == str(pdf) and first["kind"] == "pdf" and first["title"] == "Manual" and first["pages"] >= 1
    assert second["kind"] == "markdown" and second["title"] == "Notes"
    for doc in (first, second):
        assert len(doc["chunks"]) > 1
        for chunk in doc["chunks"]:
            assert set(chunk) >= {"text", "tokens", "pages", "headings", "hash"}
            assert chunk["tokens"] == len(encoding().encode_ordinary(chunk["text"])) <= 128
    assert first["chunks"][0]["pages"] == [1] and first["chunks"][0]["headings"] == ["Manual"]


def test_preview_of_a_quarantined_file_prints_the_reason_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "fake.pdf"
    bad.write_bytes(b"PK\x03\x04 a zip")
    good = tmp_path / "ok.txt"
    good.write_text("fine text")
    result = _run("preview", str(good), str(bad), "--json")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[1]["quarantined"]["reason"] == "type_mismatch" and "ZIP" in lines[1]["quarantined"]["detail"]
    human = _run("preview", str(bad))
    assert human.returncode == 1 and "QUARANTINED  type_mismatch" in human.stdout


def test_preview_human_output_shows_chunks_with_their_place(tmp_path: Path) -> None:
    md = tmp_path / "guide.md"
    md.write_text("# Guide\n\n## Install\n\n" + "Install the tool. " * 100)
    result = _run("preview", str(md), "--max-tokens", "200")
    assert result.returncode == 0
    assert "markdown" in result.stdout and "Guide > Install" in result.stdout and "tok" in result.stdout


def test_invalid_settings_are_refused_with_a_reason() -> None:
    result = _run("preview", "README.md", "--max-tokens", "64", "--overlap", "40")
    assert result.returncode == 2 and "overlap_tokens" in result.stderr


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    result = _run("preview", str(tmp_path / "nope.md"), "--json")
    assert result.returncode == 1 and "FileNotFoundError" in json.loads(result.stdout)["error"]


def test_committed_samples_are_what_the_generator_makes() -> None:
    for name, build in samples.GENERATED.items():
        assert (ROOT / "samples" / name).read_bytes() == build(), (
            "regenerate with PYTHONPATH=tests python -m support.samples"
        )


def test_backfill_input_is_what_a_console_user_would_type() -> None:
    from sluice_cli.backfill import request

    assert request("", None, False, None) == {"prefix": "", "dry_run": False}
    assert request("", None, False, None, "ingestion-job") == {
        "prefix": "",
        "dry_run": False,
        "kb_sync_mode": "ingestion-job",
    }
    assert request("2024/", 25.0, True, "s3://inventories/raw/all/2026-12-01T01-00Z/manifest.json") == {
        "prefix": "2024/",
        "dry_run": True,
        "rate": 25.0,
        "manifest": {"bucket": "inventories", "key": "raw/all/2026-12-01T01-00Z/manifest.json"},
    }
    for bad in ("inventories/manifest.json", "s3://inventories", "s3://"):
        with pytest.raises(ValueError, match="--manifest must be s3://BUCKET/KEY"):
            request("", None, False, bad)


def test_backfill_progress_reads_like_the_console() -> None:
    from sluice_cli.backfill import Look, progress_line

    planning = Look("arn:x", "RUNNING", "run-1", 0.0)
    assert progress_line(planning) == "running: planning"
    progress = {"listed": 1200, "queued": 300, "unchanged": 880, "skipped": 15, "refused": 5, "dry_run": False,
                "processed": 250, "quarantined": 2}  # fmt: skip
    running = Look("arn:x", "RUNNING", "run-1", 0.0, {"total": 4000, "succeeded": 1200}, progress, 5400)
    assert progress_line(running) == (
        "running: listed 1200, queued 300, unchanged 880, skipped 15, refused 5; since it started: processed 250, "
        "quarantined 2; items done 1200 of 4000; about 90 min to go"
    )
    dry = Look("arn:x", "SUCCEEDED", "run-2", 0.0, {}, progress | {"dry_run": True})
    assert progress_line(dry).startswith(
        "succeeded: listed 1200, would queue 300,"
    ) and "processed" not in progress_line(dry)
