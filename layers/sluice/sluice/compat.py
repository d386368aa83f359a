"""What the Lambda runtime's Python (3.13) has and 3.11, which Sluice also runs on, does not."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 12):
    from itertools import batched
else:

    def batched(iterable: Iterable[T], n: int) -> Iterator[tuple[T, ...]]:
        """``itertools.batched`` (3.12): tuples of ``n`` items, the last one shorter."""
        iterator = iter(iterable)
        while batch := tuple(islice(iterator, n)):
            yield batch


__all__ = ["batched"]
