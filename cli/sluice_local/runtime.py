"""Lambda's part on the local stack: function workers and the SQS event pump.

The pump long-polls each function's queue and invokes the real handler with a real SQS event
(the shape Lambda sends), then does what Lambda's event source mapping does with the answer:
deletes the records that succeeded, leaves the ones reported in ``batchItemFailures`` (or the whole
batch, when the handler raised) to reappear, which the queue's redrive policy eventually moves to
its dead-letter queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# Failed records come back after this many seconds locally (instead of the queue's visibility
# timeout, which is six times the function timeout), so retries and redrive are visible quickly.
LOCAL_RETRY_DELAY_SECONDS = 1
LOCAL_MAX_BATCHING_WINDOW_SECONDS = 0.5


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: float
    memory: int
    sqs_sources: list[dict[str, Any]] = field(default_factory=list)  # {queue_url, batch_size, report_failures}


class FunctionWorker:
    """One long-lived process running one function's handler."""

    def __init__(self, spec: FunctionSpec, base_env: dict[str, str], log_path: Path) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("a", encoding="utf-8")
        env = {**base_env, **spec.environment, "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice_local.worker",
                "--code",
                str(spec.code_dir),
                "--handler",
                spec.handler,
                "--name",
                spec.logical_id,
                "--memory",
                str(spec.memory),
                "--timeout",
                str(spec.timeout),
                "--requests",
                str(req_r),
                "--replies",
                str(rep_w),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(req_r, rep_w),
        )
        os.close(req_r)
        os.close(rep_w)
        self._requests: TextIO = os.fdopen(req_w, "w", encoding="utf-8")
        self._replies: TextIO = os.fdopen(rep_r, "r", encoding="utf-8")
        self.invocations = 0
        self.errors = 0

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's result, or ``{"ok": False, "error": ...}`` when it raised."""
        with self._lock:
            try:
                self._requests.write(json.dumps({"request_id": str(uuid.uuid4()), "event": event}) + "\n")
                self._requests.flush()
                line = self._replies.readline()
            except OSError:  # the worker died (its log says why)
                line = ""
            self.invocations += 1
        if not line:
            self.errors += 1
            return {"ok": False, "error": f"worker for {self.spec.logical_id} exited ({self.process.poll()})"}
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            self.errors += 1
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._replies.close()
        self._log.close()


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class EventPump:
    """One thread per (function, queue) pair."""

    def __init__(self, sqs: Any, region: str) -> None:
        self._sqs = sqs
        self._region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.busy = 0
        self._busy_lock = threading.Lock()

    def add(self, worker: FunctionWorker, source: dict[str, Any]) -> None:
        thread = threading.Thread(
            target=self._run, args=(worker, source), daemon=True, name=f"pump-{worker.spec.logical_id}"
        )
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float | None = 5) -> None:
        """No more deliveries; the ones under way get ``timeout`` seconds each (None: as long as they
        take, as Lambda lets running invocations finish when a function is deployed again)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _run(self, worker: FunctionWorker, source: dict[str, Any]) -> None:
        url, arn = source["queue_url"], source["queue_arn"]
        while not self._stop.is_set():
            try:
                resp = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, int(source.get("batch_size", 10))),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:  # noqa: BLE001 - the server is shutting down
                if self._stop.is_set():
                    return
                time.sleep(0.5)
                continue
            messages = resp.get("Messages", [])
            if not messages:
                continue
            messages += self._fill(url, source, len(messages))
            with self._busy_lock:
                self.busy += 1
            try:
                self._deliver(worker, messages, arn, url, source.get("report_failures", False))
            finally:
                with self._busy_lock:
                    self.busy -= 1

    def _fill(self, url: str, source: dict[str, Any], have: int) -> list[dict[str, Any]]:
        """What Lambda's batching window does: keep receiving, up to the batch size, for the window
        (capped locally at LOCAL_MAX_BATCHING_WINDOW_SECONDS)."""
        more: list[dict[str, Any]] = []
        size = int(source.get("batch_size", 10))
        deadline = time.monotonic() + min(float(source.get("window", 0)), LOCAL_MAX_BATCHING_WINDOW_SECONDS)
        while have + len(more) < size and time.monotonic() < deadline and not self._stop.is_set():
            batch = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, size - have - len(more)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                time.sleep(0.05)
            more += batch
        return more

    def _deliver(
        self, worker: FunctionWorker, messages: list[dict[str, Any]], arn: str, url: str, partial: bool
    ) -> None:
        reply = worker.invoke(sqs_event(messages, arn, self._region))
        by_id = {m["MessageId"]: m for m in messages}
        if not reply.get("ok"):
            failed = set(by_id)
        elif partial:
            result = reply.get("result") or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures") or []}
        else:
            failed = set()
        done = [m for mid, m in by_id.items() if mid not in failed]
        for i in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i : i + 10])],
            )
        retry = [by_id[mid] for mid in failed if mid in by_id]
        for i in range(0, len(retry), 10):
            self._sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": LOCAL_RETRY_DELAY_SECONDS}
                    for n, m in enumerate(retry[i : i + 10])
                ],
            )
