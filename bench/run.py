"""`make bench`: Sluice's front end measured against the tokenizer floor and the libraries a Bedrock
or Kendra user would otherwise reach for, all in one run on one machine, reported as ratios; and the
sinks' API calls per 1,000 documents against the naive ways of syncing an index (bench/sinks.py).

Each stage's results are written to a JSON file as the stage ends, and docs/benchmarks.md is rendered
from whatever stages have results, so a stage that fails loses only itself (it is reported with its
error, and the run exits non-zero at the end). Peers (langchain-text-splitters, chonkie, semchunk) are
installed only in the benchmark's own venv (.venv/tools/bench).

``--smoke`` runs every stage on a tiny input in seconds, into a temporary directory, asserting nothing
about the figures: peers that cannot be imported are skipped (and said so), Sluice's own code always
runs. tests/bench/test_bench_smoke.py runs it, so a change that breaks a benchmark fails the tests.
``--stage NAME`` (repeatable) runs only the stages named, keeping the other stages' results in the
results file.

The costs stage (bench/costs.py: AWS requests and CPU per document, what capacity/ models) runs in the
main venv, where moto and the local stack are, not in this one.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "sluice"), str(ROOT / "cli"), str(ROOT / "tests")]


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
from costs import cost_report  # noqa: E402
from sinks import bench_sinks, sink_report  # noqa: E402

from sluice.model import Block  # noqa: E402
from sluice.pipeline.chunk import ChunkSettings, _lay_out, chunk_blocks  # noqa: E402
from sluice.pipeline.clean import clean_blocks  # noqa: E402
from sluice.pipeline.detect import detect  # noqa: E402
from sluice.pipeline.extract import ParseLimits, extract  # noqa: E402
from sluice.pipeline.process import PipelineSettings  # noqa: E402
from sluice.pipeline.tokens import Tokenizer, tokenizer  # noqa: E402

SETTINGS = [(512, 50), (300, 60)]


@dataclass(frozen=True)
class Scale:
    """How much each stage measures: the full run, or the smoke run's tiny inputs."""

    smoke: bool = False
    repeat: int = 5
    stage_repeat: int = 11  # the stages are short and each is one ratio: more pairs steady their median
    warmups: int = 1  # runs before the measured ones (page cache, imports)
    corpus_mb: float = 4.0
    system_pdfs: int = 20
    memory_mb: float = 50.0
    memory_pages: int = 1900
    sink_documents: int = 1000
    sink_edited: int = 10
    cost_documents: int = 400


SMOKE = Scale(smoke=True, repeat=1, stage_repeat=1, warmups=0, corpus_mb=0.02, system_pdfs=0, memory_mb=0.5, memory_pages=8,
              sink_documents=12, sink_edited=2, cost_documents=6)  # fmt: skip


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


def pdf_corpus(scale: Scale) -> list[tuple[str, bytes]]:
    """PDFs the benchmark builds (prose from the corpus, headings, several hundred pages), plus
    any PDF documentation installed on the machine."""
    from pydoc_data.topics import topics

    from support.pdfwriter import document, make_pdf

    sections = [(name, [p for p in text.split("\n\n") if p.strip()][:12]) for name, text in sorted(topics.items())]
    if scale.smoke:
        sections = sections[:3]
    pdfs = [("built/python-topics.pdf", make_pdf(document(sections, title="Python topics", lines_per_page=45)))]
    pdfs.append(("built/python-topics-half.pdf", make_pdf(document(sections[::2], title="Half", lines_per_page=45))))
    for path in sorted(Path("/usr/share/doc").rglob("*.pdf"))[: scale.system_pdfs]:
        pdfs.append((f"system/{path.name}", path.read_bytes()))
    return pdfs


# -- timing ----------------------------------------------------------------------------------------------


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(
    floor: Callable[[], Any], subject: Callable[[], Any], repeat: int, warmups: int = 1
) -> tuple[float, float, float]:
    """Medians of the floor and subject times, and the median of their per-pair ratios: baseline and
    subject alternate, so a noisy neighbour slows both alike."""
    for _ in range(warmups):
        subject()
    pairs = [(seconds(floor), seconds(subject)) for _ in range(repeat)]
    return (
        statistics.median(b for b, _ in pairs),
        statistics.median(s for _, s in pairs),
        statistics.median(s / b for b, s in pairs),
    )


# -- chunkers ----------------------------------------------------------------------------------------------


Chunker = Callable[[str], list[str]]


