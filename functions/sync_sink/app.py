"""SyncKnowledgeBaseFunction and SyncKendraFunction: a sink's queue → the sink (``SINK`` says which).

Glue only: the batch's messages (bus events, the sink's own delayed status checks and job polls,
operators' re-syncs) go to ``run_batch``, which syncs each document once however many messages name
it. A message whose document needs a retry is reported as a batch item failure and made visible
again after a backoff with jitter (not after the queue's long visibility timeout); after
``maxReceiveCount`` receives SQS moves it to the sink's dead-letter queue, where ``sluice redrive``
finds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsQueue
from sluice.settings import SinkFunctionSettings
from sluice.sinks import CallCount
from sluice.sinks.diff import DiffSink
from sluice.sinks.kendra import KendraSink
from sluice.sinks.knowledge_base import KnowledgeBaseSink
from sluice.sinks.runner import run_batch

logger = Logger()
metrics = Metrics(namespace="Sluice")
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class Wiring:
    sink: DiffSink
    queue: SqsQueue
    calls: CallCount = field(default_factory=CallCount)  # the index API's, reported per invocation


@cache
def _build() -> Wiring:
    settings = SinkFunctionSettings.from_env(os.environ)
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb", config=_CLIENT_CONFIG)
    queue = SqsQueue(session.client("sqs", config=_CLIENT_CONFIG), settings.queue_url)
    registry = DynamoDBRegistry(dynamodb, settings.documents_table)
    states = DynamoDBSinkStates(dynamodb, settings.documents_table)
    sink: DiffSink
    api: BedrockKnowledgeBaseApi | KendraApi
    if settings.sink == "knowledge-base":
        api = BedrockKnowledgeBaseApi(
            session.client("bedrock-agent", config=_CLIENT_CONFIG),
            settings.knowledge_base_id,
            settings.data_source_id,
            per_second=settings.requests_per_second,
        )
        sink = KnowledgeBaseSink(
            api=api,
            registry=registry,
            states=states,
            processed_bucket=settings.processed_bucket,
            mode=settings.sync_mode,
            queue=queue,
            first_check_seconds=settings.first_check_seconds,
        )
    else:
        api = KendraApi(
            session.client("kendra", config=_CLIENT_CONFIG),
            settings.kendra_index_id,
            role_arn=settings.kendra_role_arn,
            per_second=settings.requests_per_second,
            data_source_id=settings.kendra_data_source_id,
        )
        sink = KendraSink(
            api=api,
            registry=registry,
            states=states,
            processed=S3ObjectReader(session.client("s3", config=_CLIENT_CONFIG)),
            processed_bucket=settings.processed_bucket,
            language_code=settings.language_code,
            first_check_seconds=settings.first_check_seconds,
        )
    return Wiring(sink, queue, api.calls)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, wiring: Wiring | None = None) -> dict[str, Any]:
    wiring = wiring or _build()
    records = event.get("Records", [])
    metrics.add_dimension(name="Sink", value=wiring.sink.name)
    try:
        report = run_batch(wiring.sink, [(r["messageId"], r["body"]) for r in records], wiring.queue)
    finally:
        calls, failures = wiring.calls.take()
        metrics.add_metric(name="SinkCalls", unit=MetricUnit.Count, value=calls)
        metrics.add_metric(name="SinkFailures", unit=MetricUnit.Count, value=failures)
    for lag in report.lags:  # documents the index confirmed: how long after the registry changed
        metrics.add_metric(name="SyncLagSeconds", unit=MetricUnit.Seconds, value=round(lag, 3))
    retried = [r for r in report.results if r.retry]
    metrics.add_metric(name="SinkDocumentsSynced", unit=MetricUnit.Count, value=len(report.results) - len(retried))
    metrics.add_metric(name="SinkDocumentsRetried", unit=MetricUnit.Count, value=len(retried))
    for result in retried:
        logger.warning("sync will be retried", extra={"doc_id": result.doc_id, "reason": result.retry})
    if report.malformed:
        metrics.add_metric(name="SinkMalformedMessages", unit=MetricUnit.Count, value=len(report.malformed))
        logger.error("messages that are neither events nor sink messages", extra={"message_ids": report.malformed})
    if report.job:
        logger.info("ingestion job", extra=report.job)
    failed = set(report.failed_message_ids)
    for record in records:
        if record["messageId"] in failed:
            receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
            wiring.queue.retry_later(record["receiptHandle"], receives)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in report.failed_message_ids]}
