"""`sluice preview`: what the pipeline makes of local files (extraction, cleaning, chunks), with no
AWS involved. It runs the very function the ingestion service runs."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any, TextIO

from sluice.errors import QuarantineError
from sluice.pipeline.files import Source, chunk_files, document_id
from sluice.pipeline.process import Extractor, PipelineSettings, in_process, process_document
from sluice.pipeline.sandbox import Sandbox


def preview_one(path: Path, settings: PipelineSettings, extractor: Extractor = in_process) -> dict[str, Any]:
    """The JSON object `--json` prints for one input."""
    source = path.resolve().as_uri()
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"source": str(path), "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    try:
        doc = process_document(data, path.name, settings, extractor=extractor)
    except QuarantineError as exc:
        return {
            "source": str(path),
            "kind": exc.kind,
            "quarantined": {"reason": exc.reason.value, "detail": exc.detail},
        }
    files = chunk_files(doc, Source(uri=source, doc_id=document_id(source)))
    return {
        "source": str(path),
        "kind": doc.kind.value,
        "title": doc.title,
        "pages": doc.page_count,
        "parser": doc.parser,
        "bytes": len(data),
        "characters": len(doc.text),
        "tokens": doc.token_count,
        "cleaning": {
            "control_chars_removed": doc.cleaning.control_chars,
            "format_chars_removed": doc.cleaning.format_chars,
            "dehyphenated": doc.cleaning.dehyphenated,
            "empty_blocks_dropped": doc.cleaning.empty_blocks,
        },
        "notes": doc.notes,
        "chunks": [
            {
                "index": i,
                "text": chunk.text,
                "tokens": chunk.tokens,
                "pages": list(chunk.pages),
                "headings": list(chunk.headings),
                "hash": f.hash,
                "start": chunk.start,
                "end": chunk.end,
                "overlap_chars": chunk.overlap,
            }
            for i, (chunk, f) in enumerate(zip(doc.chunks, files, strict=True))
        ],
    }


def _render(result: dict[str, Any], out: TextIO, show_text: bool) -> None:
    if "error" in result:
        out.write(f"{result['source']}\n  cannot read: {result['error']}\n\n")
        return
    if "quarantined" in result:
        q = result["quarantined"]
        out.write(f"{result['source']}\n  QUARANTINED  {q['reason']}: {q['detail']}\n\n")
        return
    pages = f", {result['pages']} pages" if result["pages"] else ""
    out.write(
        f'{result["source"]}\n  {result["kind"]}{pages}, "{result["title"]}", {len(result["chunks"])} chunks, '
        f"{result['tokens']} tokens ({result['parser']})\n"
    )
    cleaning = result["cleaning"]
    removed = [f"{v} {k.replace('_', ' ')}" for k, v in cleaning.items() if v]
    if removed:
        out.write(f"  cleaning: {', '.join(removed)}\n")
    for key, value in result["notes"].items():
        out.write(f"  {key}: {value}\n")
    for chunk in result["chunks"]:
        pages = chunk["pages"]
        where = f"p.{pages[0]}" + (f"-{pages[-1]}" if len(pages) > 1 and pages[-1] != pages[0] else "") if pages else ""
        path = " > ".join(chunk["headings"]) or "(no heading)"
        out.write(f"  #{chunk['index'] + 1:<3} {chunk['tokens']:>5} tok  {where:<8} {path}  [{chunk['hash']}]\n")
        body = chunk["text"] if show_text else " ".join(chunk["text"].split())[:160]
        indent = "        "
        out.write(textwrap.indent(body if show_text else textwrap.shorten(body, 150), indent) + "\n")
    out.write("\n")


def run_preview(paths: list[Path], settings: PipelineSettings, *, as_json: bool, show_text: bool, out: TextIO) -> int:
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its recoverable-damage warnings are noise here
    failed = 0
    sandbox = Sandbox()  # the same confinement as the ingest function: a hostile file cannot hang this
    try:
        results = (preview_one(path, settings, sandbox) for path in paths)
        for result in results:
            failed += _emit(result, out, as_json=as_json, show_text=show_text)
    finally:
        sandbox.close()
    return 1 if failed else 0


def _emit(result: dict[str, Any], out: TextIO, *, as_json: bool, show_text: bool) -> int:
    if as_json:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        _render(result, out, show_text)
    return int("quarantined" in result or "error" in result)
