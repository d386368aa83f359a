"""Front-end throughput: sluice's extract → clean → chunk against the tokenizer floor (one
``encode_ordinary`` pass over the same text), measured in the same run; ratios, not absolute times.

Corpus: Python's own documentation topics (``pydoc_data``, shipped with every CPython) as Markdown
documents, plus the repository's samples. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from pydoc_data.topics import topics

from sluice.chunk import ChunkSettings
from sluice.process import PipelineSettings, process_document
from sluice.tokens import encoding

ROOT = Path(__file__).resolve().parents[1]


def corpus() -> list[tuple[str, bytes]]:
    docs = [(f"{name}.md", f"# {name}\n\n{text}".encode()) for name, text in sorted(topics.items())]
    docs += [(p.name, p.read_bytes()) for p in sorted((ROOT / "samples").iterdir()) if p.name != "broken-upload.pdf"]
    return docs


def seconds(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    docs = corpus()
    enc = encoding()
    texts = [data.decode("utf-8", "replace") for _, data in docs]
    megabytes = sum(len(d) for _, d in docs) / 1e6
    settings = PipelineSettings(chunking=ChunkSettings(max_tokens=512))
    result: dict[str, int] = {}

    def floor() -> None:
        for text in texts:
            enc.encode_ordinary(text)

    def pipeline() -> None:
        chunks = tokens = 0
        for name, data in docs:
            doc = process_document(data, name, settings)
            chunks += len(doc.chunks)
            tokens += doc.token_count
        result.update(chunks=chunks, tokens=tokens)

    pipeline()  # warm up: the encoding, imports
    # Paired runs, baseline and subject alternating, so that a noisy neighbour slows both alike;
    # the ratio reported is the median of the per-pair ratios.
    pairs = [(seconds(floor), seconds(pipeline)) for _ in range(args.repeat)]
    base = statistics.median(b for b, _ in pairs)
    ours = statistics.median(o for _, o in pairs)
    ratio = statistics.median(o / b for b, o in pairs)
    print(
        f"corpus: {len(docs)} documents, {megabytes:.2f} MB, {result['tokens']:,} tokens in {result['chunks']:,} chunks"
    )
    print(f"{'what':<40} {'median s':>9} {'MB/s':>7} {'chunks/s':>9} {'vs floor':>9}")
    print(f"{'tiktoken encode_ordinary (floor)':<40} {base:>9.3f} {megabytes / base:>7.2f} {'':>9} {1.0:>8.2f}x")
    print(
        f"{'sluice detect+extract+clean+chunk':<40} {ours:>9.3f} {megabytes / ours:>7.2f} "
        f"{result['chunks'] / ours:>9.0f} {ratio:>8.2f}x"
    )


if __name__ == "__main__":
    main()