def _langchain(max_tokens: int, overlap: int) -> dict[str, tuple[Chunker, str]]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter, TokenTextSplitter

    token = TokenTextSplitter(encoding_name="cl100k_base", chunk_size=max_tokens, chunk_overlap=overlap)
    recursive = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=max_tokens, chunk_overlap=overlap
    )
    return {
        "langchain TokenTextSplitter": (token.split_text, "token windows; not structure-aware"),
        "langchain RecursiveCharacterTextSplitter": (recursive.split_text, "from_tiktoken_encoder"),
    }


def _chonkie(max_tokens: int, overlap: int) -> dict[str, tuple[Chunker, str]]:
    from chonkie import RecursiveChunker

    chonkie = RecursiveChunker(tokenizer=tiktoken.get_encoding("cl100k_base"), chunk_size=max_tokens)
    return {"chonkie RecursiveChunker": (lambda t: [c.text for c in chonkie.chunk(t)], "no overlap setting")}


def _semchunk(max_tokens: int, overlap: int) -> dict[str, tuple[Chunker, str]]:
    import semchunk

    sem = semchunk.chunkerify(tiktoken.get_encoding("cl100k_base"), max_tokens)
    return {"semchunk": (lambda t: sem(t, overlap=overlap), "overlap in tokens")}


PEERS = {"langchain-text-splitters": _langchain, "chonkie": _chonkie, "semchunk": _semchunk}


def peers(max_tokens: int, overlap: int, scale: Scale, skipped: list[str]) -> dict[str, tuple[Chunker, str]]:
    """name → (chunk function, note). The full run needs every peer; the smoke run skips those it cannot
    import and says so in ``skipped``."""
    out: dict[str, tuple[Chunker, str]] = {}
    for package, build in PEERS.items():
        try:
            out.update(build(max_tokens, overlap))
        except ImportError as exc:
            if not scale.smoke:
                raise
            note = f"{package}: not installed ({exc.name})"
            if note not in skipped:
                skipped.append(note)
                print(f"  skipped {note}", flush=True)
    return out


def chunk_stats(chunks: list[str], limit: int) -> dict[str, float]:
    enc = tokenizer()
    sizes = [enc.count(c) for c in chunks]
    return {
        "chunks": len(sizes),
        "mean": statistics.mean(sizes) if sizes else 0,
        "max": max(sizes, default=0),
        "over": sum(s > limit for s in sizes),
    }


def bench_chunkers(corpus: list[tuple[str, str]], scale: Scale, skipped: list[str]) -> list[dict[str, Any]]:
    repeat = scale.repeat
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

        _, t, ratio = paired(lambda: [enc.encode_ordinary(x) for x in our_texts], run_ours, repeat, scale.warmups)
        rows.append({"settings": f"{max_tokens}/{overlap}", "name": "sluice (structure-aware)", "seconds": t,
                     "ratio": ratio, "mb": sum(map(len, our_texts)) / 1e6, **chunk_stats(ours, max_tokens),
                     "note": "extracted and cleaned blocks in; exact token counts out"})  # fmt: skip
        for name, (split, note) in peers(max_tokens, overlap, scale, skipped).items():
            got: list[str] = []

            def run_peer(split: Callable[[str], list[str]] = split, out: list[str] = got) -> None:
                out.clear()
                for text in raw_texts:
                    out.extend(split(text))

            _floor_t, t, ratio = paired(
                lambda: [enc.encode_ordinary(x) for x in raw_texts], run_peer, repeat, scale.warmups
            )
            rows.append({"settings": f"{max_tokens}/{overlap}", "name": name, "seconds": t, "ratio": ratio,
                         "mb": sum(map(len, raw_texts)) / 1e6, **chunk_stats(got, max_tokens), "note": note})  # fmt: skip
    return rows


def bench_pipeline(corpus: list[tuple[str, str]], scale: Scale) -> dict[str, float]:
    from sluice.pipeline.process import process_document

    enc = tokenizer().encoding
    raw = [(name, text.encode()) for name, text in corpus]
    settings = PipelineSettings()
    count = {"chunks": 0}

    def run() -> None:
        count["chunks"] = sum(len(process_document(data, name, settings).chunks) for name, data in raw)

    _floor_t, t, ratio = paired(
        lambda: [enc.encode_ordinary(text) for _, text in corpus], run, scale.repeat, scale.warmups
    )
    return {
        "seconds": t,
        "ratio": ratio,
        "chunks_per_second": count["chunks"] / t,
        "mb_per_second": sum(len(d) for _, d in raw) / 1e6 / t,
    }


