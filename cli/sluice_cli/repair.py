"""Repairs an operator runs.

`sluice redrive [--sink NAME]`: after the cause of repeated failures is fixed, send the work again.
For each chosen queue (ingest, kb, kendra) the messages in its dead-letter queue are moved back to
it, and for each sink every document it recorded as FAILED is queued again with ``retry_failed``,
so the sink sends exactly what the index refused (or a failed job covered) once more.

Drift (events lost beyond the dead-letter queues' retention, an index changed by hand, a newly added
sink) is `sluice reconcile`'s (cli/sluice_cli/reconcile.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.compat import batched
from sluice.sinks import SinkStatus
from sluice.sinks.runner import MAX_IDS_PER_MESSAGE, sync_message
from sluice_cli.status import QUEUES, SINKS

ClientFactory = Callable[[str], Any]


def move_back(sqs: Any, dead_letters: str, queue: str) -> int:
    """Every message of the dead-letter queue, sent to its source queue and then deleted."""
    moved = 0
    while True:
        messages = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return moved
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": m["Body"]} for n, m in enumerate(messages)]
        )
        sqs.delete_message_batch(
            QueueUrl=dead_letters,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )
        moved += len(messages)


def requeue_failed(states: DynamoDBSinkStates, sqs: Any, sink: str, queue: str) -> int:
    failed = [s.doc_id for s in states.states(sink, SinkStatus.FAILED)]
    for batch in batched(failed, MAX_IDS_PER_MESSAGE):
        sqs.send_message(QueueUrl=queue, MessageBody=sync_message(batch, retry_failed=True))
    return len(failed)


def redrive(outputs: dict[str, str], client: ClientFactory, only: str | None, out: TextIO) -> int:
    sqs = client("sqs")
    states = DynamoDBSinkStates(client("dynamodb"), outputs["DocumentsTableName"])
    names = [n for n in QUEUES if (only is None or n == only) and QUEUES[n][0] in outputs]
    if only is not None and not names:
        out.write(f"this stack has no {only} queue\n")
        return 1
    for name in names:
        queue, dead_letters = (outputs[o] for o in QUEUES[name])
        moved = move_back(sqs, dead_letters, queue)
        line = f"{name}: {moved} message{'s' if moved != 1 else ''} moved back from the dead-letter queue"
        if name in SINKS:
            again = requeue_failed(states, sqs, name, queue)
            line += f", {again} failed document{'s' if again != 1 else ''} queued again"
        out.write(line + "\n")
    return 0
