"""The local stack's SQS (moto's, patched by moto_patches): two deletes on one queue at the same
moment, as the event pump's threads make them, leave neither message behind. Unpatched, each
delete rebuilt the queue's list from what it saw, and the last one put the other's message back,
received and invisible for the queue's visibility timeout (the load run's five stuck messages)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models

from sluice_local import moto_patches


def test_two_deletes_at_once_bring_no_message_back(monkeypatch: pytest.MonkeyPatch) -> None:
    moto_patches.apply()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="pumped", Attributes={"VisibilityTimeout": "1800"})["QueueUrl"]
        for body in ("one", "two"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
        assert len(received) == 2
        queue = models.sqs_backends["123456789012"]["us-east-1"].queues["pumped"]

        # Each delete scans the queue first; the two scans meet here when nothing keeps them apart.
        meet = threading.Barrier(2, timeout=0.5)
        scan = models.Message.had_receipt_handle

        def meeting(self: Any, handle: str) -> bool:
            with contextlib.suppress(threading.BrokenBarrierError):  # the other delete waits for this one
                meet.wait()
            return bool(scan(self, handle))

        monkeypatch.setattr(models.Message, "had_receipt_handle", meeting)
        deletes = [threading.Thread(target=queue.delete_message, args=(m["ReceiptHandle"],)) for m in received]
        for delete in deletes:
            delete.start()
        for delete in deletes:
            delete.join(timeout=10)
        assert [m.body for m in queue._messages] == []
