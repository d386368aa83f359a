"""What a connector's run yielded, picked apart for the connector tests' assertions."""

from __future__ import annotations

from typing import Any

from sluice.connectors import Checkpoint, Item


def items(changes: list[Any]) -> dict[str, Item]:
    """The Items by id; an id yielded twice in one run fails the test (the runner would land it twice)."""
    found = [c for c in changes if isinstance(c, Item)]
    assert len(found) == len({i.item_id for i in found}), "an item was yielded twice"
    return {i.item_id: i for i in found}


def last_cursor(changes: list[Any]) -> str:
    """The cursor the runner would commit: the last Checkpoint's."""
    return [c for c in changes if isinstance(c, Checkpoint)][-1].cursor
