"""What one page of a pass decided to do: the repairs, sent together when the page is done."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.sinks import SinkState


@dataclass
class Repairs:
    """What one page decided to do, sent together when the page is done."""

    recheck: dict[tuple[str, str], bool] = field(default_factory=dict)  # (bucket, key) → rebuild
    sync: dict[str, list[str]] = field(default_factory=dict)  # sink → doc ids
    corrections: list[tuple[SinkState | None, SinkState]] = field(default_factory=list)  # (stored, corrected)
    deletes: list[str] = field(default_factory=list)  # processed keys

    def ask(self, bucket: str, key: str, *, rebuild: bool = False) -> None:
        self.recheck[(bucket, key)] = self.recheck.get((bucket, key), False) or rebuild

    def sync_doc(self, sink: str, doc_id: str) -> None:
        self.sync.setdefault(sink, [])
        if doc_id not in self.sync[sink]:
            self.sync[sink].append(doc_id)

    @property
    def size(self) -> int:
        return len(self.recheck) + sum(map(len, self.sync.values())) + len(self.corrections) + len(self.deletes)
