"""`make bench`: Sluice's front end measured against the tokenizer floor and the libraries a Bedrock
or Kendra user would otherwise reach for, all in one run on one machine, reported as ratios; and the
sinks' API calls per 1,000 documents against the naive ways of syncing an index (bench/sinks.py).

Writes docs/benchmarks.md and prints the same tables. Peers (langchain-text-splitters, chonkie,
semchunk) are installed only in the benchmark's own venv (.venv/tools/bench).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "sluice"), str(ROOT / "cli")]


def _offline_tiktoken() -> None:
    """Peers call tiktoken.get_encoding("cl100k_base"), which downloads; give it the layer's verified
    copy in a cache directory instead (named as tiktoken names its cache entries)."""
    from sluice.pipeline.tokens import encoding_file_bytes, parse_ranks

    data = encoding_file_bytes()
    parse_ranks(data)  # verifies the hash
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-"))
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


_offline_tiktoken()

import tiktoken  # noqa: E402
from sinks import bench_sinks, sink_report  # noqa: E402

from sluice.pipeline.chunk import ChunkSettings, _lay_out, chunk_blocks  # noqa: E402
from sluice.pipeline.clean import clean_blocks  # noqa: E402
from sluice.pipeline.detect import detect  # noqa: E402
from sluice.pipeline.extract import ParseLimits, extract  # noqa: E402
from sluice.pipeline.process import PipelineSettings  # noqa: E402
from sluice.pipeline.tokens import tokenizer  # noqa: E402

SETTINGS = [(512, 50), (300, 60)]


# -- corpus --------------------------------------------------------------------------------------------


def prose_corpus(limit_mb: float) -> list[tuple[str, str]]:
    """Python's documentation topics, and the licence and README files of the installed packages."""
    from pydoc_data.topics import topics

    docs = [(f"{name}.md", f"# {name}\n\n{text}") for name, text in sorted(topics.items())]
    seen = {hashlib.sha1(t.encode()).digest() for _, t in docs}
    site = Path(tiktoken.__file__).resolve().parents[1]
    candidates = sorted(site.glob("*.dist-info/licenses/**/*")) + sorted(site.glob("*.dist-info/LICENSE*"))
    candidates += sorted(site.glob("*/README*")) + sorted(site.glob("*.dist-info/METADATA"))
    # The machine's own packages: Debian keeps each one's licence and README under /usr/share/doc.
    candidates += sorted(Path("/usr/share/doc").glob("*/copyright")) + sorted(Path("/usr/share/doc").glob("*/README"))
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text("utf-8", "replace")
        if path.name == "METADATA":
            text = text.split("\n\n", 1)[1] if "\n\n" in text else ""  # the long description
        digest = hashlib.sha1(text.encode()).digest()
        if len(text) > 500 and digest not in seen:
            seen.add(digest)
            docs.append((f"{path.parent.name}/{path.name}.txt", text))
    out, total = [], 0
    for name, text in docs:
        if total + len(text) > limit_mb * 1e6:
            break
        out.append((name, text))
        total += len(text)
    return out


def pdf_corpus() -> list[tuple[str, bytes]]:
    """PDFs the benchmark builds (prose from the corpus, headings, several hundred pages), plus
    any PDF documentation installed on the machine."""
    from pydoc_data.topics import topics

    from support.pdfwriter import document, make_pdf

    sections = [(name, [p for p in text.split("\n\n") if p.strip()][:12]) for name, text in sorted(topics.items())]
    pdfs = [("built/python-topics.pdf", make_pdf(document(sections, title="Python topics", lines_per_page=45)))]
    pdfs.append(("built/python-topics-half.pdf", make_pdf(document(sections[::2], title="Half", lines_per_page=45))))
    for path in sorted(Path("/usr/share/doc").rglob("*.pdf"))[:20]:
        pdfs.append((f"system/{path.name}", path.read_bytes()))
    return pdfs


