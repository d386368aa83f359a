"""IngestDocumentFunction: S3 notifications from the ingest queue → the ingestion service.

Glue only: decode each SQS message into object events, run each through the service under
Powertools idempotency (keyed on bucket + key + sequencer, never the SQS message id; a shortcut
for duplicates, not what makes ingestion correct: an event whose record is in progress runs
anyway, under the document's lease), report
partial batch failures, and emit metrics. Poison documents are quarantined by the service and
acknowledged; only transient failures fail their record, which SQS retries and finally dead-letters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from sluice.adapters.aws.eventbridge import EventBridgeBus
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.errors import Reason
from sluice.ingest import Action, IngestService, ObjectEvent
from sluice.pipeline.sandbox import Sandbox
from sluice.s3events import parse_message
from sluice.settings import IngestFunctionSettings

logger = Logger()
NAMESPACE = "Sluice"
metrics = Metrics(namespace=NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS)
IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600  # longer than queue retention + DLQ dwell + redrive
FINISH_SECONDS = 10
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


class _Wiring:
    """The service and its idempotent entry point, built once per execution environment."""

    def __init__(self, service: IngestService, settings: IngestFunctionSettings | None, dynamodb: Any = None) -> None:
        self.service = service
        self.deadline: float | None = None  # this invocation's, on the monotonic clock
        self.raw_bucket = settings.raw_bucket if settings else None
        self.idempotency: IdempotencyConfig | None = None
        self.store: DynamoDBPersistenceLayer | None = None
        self.executed = False  # set when the service ran; False after a call means a replayed duplicate
        self.ingest: Callable[..., dict[str, Any]] = self._ingest
        if settings and settings.idempotency_table:
            self.idempotency = IdempotencyConfig(
                event_key_jmespath="idempotency_key",
                raise_on_no_idempotency_key=True,
                expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            )
            self.store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)
            self.ingest = idempotent_function(
                data_keyword_argument="event", persistence_store=self.store, config=self.idempotency
            )(self._ingest)

    def _ingest(self, event: dict[str, Any]) -> dict[str, Any]:
        self.executed = True
        fields = {k: v for k, v in event.items() if k != "idempotency_key"}
        return self.service.handle(ObjectEvent(**fields), deadline=self.deadline).as_dict()


@cache
def _build_service() -> _Wiring:
    settings = IngestFunctionSettings.from_env(os.environ)
    session = boto3.session.Session()  # one session, one client per service, shared by everything
    s3 = session.client("s3", config=_CLIENT_CONFIG)
    dynamodb = session.client("dynamodb", config=_CLIENT_CONFIG)
    service = IngestService(
        raw=S3ObjectReader(s3),
        processed=S3BucketWriter(s3, settings.processed_bucket),
        registry=DynamoDBRegistry(dynamodb, settings.documents_table),
        bus=EventBridgeBus(session.client("events", config=_CLIENT_CONFIG), settings.event_bus_name),
        settings=settings.ingest,
        extractor=Sandbox(settings.sandbox),  # untrusted bytes are parsed in a confined child process
    )
    return _Wiring(service, settings, dynamodb)


DOCUMENT_METRICS = {  # a count per outcome
    Action.CHANGED: "DocumentsIngested",  # new or changed content: chunks written, sinks told
    Action.UNCHANGED: "DocumentsUnchanged",
    Action.DELETED: "DocumentsDeleted",
    Action.QUARANTINED: "DocumentsQuarantined",
    Action.STALE: "DocumentsStale",
    Action.IGNORED: "DocumentsIgnored",
}
REASONS = frozenset(r.value for r in Reason)  # the only values of DocumentsQuarantined's reason dimension


def _record_outcome(outcome: dict[str, Any]) -> None:
    action = Action(outcome["action"])
    metrics.add_metric(name=DOCUMENT_METRICS[action], unit=MetricUnit.Count, value=1)
    if action is Action.CHANGED:
        metrics.add_metric(name="Chunks", unit=MetricUnit.Count, value=outcome["added"])
        metrics.add_metric(name="ChunksRemoved", unit=MetricUnit.Count, value=outcome["removed"])
        metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=outcome["tokens"])
    elif action is Action.QUARANTINED:
        # Counted again by reason (a record of its own): the dimension's values are the closed set.
        reason = outcome["reason"] if outcome["reason"] in REASONS else "other"
        name = DOCUMENT_METRICS[action]
        with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="reason", value=reason)
    log = logger.warning if action is Action.QUARANTINED else logger.info
    log("document %s", action.value, extra={k: v for k, v in outcome.items() if v not in (None, 0)})


def _record_handler(wiring: _Wiring) -> Callable[[SQSRecord], None]:
    def handle(record: SQSRecord) -> None:
        for event in parse_message(record.body):
            if wiring.raw_bucket and event.bucket != wiring.raw_bucket:
                logger.warning("ignoring a notification for another bucket", extra={"bucket": event.bucket})
                continue
            logger.append_keys(source=f"s3://{event.bucket}/{event.key}")
            payload = {**asdict(event), "idempotency_key": event.idempotency_key}
            wiring.executed = False
            try:
                outcome = wiring.ingest(event=payload)
            except IdempotencyAlreadyInProgressError:
                # The event's in-progress record is held: by a live attempt (the document's lease makes
                # this one wait: DocumentBusyError, retried), or by one that died or whose answer was
                # lost (a retried PutItem finds its own record), which would refuse the event for the
                # rest of that invocation's time. The service is idempotent by itself (it re-reads the
                # object and compares sequencers under the lease), so it runs without the shortcut.
                logger.info("event in progress elsewhere; running it under the document lease")
                outcome = wiring._ingest(event=payload)
            if wiring.executed:
                _record_outcome(outcome)
            else:
                metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
                logger.info("duplicate event skipped", extra={"idempotency_key": event.idempotency_key})

    return handle


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, service: IngestService | None = None
) -> dict[str, Any]:
    wiring = _Wiring(service, None) if service is not None else _build_service()
    if wiring.idempotency is not None:
        wiring.idempotency.register_lambda_context(context)
    # Leave time to record and announce the last document after its parse.
    wiring.deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - FINISH_SECONDS
    response = process_partial_response(
        event=event, record_handler=_record_handler(wiring), processor=processor, context=context
    )
    return dict(response)
