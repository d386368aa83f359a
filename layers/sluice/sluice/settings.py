"""Function settings, read once from a mapping (the handler passes ``os.environ``) and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: each function's cold start loads only its own settings' modules
    from sluice.ingest import IngestSettings
    from sluice.pipeline.process import PipelineSettings
    from sluice.pipeline.sandbox import SandboxLimits
    from sluice.reconcile import ReconcileSettings


class ConfigurationError(ValueError):
    """The function's environment is wrong; the message lists every problem."""


class _Env:
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


def _pipeline(e: _Env) -> PipelineSettings:
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
        from sluice.ingest import IngestSettings
        from sluice.pipeline.sandbox import SandboxLimits

        e = _Env(env)
        processed = e.required("PROCESSED_BUCKET")
        table = e.required("DOCUMENTS_TABLE")
        bus = e.required("EVENT_BUS_NAME")
        pipeline = _pipeline(e)
        lease = e.integer("LEASE_SECONDS", int(IngestSettings().lease_seconds))
        require_acl = e.boolean("REQUIRE_ACL")
        sandbox_defaults = SandboxLimits()
        sandbox = SandboxLimits(
            memory_mb=e.integer("PARSER_MEMORY_MB", sandbox_defaults.memory_mb),
            cpu_seconds=e.integer("PARSER_CPU_SECONDS", sandbox_defaults.cpu_seconds),
            wall_seconds=float(e.integer("PARSER_WALL_SECONDS", int(sandbox_defaults.wall_seconds))),
        )
        e.check()
        return cls(
            processed_bucket=processed,
            documents_table=table,
            event_bus_name=bus,
            idempotency_table=e.optional("IDEMPOTENCY_TABLE"),
            raw_bucket=e.optional("RAW_BUCKET"),
            ingest=IngestSettings(pipeline=pipeline, lease_seconds=float(lease), require_acl=require_acl),
            sandbox=sandbox,
        )


SINK_KINDS = ("kb", "kendra")  # the sinks' names, as in their recorded states and `sluice redrive --sink`


@dataclass(frozen=True, slots=True)
class SinkFunctionSettings:
    """A sink function: which sink, the registry and the processed files it reads, its own queue,
    and the index it writes to."""

    sink: str
    documents_table: str
    processed_bucket: str
    queue_url: str
    knowledge_base_id: str = ""  # the knowledge-base sink's
    data_source_id: str = ""
    sync_mode: str = "direct"
    kendra_index_id: str = ""  # the Kendra sink's
    kendra_role_arn: str | None = None
    kendra_data_source_id: str | None = None  # a custom data source, for Kendra's sync history
    language_code: str = "en"
    requests_per_second: float = 2.0
    first_check_seconds: int = 20  # status checks follow after 20 s, 40 s, 80 s … (the local stack: 1 s)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SinkFunctionSettings:
        e = _Env(env)
        sink = e.choice("SINK", SINK_KINDS)
        common = {
            "sink": sink,
            "documents_table": e.required("DOCUMENTS_TABLE"),
            "processed_bucket": e.required("PROCESSED_BUCKET"),
            "queue_url": e.required("SINK_QUEUE_URL"),
            "requests_per_second": float(e.integer("SINK_REQUESTS_PER_SECOND", 2)),
            "first_check_seconds": e.integer("SINK_FIRST_CHECK_SECONDS", 20),
        }
        if sink == "kb":
            specific: dict[str, str | None] = {
                "knowledge_base_id": e.required("KNOWLEDGE_BASE_ID"),
                "data_source_id": e.required("DATA_SOURCE_ID"),
                "sync_mode": e.choice("SYNC_MODE", ("direct", "ingestion-job")),
            }
        else:
            specific = {
                "kendra_index_id": e.required("KENDRA_INDEX_ID"),
                "kendra_role_arn": e.optional("KENDRA_ROLE_ARN"),
                "kendra_data_source_id": e.optional("KENDRA_DATA_SOURCE_ID"),
                "language_code": e.optional("LANGUAGE_CODE") or "en",
            }
        e.check()
        return cls(**common, **specific)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FineTuneFunctionSettings:
    """The fine-tune steps: the registry of the corpus, and the buckets a dataset may be read from."""

    processed_bucket: str
    documents_table: str
    raw_bucket: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FineTuneFunctionSettings:
        e = _Env(env)
        processed, table = e.required("PROCESSED_BUCKET"), e.required("DOCUMENTS_TABLE")
        e.check()
        return cls(processed_bucket=processed, documents_table=table, raw_bucket=e.optional("RAW_BUCKET"))


@dataclass(frozen=True, slots=True)
class ConnectorFunctionSettings:
    """The connector runs: where their configuration is, where they keep their state, where they land."""

    config_parameter: str  # an SSM parameter holding every instance's configuration
    state_table: str
    raw_bucket: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectorFunctionSettings:
        e = _Env(env)
        settings = cls(
            config_parameter=e.required("CONNECTOR_CONFIG_PARAMETER"),
            state_table=e.required("CONNECTOR_STATE_TABLE"),
            raw_bucket=e.required("RAW_BUCKET"),
        )
        e.check()
        return settings


@dataclass(frozen=True, slots=True)
class ReconcileFunctionSettings:
    """ReconcileFunction's settings: the reconciler's (the stack's buckets, table and queues, the sinks
    that exist, and the ingest function's pipeline settings, to tell records made by an older
    pipeline), and the indexes it asks."""

    reconcile: ReconcileSettings
    knowledge_base_id: str = ""
    data_source_id: str = ""
    kendra_index_id: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileFunctionSettings:
        from sluice.reconcile import ReconcileSettings

        e = _Env(env)
        defaults = ReconcileSettings("", "", "", "", "")
        queues = {n: e.optional(v) for n, v in (("kb", "KB_QUEUE_URL"), ("kendra", "KENDRA_QUEUE_URL"))}
        settings = ReconcileSettings(
            raw_bucket=e.required("RAW_BUCKET"),
            processed_bucket=e.required("PROCESSED_BUCKET"),
            documents_table=e.required("DOCUMENTS_TABLE"),
            ingest_queue_url=e.required("INGEST_QUEUE_URL"),
            pipeline_fingerprint=_pipeline(e).fingerprint(),
            sink_queues={n: q for n, q in queues.items() if q},
            kb_mode=e.choice("SYNC_MODE", ("direct", "ingestion-job")),
            max_repairs=e.integer("RECONCILE_MAX_REPAIRS", defaults.max_repairs),
            max_index_calls=e.integer("RECONCILE_MAX_INDEX_CALLS", defaults.max_index_calls),
            reprocess=e.boolean("RECONCILE_REPROCESS"),
        )
        kb, kendra = "kb" in settings.sink_queues, "kendra" in settings.sink_queues
        indexes = {
            "knowledge_base_id": e.required("KNOWLEDGE_BASE_ID") if kb else "",
            "data_source_id": e.required("DATA_SOURCE_ID") if kb else "",
            "kendra_index_id": e.required("KENDRA_INDEX_ID") if kendra else "",
        }
        e.check()
        return cls(settings, **indexes)
