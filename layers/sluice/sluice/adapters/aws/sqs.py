"""Amazon SQS adapters: a sink's messages to itself, retrying a message sooner than the queue's
visibility timeout, and batches of messages to any queue (the reconciler's repairs)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice.compat import batched
from sluice.errors import TransientError

MAX_DELAY_SECONDS = 900  # SQS's longest message delay
RETRY_BASE_SECONDS = 30
MAX_RETRY_SECONDS = 3600
PER_BATCH = 10  # SendMessageBatch's most entries
BATCH_ATTEMPTS = 5
BATCH_PAUSE_SECONDS = 0.2


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


class SqsBatchSender:
    """Messages to any queue, ten a SendMessageBatch call. The entries SQS reports failed are sent
    again (a few times, after a pause); what still fails is a TransientError."""

    def __init__(self, client: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sqs = client
        self._sleep = sleep

    def send(self, queue_url: str, bodies: Sequence[str]) -> None:
        for batch in batched(bodies, PER_BATCH):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self._sleep(BATCH_PAUSE_SECONDS)
                failed = {
                    f["Id"] for f in self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
                }
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise TransientError(f"{len(entries)} messages to {queue_url} failed to send")
