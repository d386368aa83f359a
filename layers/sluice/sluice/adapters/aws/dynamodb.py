"""What the adapters of DocumentsTable (the registry, the sink states) share: consistent batch reads."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sluice.compat import batched
from sluice.errors import TransientError

BATCH_GET = 100  # keys per BatchGetItem call
ATTEMPTS = 8


def batch_get(
    db: Any, table: str, keys: Sequence[dict[str, Any]], sleep: Callable[[float], None] = time.sleep
) -> list[dict[str, Any]]:
    """The items under these keys, read consistently (BatchGetItem, 100 keys a call); absent keys
    have no item in the answer. Keys the table leaves unprocessed (it is throttling) are asked again
    after a backoff."""
    found: list[dict[str, Any]] = []
    for batch in batched(keys, BATCH_GET):
        pending = list(batch)
        for attempt in range(ATTEMPTS):
            if not pending:
                break
            if attempt:
                sleep(min(2.0, 0.05 * 2**attempt))
            resp = db.batch_get_item(RequestItems={table: {"Keys": pending, "ConsistentRead": True}})
            found += resp.get("Responses", {}).get(table, [])
            pending = resp.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if pending:
            raise TransientError(f"{table}: {len(pending)} keys stayed unprocessed by BatchGetItem")
    return found
