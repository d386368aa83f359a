"""Amazon SQS adapter for a sink's messages to itself, and for retrying a message sooner than the
queue's visibility timeout."""

from __future__ import annotations

import random
from contextlib import suppress
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MAX_DELAY_SECONDS = 900  # SQS's longest message delay
RETRY_BASE_SECONDS = 30
MAX_RETRY_SECONDS = 3600


def retry_delay(receives: int, rand: float) -> int:
    """Exponential backoff with full jitter: 30 s, 60 s, 120 s … at most an hour, times ``rand`` ∈ [0, 1)."""
    ceiling = min(MAX_RETRY_SECONDS, RETRY_BASE_SECONDS * 2 ** max(receives - 1, 0))
    return max(1, int(ceiling * (0.5 + rand / 2)))


class SqsQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self.url = queue_url

    def send(self, body: str, delay_seconds: int = 0) -> None:
        delay = min(max(delay_seconds, 0), MAX_DELAY_SECONDS)
        self._sqs.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=delay)

    def retry_later(self, receipt_handle: str, receives: int) -> None:
        """Make a failed message visible again after a backoff. Best effort: if this fails, the
        queue's visibility timeout still brings the message back."""
        with suppress(ClientError, BotoCoreError):
            self._sqs.change_message_visibility(
                QueueUrl=self.url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=retry_delay(receives, random.random()),  # jitter, not a secret
            )