# -- the front end stage by stage, per format -------------------------------------------------------------

_UNDERLINE = re.compile(r"^(.+)\n([*=~^-])\2{2,}$")
_QUOTED = re.compile(r'"([^"\n]{1,40})"')


def _pieces(text: str) -> list[tuple[str, str]]:
    """The corpus text's paragraphs as (role, text): "heading" (a line starting "# "), "title" (a line underlined with * = ~ ^ or -),
    "code" (every line indented), "list" (every line a "* " item or its continuation) or "para"."""
    out = []
    for para in text.split("\n\n"):
        lines = [line for line in para.split("\n") if line.strip()]
        if not lines:
            continue
        underlined = _UNDERLINE.match(para.strip("\n"))
        if len(lines) == 1 and lines[0].startswith("# "):
            out.append(("heading", lines[0][2:]))
        elif underlined:
            out.append(("title", underlined.group(1).strip()))
        elif all(line.startswith("   ") for line in lines):
            out.append(("code", "\n".join(lines)))
        elif lines[0].startswith("* ") and all(line.startswith(("* ", "  ")) for line in lines):
            out.append(("list", "\n".join(lines)))
        else:
            out.append(("para", para.strip("\n")))
    return out


def as_markdown(text: str) -> str:
    """The same prose as Markdown: underlined titles as ATX headings, indented code fenced."""
    parts = []
    for role, body in _pieces(text):
        if role == "heading":
            parts.append(f"# {body}")
        elif role == "title":
            parts.append(f"## {body}")
        elif role == "code":
            parts.append(f"```\n{textwrap.dedent(body)}\n```")
        else:
            parts.append(body)
    return "\n\n".join(parts) + "\n"


def as_html(title: str, text: str) -> str:
    """The same prose as an HTML page: a head, a navigation bar and a footer around a <main> of
    headings, paragraphs (quoted names as <code>), lists and <pre> blocks."""

    def inline(s: str) -> str:
        return _QUOTED.sub(r"<code>\1</code>", html.escape(s, quote=False))

    body = []
    for role, piece in _pieces(text):
        if role == "heading":
            body.append(f"<h1>{inline(piece)}</h1>")
        elif role == "title":
            body.append(f'<h2 id="{html.escape(piece[:20])}">{inline(piece)}</h2>')
        elif role == "code":
            body.append(f"<pre><code>{html.escape(textwrap.dedent(piece))}</code></pre>")
        elif role == "list":
            items = re.split(r"\n(?=\* )", piece)
            body.append("<ul>\n" + "\n".join(f"  <li>{inline(i[2:])}</li>" for i in items) + "\n</ul>")
        else:
            body.append(f"<p>{inline(piece)}</p>")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        '<link rel="stylesheet" href="/style.css">\n<script>window.dataLayer = [];</script>\n</head>\n<body>\n'
        '<nav class="site-nav"><ul><li><a href="/">Home</a></li><li><a href="/docs/">Docs</a></li></ul></nav>\n'
        '<div class="cookie-banner">We use cookies. <button>OK</button></div>\n<main>\n'
        + "\n".join(body)
        + "\n</main>\n<footer><p>Copyright notices and links</p></footer>\n</body>\n</html>\n"
    )


FORMATS = ("plain text", "Markdown", "HTML")


def format_corpora(corpus: list[tuple[str, str]]) -> dict[str, list[tuple[str, bytes]]]:
    """The prose corpus written out as files of each format: the same prose in each."""
    out: dict[str, list[tuple[str, bytes]]] = {f: [] for f in FORMATS}
    for name, text in corpus:
        stem = name.rsplit(".", 1)[0].replace("/", "-")
        out["plain text"].append((f"{stem}.txt", text.encode()))
        out["Markdown"].append((f"{stem}.md", as_markdown(text).encode()))
        out["HTML"].append((f"{stem}.html", as_html(stem, text).encode()))
    return out


