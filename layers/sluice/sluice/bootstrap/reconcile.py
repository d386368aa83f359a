"""ReconcileFunction's service (and ``sluice reconcile --local``'s): the reconciliation pass over
the stack's stores and indexes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.reconcile import DynamoDBPassStore
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsBatchSender
from sluice.bootstrap import Clients
from sluice.reconcile import Reconciler, ReconcileSettings
from sluice.settings import Env, pipeline_settings
from sluice.sinks.kendra import KendraIndex
from sluice.sinks.knowledge_base import SYNC_MODES, KnowledgeBaseIndex

# The index APIs' pace: GetKnowledgeBaseDocuments shares 5 requests/s per account with the sink.
KNOWLEDGE_BASE_PER_SECOND = 1.0
KENDRA_PER_SECOND = 2.0


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
        e = Env(env)
        defaults = ReconcileSettings("", "", "", "", "")
        queues = {n: e.optional(v) for n, v in (("kb", "KB_QUEUE_URL"), ("kendra", "KENDRA_QUEUE_URL"))}
        settings = ReconcileSettings(
            raw_bucket=e.required("RAW_BUCKET"),
            processed_bucket=e.required("PROCESSED_BUCKET"),
            documents_table=e.required("DOCUMENTS_TABLE"),
            ingest_queue_url=e.required("INGEST_QUEUE_URL"),
            pipeline_fingerprint=pipeline_settings(e).fingerprint(),
            sink_queues={n: q for n, q in queues.items() if q},
            kb_mode=e.choice("SYNC_MODE", SYNC_MODES),
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


def build(
    env: Mapping[str, str], clients: Callable[[str], Any] | None = None, *, per_second: float | None = None
) -> Reconciler:
    """From the function's environment; ``per_second`` overrides the index APIs' pace (the local stack's)."""
    settings = ReconcileFunctionSettings.from_env(env)
    clients = clients or Clients()
    kb = kendra = None
    if "kb" in settings.reconcile.sink_queues:
        kb = BedrockKnowledgeBaseApi(
            clients("bedrock-agent"), settings.knowledge_base_id, settings.data_source_id,
            per_second or KNOWLEDGE_BASE_PER_SECOND,
        )  # fmt: skip
    if "kendra" in settings.reconcile.sink_queues:
        kendra = KendraApi(clients("kendra"), settings.kendra_index_id, per_second=per_second or KENDRA_PER_SECOND)
    return wire(settings.reconcile, clients, kb=kb, kendra=kendra)


def wire(
    settings: ReconcileSettings,
    clients: Callable[[str], Any],
    *,
    kb: KnowledgeBaseIndex | None = None,
    kendra: KendraIndex | None = None,
    clock: Callable[[], float] = time.time,
) -> Reconciler:
    """The reconciler on the S3, DynamoDB and SQS clients ``clients(service)`` makes (the function's
    ``Clients``, or the CLI's factory), and the index APIs."""
    s3, dynamodb, table = clients("s3"), clients("dynamodb"), settings.documents_table
    objects = S3ObjectReader(s3)
    return Reconciler(
        settings,
        objects=objects,
        listing=objects,
        processed=S3BucketWriter(s3, settings.processed_bucket),
        registry=DynamoDBRegistry(dynamodb, table),
        states=DynamoDBSinkStates(dynamodb, table),
        queues=SqsBatchSender(clients("sqs")),
        passes=DynamoDBPassStore(dynamodb, table),
        kb=kb,
        kendra=kendra,
        clock=clock,
    )
