"""Function settings, read once from a mapping (the handler passes ``os.environ``) and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sluice.chunk import ChunkSettings
from sluice.extract import ParseLimits
from sluice.ingest import IngestSettings
from sluice.process import PipelineSettings
from sluice.sandbox import SandboxLimits


class ConfigurationError(ValueError):
    """The function's environment is wrong; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class IngestFunctionSettings:
    processed_bucket: str
    documents_table: str
    event_bus_name: str
    idempotency_table: str | None
    raw_bucket: str | None  # when set, notifications from other buckets are ignored
    ingest: IngestSettings
    sandbox: SandboxLimits

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestFunctionSettings:
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is required")
            return value

        def integer(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                problems.append(f"{name} must be an integer, not {raw!r}")
                return default

        processed = required("PROCESSED_BUCKET")
        table = required("DOCUMENTS_TABLE")
        bus = required("EVENT_BUS_NAME")
        defaults = PipelineSettings()
        max_tokens = integer("MAX_TOKENS", defaults.chunking.max_tokens)
        overlap_tokens = integer("OVERLAP_TOKENS", -1)  # -1: max_tokens / 8
        min_tokens = integer("MIN_TOKENS", -1)  # -1: max_tokens / 4

        def boolean(name: str) -> bool:
            raw = env.get(name, "false").strip().lower()
            if raw not in ("true", "false"):
                problems.append(f"{name} must be true or false, not {raw!r}")
            return raw == "true"

        breadcrumb = boolean("BREADCRUMB")
        require_acl = boolean("REQUIRE_ACL")
        max_bytes = integer("MAX_DOCUMENT_BYTES", defaults.max_bytes)
        max_pages = integer("MAX_PAGES", defaults.parse.max_pages)
        max_chunks = integer("MAX_CHUNKS", defaults.max_chunks)
        lease = integer("LEASE_SECONDS", int(IngestSettings().lease_seconds))
        sandbox_defaults = SandboxLimits()
        sandbox = SandboxLimits(
            memory_mb=integer("PARSER_MEMORY_MB", sandbox_defaults.memory_mb),
            cpu_seconds=integer("PARSER_CPU_SECONDS", sandbox_defaults.cpu_seconds),
            wall_seconds=float(integer("PARSER_WALL_SECONDS", int(sandbox_defaults.wall_seconds))),
        )
        try:
            chunking = ChunkSettings(max_tokens, overlap_tokens, min_tokens, breadcrumb)
        except ValueError as exc:
            problems.append(str(exc))
            chunking = ChunkSettings()
        if problems:
            raise ConfigurationError("; ".join(problems))
        pipeline = PipelineSettings(
            chunking=chunking,
            parse=ParseLimits(max_pages=max_pages, max_chars=defaults.parse.max_chars),
            max_bytes=max_bytes,
            max_chunks=max_chunks,
        )
        return cls(
            processed_bucket=processed,
            documents_table=table,
            event_bus_name=bus,
            idempotency_table=env.get("IDEMPOTENCY_TABLE") or None,
            raw_bucket=env.get("RAW_BUCKET") or None,
            ingest=IngestSettings(pipeline=pipeline, lease_seconds=float(lease), require_acl=require_acl),
            sandbox=sandbox,
        )
