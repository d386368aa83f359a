"""In-memory stand-ins for the Bedrock and Kendra APIs: they keep what was given to them, answer
status questions the way the services do, record every call, and fail on command."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import TransientError
from sluice.sinks.knowledge_base import IngestionJob, JobConflictError, KbDocument


@dataclass
class FakeKnowledgeBase:
    ds: str = "DS12345678"
    indexed: dict[str, str] = field(default_factory=dict)  # uri → metadata uri
    calls: list[tuple[str, int]] = field(default_factory=list)  # (operation, documents)
    fail_next: dict[str, int] = field(default_factory=dict)  # operation → calls to fail
    refuse: set[str] = field(default_factory=set)  # uris the service marks FAILED
    processing_checks: int = 0  # Get answers IN_PROGRESS this many times before INDEXED
    jobs: list[str] = field(default_factory=list)
    running: str | None = None
    job_status: str = "IN_PROGRESS"
    job_failed: int = 0  # the documents an ended job counts as failed (its statistics)
    conflict_next: bool = False
    tokens: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)  # every URI a Get call asked about
    job_tokens: dict[str, str] = field(default_factory=dict)  # StartIngestionJob client token → its job

    def _fail(self, op: str) -> None:
        if self.fail_next.get(op):
            self.fail_next[op] -= 1
            raise TransientError(f"{op}: ThrottlingException")

    def ingest(self, documents: Sequence[KbDocument], token: str) -> dict[str, tuple[str, str]]:
        assert len(documents) <= 10
        self._fail("ingest")
        self.calls.append(("ingest", len(documents)))
        self.tokens.add(token)
        out = {}
        for d in documents:
            self.indexed[d.uri] = d.metadata_uri
            out[d.uri] = ("STARTING", "")
        return out

    def delete(self, uris: Sequence[str], token: str) -> dict[str, tuple[str, str]]:
        assert len(uris) <= 10
        self._fail("delete")
        self.calls.append(("delete", len(uris)))
        for u in uris:
            self.indexed.pop(u, None)
        return dict.fromkeys(uris, ("DELETING", ""))

    def statuses(self, uris: Sequence[str]) -> dict[str, tuple[str, str]]:
        assert len(uris) <= 10
        self._fail("get")
        self.calls.append(("get", len(uris)))
        self.asked += uris
        if self.processing_checks:
            self.processing_checks -= 1
            return dict.fromkeys(uris, ("IN_PROGRESS", ""))
        return {
            u: ("FAILED", "embedding failed")
            if u in self.refuse
            else ("INDEXED", "")
            if u in self.indexed
            else ("NOT_FOUND", "")
            for u in uris
        }

    def start_job(self, token: str, description: str) -> str:
        self._fail("start_job")
        self.calls.append(("start_job", 0))
        if token in self.job_tokens:  # a repeated request is ignored: the job it started is the answer
            return self.job_tokens[token]
        if self.conflict_next or self.running is not None:
            self.conflict_next = False
            raise JobConflictError("only one ingestion job at a time")
        self.running = f"JOB{len(self.jobs):07d}"
        self.jobs.append(self.running)
        self.job_tokens[token] = self.running
        return self.running

    def job(self, job_id: str) -> IngestionJob:
        self.calls.append(("get_job", 0))
        status = self.job_status if job_id == self.running else "COMPLETE"
        if status != "IN_PROGRESS" and job_id == self.running:
            self.running = None
        return IngestionJob(job_id, status, {"numberOfDocumentsScanned": 1, "numberOfDocumentsFailed": self.job_failed})

    def count(self, op: str) -> int:
        return sum(1 for o, _ in self.calls if o == op)


@dataclass
class FakeKendra:
    role_arn: str | None = None
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=lambda: {"department": "STRING_VALUE", "year": "LONG_VALUE"})
    fail_next: dict[str, int] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)  # document id → ErrorCode

    def declared_fields(self) -> dict[str, str]:
        return self.fields

    @contextmanager
    def sync_job(self) -> Iterator[None]:
        yield

    def put(self, documents: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        assert len(documents) <= 10
        if self.fail_next.get("put"):
            self.fail_next["put"] -= 1
            raise TransientError("batch_put_document: ThrottlingException")
        self.calls.append(("put", len(documents)))
        failed = {}
        for d in documents:
            code = self.refuse.pop(d["Id"], None)
            if code:
                failed[d["Id"]] = (code, "refused")
            else:
                self.documents[d["Id"]] = d
        return failed

    def delete(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        assert len(ids) <= 10
        self.calls.append(("delete", len(ids)))
        for i in ids:
            self.documents.pop(i, None)
        return {}

    def statuses(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        self.calls.append(("status", len(ids)))
        return {i: ("INDEXED", "") if i in self.documents else ("NOT_FOUND", "") for i in ids}

    def count(self, op: str) -> int:
        return sum(1 for o, _ in self.calls if o == op)
