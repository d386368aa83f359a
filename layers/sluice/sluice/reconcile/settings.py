"""The reconciler's settings (``sluice.bootstrap.reconcile.ReconcileFunctionSettings`` reads them from the function's
environment)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    raw_bucket: str
    processed_bucket: str
    documents_table: str
    ingest_queue_url: str
    pipeline_fingerprint: str  # the ingest function's: records made by another pipeline are older
    sink_queues: dict[str, str] = field(default_factory=dict)  # "kb" / "kendra" → its queue
    kb_mode: str = "direct"
    page_size: int = 500
    max_repairs: int = 5000  # messages and corrections per run; the pass goes on next run
    max_index_calls: int = 600  # GetKnowledgeBaseDocuments + BatchGetDocumentStatus calls per run
    reprocess: bool = False  # re-read documents processed by an older pipeline (a full re-parse)
    stray_age_seconds: int = 3600  # files without any record are deleted only when older than this
    unfinished_seconds: int = 900  # an announcement still pending after this long was abandoned
    lease_seconds: int = 960  # one run at a time; longer than the function's timeout
    threads: int = 16  # concurrent S3 reads in the registry phase
