"""Every class of hostile file, built here, run through the sandbox as the ingest function runs it,
and answered with its reason code (or safely read) within a CPU budget (docs/security.md: hostile files, the
sandbox). Where Sluice's answer is not the obvious one, the case says why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostile import files
from sluice.errors import QuarantineError
from sluice.pipeline.process import PipelineSettings, process_document
from sluice.pipeline.sandbox import Sandbox, SandboxLimits

ROOT = Path(__file__).resolve().parents[2]
# Each case's parsing may use this much CPU: the sandbox stops a worker at it (timeout_cpu, which no
# case expects), and the parent's share (cleaning, chunking) is measured. CPU time, unlike the wall
# clock, does not grow when neighbours share the machine; the wall limit only guards against a hang.
CPU_BUDGET_SECONDS = 10
LAMBDA_SECONDS = 15 * 60  # the deadline the ingest function passes: its invocation's end


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxLimits(memory_mb=768, cpu_seconds=CPU_BUDGET_SECONDS, wall_seconds=300))
    yield box
    box.close()


def _text(s: str, encoding: str = "utf-8") -> Callable[[], bytes]:
    return lambda: s.encode(encoding)


# (case, file name, builder, expected reason or "ok", text the result must contain when ok)
CASES: list[tuple[str, str, Callable[[], bytes], str, str]] = [
    # PDF. The flate bomb makes PDFium abort; pypdf (with its decompression limits) then names it.
    ("pdf flate bomb", "bomb.pdf", files.pdf_flate_bomb, "decompression_or_size_limit", ""),
    ("pdf circular xref /Prev", "loop.pdf", files.pdf_circular_xref, "ok", "text on the only page"),
    ("pdf 100k-deep array", "deep.pdf", files.pdf_deep_nesting, "ok", "deep"),  # PDFium never touches it
    ("pdf huge page count", "pages.pdf", files.pdf_huge_page_count, "too_many_pages", ""),
    ("pdf page-tree cycle", "cycle.pdf", files.pdf_page_tree_cycle, "malformed", ""),
    ("pdf inline image without EI", "inline.pdf", files.pdf_inline_image_without_end, "ok", "before"),
    ("zip renamed .pdf", "fake.pdf", lambda: b"PK\x03\x04" + b"\x00" * 100, "type_mismatch", ""),
    # DOCX
    ("docx zip bomb", "bomb.docx", lambda: files.docx_zip_bomb(0.3), "zip_bomb", ""),
    ("docx lying sizes", "lying.docx", files.docx_lying_sizes, "malformed", ""),
    ("docx many entries", "many.docx", files.docx_many_entries, "zip_too_many_entries", ""),
    ("docx billion laughs", "laughs.docx", files.docx_billion_laughs, "xml_dtd_forbidden", ""),
    ("docx XXE", "xxe.docx", files.docx_xxe, "xml_dtd_forbidden", ""),
    # A 20 MB text run deflates more than 100:1: refused before it is inflated.
    ("docx huge text node", "huge.docx", files.docx_huge_text_node, "zip_bomb", ""),
    # HTML
    ("html 200k-deep nesting", "deep.html", lambda: b"<div>" * 200_000 + b"deep" + b"</div>" * 200_000, "ok", "deep"),
    ("html unterminated comment", "c.html", lambda: b"<p>shown</p><!--" + b"a" * 20_000_000, "ok", "shown"),
    # Text encodings: repaired or decoded, never guessed wrong
    ("invalid utf-8 bytes", "inv.txt", lambda: "café ".encode() * 50 + b"\xff\xfe caf\xe9", "ok", "café"),
    (
        "mixed utf-8 and cp1252",
        "mixed.txt",
        lambda: "naïve café\n".encode() + "résumé “smart”\n".encode("cp1252"),
        "ok",
        "résumé “smart”",
    ),
    (
        "utf-16 without BOM",
        "u16.txt",
        _text("plain text in UTF-16 little endian", "utf-16-le"),
        "ok",
        "plain text in UTF-16",
    ),
    ("BOM and NUL", "nul.txt", lambda: b"\xef\xbb\xbfhello\x00world", "ok", "helloworld"),
    (
        "bidi and zero-width controls",
        "bidi.txt",
        _text("approve\u202e gnp.exe \u200b\u200bdone\u2066x\u2069"),
        "ok",
        "approve gnp.exe donex",
    ),
    # CSV
    ("csv giant field", "big.csv", lambda: b'1,"' + b"x" * 1_000_000 + b'"\n', "csv_field_too_large", ""),
    (
        "csv unterminated quote",
        "open.csv",
        lambda: b'a,b\n1,"never closed\n' + b"2,3\n" * 100_000,
        "csv_field_too_large",
        "",
    ),
    ("csv 5M columns", "wide.csv", lambda: b"," * 5_000_000 + b"\n", "csv_malformed", ""),
    ("csv with NUL", "nul.csv", lambda: b"a,b\nx\x00y,2\n", "ok", "| xy | 2 |"),
    # JSON
    ("json 200k-deep nesting", "deep.json", lambda: b"[" * 200_000 + b"]" * 200_000, "json_too_deep", ""),
    ("json 100k-digit integer", "int.json", lambda: b'{"n": ' + b"9" * 100_000 + b"}", "json_number_too_large", ""),
    ("json lone surrogate", "sur.json", lambda: b'{"t": "abc\\ud800def"}', "ok", "abc?def"),
    ("json NaN", "nan.json", lambda: b'{"a": NaN}', "malformed", ""),
    ("json duplicate keys", "dup.json", lambda: b'{"a": 1, "a": 2}', "malformed", ""),
    # Markdown: treated as text, never rendered
    ("markdown nested brackets", "b.md", lambda: b"[" * 100_000 + b"x" + b"]" * 100_000, "ok", "x"),
    ("markdown deep blockquote", "q.md", lambda: b">" * 100_000 + b" deep", "ok", "deep"),
    # Anything else
    ("empty file", "empty.txt", lambda: b"", "empty", ""),
    ("image", "photo.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "unsupported", ""),
]


@pytest.mark.parametrize(("case", "name", "build", "expected", "contains"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(
    case: str, name: str, build: Callable[[], bytes], expected: str, contains: str, sandbox: Sandbox
) -> None:
    data = build()
    parent_cpu = time.process_time()
    try:
        deadline = time.monotonic() + LAMBDA_SECONDS
        doc = process_document(data, name, PipelineSettings(), extractor=sandbox, deadline=deadline)
        outcome, text = "ok", doc.text
    except QuarantineError as exc:
        outcome, text = exc.reason.value, exc.detail
    parent_cpu = time.process_time() - parent_cpu
    assert outcome == expected, f"{case}: {outcome}: {text[:300]}"  # timeout_cpu: over the parser's budget
    assert parent_cpu < CPU_BUDGET_SECONDS, f"{case}: {parent_cpu:.1f} s of CPU outside the sandbox"
    if expected == "ok":
        assert contains in text
        text.encode("utf-8")  # no lone surrogate survives to fail in boto3 later


def test_preview_prints_the_reason_and_exits_non_zero(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(files.docx_billion_laughs())
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    result = subprocess.run(
        [sys.executable, "-m", "sluice_cli.main", "preview", "--json", str(bomb), str(deep)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    reasons = [json.loads(line)["quarantined"]["reason"] for line in result.stdout.splitlines()]
    assert reasons == ["xml_dtd_forbidden", "json_too_deep"]
