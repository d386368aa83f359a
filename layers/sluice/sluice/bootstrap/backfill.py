"""BackfillFunction's service (functions/queue_backfill): the plan, batches and summary of a backfill
run for the state machine (statemachine/backfill.asl.json); and ``run_status``, which `sluice status`
reads a run's progress with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.adapters.aws import service_call
from sluice.adapters.aws.backfill import DynamoDBProgressStore
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsBatchSender
from sluice.backfill import Backfill, BackfillInputError, BackfillSettings, RunStatus
from sluice.bootstrap import Clients
from sluice.registry import Status
from sluice.settings import Env
from sluice.sinks.knowledge_base import ModeHolds
from sluice.timestamps import iso


@dataclass(frozen=True, slots=True)
class BackfillFunctionSettings:
    """RawBucket and the ingest queue; the registry it looks objects up in and the table its progress is
    kept in (ConnectorStateTable); the bucket it may read S3 Inventory manifests from, if any."""

    backfill: BackfillSettings
    documents_table: str
    progress_table: str
    # The stack has a knowledge base: a run may hold its sink's sync mode (kept in DocumentsTable).
    knowledge_base: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BackfillFunctionSettings:
        e = Env(env)
        backfill = BackfillSettings(
            raw_bucket=e.required("RAW_BUCKET"),
            ingest_queue_url=e.required("INGEST_QUEUE_URL"),
            inventory_bucket=e.optional("INVENTORY_BUCKET"),
        )
        documents, progress = e.required("DOCUMENTS_TABLE"), e.required("PROGRESS_TABLE")
        knowledge_base = e.choice("KNOWLEDGE_BASE", ("no", "yes")) == "yes"
        e.check()
        return cls(backfill, documents, progress, knowledge_base)


@dataclass(frozen=True)
class BackfillFunction:
    backfill: Backfill

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The state machine's three calls: ``{"action": "plan", "input", "execution"}``, ``{"action":
        "batch", "batch": {"Items", "BatchInput"}}`` and ``{"action": "summary", "run"}``. An AWS
        failure a retry may fix raises TransientError (the state machine retries that name); a wrong
        input raises BackfillInputError."""
        action = event.get("action")
        with service_call(f"backfill {action}"):
            if action == "plan":
                return self.backfill.plan(event.get("input"), str(event.get("execution") or "")).to_json()
            if action == "batch":
                batch = event.get("batch")
                if not (isinstance(batch, dict) and isinstance(batch.get("Items"), list) and batch["Items"]):
                    raise BackfillInputError(['a batch is the Map\'s {"Items": [...], "BatchInput": {...}}'])
                return self.backfill.batch(batch["Items"], batch.get("BatchInput")).to_json()
            if action == "summary":
                return self.backfill.summary(str(event.get("run") or "")).to_json()
        raise BackfillInputError([f"unknown action {action!r}: the state machine sends plan, batch or summary"])


def build(env: Mapping[str, str], clients: Callable[[str], Any] | None = None) -> BackfillFunction:
    settings = BackfillFunctionSettings.from_env(env)
    clients = clients or Clients()
    return BackfillFunction(wire(settings, clients))


def wire(settings: BackfillFunctionSettings, clients: Callable[[str], Any]) -> Backfill:
    """The backfill on the DynamoDB, S3 and SQS clients ``clients(service)`` makes."""
    dynamodb = clients("dynamodb")
    return Backfill(
        settings.backfill,
        registry=DynamoDBRegistry(dynamodb, settings.documents_table),
        objects=S3ObjectReader(clients("s3")),
        queues=SqsBatchSender(clients("sqs")),
        progress=DynamoDBProgressStore(dynamodb, settings.progress_table),
        holds=ModeHolds(DynamoDBSinkStates(dynamodb, settings.documents_table)) if settings.knowledge_base else None,
    )


def run_status(dynamodb: Any, *, progress_table: str, documents_table: str, run: str) -> RunStatus | None:
    """A run's progress (None for a run never planned) and the documents processed and quarantined
    since it started, on a DynamoDB client (the CLI's: the stack's outputs name both tables)."""
    progress = DynamoDBProgressStore(dynamodb, progress_table).progress(run)
    if progress is None:
        return None
    registry, since = DynamoDBRegistry(dynamodb, documents_table), iso(progress.started_at)
    return RunStatus(progress, registry.count(Status.PROCESSED, since), registry.count(Status.QUARANTINED, since))
