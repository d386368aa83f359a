"""`sluice status`'s pace of each sink: what it settled (indexed, or removed from the index) in the last ten
minutes, read from the sink-status index on DynamoDB (moto), and how long what is ahead takes at that pace."""

from __future__ import annotations

import io
import time
from typing import Any

import boto3
from moto import mock_aws

from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.sinks import SinkState, SinkStatus
from sluice.timestamps import iso
from sluice_cli import status
from support.awsfixtures import create_documents_table


def _status(sinks: dict[str, Any], queued: int) -> dict[str, Any]:
    return {
        "documents": {"PROCESSED": 10},
        "quarantined": [],
        "sinks": sinks,
        "queues": {"kb": {"waiting": queued, "in_flight": 0}},
        "connectors": {},
        "reconciliation": None,
        "backfill": None,
    }


def test_the_pace_counts_what_was_settled_in_the_window() -> None:
    now = time.time()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_documents_table(ddb, "docs")
        states = DynamoDBSinkStates(ddb, "docs")
        written = [
            ("new-1", SinkStatus.INDEXED, now - 30),
            ("new-2", SinkStatus.INDEXED, now - 590),
            ("gone", SinkStatus.ABSENT, now - 60),  # removed from the index: settled too
            ("old", SinkStatus.INDEXED, now - 3600),
            ("waiting", SinkStatus.PENDING, now - 10),
            ("other sink", SinkStatus.INDEXED, now - 10),
        ]
        for doc_id, state, at in written:
            sink = "kendra" if doc_id == "other sink" else "kb"
            states.put(SinkState(sink, doc_id, state, iso(at), version=1), expected_version=None)
        registry = DynamoDBRegistry(ddb, "docs")
        outputs = {"DocumentsTableName": "docs", "KnowledgeBaseQueueUrl": "q", "KendraQueueUrl": "q"}
        sinks = status._sinks(outputs, lambda service: ddb, registry, window=600)

    assert sinks["kb"]["settled"] == {"seconds": 600, "documents": 3}
    assert sinks["kb"]["pending"] == 1 and sinks["kendra"]["settled"]["documents"] == 1


def _render(settled: int, pending: int, queued: int) -> str:
    sink = {"indexed": 100, "pending": pending, "failed": 0, "absent": 0, "failures": [], "index": "knowledge base KB"}
    sink["settled"] = {"seconds": 600, "documents": settled}
    out = io.StringIO()
    status.render(_status({"kb": sink}, queued), out, as_json=False)
    return out.getvalue()


def test_the_pace_and_what_is_ahead_are_shown_under_the_sink() -> None:
    text = _render(settled=4_860, pending=1_000, queued=28_160)
    assert (
        "  settled 4,860 in the last 10 min (8.1 a second); "
        "at that pace the 29,160 pending or queued take about 60 min\n"
    ) in text
    assert "  settled 600 in the last 10 min (1.0 a second)\n" in _render(settled=600, pending=0, queued=0)
    assert "settled" not in _render(settled=0, pending=5, queued=0)  # nothing settled: no pace to tell
