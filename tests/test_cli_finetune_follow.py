"""`sluice finetune` follows an execution as the console's graph would show it: each Map iteration's
states under the iteration's name, their waiting loops left out."""

from __future__ import annotations

import io
from typing import Any

from sluice_cli.finetune import follow


class _History:
    """A Step Functions client over a finished execution's history."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return {"status": "SUCCEEDED", "output": "{}"}

    def get_paginator(self, name: str) -> Any:
        events = self.events

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"events": events[::-1]}]

        return Pages()


def _history(*steps: tuple[str, str | None, int | None]) -> list[dict[str, Any]]:
    """(kind, name, index): a Map iteration starting (its Map state's name and index) or a state entered."""
    events, previous = [], 0
    for n, (kind, name, index) in enumerate(steps, 1):
        event: dict[str, Any] = {"id": n, "previousEventId": previous, "type": kind}
        if kind == "MapIterationStarted":
            event["mapIterationStartedEventDetails"] = {"name": name, "index": index}
        else:
            event["stateEnteredEventDetails"] = {"name": name}
        events.append(event)
        previous = n
    return events


def test_trials_and_the_judges_two_sides_are_named_and_their_waits_left_out() -> None:
    events = _history(
        ("TaskStateEntered", "PrepareDataset", None),
        ("MapIterationStarted", "RunTrials", 1),
        ("TaskStateEntered", "StartCustomizationJob", None),
        ("WaitStateEntered", "WaitForJob", None),
        ("MapIterationStarted", "Judge", 0),
        ("TaskStateEntered", "StartJudge", None),
        ("WaitStateEntered", "WaitForJudge", None),
        ("MapIterationStarted", "Judge", 1),
        ("TaskStateEntered", "StartJudge", None),
    )
    out = io.StringIO()
    follow(lambda service: _History(events), "arn:execution", out, timeout=1)
    assert out.getvalue().splitlines() == [
        "    PrepareDataset",
        "      trial t2: StartCustomizationJob",
        "      judge base: StartJudge",
        "      judge custom: StartJudge",
    ]
