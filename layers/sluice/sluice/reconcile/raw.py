"""Whether listed RawBucket objects need a recheck: the one verdict that reconciliation's raw phase and
a backfill (``sluice.backfill``) both reach, so that the two never disagree about an object.

An object needs a recheck when the registry has no record of it (or a DELETED one), or when its ETag,
or its ``.metadata.json`` sidecar's, differs from the record's. A sidecar is judged with its document,
never on its own; a document whose first ingestion holds its lease is left to that ingestion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sluice.pipeline.files import document_id, s3_uri
from sluice.pipeline.metadata import document_of, sidecar_of
from sluice.reconcile.ports import RecordLookup
from sluice.reconcile.report import Drift
from sluice.registry import DocumentRecord, Status

# The ETags of sidecars a listing does not hold, by key (None: there is no such sidecar).
SidecarEtags = Callable[[Sequence[str]], Mapping[str, str | None]]


def under_way(found: Mapping[str, DocumentRecord | None], doc_id: str) -> bool:
    """A first ingestion holds the document's lease and writes its files before its record."""
    return doc_id in found and found[doc_id] is None


@dataclass
class RawVerdicts:
    """What each listed object needs, by key, in the listing's order."""

    drift: dict[str, Drift] = field(default_factory=dict)  # each gets a recheck
    current: list[str] = field(default_factory=list)  # the record holds this version and its sidecar's
    under_way: list[str] = field(default_factory=list)  # its first ingestion will read it
    sidecars: list[str] = field(default_factory=list)  # judged with their documents

    @property
    def documents(self) -> int:
        return len(self.drift) + len(self.current) + len(self.under_way)


def judge_raw(
    bucket: str, etags: Mapping[str, str], registry: RecordLookup, sidecar_etags: SidecarEtags
) -> RawVerdicts:
    """The verdict on each of ``etags`` (listed keys → their ETags, sidecars among them). A sidecar the
    listing does not hold is asked of ``sidecar_etags``, once for all of them, and only for documents
    whose record holds the listed ETag (the others need a recheck whatever their sidecar says)."""
    verdicts = RawVerdicts()
    documents: dict[str, str] = {}
    for key in etags:
        if document_of(key) is None:
            documents[key] = document_id(s3_uri(bucket, key))
        else:
            verdicts.sidecars.append(key)
    found = registry.lookup(documents.values())
    held: dict[str, DocumentRecord] = {}  # documents whose record holds the listed ETag
    judged: dict[str, Drift | None] = {}
    for key, doc_id in documents.items():
        if under_way(found, doc_id):
            verdicts.under_way.append(key)
            continue
        record = found.get(doc_id)
        if record is None or record.status is Status.DELETED:
            judged[key] = Drift.UNRECORDED
        elif record.etag != etags[key]:
            judged[key] = Drift.STALE
        else:
            judged[key], held[key] = None, record
    unlisted = [sidecar_of(key) for key in held if sidecar_of(key) not in etags]
    asked = sidecar_etags(unlisted) if unlisted else {}
    for key, record in held.items():
        sidecar = sidecar_of(key)
        if (etags[sidecar] if sidecar in etags else asked[sidecar]) != record.metadata_etag:
            judged[key] = Drift.STALE
    for key, drift in judged.items():
        if drift is None:
            verdicts.current.append(key)
        else:
            verdicts.drift[key] = drift
    return verdicts
