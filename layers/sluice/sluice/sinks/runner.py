"""One SQS batch on a sink's queue, whatever its messages: events from the bus (a document
changed, was deleted or quarantined), delayed status checks the sink queued for itself, and the
ingestion-job poll. Documents are deduplicated across the batch and synced together, so the API
calls are batched across messages (ten documents to a Kendra call); a message fails (and SQS retries
it, then dead-letters it) only when one of its documents needs a retry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from sluice.compat import batched
from sluice.errors import RefusedError, TransientError
from sluice.sinks import Queue, SyncResult
from sluice.sinks.diff import DiffSink
from sluice.sinks.knowledge_base import KnowledgeBaseSink

CHECK = "check"
POLL_JOB = "poll-job"
SYNC = "sync"
MAX_IDS_PER_MESSAGE = 200


class MalformedSinkMessageError(ValueError):
    pass


@dataclass
class Message:
    message_id: str
    sync: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)  # sync, sending again what the index refused
    check: dict[str, int] = field(default_factory=dict)  # document → the state version it was scheduled for
    poll_job: str | None = None  # the chain of polls the message belongs to
    poll_sent_at: float | None = None  # when the poll was first sent (a new chain's, before its lock)
    poll_early: int = 0  # times it arrived before the lock naming its chain


def parse(message_id: str, body: str) -> Message:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedSinkMessageError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedSinkMessageError("not a JSON object")
    message = Message(message_id)
    if data.get("source") == "sluice.ingest" and isinstance(data.get("detail"), dict):
        doc_id = data["detail"].get("doc_id")
        if not isinstance(doc_id, str):
            raise MalformedSinkMessageError("event without a doc_id")
        message.sync.append(doc_id)
    elif data.get("sluice") == SYNC and isinstance(data.get("doc_ids"), list):
        target = message.retry if data.get("retry_failed") else message.sync
        target += [str(d) for d in data["doc_ids"]]
    elif data.get("sluice") == CHECK and isinstance(data.get("versions"), dict):
        try:
            message.check = {str(d): int(v) for d, v in data["versions"].items()}
        except (TypeError, ValueError) as exc:
            raise MalformedSinkMessageError(f"check versions are not numbers: {exc}") from exc
    elif data.get("sluice") == POLL_JOB:
        message.poll_job = str(data.get("chain", ""))
        sent_at, early = data.get("sent_at"), data.get("early", 0)
        message.poll_sent_at = float(sent_at) if isinstance(sent_at, int | float) else None
        message.poll_early = early if isinstance(early, int) else 0
    else:
        raise MalformedSinkMessageError("neither a document event nor a sink message")
    return message


def check_message(versions: Mapping[str, int]) -> str:
    return json.dumps({"sluice": CHECK, "versions": dict(versions)})


def sync_message(doc_ids: Sequence[str], *, retry_failed: bool = False) -> str:
    return json.dumps({"sluice": SYNC, "doc_ids": list(doc_ids), **({"retry_failed": True} if retry_failed else {})})


@dataclass
class BatchReport:
    failed_message_ids: list[str]
    results: list[SyncResult]
    malformed: list[str]
    job: dict[str, Any] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # seconds from a registry change to the index confirming it


def run_batch(sink: DiffSink, records: Sequence[tuple[str, str]], queue: Queue) -> BatchReport:
    sink.take_lags()  # what an earlier batch left (one that raised) is not this batch's
    messages, malformed = [], []
    for message_id, body in records:
        try:
            messages.append(parse(message_id, body))
        except MalformedSinkMessageError:
            malformed.append(message_id)
    # A redrive's sync is an ordinary sync that also resends what failed: it covers any event for
    # the same document in the batch.
    to_retry = list(dict.fromkeys(d for m in messages for d in m.retry))
    to_sync = [d for d in dict.fromkeys(d for m in messages for d in m.sync) if d not in set(to_retry)]
    to_check: dict[str, int] = {}
    for m in messages:  # two checks of one document (an old chain and a new): the newest can be live
        for d, v in m.check.items():
            to_check[d] = max(v, to_check.get(d, v))
    # The checks of documents the batch does not sync run beside the syncs: the two make different
    # calls (Get beside Ingest and Delete), each paced on its own, so a batch takes the longer of the
    # two, not their sum. A document synced here is checked after its sync: a change starts a new chain
    # of checks, and its old check is then stale.
    synced = {*to_retry, *to_sync}
    beside = {d: v for d, v in to_check.items() if d not in synced}
    after = {d: v for d, v in to_check.items() if d in synced}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{sink.name}-checks") as pool:
        checking = pool.submit(sink.check, beside) if beside else None
        try:
            results = [
                *(sink.sync(to_retry, retry_failed=True) if to_retry else []),
                *(sink.sync(to_sync) if to_sync else []),
                *(sink.check(after) if after else []),
            ]
        except Exception:
            # The batch fails and SQS redelivers it, but the checks beside may have recorded new states:
            # their redelivered messages are then stale, so their next checks are queued now.
            if checking is not None and checking.exception() is None:
                _queue_checks(checking.result(), queue)
            raise
        results += checking.result() if checking else []
    report = BatchReport([], results, malformed)
    polls = [m for m in messages if m.poll_job is not None]
    if polls and isinstance(sink, KnowledgeBaseSink):
        for chain, first in {m.poll_job or "": m for m in reversed(polls)}.items():
            try:
                report.job = asdict(sink.poll_job(chain, sent_at=first.poll_sent_at, early=first.poll_early))
            except (TransientError, RefusedError) as exc:
                report.job = {"error": str(exc)}
                report.failed_message_ids += [m.message_id for m in polls if m.poll_job == chain]  # retried
    _queue_checks(results, queue)
    retry = {r.doc_id for r in results if r.retry}
    report.failed_message_ids += [
        m.message_id for m in messages if retry & set(m.sync + m.retry + list(m.check))
    ] + malformed
    report.lags = sink.take_lags()
    return report


def _queue_checks(results: Sequence[SyncResult], queue: Queue) -> None:
    """The delayed status checks the results ask for, one message per delay and 200 documents."""
    by_delay: dict[int, dict[str, int]] = {}
    for r in results:
        if r.check_after is not None and r.version is not None and not r.retry:
            by_delay.setdefault(r.check_after, {})[r.doc_id] = r.version
    for delay, versions in sorted(by_delay.items()):
        for batch in batched(versions.items(), MAX_IDS_PER_MESSAGE):
            queue.send(check_message(dict(batch)), delay)
