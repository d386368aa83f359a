"""IngestDocumentFunction: S3 notifications from the ingest queue → the ingestion service.

Each SQS message is decoded into object events, each event runs once through the service (see
``sluice.bootstrap.ingest``: idempotency on bucket + key + sequencer), and only transient failures
fail their record, which SQS retries and finally dead-letters. Poison documents are quarantined by
the service and acknowledged.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap import METRICS_NAMESPACE
from sluice.bootstrap.ingest import IngestFunction, build
from sluice.errors import Reason
from sluice.ingest import Action
from sluice.s3events import parse_message

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS)
function = cache(lambda: build(os.environ))  # once per execution environment
DOCUMENT_METRICS = {  # a count per outcome
    Action.CHANGED: "DocumentsIngested",  # new or changed content: chunks written, sinks told
    Action.UNCHANGED: "DocumentsUnchanged",
    Action.DELETED: "DocumentsDeleted",
    Action.QUARANTINED: "DocumentsQuarantined",
    Action.STALE: "DocumentsStale",
    Action.IGNORED: "DocumentsIgnored",
}
REASONS = frozenset(r.value for r in Reason)  # the only values of DocumentsQuarantined's reason dimension


def record_outcome(outcome: dict[str, Any]) -> None:
    action = Action(outcome["action"])
    metrics.add_metric(name=DOCUMENT_METRICS[action], unit=MetricUnit.Count, value=1)
    if action is Action.CHANGED:
        metrics.add_metric(name="Chunks", unit=MetricUnit.Count, value=outcome["added"])
        metrics.add_metric(name="ChunksRemoved", unit=MetricUnit.Count, value=outcome["removed"])
        metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=outcome["tokens"])
    elif action is Action.QUARANTINED:  # counted again by reason, in a record of its own (a closed set)
        reason = outcome["reason"] if outcome["reason"] in REASONS else "other"
        name = DOCUMENT_METRICS[action]
        with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as metric:
            metric.add_dimension(name="reason", value=reason)
    log = logger.warning if action is Action.QUARANTINED else logger.info
    log("document %s", action.value, extra={k: v for k, v in outcome.items() if v not in (None, 0)})


@logger.inject_lambda_context(clear_state=True)  # no document's source key outlives its invocation
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, ingest: IngestFunction | None = None
) -> dict[str, Any]:
    ingest = ingest or function()
    deadline = ingest.start(context)

    def handle(record: SQSRecord) -> None:
        for object_event in parse_message(record.body):
            if not ingest.accepts(object_event):
                logger.warning("ignoring a notification for another bucket", extra={"bucket": object_event.bucket})
                continue
            logger.append_keys(source=f"s3://{object_event.bucket}/{object_event.key}")
            outcome, replayed = ingest.ingest(object_event, deadline)
            if replayed:
                metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
                logger.info("duplicate event skipped", extra={"idempotency_key": object_event.idempotency_key})
            else:
                record_outcome(outcome)

    return dict(process_partial_response(event=event, record_handler=handle, processor=processor, context=context))
