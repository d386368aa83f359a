"""The EventBridge adapter, its requests validated against EventBridge's service model (Stubber)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from sluice.adapters.aws.eventbridge import EventBridgeBus
from sluice.bus import DOCUMENT_CHANGED, DocumentEvent
from sluice.errors import TransientError


def _entry(i: int) -> dict[str, str]:
    return {
        "Source": "sluice.ingest",
        "DetailType": DOCUMENT_CHANGED,
        "Detail": json.dumps({"n": i}),
        "EventBusName": "bus",
    }


def test_events_are_sent_ten_at_a_time() -> None:
    client = boto3.client("events")
    stubber = Stubber(client)
    events = [DocumentEvent(DOCUMENT_CHANGED, {"n": i}) for i in range(12)]
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}] * 10},
        {"Entries": [_entry(i) for i in range(10)]},
    )
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}] * 2},
        {"Entries": [_entry(i) for i in range(10, 12)]},
    )
    with stubber:
        EventBridgeBus(client, "bus").publish(events)
    stubber.assert_no_pending_responses()


def test_a_partially_failed_put_is_an_error() -> None:
    client = boto3.client("events")
    stubber = Stubber(client)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]},
        {"Entries": [_entry(0)]},
    )
    with stubber, pytest.raises(TransientError, match="ThrottlingException"):
        EventBridgeBus(client, "bus").publish([DocumentEvent(DOCUMENT_CHANGED, {"n": 0})])
