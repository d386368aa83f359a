"""What every AWS adapter shares: one client configuration, one rule for which errors a retry may fix
(the fine-tune state machine retries the same ones), and a client-side rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from sluice.errors import RefusedError, TransientError

# Every client of every function: botocore's standard retry mode (exponential backoff with jitter on
# throttling, 5xx and connection errors), then the caller decides. 60 s between bytes is the longest
# any call needs (dataset files, connector listings).
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionConflictException",
        "KMSThrottlingException",  # SNS, SQS and Lambda calls that use a KMS key
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_CODES or int(status or 0) >= 500
    return isinstance(exc, HTTPClientError | BotoConnectionError)  # connection errors, read timeouts


@contextmanager
def service_call(operation: str) -> Iterator[None]:
    """Turn a failed AWS call into what the caller acts on: TransientError (retry later; botocore's
    standard retry mode has already backed off with jitter) or RefusedError (record the reason)."""
    try:
        yield
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
        if is_transient(exc):
            raise TransientError(f"{operation}: {error_code(exc)}") from exc
        raise RefusedError(f"{operation}: {error_code(exc)}: {message}") from exc
    except BotoCoreError as exc:
        if is_transient(exc):
            raise TransientError(f"{operation}: {exc}") from exc
        raise RefusedError(f"{operation}: {exc}") from exc


class RateLimit:
    """At most ``per_second`` calls from this process (the account-wide quota is shared with the
    other concurrent sink functions: the template caps their concurrency)."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval
