"""IngestDocumentFunction's service: ingestion behind Powertools idempotency."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.adapters.aws.eventbridge import EventBridgeBus
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.bootstrap import Clients
from sluice.ingest import IngestService, IngestSettings, ObjectEvent
from sluice.pipeline.files import S3_VECTORS
from sluice.pipeline.sandbox import Sandbox, SandboxLimits
from sluice.settings import Env, pipeline_settings

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600  # longer than queue retention + DLQ dwell + redrive
FINISH_SECONDS = 10  # an invocation's last document is recorded and announced in this time
REPLAYED = "replayed"  # marks an outcome Powertools returned from its record instead of running


@dataclass(frozen=True, slots=True)
class IngestFunctionSettings:
    """IngestDocumentFunction's environment: where it reads, writes and announces, and its limits."""

    processed_bucket: str
    documents_table: str
    event_bus_name: str
    idempotency_table: str | None
    raw_bucket: str | None  # when set, notifications from other buckets are ignored
    ingest: IngestSettings
    sandbox: SandboxLimits

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestFunctionSettings:
        e = Env(env)
        processed = e.required("PROCESSED_BUCKET")
        table = e.required("DOCUMENTS_TABLE")
        bus = e.required("EVENT_BUS_NAME")
        pipeline = pipeline_settings(e)
        lease = e.integer("LEASE_SECONDS", int(IngestSettings().lease_seconds))
        require_acl = e.boolean("REQUIRE_ACL")
        # The knowledge base's vector store: S3 Vectors (the default, and what a new knowledge base uses)
        # keeps 1 KB and 35 keys of a chunk's metadata; other stores take Bedrock's 10 KB sidecar.
        vector_store = e.choice("VECTOR_STORE", ("s3-vectors", "other"))
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
            ingest=IngestSettings(
                pipeline=pipeline,
                lease_seconds=float(lease),
                require_acl=require_acl,
                vector_limits=S3_VECTORS if vector_store == "s3-vectors" else None,
            ),
            sandbox=sandbox,
        )


@dataclass
class IngestFunction:
    """The ingest service behind Powertools idempotency, keyed on bucket + key + sequencer (never the
    SQS message id). Idempotency is a shortcut for duplicates, not what makes ingestion correct: an
    event whose record is still in progress runs anyway, under the document's lease (that record is
    usually the attempt's own: a write whose answer was lost, an attempt that died, which would
    otherwise refuse the event for the rest of that invocation's time)."""

    service: IngestService
    raw_bucket: str | None = None  # when set, notifications of other buckets are ignored
    idempotency: IdempotencyConfig | None = None
    persistence: DynamoDBPersistenceLayer | None = None
    _run: Callable[..., dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._run = self._ingest
        if self.persistence is not None:
            self._run = idempotent_function(
                data_keyword_argument="event", persistence_store=self.persistence, config=self.idempotency
            )(self._ingest)

    def start(self, context: LambdaContext) -> float:
        """Begin an invocation: its deadline on the monotonic clock, leaving time to finish a document."""
        if self.idempotency is not None:
            self.idempotency.register_lambda_context(context)
        return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - FINISH_SECONDS

    def accepts(self, event: ObjectEvent) -> bool:
        return self.raw_bucket is None or event.bucket == self.raw_bucket

    def ingest(self, event: ObjectEvent, deadline: float | None) -> tuple[dict[str, Any], bool]:
        """The outcome, and whether it is a replay of an earlier run's (the event was a duplicate)."""
        payload = {**asdict(event), "idempotency_key": event.idempotency_key}
        try:
            outcome = dict(self._run(event=payload, deadline=deadline))
        except IdempotencyAlreadyInProgressError:
            outcome = self._ingest(event=payload, deadline=deadline)
        return outcome, bool(outcome.pop(REPLAYED, False))

    def _ingest(self, event: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        fields = {k: v for k, v in event.items() if k != "idempotency_key"}
        return self.service.handle(ObjectEvent(**fields), deadline=deadline).as_dict()


def _replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAYED: True}


def build(env: Mapping[str, str], clients: Clients | None = None) -> IngestFunction:
    settings = IngestFunctionSettings.from_env(env)
    clients = clients or Clients()
    service = IngestService(
        raw=S3ObjectReader(clients("s3")),
        processed=S3BucketWriter(clients("s3"), settings.processed_bucket),
        registry=DynamoDBRegistry(clients("dynamodb"), settings.documents_table),
        bus=EventBridgeBus(clients("events"), settings.event_bus_name),
        settings=settings.ingest,
        extractor=Sandbox(settings.sandbox),  # untrusted bytes are parsed in a confined child process
    )
    if not settings.idempotency_table:
        return IngestFunction(service, settings.raw_bucket)
    config = IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        response_hook=_replayed,
    )
    store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=clients("dynamodb"))
    return IngestFunction(service, settings.raw_bucket, config, store)
