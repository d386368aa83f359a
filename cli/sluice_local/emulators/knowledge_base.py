"""A Bedrock knowledge base: Bedrock Agent's direct ingestion (documents in, out, their status) and
ingestion jobs, and Bedrock Agent Runtime's Retrieve.

What it keeps of the service's behaviour: S3 documents must lie inside the data source's bucket and
prefix; metadata sidecars over 10 KB fail; a repeated client token is ignored; one ingestion job at
a time per data source (ConflictException); deleting what was never there is success. Retrieval is
BM25 over the text, not vectors: good enough to see that edits and deletions arrive.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sluice_local.emulators.common import (
    Database,
    Operation,
    S3Client,
    ServiceError,
    fts_query,
    now,
    plain_value,
    split_s3_uri,
)

MAX_SIDECAR_BYTES = 10 * 1024
# What a vector in Amazon S3 Vectors keeps of a chunk's custom metadata, through Bedrock: 1 KB and 35 keys.
VECTOR_METADATA_BYTES, VECTOR_METADATA_KEYS = 1024, 35


def _metadata_bytes(attributes: dict[str, Any]) -> int:
    """The keys' and values' own bytes (a number 8, a boolean 1), whether plain or in Bedrock's typed form."""
    total = 0
    for name, attribute in attributes.items():
        value = attribute.get("value", attribute) if isinstance(attribute, dict) else attribute
        if isinstance(value, dict):
            value = next((v for k, v in value.items() if k != "type"), "")
        items = value if isinstance(value, list) else [value]
        total += len(name.encode()) + sum(
            1 if isinstance(v, bool) else 8 if isinstance(v, int | float) else len(str(v).encode()) for v in items
        )
    return total


SCHEMA = """
CREATE TABLE IF NOT EXISTS data_sources (kb TEXT, ds TEXT, bucket TEXT, prefix TEXT, PRIMARY KEY (kb, ds));
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kb_chunks (
    kb TEXT, ds TEXT, uri TEXT, status TEXT, reason TEXT, text TEXT, metadata TEXT, updated_at TEXT,
    PRIMARY KEY (kb, ds, uri));
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(text, kb UNINDEXED, uri UNINDEXED);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kb TEXT, ds TEXT, status TEXT, statistics TEXT, started_at TEXT, polls INTEGER);
"""


