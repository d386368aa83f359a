"""Reading a function's settings from a mapping (the handler passes ``os.environ``), every problem
reported at once; and the pipeline's settings, which the ingest and reconcile functions share. Each
function's settings class stands beside its builder in ``sluice.bootstrap``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.pipeline.process import PipelineSettings


class ConfigurationError(ValueError):
    """The function's environment is wrong; the message lists every problem."""


class Env:
    """Reads settings from the environment, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def optional(self, name: str) -> str | None:
        return self.env.get(name, "").strip() or None

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is required")
        return value

    def integer(self, name: str, default: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            self.problems.append(f"{name} must be an integer, not {raw!r}")
            return default

    def boolean(self, name: str) -> bool:
        raw = self.env.get(name, "false").strip().lower()
        if raw not in ("true", "false"):
            self.problems.append(f"{name} must be true or false, not {raw!r}")
        return raw == "true"

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        raw = self.env.get(name, "").strip() or choices[0]
        if raw not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw

    def check(self) -> None:
        if self.problems:
            raise ConfigurationError("; ".join(self.problems))


def pipeline_settings(e: Env) -> PipelineSettings:
    """The pipeline's settings (MAX_TOKENS, OVERLAP_TOKENS, MIN_TOKENS, BREADCRUMB, MAX_DOCUMENT_BYTES,
    MAX_PAGES, MAX_CHUNKS): the ingest function applies them, the reconciler compares fingerprints."""
    from sluice.pipeline.chunk import ChunkSettings
    from sluice.pipeline.extract import ParseLimits
    from sluice.pipeline.process import PipelineSettings

    defaults = PipelineSettings()
    max_tokens = e.integer("MAX_TOKENS", defaults.chunking.max_tokens)
    overlap_tokens = e.integer("OVERLAP_TOKENS", -1)  # -1: max_tokens / 8
    min_tokens = e.integer("MIN_TOKENS", -1)  # -1: max_tokens / 4
    breadcrumb = e.boolean("BREADCRUMB")
    max_bytes = e.integer("MAX_DOCUMENT_BYTES", defaults.max_bytes)
    max_pages = e.integer("MAX_PAGES", defaults.parse.max_pages)
    max_chunks = e.integer("MAX_CHUNKS", defaults.max_chunks)
    try:
        chunking = ChunkSettings(max_tokens, overlap_tokens, min_tokens, breadcrumb)
    except ValueError as exc:
        e.problems.append(str(exc))
        chunking = ChunkSettings()
    return PipelineSettings(
        chunking=chunking,
        parse=ParseLimits(max_pages=max_pages, max_chars=defaults.parse.max_chars),
        max_bytes=max_bytes,
        max_chunks=max_chunks,
    )
