"""quality/render.py, the renderer of docs/quality.md, on a small hand-made results file: `make quality`
takes minutes and a venv of its own, so a renderer broken by a change fails here instead."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ("alpha", "beta")


@pytest.fixture(scope="module")
def render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_render", ROOT / "quality" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(recall: float, iou: float, precision: float, questions: int) -> dict[str, Any]:
    char = {"recall": {"mean": recall, "std": 0.1}, "iou": {"mean": iou, "std": 0.01},
            "precision": {"mean": precision, "std": 0.01}, "precision_omega": {"mean": 0.2, "std": 0.1}}  # fmt: skip
    return {"char": char, "token": char, "n_questions": questions, "cross_corpus_rate": 0.0}


def _run(label: str, impl: str, size: int | None, overlap: int | None, figures: dict[str, tuple[float, ...]],
         chunks: dict[str, int], mean_tokens: float, scores: dict[str, list[float]] | None = None) -> dict[str, Any]:  # fmt: skip
    """``figures``: (recall, IoU, precision) as fractions, for ``all`` and each corpus; ``scores``: each
    question's recall and IoU (meta's question_corpus says whose)."""
    questions = {"all": 5, "alpha": 2, "beta": 3}
    return {
        **({"question_scores": scores} if scores else {}),
        "label": label,
        "impl": impl,
        "family": impl,
        "size": size,
        "overlap": overlap,
        "command": f".venv/bin/sluice preview {{file}} --json --max-tokens {size}" if impl == "external" else None,
        "n_chunks": sum(chunks.values()),
        "chunks_per_corpus": chunks,
        "mean_chunk_tokens": mean_tokens,
        "location": {"exact": 1, "ws": 0, "nows": 0, "anchor": 0, "not_located": 0, "dropped_empty": 0},
        "overall": _block(*figures["all"], questions["all"]),
        "per_corpus": {c: _block(*figures[c], questions[c]) for c in CORPORA},
    }


# fmt: off
RESULTS = {
    "meta": {"date": "2026-01-02 03:04:05", "machine": "x86_64, 2 CPU cores, CPU only", "wall_seconds": 300.0,
             "k": 5, "retriever": "MiniLM", "n_questions": 5, "corpora": list(CORPORA),
             "question_corpus": ["alpha", "alpha", "beta", "beta", "beta"]},
    "results": [
        _run("langchain-recursive-paperseps 250/0", "langchain-recursive-paperseps", 250, 0,
             {"all": (0.80, 0.040, 0.041), "alpha": (0.90, 0.050, 0.051), "beta": (0.70, 0.030, 0.031)},
             {"alpha": 10, "beta": 20}, 180.04,
             {"recall": [0.95, 0.85, 0.75, 0.7, 0.65], "iou": [0.05, 0.05, 0.03, 0.03, 0.03]}),
        _run("chonkie-recursive 250", "chonkie-recursive", 250, 0,
             {"all": (0.85, 0.045, 0.046), "alpha": (0.95, 0.055, 0.056), "beta": (0.75, 0.035, 0.036)},
             {"alpha": 11, "beta": 21}, 179.5),
        _run("sluice 250/0", "external", None, None,
             {"all": (0.78, 0.0593, 0.06), "alpha": (0.95, 0.07, 0.071), "beta": (0.65, 0.029, 0.03)},
             {"alpha": 12, "beta": 25}, 144.96,
             # alpha: 5 points ahead on every question; beta: 4 to 6 points behind on each
             {"recall": [1.0, 0.9, 0.71, 0.65, 0.59], "iou": [0.07, 0.07, 0.029, 0.029, 0.029]}),
        _run("sluice 512/64", "external", None, None,
             {"all": (0.80, 0.026, 0.027), "alpha": (0.98, 0.043, 0.044), "beta": (0.66, 0.012, 0.013)},
             {"alpha": 6, "beta": 9}, 333.2),
        _run("langchain-recursive-paperseps 512/64", "langchain-recursive-paperseps", 512, 64,
             {"all": (0.729, 0.021, 0.022), "alpha": (0.962, 0.032, 0.033), "beta": (0.66, 0.014, 0.015)},
             {"alpha": 5, "beta": 8}, 358.2),
    ],
}
# fmt: on


def test_the_results_become_the_expected_table_rows(render: ModuleType, tmp_path: Path) -> None:
    results, page = tmp_path / "results.json", tmp_path / "quality.md"
    results.write_text(json.dumps(RESULTS))
    render.main([str(results), "--out", str(page)])
    lines = page.read_text().splitlines()

    # the summary: one row per setting, Sluice against the recursive splitter
    # (beta trails beyond noise at 250/0; 512/64's runs carry no per-question scores to tell)
    assert "| 250/0 | 78.0 | 80.0 | 5.93 | 4.00 | no (-2.0) / yes (+1.93) | 1 of 2 / 1 of 2 | beta / beta |" in lines
    assert "| 512/64 | 80.0 | 72.9 | 2.60 | 2.10 | yes (+7.1) / yes (+0.50) | 2 of 2 / 1 of 2 | ? / ? |" in lines
    # a setting's table: Sluice first, then the recursive splitter, then the other peers at that setting
    start = lines.index("## 250/0") + 2
    assert lines[start : start + 3 * 3] == [
        "| corpus | chunker | chunks | mean tokens | recall | IoU | precision | Sluice ≥ recursive: recall / IoU "
        "| Sluice − recursive, recall [95% interval] | Sluice − recursive, IoU [95% interval] |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
        "| all (5 q.) | sluice | 37 | 145.0 | 78.0 | 5.93 | 6.00 | no (-2.0) / yes (+1.93) "
        "| -1.0 [-5.2, +3.2] within noise | +0.74 [-0.10, +1.58] within noise |",
        "| all (5 q.) | langchain-recursive-paperseps | 30 | 180.0 | 80.0 | 4.00 | 4.10 |  |  |  |",
        "| all (5 q.) | chonkie-recursive | 32 | 179.5 | 85.0 | 4.50 | 4.60 |  |  |  |",
        "| alpha (2 q.) | sluice | 12 |  | 95.0 | 7.00 | 7.10 | yes (+5.0) / yes (+2.00) "
        "| +5.0 [+5.0, +5.0] ahead | +2.00 [+2.00, +2.00] ahead |",
        "| alpha (2 q.) | langchain-recursive-paperseps | 10 |  | 90.0 | 5.00 | 5.10 |  |  |  |",
        "| alpha (2 q.) | chonkie-recursive | 11 |  | 95.0 | 5.50 | 5.60 |  |  |  |",
        "| beta (3 q.) | sluice | 25 |  | 65.0 | 2.90 | 3.00 | no (-5.0) / no (-0.10) "
        "| -5.0 [-6.0, -4.0] behind | -0.10 [-0.10, -0.10] behind |",
    ]
    # 512/64, beta: a tie on recall counts as at least as good
    assert (
        "| beta (3 q.) | sluice | 9 |  | 66.0 | 1.20 | 1.30 | yes (+0.0) / no (-0.20) "
        "| no per-question scores | no per-question scores |"
    ) in lines
    assert "## 512/64" in lines and "chonkie-recursive" not in "\n".join(lines[lines.index("## 512/64") :])
    assert "Run: 2026-01-02 03:04:05; x86_64, 2 CPU cores, CPU only; 300 s." in lines
    assert "Chunks not found" not in page.read_text()


def test_chunks_not_found_in_their_corpus_are_called_out(render: ModuleType) -> None:
    results = json.loads(json.dumps(RESULTS))
    results["results"][2]["location"]["not_located"] = 3
    page = render.render(results)
    assert "**Chunks not found in their corpus** (counted as irrelevant text): sluice 250/0 (3)." in page


def test_a_gap_is_ahead_or_behind_only_when_its_interval_leaves_out_zero(render: ModuleType) -> None:
    """The paired bootstrap keeps each question's two scores together: a steady small gap is real, a larger
    mean gap made of a few questions answered by one chunker and missed by the other is not."""
    corpus = ["c"] * 40
    baseline = {"question_scores": {"recall": [0.5] * 40, "iou": [0.05] * 40}}
    steady = {"question_scores": {"recall": [0.51] * 40, "iou": [0.05] * 40}}
    lucky = {"question_scores": {"recall": [1.0] * 5 + [0.5] * 35, "iou": [0.05] * 40}}
    unlucky = {"question_scores": {"recall": [0.0] * 3 + [0.5] * 37, "iou": [0.04] * 40}}

    mean, low, high = render.paired_gap(steady, baseline, "recall", "c", corpus)
    assert (round(mean, 6), round(low, 6), round(high, 6)) == (1.0, 1.0, 1.0)
    assert render._reading(render.paired_gap(steady, baseline, "recall", "c", corpus), 1) == "+1.0 [+1.0, +1.0] ahead"

    mean, low, high = render.paired_gap(lucky, baseline, "recall", "all", corpus)
    assert mean == pytest.approx(6.25) and low < 6.25 < high
    assert low > 0  # 5 of 40 questions gained 50 points each: ahead, however resampled, but not by a fixed amount

    mean, low, high = render.paired_gap(unlucky, baseline, "recall", "c", corpus)
    assert mean == pytest.approx(-3.75) and low < -3.75 and high == 0.0  # a resample can miss all three
    assert render._reading((mean, low, high), 1).endswith("within noise")
    assert render._reading(render.paired_gap(unlucky, baseline, "iou", "c", corpus), 2) == "-1.00 [-1.00, -1.00] behind"

    assert render.paired_gap(unlucky, baseline, "recall", "other corpus", corpus) is None
    assert render.paired_gap({}, baseline, "recall", "c", corpus) is None


def test_a_bm25_run_becomes_a_second_summary(render: ModuleType, tmp_path: Path) -> None:
    lexical = json.loads(json.dumps(RESULTS))
    lexical["meta"]["retriever"] = "BM25Okapi"
    for run in lexical["results"]:
        run["label"] += " [BM25]"  # as the evaluation labels its BM25 runs
    results, bm25, page = tmp_path / "results.json", tmp_path / "results-bm25.json", tmp_path / "quality.md"
    results.write_text(json.dumps(RESULTS))
    bm25.write_text(json.dumps(lexical))
    render.main([str(results), "--bm25", str(bm25), "--out", str(page)])
    text = page.read_text()
    section = text[text.index("## A second retriever: BM25") : text.index("## Regenerating")]
    assert "top 5 by BM25 (BM25Okapi)" in section
    assert "| 250/0 | 78.0 | 80.0 | 5.93 | 4.00 | no (-2.0) / yes (+1.93) | 1 of 2 / 1 of 2 | beta / beta |" in section
    assert "## A second retriever" not in render.render(RESULTS)  # without a BM25 run, no section