class KnowledgeBase:
    def __init__(self, db: Database, s3: S3Client) -> None:
        self._db = db
        self._s3 = s3

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock-agent", "IngestKnowledgeBaseDocuments"): self.ingest_documents,
            ("bedrock-agent", "DeleteKnowledgeBaseDocuments"): self.delete_documents,
            ("bedrock-agent", "GetKnowledgeBaseDocuments"): self.get_documents,
            ("bedrock-agent", "ListKnowledgeBaseDocuments"): self.list_documents,
            ("bedrock-agent", "StartIngestionJob"): self.start_ingestion_job,
            ("bedrock-agent", "GetIngestionJob"): self.get_ingestion_job,
            ("bedrock-agent-runtime", "Retrieve"): self.retrieve,
        }

    def create_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> None:
        """Set-up, by the local stack: what the template's data source (or a parameter) names."""
        self._db.execute("INSERT OR REPLACE INTO data_sources VALUES (?, ?, ?, ?)", (kb, ds, bucket, prefix))

    # -- direct ingestion --------------------------------------------------------------------------

    def ingest_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, bucket, prefix = self._data_source(params)
        documents = params["documents"]
        for d in documents:
            content = d["content"]
            if content["dataSourceType"] != "S3" or "s3" not in content:
                raise ServiceError("ValidationException", "an S3 data source takes documents by S3 location only")
            if not content["s3"]["s3Location"]["uri"].startswith(f"s3://{bucket}/{prefix}"):
                raise ServiceError("ValidationException", f"documents must lie in s3://{bucket}/{prefix}")
        first = self._first_use(params.get("clientToken"))
        details = []
        for d in documents:
            uri = d["content"]["s3"]["s3Location"]["uri"]
            metadata_uri = (d.get("metadata") or {}).get("s3Location", {}).get("uri")
            if first:
                status, reason = self._index_chunk(kb, ds, uri, metadata_uri)
                if status != "INDEXED":
                    self._db.execute(
                        "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, ?, ?, '', '{}', ?)",
                        (kb, ds, uri, status, reason, now().isoformat()),
                    )
            details.append(_detail(kb, ds, uri, "STARTING"))
        return {"documentDetails": details}

    def delete_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        first = self._first_use(params.get("clientToken"))
        details = []
        for identifier in params["documentIdentifiers"]:
            uri = identifier["s3"]["uri"]
            if first:
                self._unindex_chunk(kb, ds, uri)
            details.append(_detail(kb, ds, uri, "DELETING"))
        return {"documentDetails": details}

    def get_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        details = []
        for identifier in params["documentIdentifiers"]:
            uri = identifier["s3"]["uri"]
            row = self._db.execute(
                "SELECT status, reason FROM kb_chunks WHERE kb = ? AND ds = ? AND uri = ?", (kb, ds, uri)
            ).fetchone()
            details.append(_detail(kb, ds, uri, *(row or ("NOT_FOUND", ""))))
        return {"documentDetails": details}

    def list_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        limit = int(params.get("maxResults") or 1000)
        after = params.get("nextToken") or ""
        rows = self._db.execute(
            "SELECT uri, status, reason FROM kb_chunks WHERE kb = ? AND ds = ? AND uri > ? ORDER BY uri LIMIT ?",
            (kb, ds, after, limit + 1),
        ).fetchall()
        response: dict[str, Any] = {"documentDetails": [_detail(kb, ds, *row) for row in rows[:limit]]}
        if len(rows) > limit:
            response["nextToken"] = rows[limit - 1][0]
        return response

    # -- ingestion jobs ----------------------------------------------------------------------------

    def start_ingestion_job(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, bucket, prefix = self._data_source(params)
        running = self._db.execute(
            "SELECT job_id FROM jobs WHERE kb = ? AND ds = ? AND status IN ('STARTING', 'IN_PROGRESS')", (kb, ds)
        ).fetchone()
        if running:
            raise ServiceError("ConflictException", f"ingestion job {running[0]} is already running on {ds}", 409)
        job_id = uuid.uuid4().hex[:10].upper()
        statistics = self._sync_data_source(kb, ds, bucket, prefix)
        self._db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, 'IN_PROGRESS', ?, ?, 0)",
            (job_id, kb, ds, json.dumps(statistics), now().isoformat()),
        )
        return {"ingestionJob": self._job(job_id)}

    def get_ingestion_job(self, params: dict[str, Any]) -> dict[str, Any]:
        # A job is seen running once, then complete: the local sync already happened at its start.
        self._db.execute(
            "UPDATE jobs SET status = CASE WHEN polls >= 1 THEN 'COMPLETE' ELSE status END, polls = polls + 1 "
            "WHERE job_id = ?",
            (params["ingestionJobId"],),
        )
        return {"ingestionJob": self._job(params["ingestionJobId"])}

    # -- Bedrock Agent Runtime ---------------------------------------------------------------------

    def retrieve(self, params: dict[str, Any]) -> dict[str, Any]:
        kb = params["knowledgeBaseId"]
        config = (params.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {}
        limit = int(config.get("numberOfResults", 5))
        rows = self._db.execute(
            "SELECT kb_fts.uri, kb_fts.text, bm25(kb_fts) AS rank, c.metadata FROM kb_fts "
            "JOIN kb_chunks c ON c.kb = kb_fts.kb AND c.uri = kb_fts.uri "
            "WHERE kb_fts MATCH ? AND kb_fts.kb = ? ORDER BY rank LIMIT ?",
            (fts_query(params["retrievalQuery"]["text"]), kb, limit),
        ).fetchall()
        results = []
        best = max((abs(rank) for _, _, rank, _ in rows), default=0.0)
        for uri, text, rank, metadata in rows:
            attributes = {k: plain_value(v) for k, v in json.loads(metadata or "{}").items()}
            results.append(
                {
                    "content": {"type": "TEXT", "text": text},
                    "location": {"type": "S3", "s3Location": {"uri": uri}},
                    "score": round(abs(rank) / best, 4) if best > 1e-9 else 1.0,  # BM25, relative to the best hit
                    "metadata": {"x-amz-bedrock-kb-source-uri": uri, **attributes},
                }
            )
        return {"retrievalResults": results}

    # -- the index ---------------------------------------------------------------------------------

    def _data_source(self, params: dict[str, Any]) -> tuple[str, str, str, str]:
        kb, ds = params["knowledgeBaseId"], params["dataSourceId"]
        row = self._db.execute("SELECT bucket, prefix FROM data_sources WHERE kb = ? AND ds = ?", (kb, ds)).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no data source {ds} in knowledge base {kb}", 404)
        return kb, ds, row[0], row[1]

    def _first_use(self, token: str | None) -> bool:
        if not token:
            return True
        return self._db.execute("INSERT OR IGNORE INTO tokens VALUES (?)", (token,)).rowcount == 1

    def _index_chunk(self, kb: str, ds: str, uri: str, metadata_uri: str | None) -> tuple[str, str]:
        """Read a chunk and its sidecar from S3, as the service does; index it. (status, reason)"""
        bucket, key = split_s3_uri(uri)
        try:
            text = self._s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - whatever S3 said becomes the document's failure
            return "FAILED", f"cannot read {uri}: {exc}"[:300]
        metadata: dict[str, Any] = {}
        if metadata_uri:
            m_bucket, m_key = split_s3_uri(metadata_uri)
            try:
                raw = self._s3().get_object(Bucket=m_bucket, Key=m_key)["Body"].read()
                if len(raw) > MAX_SIDECAR_BYTES:
                    return "METADATA_UPDATE_FAILED", f"metadata file is {len(raw)} bytes; the limit is 10 KB"
                metadata = json.loads(raw).get("metadataAttributes", {})
            except Exception as exc:  # noqa: BLE001
                return "METADATA_UPDATE_FAILED", f"cannot read {metadata_uri}: {exc}"[:300]
            size = _metadata_bytes(metadata)
            if len(metadata) > VECTOR_METADATA_KEYS or size > VECTOR_METADATA_BYTES:
                return "FAILED", (
                    f"custom metadata of {len(metadata)} keys and {size} bytes; a vector keeps "
                    f"{VECTOR_METADATA_KEYS} keys and {VECTOR_METADATA_BYTES} bytes"
                )
        self._db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        self._db.execute("INSERT INTO kb_fts VALUES (?, ?, ?)", (text, kb, uri))
        self._db.execute(
            "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, 'INDEXED', '', ?, ?, ?)",
            (kb, ds, uri, text, json.dumps(metadata), now().isoformat()),
        )
        return "INDEXED", ""

    def _unindex_chunk(self, kb: str, ds: str, uri: str) -> None:
        self._db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        self._db.execute("DELETE FROM kb_chunks WHERE kb = ? AND ds = ? AND uri = ?", (kb, ds, uri))

    def _sync_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> dict[str, int]:
        """What a sync does: index what is in the prefix, drop from the index what is not."""
        present = set()
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            present |= {o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith(".metadata.json")}
        indexed = {r[0] for r in self._db.execute("SELECT uri FROM kb_chunks WHERE kb = ? AND ds = ?", (kb, ds))}
        stats = {"numberOfDocumentsScanned": len(present), "numberOfNewDocumentsIndexed": 0}
        stats |= {"numberOfDocumentsDeleted": 0, "numberOfDocumentsFailed": 0}
        for key in sorted(present):
            uri = f"s3://{bucket}/{key}"
            if uri in indexed:
                continue
            status, _ = self._index_chunk(kb, ds, uri, f"{uri}.metadata.json")
            stats["numberOfNewDocumentsIndexed" if status == "INDEXED" else "numberOfDocumentsFailed"] += 1
        for uri in indexed - {f"s3://{bucket}/{k}" for k in present}:
            self._unindex_chunk(kb, ds, uri)
            stats["numberOfDocumentsDeleted"] += 1
        return stats

    def _job(self, job_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT kb, ds, status, statistics, started_at FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no ingestion job {job_id}", 404)
        kb, ds, status, statistics, started = row
        return {
            "knowledgeBaseId": kb,
            "dataSourceId": ds,
            "ingestionJobId": job_id,
            "status": status,
            "statistics": json.loads(statistics),
            "startedAt": datetime.fromisoformat(started),
            "updatedAt": now(),
        }


def _detail(kb: str, ds: str, uri: str, status: str, reason: str = "") -> dict[str, Any]:
    detail: dict[str, Any] = {
        "knowledgeBaseId": kb,
        "dataSourceId": ds,
        "status": status,
        "identifier": {"dataSourceType": "S3", "s3": {"uri": uri}},
        "updatedAt": now(),
    }
    return detail | ({"statusReason": reason} if reason else {})