class _PreEncoded(Tokenizer):
    """The layer's tokenizer, but encode answered from a table filled beforehand: the chunker
    measured without its tokenizer pass. The chunker encodes each document in pieces; chunking the
    documents once tells which (``pieces``, in the order it asked for them)."""

    def __init__(self, documents: list[list[Block]], settings: ChunkSettings) -> None:
        real = tokenizer()
        super().__init__(real.encoding, real.token_bytes)
        self.pieces: list[str] = []
        self._table: dict[str, list[int]] | None = None
        for blocks in documents:
            chunk_blocks(blocks, settings, self)
        self._table = {piece: real.encode(piece) for piece in self.pieces}

    def encode(self, text: str) -> list[int]:
        if self._table is None:
            self.pieces.append(text)
            return super().encode(text)
        return self._table[text]


STAGE_NAMES = ("detect", "decode + extract", "clean", "tokenizer pass", "rest of chunking")


def bench_stages(corpus: list[tuple[str, str]], scale: Scale) -> dict[str, Any]:
    """Each stage of the front end on its own (given the previous stage's output, made beforehand),
    and the whole of it, on the same prose as plain text, Markdown and HTML files. Every figure is a
    ratio to one encode_ordinary pass over the prose, paired run by run (median of the per-pair
    ratios)."""
    from sluice.pipeline.process import process_document

    enc = tokenizer().encoding
    prose = [text for _, text in corpus]

    def floor() -> None:
        for text in prose:
            enc.encode_ordinary(text)

    settings = PipelineSettings()
    out: dict[str, Any] = {}
    for fmt, files in format_corpora(corpus).items():
        kinds = [detect(data, name) for name, data in files]
        extracted = [extract(data, kind, settings.parse) for (_, data), kind in zip(files, kinds, strict=True)]
        cleaned = [clean_blocks(doc.blocks)[0] for doc in extracted]
        pre_encoded = _PreEncoded(cleaned, settings.chunking)
        subjects: dict[str, Callable[[], Any]] = {
            "detect": lambda files=files: [detect(data, name) for name, data in files],
            "decode + extract": lambda files=files, kinds=kinds: [
                extract(data, kind, settings.parse) for (_, data), kind in zip(files, kinds, strict=True)
            ],
            "clean": lambda extracted=extracted: [clean_blocks(doc.blocks) for doc in extracted],
            "tokenizer pass": lambda pieces=pre_encoded.pieces: [tokenizer().encode(p) for p in pieces],
            "rest of chunking": lambda cleaned=cleaned, pre=pre_encoded: [
                chunk_blocks(blocks, settings.chunking, pre) for blocks in cleaned
            ],
            "whole": lambda files=files: [process_document(data, name, settings) for name, data in files],
        }
        ratios = {name: paired(floor, fn, scale.stage_repeat, scale.warmups)[2] for name, fn in subjects.items()}
        out[fmt] = {
            "files": len(files),
            "megabytes": sum(len(data) for _, data in files) / 1e6,
            "ratios": ratios,
        }
        print(f"  {fmt}: " + ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()), flush=True)
    out["prose_megabytes"] = sum(map(len, prose)) / 1e6
    out["pairs"] = scale.stage_repeat
    return out


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


def _pdfium_installed() -> bool:
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        return False
    return True


