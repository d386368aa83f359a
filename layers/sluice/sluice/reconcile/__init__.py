"""Reconciliation: prove that RawBucket, the registry, ProcessedBucket and each index agree, and
repair what does not by sending the work down the ordinary paths, never around them.

A pass walks five listings in turn, a page at a time, and saves its position after every page, so a
pass spans as many runs as it needs (each run is bounded by time, by repairs queued and by index
calls) and a crashed run costs one page done twice:

    raw        RawBucket's objects and sidecars      → records missing or older than the object
    registry   the registry's records and sink states → sources gone, unfinished announcements,
               quarantines a newer pipeline may pass, processed files missing, sinks behind the
               registry, documents an index lost (asked of the index itself)
    chunks     ProcessedBucket's chunk files          → files no record names
    texts      ProcessedBucket's cleaned texts        → files no record names
    kb-index   the knowledge base's own document list → chunks nobody recorded giving it

Repairs, each idempotent:

    recheck    the ingest queue reads the object again under its lease: what S3 holds now wins
    rebuild    a recheck that also rewrites the document's processed files and deletes its strays
    sync       the sink's queue compares the document and sends the difference
    correct    the sink's recorded state takes the index's own answer (optimistically, by version),
               then a sync sends the difference
    delete     processed files whose document has no record at all, once older than an hour

A dry run finds and reports, and changes nothing (not even its position).

The reconciler (``service``, with ``sink_checks`` for what the sinks recorded) works on ports only
(``ports``, the storage ports and the indexes'); ``report`` holds the kinds of drift and the report.
``sluice.bootstrap.reconcile`` wires it on AWS.
"""

from sluice.reconcile.ports import PassBusyError
from sluice.reconcile.report import REPAIRS, Drift, Report, describe
from sluice.reconcile.service import Reconciler
from sluice.reconcile.settings import ReconcileSettings

__all__ = ["REPAIRS", "Drift", "PassBusyError", "ReconcileSettings", "Reconciler", "Report", "describe"]
