"""One document through the whole front end: detect → extract → clean → chunk. Pure: bytes in,
a ProcessedDocument (or a QuarantineError) out. ``sluice preview`` and the ingestion service both
call this, so what a developer previews is what the pipeline stores."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath
from typing import Protocol

from sluice import __version__
from sluice.errors import QuarantineError, Reason
from sluice.model import ExtractedDocument, Kind, ProcessedDocument
from sluice.pipeline.chunk import ChunkSettings, chunk_blocks
from sluice.pipeline.clean import clean_blocks
from sluice.pipeline.detect import detect
from sluice.pipeline.extract.pdf_layout import ParseLimits
from sluice.pipeline.tokens import tokenizer

MiB = 1024 * 1024
# How a native parser dies: in the sandbox these end the worker; the next backend gets a turn.
_NATIVE_FAILURES = frozenset({Reason.WORKER_CRASH, Reason.MEMORY_LIMIT, Reason.TIMEOUT_CPU})


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    parse: ParseLimits = field(default_factory=ParseLimits)
    max_bytes: int = 50 * MiB  # Bedrock KB and Kendra both refuse files over 50 MB
    max_chunks: int = 4000  # the registry keeps every chunk's hash in one item (see files.py)

    def fingerprint(self) -> str:
        """Changes whenever re-processing an unchanged file could give a different result."""
        blob = json.dumps({"version": __version__, "settings": asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Extractor(Protocol):
    """Bytes of a known kind to structured text: in process, or in the sandbox (sluice.pipeline.sandbox)."""

    def __call__(
        self, data: bytes, kind: Kind, limits: ParseLimits, deadline: float | None = None
    ) -> ExtractedDocument: ...


def in_process(data: bytes, kind: Kind, limits: ParseLimits, deadline: float | None = None) -> ExtractedDocument:
    """Extraction in this process: for trusted input and tests (no time or memory limits)."""
    from sluice.pipeline.extract import extract  # the extractors load only where they run (the sandbox, usually)

    return extract(data, kind, limits)


def process_document(
    data: bytes,
    name: str,
    settings: PipelineSettings,
    *,
    kind: Kind | None = None,
    extractor: Extractor = in_process,
    deadline: float | None = None,
) -> ProcessedDocument:
    """``name`` is the file name or object key: its extension is the second opinion on the type.
    ``deadline`` (time.monotonic()) bounds the time the extractor may take."""
    if len(data) > settings.max_bytes:
        raise QuarantineError(Reason.TOO_LARGE, f"{len(data)} bytes; the limit is {settings.max_bytes}")
    kind = kind or detect(data, name)
    try:
        extracted = extractor(data, kind, settings.parse, deadline)
    except QuarantineError as exc:
        backends = settings.parse.pdf_backends
        if kind is Kind.PDF and exc.reason in _NATIVE_FAILURES and backends[0] == "pdfium" and len(backends) > 1:
            # PDFium has no decompression limits and can abort on a bomb; pypdf, which has them,
            # tells what the file is (and reads it, if it is merely unusual).
            return process_document(
                data, name, replace(settings, parse=replace(settings.parse, pdf_backends=backends[1:])),
                kind=kind, extractor=extractor, deadline=deadline,
            )  # fmt: skip
        exc.kind = exc.kind or kind.value
        raise
    blocks, stats = clean_blocks(extracted.blocks)
    if not blocks:
        raise QuarantineError(Reason.NO_TEXT, "no text left after extraction and cleaning")
    text, chunks = chunk_blocks(blocks, settings.chunking, tokenizer())
    if len(chunks) > settings.max_chunks:
        raise QuarantineError(Reason.TOO_MANY_CHUNKS, f"{len(chunks)} chunks; the limit is {settings.max_chunks}")
    title = (extracted.title or "").strip() or PurePosixPath(name).stem or name
    return ProcessedDocument(
        kind=kind,
        title=title[:500],
        text=text,
        chunks=chunks,
        page_count=extracted.page_count,
        parser=extracted.parser,
        cleaning=stats,
        notes=extracted.notes,
    )
