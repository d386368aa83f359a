"""SyncKnowledgeBaseFunction and SyncKendraFunction: a sink's queue → the sink (``SINK`` says which).

The batch's messages (bus events, the sink's own delayed status checks and job polls, operators'
re-syncs) go to ``run_batch``, which syncs each document once however many messages name it. A
message whose document needs a retry is reported as a batch item failure and made visible again
after a backoff with jitter (not after the queue's long visibility timeout); after
``maxReceiveCount`` receives SQS moves it to the sink's dead-letter queue, where ``sluice redrive``
finds it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap import METRICS_NAMESPACE
from sluice.bootstrap.sinks import SinkFunction, build
from sluice.sinks.runner import run_batch

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
function = cache(lambda: build(os.environ))  # once per execution environment


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, sync: SinkFunction | None = None) -> dict[str, Any]:
    sync = sync or function()
    records = event.get("Records", [])
    metrics.add_dimension(name="Sink", value=sync.sink.name)
    try:
        report = run_batch(sync.sink, [(r["messageId"], r["body"]) for r in records], sync.queue)
    finally:
        calls, failures = sync.calls.take()
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
            sync.queue.retry_later(record["receiptHandle"], receives)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in report.failed_message_ids]}