# -- timing ----------------------------------------------------------------------------------------------


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(floor: Callable[[], Any], subject: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """Medians of the floor and subject times, and the median of their per-pair ratios: baseline and
    subject alternate, so a noisy neighbour slows both alike."""
    subject()  # warm-up
    pairs = [(seconds(floor), seconds(subject)) for _ in range(repeat)]
    return (
        statistics.median(b for b, _ in pairs),
        statistics.median(s for _, s in pairs),
        statistics.median(s / b for b, s in pairs),
    )


# -- chunkers ----------------------------------------------------------------------------------------------


def peers(max_tokens: int, overlap: int) -> dict[str, tuple[Callable[[str], list[str]], str]]:
    """name → (chunk function, note)."""
    import semchunk
    from chonkie import RecursiveChunker
    from langchain_text_splitters import RecursiveCharacterTextSplitter, TokenTextSplitter

    enc = tiktoken.get_encoding("cl100k_base")
    token = TokenTextSplitter(encoding_name="cl100k_base", chunk_size=max_tokens, chunk_overlap=overlap)
    recursive = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=max_tokens, chunk_overlap=overlap
    )
    chonkie = RecursiveChunker(tokenizer=enc, chunk_size=max_tokens)
    sem = semchunk.chunkerify(enc, max_tokens)
    return {
        "langchain TokenTextSplitter": (token.split_text, "token windows; not structure-aware"),
        "langchain RecursiveCharacterTextSplitter": (recursive.split_text, "from_tiktoken_encoder"),
        "chonkie RecursiveChunker": (lambda t: [c.text for c in chonkie.chunk(t)], "no overlap setting"),
        "semchunk": (lambda t: sem(t, overlap=overlap), "overlap in tokens"),
    }


def chunk_stats(chunks: list[str], limit: int) -> dict[str, float]:
    enc = tokenizer()
    sizes = [enc.count(c) for c in chunks]
    return {
        "chunks": len(sizes),
        "mean": statistics.mean(sizes) if sizes else 0,
        "max": max(sizes, default=0),
        "over": sum(s > limit for s in sizes),
    }


def bench_chunkers(corpus: list[tuple[str, str]], repeat: int) -> list[dict[str, Any]]:
    enc = tokenizer().encoding
    raw_texts = [t for _, t in corpus]
    prepared = []
    for name, text in corpus:
        data = text.encode()
        blocks, _ = clean_blocks(extract(data, detect(data, name), ParseLimits()).blocks)
        prepared.append(blocks)
    our_texts = [_lay_out(b)[0] for b in prepared]
    rows = []
    for max_tokens, overlap in SETTINGS:
        settings = ChunkSettings(max_tokens=max_tokens, overlap_tokens=overlap)
        ours: list[str] = []

        def run_ours(settings: ChunkSettings = settings, out: list[str] = ours) -> None:
            out.clear()
            for blocks in prepared:
                out.extend(c.text for c in chunk_blocks(blocks, settings, tokenizer())[1])

        _, t, ratio = paired(lambda: [enc.encode_ordinary(x) for x in our_texts], run_ours, repeat)
        rows.append({"settings": f"{max_tokens}/{overlap}", "name": "sluice (structure-aware)", "seconds": t,
                     "ratio": ratio, "mb": sum(map(len, our_texts)) / 1e6, **chunk_stats(ours, max_tokens),
                     "note": "extracted and cleaned blocks in; exact token counts out"})  # fmt: skip
        for name, (split, note) in peers(max_tokens, overlap).items():
            got: list[str] = []

            def run_peer(split: Callable[[str], list[str]] = split, out: list[str] = got) -> None:
                out.clear()
                for text in raw_texts:
                    out.extend(split(text))

            _floor_t, t, ratio = paired(lambda: [enc.encode_ordinary(x) for x in raw_texts], run_peer, repeat)
            rows.append({"settings": f"{max_tokens}/{overlap}", "name": name, "seconds": t, "ratio": ratio,
                         "mb": sum(map(len, raw_texts)) / 1e6, **chunk_stats(got, max_tokens), "note": note})  # fmt: skip
    return rows


