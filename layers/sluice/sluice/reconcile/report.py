"""What a pass finds (the kinds of drift and the repair of each) and its report, which the runs of
one pass add up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

PHASES = ("raw", "registry", "chunks", "texts", "kb-index")
MAX_EXAMPLES = 10


class Drift(StrEnum):
    """What a pass can find. Each kind has one repair (REPAIRS)."""

    UNRECORDED = "unrecorded"  # an object in RawBucket with no record, or a DELETED one
    STALE = "stale"  # the object or its sidecar changed since its record was written
    SOURCE_GONE = "source_gone"  # a live record whose object is gone
    UNFINISHED = "unfinished"  # a transition committed and never announced (its worker died)
    QUARANTINE_RETRY = "quarantine_retry"  # quarantined by an older pipeline, which a newer may pass
    PIPELINE_CHANGED = "pipeline_changed"  # processed by an older pipeline (re-read when asked to)
    PROCESSED_MISSING = "processed_missing"  # a processed document's files are not all there
    PROCESSED_STRAY = "processed_stray"  # processed files no record names
    SINK_BEHIND = "sink_behind"  # a sink recorded something other than the registry's version
    SINK_FAILED = "sink_failed"  # the index refused it: `sluice redrive` sends it again
    INDEX_LOST = "index_lost"  # the sink recorded giving it; the index does not have it
    INDEX_STRAY = "index_stray"  # the index holds chunks the sink never recorded giving it


REPAIRS = {
    Drift.UNRECORDED: "recheck",
    Drift.STALE: "recheck",
    Drift.SOURCE_GONE: "recheck",
    Drift.UNFINISHED: "recheck",
    Drift.QUARANTINE_RETRY: "recheck",
    Drift.PIPELINE_CHANGED: "recheck when reprocess is on, else reported",
    Drift.PROCESSED_MISSING: "rebuild",
    Drift.PROCESSED_STRAY: "rebuild (delete, when no record exists)",
    Drift.SINK_BEHIND: "sync",
    Drift.SINK_FAILED: "reported: `sluice redrive` after fixing the cause",
    Drift.INDEX_LOST: "correct the sink state, then sync",
    Drift.INDEX_STRAY: "correct the sink state, then sync",
}


@dataclass
class Report:
    """One pass, as far as it got: what it examined, found and did. Runs of one pass add up."""

    pass_id: str
    started_at: str
    dry_run: bool = False
    phase: str = PHASES[0]
    complete: bool = False
    stopped: str = ""  # complete | time | budget | busy
    runs: int = 0
    examined: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        if n:
            table[key] = table.get(key, 0) + n

    def add(self, drift: Drift, example: str) -> None:
        self.count(self.found, drift.value)
        shown = self.examples.setdefault(drift.value, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def drift(self) -> int:
        """Drift that needed repair (documents processed by an older pipeline are information)."""
        return sum(n for kind, n in self.found.items() if kind != Drift.PIPELINE_CHANGED)


def describe(report: Report) -> Iterator[str]:
    """The report as lines for a person: what was examined, found (with examples) and done."""
    state = "complete" if report.complete else f"stopped in {report.phase} ({report.stopped}); the next run goes on"
    mode = " (dry run: nothing changed)" if report.dry_run else ""
    yield f"reconciliation pass {report.pass_id}: {state}{mode}, {report.runs} run{'s' * (report.runs != 1)}"
    yield "  examined: " + (", ".join(f"{n:,} {k}" for k, n in report.examined.items()) or "nothing")
    if not report.found:
        yield "  found: no drift — RawBucket, the registry, the processed files and the indexes agree"
    for kind, n in sorted(report.found.items()):
        yield f"  found {n:,} {kind} → {REPAIRS[Drift(kind)]}"
        for example in report.examples.get(kind, [])[:3]:
            yield f"      e.g. {example}"
    for action, n in report.repairs.items():
        yield f"  did: {n:,} {action}"
    for note in report.notes:
        yield f"  note: {note}"
