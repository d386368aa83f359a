"""FineTuneFunction: the Lambda steps of the fine-tune state machine (statemachine/finetune.asl.json).

Glue only: the state machine sends ``{"step": ..., "state": ..., "execution": ...}``; the step runs
in ``sluice.finetune.workflow`` and the new state goes back. Problems with the input or the
dataset raise FineTuneInputError / DatasetInvalidError / DatasetSourceError, whose message the
state machine turns into the execution's readable failure cause; a transient AWS failure raises
TransientError, which the state machine retries.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.finetune.workflow import FineTuneSteps

logger = Logger()
_TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
     "SlowDown", "InternalError", "InternalServerError", "ServiceUnavailable", "RequestTimeout"}
)  # fmt: skip


class TransientError(RuntimeError):
    """An AWS call that may well succeed when retried (the state machine retries this name)."""


_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


@cache
def _steps() -> FineTuneSteps:
    session = boto3.session.Session()
    s3 = session.client("s3", config=_CLIENT_CONFIG)
    processed = os.environ["PROCESSED_BUCKET"]
    return FineTuneSteps(
        documents=DynamoDBRegistry(session.client("dynamodb", config=_CLIENT_CONFIG), os.environ["DOCUMENTS_TABLE"]),
        reader=S3ObjectReader(s3),
        writer=S3BucketWriter(s3, processed),
        processed_bucket=processed,
        readable_buckets=frozenset(filter(None, (processed, os.environ.get("RAW_BUCKET")))),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step, execution = str(event.get("step", "")), str(event.get("execution", ""))
    logger.append_keys(step=step, execution=execution)
    try:
        state = _steps().run(step, dict(event.get("state") or {}), execution)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if error.get("Code") in _TRANSIENT_CODES or status >= 500:
            raise TransientError(f"{error.get('Code')}: {error.get('Message')}") from exc
        raise
    except BotoCoreError as exc:  # connection and read timeouts, after botocore's own retries
        raise TransientError(str(exc)) from exc
    summary: dict[str, Any] = {"report": (state.get("dataset") or {}).get("report")}
    summary |= {k: state[k] for k in ("corpus_change", "result") if k in state}
    logger.info("step done", extra={k: v for k, v in summary.items() if v})
    return state
