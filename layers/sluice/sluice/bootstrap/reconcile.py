"""ReconcileFunction's service (and ``sluice reconcile --local``'s): the reconciliation pass over
the stack's stores and indexes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
from sluice.settings import ReconcileFunctionSettings
from sluice.sinks.kendra import KendraIndex
from sluice.sinks.knowledge_base import KnowledgeBaseIndex

# The index APIs' pace: GetKnowledgeBaseDocuments shares 5 requests/s per account with the sink.
KNOWLEDGE_BASE_PER_SECOND = 1.0
KENDRA_PER_SECOND = 2.0


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