def bench_pipeline(corpus: list[tuple[str, str]], repeat: int) -> dict[str, float]:
    from sluice.pipeline.process import process_document

    enc = tokenizer().encoding
    raw = [(name, text.encode()) for name, text in corpus]
    settings = PipelineSettings()
    count = {"chunks": 0}

    def run() -> None:
        count["chunks"] = sum(len(process_document(data, name, settings).chunks) for name, data in raw)

    _floor_t, t, ratio = paired(lambda: [enc.encode_ordinary(text) for _, text in corpus], run, repeat)
    return {
        "seconds": t,
        "ratio": ratio,
        "chunks_per_second": count["chunks"] / t,
        "mb_per_second": sum(len(d) for _, d in raw) / 1e6 / t,
    }


# -- PDF -----------------------------------------------------------------------------------------------------


def _raw_pypdf(data: bytes) -> str:
    import io

    import pypdf

    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def _raw_pdfium(data: bytes) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    finally:
        pdf.close()


def _agreement(a: str, b: str) -> float:
    wa, wb = Counter(a.split()), Counter(b.split())
    common = sum((wa & wb).values())
    return common / max(sum(wa.values()), sum(wb.values()), 1)


def bench_pdf(pdfs: list[tuple[str, bytes]], repeat: int) -> dict[str, Any]:
    from sluice.pipeline.extract.pdf import extract_pdf

    usable = []
    for name, data in pdfs:
        try:
            pages = len(__import__("pypdf").PdfReader(__import__("io").BytesIO(data)).pages)
            _raw_pdfium(data)
            usable.append((name, data, pages))
        except Exception:  # noqa: BLE001 - a file either library cannot open is left out, and said so
            print(f"  left out {name}: not readable by both libraries")
    total_pages = sum(p for _, _, p in usable)
    result: dict[str, Any] = {
        "files": len(usable),
        "pages": total_pages,
        "megabytes": sum(len(d) for _, d, _ in usable) / 1e6,
    }
    baseline = lambda: [_raw_pypdf(d) for _, d, _ in usable]  # noqa: E731
    subjects = {
        "pypdfium2 get_text_range": lambda: [_raw_pdfium(d) for _, d, _ in usable],
        "sluice extract_pdf (pypdf)": lambda: [
            extract_pdf(d, ParseLimits(pdf_backends=("pypdf",))) for _, d, _ in usable
        ],
        "sluice extract_pdf (PDFium)": lambda: [
            extract_pdf(d, ParseLimits(pdf_backends=("pdfium",))) for _, d, _ in usable
        ],
    }
    rows = {}
    base_times = []
    for label, fn in subjects.items():
        base, subject, ratio = paired(baseline, fn, max(3, repeat // 2))
        base_times.append(base)
        rows[label] = (total_pages / subject, 1 / ratio)
    rows = {"pypdf extract_text": (total_pages / statistics.median(base_times), 1.0), **rows}
    result["pages_per_second"] = rows
    result["agreement"] = {name: _agreement(_raw_pypdf(d), _raw_pdfium(d)) for name, d, _ in usable}
    words = {}
    for name, data, _ in usable:
        docs = [extract_pdf(data, ParseLimits(pdf_backends=(b,))) for b in ("pypdf", "pdfium")]
        words[name] = _agreement(*(" ".join(b.text for b in doc.blocks) for doc in docs))
    result["agreement_after_layout"] = words
    return result


# -- memory and cold start -------------------------------------------------------------------------------


MEMORY_PROBE = """
import json, resource, sys, time
sys.path[:0] = {paths!r}
from sluice.pipeline.process import PipelineSettings, process_document
from sluice.pipeline.sandbox import Sandbox
data = open({path!r}, "rb").read()
box = Sandbox()
start = time.perf_counter()
doc = process_document(data, "big.pdf", PipelineSettings(), extractor=box)
elapsed = time.perf_counter() - start
box.close()
print(json.dumps({{"seconds": elapsed, "pages": doc.page_count, "chunks": len(doc.chunks),
    "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def bench_memory() -> dict[str, Any]:
    """A PDF of about 50 MB through the sandboxed pipeline in a fresh process: peak RSS of the
    function's process and of the parsing worker."""
    from pydoc_data.topics import topics

    from support.pdfwriter import document, make_pdf

    text = [p for t in topics.values() for p in t.split("\n\n") if p.strip()]
    sections = [(f"Part {i}", text[(i * 7) % len(text) : (i * 7) % len(text) + 7]) for i in range(1200)]
    pages = document(sections, title="Big", lines_per_page=60)[:1900]
    data = make_pdf(pages, image_bytes=50_000_000 // len(pages))
    with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as f:
        f.write(data)
    try:
        probe = MEMORY_PROBE.format(paths=sys.path[:2], path=f.name)
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    return {"megabytes": len(data) / 1e6, **json.loads(out.strip().splitlines()[-1])}


COLD_PROBE = """
import os, sys, time
t0 = time.perf_counter()
os.environ.update(PROCESSED_BUCKET="p", DOCUMENTS_TABLE="t", EVENT_BUS_NAME="b", IDEMPOTENCY_TABLE="i",
    AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
sys.path[:0] = {paths!r}
import app
t1 = time.perf_counter()
wiring = app.function()
t2 = time.perf_counter()
from sluice.pipeline.tokens import tokenizer
tokenizer()
t3 = time.perf_counter()
from sluice.pipeline.extract import ParseLimits
from sluice.model import Kind
wiring.service.extractor(b"# warm", Kind.MARKDOWN, ParseLimits())
t4 = time.perf_counter()
wiring.service.extractor.close()
print(f"{{(t1-t0)*1000:.1f}} {{(t2-t1)*1000:.1f}} {{(t3-t2)*1000:.1f}} {{(t4-t3)*1000:.1f}}")
"""


def bench_cold_start(repeat: int) -> dict[str, float]:
    paths = [str(ROOT / "functions" / "ingest_document"), *sys.path[:2]]
    runs = []
    for _ in range(repeat + 1):
        out = subprocess.run(
            [sys.executable, "-c", COLD_PROBE.format(paths=paths)], capture_output=True, text=True, check=True
        )
        runs.append([float(x) for x in out.stdout.split()])
    runs = runs[1:]  # the first run warms the page cache
    interpreter = statistics.median(
        seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(repeat)
    )
    names = ["import_ms", "setup_ms", "tokenizer_ms", "sandbox_worker_ms"]
    result = {n: statistics.median(r[i] for r in runs) for i, n in enumerate(names)}
    result["interpreter_ms"] = interpreter * 1000
    return result


# -- report ------------------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (bench/run.py); every ratio compares two things measured in the same run on the same",
        "machine, with baseline and subject runs alternating. Absolute times vary with the machine and its neighbours;",
        "the ratios are what to compare.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {results['date']}.",
        f"Versions: {results['versions']}",
        "",
        "## Chunking against the tokenizer floor and the peers",
        "",
        f"Corpus: {results['corpus']['documents']} documents, {results['corpus']['megabytes']:.2f} MB "
        "(Python's documentation topics and the licence and README files of the installed packages).",
        "`vs floor` = chunker time / one `encode_ordinary` pass over the text that chunker was given (Sluice's input is",
        "the extracted and cleaned text; the peers get the raw files). Token counts by `encode_ordinary`.",
        "",
        "| settings | chunker | seconds | vs floor | chunks | mean tokens | max tokens | over limit | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["chunkers"]:
        lines.append(
            f"| {r['settings']} | {r['name']} | {r['seconds']:.3f} | {r['ratio']:.2f}x | {r['chunks']} | "
            f"{r['mean']:.0f} | {r['max']} | {r['over']} | {r['note']} |"
        )
    p = results["pipeline"]
    lines += [
        "",
        f"Whole front end (detect, extract, clean, chunk at 512/64) on the raw files: {p['ratio']:.2f}x the floor, "
        f"{p['chunks_per_second']:.0f} chunks/s, {p['mb_per_second']:.2f} MB/s.",
        "",
        "## PDF extraction",
        "",
    ]
    pdf = results["pdf"]
    lines += [
        f"{pdf['files']} PDFs, {pdf['pages']} pages, {pdf['megabytes']:.1f} MB (built by the benchmark, plus the machine's own).",
        "",
        "| extractor | pages/s | speed vs pypdf extract_text (paired) |",
        "|---|---:|---:|",
    ]
    for name, (pps, speedup) in pdf["pages_per_second"].items():
        lines.append(f"| {name} | {pps:.0f} | {speedup:.1f}x |")
    lines += ["", "Agreement of the two libraries' text (shared words / words of the longer text):", ""]
    lines += ["| file | raw text | after Sluice's layout analysis |", "|---|---:|---:|"]
    for name, value in pdf["agreement"].items():
        lines.append(f"| {name} | {value:.3f} | {pdf['agreement_after_layout'][name]:.3f} |")
    m = results["memory"]
    lines += [
        "",
        "## Memory",
        "",
        f"A {m['megabytes']:.0f} MB PDF ({m['pages']} pages, {m['chunks']} chunks) through the sandboxed pipeline in a "
        f"fresh process: {m['seconds']:.1f} s; peak RSS {m['parent_mb']:.0f} MB in the function's process and "
        f"{m['child_mb']:.0f} MB in the parsing worker, {m['parent_mb'] + m['child_mb']:.0f} MB together against the "
        "function's 1769 MB.",
        "",
        "## Cold start of the ingest handler",
        "",
    ]
    c = results["cold"]
    lines += [
        "Fresh process, median of runs after one that warms the page cache (ms):",
        "",
        "| interpreter start | import handler | build service (clients, idempotency) | import + setup | "
        "tokenizer (first document) | sandbox worker start (first document) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {c['interpreter_ms']:.0f} | {c['import_ms']:.0f} | {c['setup_ms']:.0f} | {c['import_ms'] + c['setup_ms']:.0f} | "
        f"{c['tokenizer_ms']:.0f} | {c['sandbox_worker_ms']:.0f} |",
        "",
        *sink_report(results["sinks"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--corpus-mb", type=float, default=4.0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    corpus = prose_corpus(args.corpus_mb)
    import chonkie
    import langchain_text_splitters
    import pypdf
    import pypdfium2
    import semchunk

    versions = (
        f"tiktoken {tiktoken.__version__ if hasattr(tiktoken, '__version__') else '?'}, pypdf {pypdf.__version__}, "
        f"pypdfium2 {pypdfium2.version.PYPDFIUM_INFO.version}, langchain-text-splitters "
        f"{__import__('importlib.metadata').metadata.version('langchain-text-splitters')}, chonkie "
        f"{chonkie.__version__}, semchunk {__import__('importlib.metadata').metadata.version('semchunk')}"
    )
    del langchain_text_splitters, semchunk
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions,
        "corpus": {"documents": len(corpus), "megabytes": sum(len(t) for _, t in corpus) / 1e6},
    }
    print(f"corpus: {results['corpus']['documents']} documents, {results['corpus']['megabytes']:.2f} MB", flush=True)
    print("chunkers ...", flush=True)
    results["chunkers"] = bench_chunkers(corpus, args.repeat)
    print("whole front end ...", flush=True)
    results["pipeline"] = bench_pipeline(corpus, args.repeat)
    print("PDF ...", flush=True)
    results["pdf"] = bench_pdf(pdf_corpus(), args.repeat)
    print("memory ...", flush=True)
    results["memory"] = bench_memory()
    print("cold start ...", flush=True)
    results["cold"] = bench_cold_start(args.repeat)
    print("sink API calls ...", flush=True)
    results["sinks"] = bench_sinks()
    text = report(results)
    Path(args.out).write_text(text)
    print(text)
    print(
        f"written to {args.out}; peak RSS of this run {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