def bench_pdf(pdfs: list[tuple[str, bytes]], scale: Scale, skipped: list[str]) -> dict[str, Any]:
    import io

    import pypdf

    from sluice.pipeline.extract.pdf import extract_pdf

    backends = ["pypdf"]
    if _pdfium_installed():
        backends.append("pdfium")
    elif scale.smoke:
        skipped.append("pypdfium2: not installed (PDFium rows and the agreement tables left out)")
        print(f"  skipped {skipped[-1]}", flush=True)
    else:
        raise ImportError("pypdfium2 is not installed", name="pypdfium2")
    usable = []
    for name, data in pdfs:
        try:
            pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
            if "pdfium" in backends:
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
        "sluice extract_pdf (pypdf)": lambda: [
            extract_pdf(d, ParseLimits(pdf_backends=("pypdf",))) for _, d, _ in usable
        ],
    }
    if "pdfium" in backends:
        subjects = {
            "pypdfium2 get_text_range": lambda: [_raw_pdfium(d) for _, d, _ in usable],
            **subjects,
            "sluice extract_pdf (PDFium)": lambda: [
                extract_pdf(d, ParseLimits(pdf_backends=("pdfium",))) for _, d, _ in usable
            ],
        }
    rows = {}
    base_times = []
    for label, fn in subjects.items():
        base, subject, ratio = paired(baseline, fn, min(scale.repeat, max(3, scale.repeat // 2)), scale.warmups)
        base_times.append(base)
        rows[label] = (total_pages / subject, 1 / ratio)
    rows = {"pypdf extract_text": (total_pages / statistics.median(base_times), 1.0), **rows}
    result["pages_per_second"] = rows
    result["agreement"] = {}
    result["agreement_after_layout"] = {}
    if "pdfium" in backends:
        result["agreement"] = {name: _agreement(_raw_pypdf(d), _raw_pdfium(d)) for name, d, _ in usable}
        for name, data, _ in usable:
            docs = [extract_pdf(data, ParseLimits(pdf_backends=(b,))) for b in ("pypdf", "pdfium")]
            result["agreement_after_layout"][name] = _agreement(*(" ".join(b.text for b in doc.blocks) for doc in docs))
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


def bench_memory(scale: Scale) -> dict[str, Any]:
    """A PDF of about 50 MB through the sandboxed pipeline in a fresh process: peak RSS of the
    function's process and of the parsing worker."""
    from pydoc_data.topics import topics

    from support.pdfwriter import document, make_pdf

    text = [p for t in topics.values() for p in t.split("\n\n") if p.strip()]
    sections = [(f"Part {i}", text[(i * 7) % len(text) : (i * 7) % len(text) + 7]) for i in range(1200)]
    pages = document(sections, title="Big", lines_per_page=60)[: scale.memory_pages]
    data = make_pdf(pages, image_bytes=int(scale.memory_mb * 1e6) // len(pages))
    with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as f:
        f.write(data)
    try:
        probe = MEMORY_PROBE.format(paths=sys.path[:2], path=f.name)
        out = _probe([sys.executable, "-c", probe])
    finally:
        os.unlink(f.name)
    return {"megabytes": len(data) / 1e6, **json.loads(out.strip().splitlines()[-1])}


def _probe(command: list[str]) -> str:
    """A probe's output; a failing probe raises with the end of what it wrote to stderr."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-12:]
        raise RuntimeError(f"probe exited with {done.returncode}:\n" + "\n".join(tail))
    return done.stdout


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


def bench_cold_start(scale: Scale) -> dict[str, float]:
    paths = [str(ROOT / "functions" / "ingest_document"), *sys.path[:2]]
    runs = []
    for _ in range(scale.repeat + scale.warmups):
        out = _probe([sys.executable, "-c", COLD_PROBE.format(paths=paths)])
        runs.append([float(x) for x in out.split()])
    runs = runs[scale.warmups :]  # the first run warms the page cache
    interpreter = statistics.median(
        seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(scale.repeat)
    )
    names = ["import_ms", "setup_ms", "tokenizer_ms", "sandbox_worker_ms"]
    result = {n: statistics.median(r[i] for r in runs) for i, n in enumerate(names)}
    result["interpreter_ms"] = interpreter * 1000
    return result


IMPORT_PROBE = """
import os, sys, time
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
import app
print(f"{{(time.perf_counter() - t0) * 1000:.1f}}")
"""


def bench_handler_imports(scale: Scale) -> dict[str, Any]:
    """Each handler (functions/*/app.py) imported in a fresh process, alternating with a bare
    interpreter start measured in the same run: the import's own time (measured inside the process),
    the whole process's time, and that against the bare start (median of per-pair ratios)."""
    bare = [sys.executable, "-c", "pass"]
    handlers: dict[str, dict[str, float]] = {}
    starts: list[float] = []
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        command = [sys.executable, "-c", IMPORT_PROBE.format(paths=[str(app.parent), *sys.path[:2]])]
        for _ in range(scale.warmups):
            _probe(command)
        pairs = []
        for _ in range(scale.repeat):
            start = seconds(lambda: subprocess.run(bare, check=True))
            began = time.perf_counter()
            imported = float(_probe(command))
            pairs.append((start, time.perf_counter() - began, imported))
        starts += [s for s, _, _ in pairs]
        handlers[app.parent.name] = {
            "import_ms": statistics.median(i for _, _, i in pairs),
            "process_ms": statistics.median(p for _, p, _ in pairs) * 1000,
            "ratio": statistics.median(p / s for s, p, _ in pairs),
        }
        print(f"  {app.parent.name}: import {handlers[app.parent.name]['import_ms']:.0f} ms, "
              f"{handlers[app.parent.name]['ratio']:.1f}x a bare interpreter start", flush=True)  # fmt: skip
    return {"interpreter_ms": statistics.median(starts) * 1000, "handlers": handlers}


# -- AWS requests and CPU per document ----------------------------------------------------------------------


def _main_python() -> str:
    """The main venv's interpreter (moto, the local stack), or this one where there is none."""
    main = ROOT / ".venv" / "bin" / "python"
    return str(main) if main.exists() else sys.executable


def bench_costs(scale: Scale) -> dict[str, Any]:
    """bench/costs.py in the main venv, its results read back."""
    with tempfile.TemporaryDirectory(prefix="sluice-costs-") as directory:
        out = Path(directory) / "costs.json"
        _probe(
            [
                _main_python(),
                str(ROOT / "bench" / "costs.py"),
                "--documents",
                str(scale.cost_documents),
                "--out",
                str(out),
            ]
        )
        result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- report ------------------------------------------------------------------------------------------------


def _not_measured(results: dict[str, Any], *stages: str) -> list[str]:
    """Why a section has no figures: its stage failed (with the error) or did not run."""
    lines = []
    for stage in stages:
        if stage in results["errors"]:
            lines += [f"**The {stage} stage failed**:", "", "```", results["errors"][stage], "```", ""]
        elif stage not in results:
            lines += [f"The {stage} stage did not run.", ""]
    return lines


def _chunk_lines(results: dict[str, Any]) -> list[str]:
    lines = [
        f"Corpus: {results['corpus']['documents']} documents, {results['corpus']['megabytes']:.2f} MB "
        "(Python's documentation topics and the licence and README files of the installed packages).",
        "`vs floor` = chunker time / one `encode_ordinary` pass over the text that chunker was given (Sluice's input is",
        "the extracted and cleaned text; the peers get the raw files). Token counts by `encode_ordinary`.",
        "",
    ]
    if "chunkers" in results:
        lines += [
            "| settings | chunker | seconds | vs floor | chunks | mean tokens | max tokens | over limit | note |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in results["chunkers"]:
            lines.append(
                f"| {r['settings']} | {r['name']} | {r['seconds']:.3f} | {r['ratio']:.2f}x | {r['chunks']} | "
                f"{r['mean']:.0f} | {r['max']} | {r['over']} | {r['note']} |"
            )
        lines.append("")
    if "pipeline" in results:
        p = results["pipeline"]
        lines += [
            f"Whole front end (detect, extract, clean, chunk at 512/64) on the raw files: {p['ratio']:.2f}x the floor, "
            f"{p['chunks_per_second']:.0f} chunks/s, {p['mb_per_second']:.2f} MB/s.",
            "",
        ]
    return lines + _not_measured(results, "chunkers", "pipeline")


def _stage_lines(stages: dict[str, Any]) -> list[str]:
    lines = [
        f"The same prose ({stages['prose_megabytes']:.2f} MB, the corpus above) written out as plain text, as Markdown",
        "(underlined titles as headings, indented code fenced) and as HTML pages (a head, navigation, a cookie banner and",
        "a footer around a `<main>` of headings, paragraphs, lists and `<pre>` blocks), through `process_document` at",
        "512/64. Each stage is timed on its own, given the previous stage's output made beforehand; every figure is that",
        f"time / one `encode_ordinary` pass over the prose, paired run by run (median of {stages['pairs']} per-pair ratios). The",
        "`tokenizer pass` is the chunker's one encoding of the cleaned text (in pieces, `Tokenizer.encode`); `rest of chunking` is",
        "`chunk_blocks` given that encoding ready-made. `detect to clean` adds up the stages before chunking; `whole` is",
        "measured, not added up.",
        "",
        "| format | MB | "
        + " | ".join(STAGE_NAMES[:3])
        + " | detect to clean | "
        + " | ".join(STAGE_NAMES[3:])
        + " | stages added up | whole |",
        "|---|---:|" + "---:|" * (len(STAGE_NAMES) + 3),
    ]
    for fmt in FORMATS:
        if fmt not in stages:
            continue
        r = stages[fmt]["ratios"]
        cells = [f"{r[n]:.2f}x" for n in STAGE_NAMES]
        cells.insert(3, f"{sum(r[n] for n in STAGE_NAMES[:3]):.2f}x")
        added = sum(r[n] for n in STAGE_NAMES)
        lines.append(
            f"| {fmt} | {stages[fmt]['megabytes']:.2f} | "
            + " | ".join(cells)
            + f" | {added:.2f}x | {r['whole']:.2f}x |"
        )
    return lines


def _pdf_lines(pdf: dict[str, Any]) -> list[str]:
    lines = [
        f"{pdf['files']} PDFs, {pdf['pages']} pages, {pdf['megabytes']:.1f} MB (built by the benchmark, plus the "
        "machine's own).",
        "",
        "| extractor | pages/s | speed vs pypdf extract_text (paired) |",
        "|---|---:|---:|",
    ]
    for name, (pps, speedup) in pdf["pages_per_second"].items():
        lines.append(f"| {name} | {pps:.0f} | {speedup:.1f}x |")
    if pdf["agreement"]:
        lines += ["", "Agreement of the two libraries' text (shared words / words of the longer text):", ""]
        lines += ["| file | raw text | after Sluice's layout analysis |", "|---|---:|---:|"]
        for name, value in pdf["agreement"].items():
            lines.append(f"| {name} | {value:.3f} | {pdf['agreement_after_layout'][name]:.3f} |")
    return lines


def _memory_lines(m: dict[str, Any]) -> list[str]:
    return [
        f"A {m['megabytes']:.0f} MB PDF ({m['pages']} pages, {m['chunks']} chunks) through the sandboxed pipeline in a "
        f"fresh process: {m['seconds']:.1f} s; peak RSS {m['parent_mb']:.0f} MB in the function's process and "
        f"{m['child_mb']:.0f} MB in the parsing worker, {m['parent_mb'] + m['child_mb']:.0f} MB together against the "
        "function's 1769 MB.",
    ]


def _cold_lines(c: dict[str, Any]) -> list[str]:
    return [
        "The ingest handler in a fresh process, median of runs after one that warms the page cache (ms):",
        "",
        "| interpreter start | import handler | build service (clients, idempotency) | import + setup | "
        "tokenizer (first document) | sandbox worker start (first document) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {c['interpreter_ms']:.0f} | {c['import_ms']:.0f} | {c['setup_ms']:.0f} | {c['import_ms'] + c['setup_ms']:.0f} | "
        f"{c['tokenizer_ms']:.0f} | {c['sandbox_worker_ms']:.0f} |",
    ]


def _import_lines(imports: dict[str, Any]) -> list[str]:
    lines = [
        "Every handler imported in a fresh process, each run paired with a bare interpreter start "
        f"(median {imports['interpreter_ms']:.0f} ms in this run); medians of runs after one that warms the page "
        "cache. `vs interpreter start` = the whole process's time / the bare start's, per pair.",
        "",
        "| handler | import (ms, inside the process) | whole process (ms) | vs interpreter start |",
        "|---|---:|---:|---:|",
    ]
    for name, h in imports["handlers"].items():
        lines.append(f"| {name} | {h['import_ms']:.0f} | {h['process_ms']:.0f} | {h['ratio']:.1f}x |")
    return lines


# stage → (the report's heading, its lines from the stage's results); the chunking section is two stages
SECTIONS: dict[str, tuple[str, Callable[[Any], list[str]]]] = {
    "stages": ("The front end stage by stage, per format", _stage_lines),
    "pdf": ("PDF extraction", _pdf_lines),
    "memory": ("Memory", _memory_lines),
    "cold": ("Cold start of the ingest handler", _cold_lines),
    "imports": ("Import time of every handler", _import_lines),
    "sinks": ("", sink_report),
    "costs": ("", cost_report),
}


# the headings of the sections that bring their own, for when their stage has no results
DEFAULT_HEADINGS = {"sinks": "Sink API calls", "costs": "AWS requests and CPU per document"}


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
    ]
    if results["smoke"]:
        lines += ["**Smoke run** (`bench/run.py --smoke`): tiny inputs, one repetition; the figures mean nothing.", ""]
    if results["skipped"]:
        lines += ["Skipped: " + "; ".join(results["skipped"]) + ".", ""]
    lines += ["## Chunking against the tokenizer floor and the peers", "", *_chunk_lines(results)]
    for stage, (heading, render) in SECTIONS.items():
        if stage in results:  # the sinks' section brings its own heading
            lines += [*([f"## {heading}", ""] if heading else []), *render(results[stage]), ""]
        else:
            lines += [f"## {heading or DEFAULT_HEADINGS[stage]}", "", *_not_measured(results, stage)]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- the run ------------------------------------------------------------------------------------------------


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("tiktoken", "pypdf", "pypdfium2", "langchain-text-splitters", "chonkie", "semchunk"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def _save(results: dict[str, Any], results_path: Path, out: Path) -> None:
    """The results so far, and the report rendered from them: a later stage that fails loses only itself."""
    results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    out.write_text(report(results))


STAGE_ORDER = ("chunkers", "pipeline", "stages", "pdf", "memory", "cold", "imports", "sinks", "costs")


def run(scale: Scale, out: Path, results_path: Path, only: Sequence[str] = ()) -> dict[str, Any]:
    """Every stage at this scale (or only those named, into the results already in ``results_path``);
    the results and the report written after each."""
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "versions": _versions(),
        "smoke": scale.smoke,
        "skipped": [],
        "errors": {},
    }
    if only and results_path.exists():
        results = json.loads(results_path.read_text())
        results["errors"] = {k: v for k, v in results["errors"].items() if k not in only}
    corpus: list[tuple[str, str]] = []  # the prose corpus of the stages that time the front end
    if not only or set(only) & {"chunkers", "pipeline", "stages"} or "corpus" not in results:
        corpus = prose_corpus(scale.corpus_mb)
        results["corpus"] = {"documents": len(corpus), "megabytes": sum(len(t) for _, t in corpus) / 1e6}
        print(
            f"corpus: {results['corpus']['documents']} documents, {results['corpus']['megabytes']:.2f} MB", flush=True
        )
    skipped = results["skipped"]
    stages: dict[str, Callable[[], Any]] = {
        "chunkers": lambda: bench_chunkers(corpus, scale, skipped),
        "pipeline": lambda: bench_pipeline(corpus, scale),
        "stages": lambda: bench_stages(corpus, scale),
        "pdf": lambda: bench_pdf(pdf_corpus(scale), scale, skipped),
        "memory": lambda: bench_memory(scale),
        "cold": lambda: bench_cold_start(scale),
        "imports": lambda: bench_handler_imports(scale),
        "sinks": lambda: bench_sinks(scale.sink_documents, scale.sink_edited),
        "costs": lambda: bench_costs(scale),
    }
    if only:
        stages = {name: measure for name, measure in stages.items() if name in only}
    run_stages(stages, results, lambda done: _save(done, results_path, out))
    return results


def run_stages(stages: dict[str, Callable[[], Any]], results: dict[str, Any], save: Callable[[Any], None]) -> None:
    """Each stage in turn, its results saved as it ends; a stage that raises is recorded with its
    error in ``results["errors"]`` and the next one runs."""
    for stage, measure in stages.items():
        print(f"{stage} ...", flush=True)
        started = time.perf_counter()
        try:
            results[stage] = measure()
        except Exception as exc:  # noqa: BLE001 - reported with the stage's name; the other stages still run
            traceback.print_exc()
            results["errors"][stage] = f"{type(exc).__name__}: {exc}"
            print(f"{stage} FAILED: {results['errors'][stage]}", flush=True)
        else:
            print(f"{stage}: {time.perf_counter() - started:.1f} s", flush=True)
        save(results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="every stage on a tiny input, into a temporary directory")
    parser.add_argument("--repeat", type=int, help="measured runs of each timing (default 5; 1 with --smoke)")
    parser.add_argument("--corpus-mb", type=float, help="size of the prose corpus (default 4)")
    parser.add_argument("--out", type=Path, help="the report (default docs/benchmarks.md)")
    parser.add_argument("--results", type=Path, help="the results as JSON, rewritten after every stage")
    parser.add_argument("--stage", action="append", default=[], choices=STAGE_ORDER, help="run only this stage "
                        "(repeatable); the other stages' results already in the results file are kept")  # fmt: skip
    args = parser.parse_args()
    scale = SMOKE if args.smoke else Scale()
    scale = replace(scale, repeat=args.repeat or scale.repeat, corpus_mb=args.corpus_mb or scale.corpus_mb)
    directory = Path(tempfile.mkdtemp(prefix="sluice-bench-")) if args.smoke else None
    out = args.out or (directory / "benchmarks.md" if directory else ROOT / "docs" / "benchmarks.md")
    results_path = args.results or (directory / "results.json" if directory else ROOT / "bench" / "results.json")
    if args.smoke and out.resolve() == (ROOT / "docs" / "benchmarks.md").resolve():
        parser.error("a smoke run never writes docs/benchmarks.md")
    results = run(scale, out, results_path, args.stage)
    print(out.read_text())
    print(
        f"written to {out} and {results_path}; "
        f"peak RSS of this run {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    if results["errors"]:
        print(f"failed stages: {', '.join(results['errors'])}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
