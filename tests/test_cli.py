"""`sluice preview` as scripts and people use it: JSON lines, readable text, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
