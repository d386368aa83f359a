"""Bedrock Agent, Bedrock Agent Runtime and Kendra, answered in-process for the local stack.

AWS has no local edition of these services and moto does not cover the calls the sinks make. So
the local stack installs a botocore hook in its function workers (and `sluice search --local` in
itself): botocore still builds every request and validates it against the service's own model (a
wrong parameter fails here as it would in AWS); then, instead of sending it, the emulator answers
from a SQLite database whose FTS5 tables hold the chunks and documents it was given, checks its
answer against the model's output shape too, and appends the call to a JSON Lines log that the
demo summarises. Several processes share the database (SQLite locks it) and the log (appends).

What it emulates of each service's behaviour: S3 documents must lie inside the data source's
bucket and prefix; metadata sidecars over 10 KB fail; a repeated client token is ignored; one
ingestion job at a time per data source (ConflictException); Kendra refuses custom attributes the
index does not declare, and S3 paths without a role; deleting what was never there is success.
Retrieval is BM25 over the text, not vectors: good enough to see that edits and deletions arrive.

Dev-only: never in the Lambda layer.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.validate import ParamValidator

SERVICES = ("bedrock-agent", "bedrock-agent-runtime", "kendra")  # wholly emulated
# Partly emulated: what moto's Bedrock backend lacks. (moto serves the model-customization jobs.)
PARTLY = {"bedrock": ("CreateProvisionedModelThroughput", "GetProvisionedModelThroughput")}
PROVISIONING_CHECKS = 1  # a provisioned throughput is Creating for this many checks, then InService
DB_FILE = "index.db"
CALLS_FILE = "calls.jsonl"
MAX_SIDECAR_BYTES = 10 * 1024
LOCAL_KENDRA_FIELDS = {"department": "STRING_VALUE", "audience": "STRING_LIST_VALUE", "year": "LONG_VALUE"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS data_sources (kb TEXT, ds TEXT, bucket TEXT, prefix TEXT, PRIMARY KEY (kb, ds));
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kb_chunks (
    kb TEXT, ds TEXT, uri TEXT, status TEXT, reason TEXT, text TEXT, metadata TEXT, updated_at TEXT,
    PRIMARY KEY (kb, ds, uri));
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(text, kb UNINDEXED, uri UNINDEXED);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kb TEXT, ds TEXT, status TEXT, statistics TEXT, started_at TEXT, polls INTEGER);
CREATE TABLE IF NOT EXISTS kendra_indexes (index_id TEXT PRIMARY KEY, fields TEXT);
CREATE TABLE IF NOT EXISTS kendra_docs (
    index_id TEXT, id TEXT, title TEXT, text TEXT, attributes TEXT, acl TEXT, PRIMARY KEY (index_id, id));
CREATE VIRTUAL TABLE IF NOT EXISTS kendra_fts USING fts5(text, title, index_id UNINDEXED, id UNINDEXED);
CREATE TABLE IF NOT EXISTS provisioned (arn TEXT PRIMARY KEY, name TEXT, model TEXT, units INTEGER,
    token TEXT, checks INTEGER, created_at TEXT);
CREATE TABLE IF NOT EXISTS kendra_sync_jobs (index_id TEXT, ds TEXT, execution TEXT, running INTEGER,
    started_at TEXT, PRIMARY KEY (index_id, ds));
"""


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def _now() -> datetime:
    return datetime.now(UTC)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _fts_query(text: str) -> str:
    """Words of a free-text query, OR-ed, each quoted: FTS5 syntax characters in it stay literal."""
    words = re.findall(r"\w+", text.lower())
    return " OR ".join(f'"{w}"' for w in words) or '""'


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ServiceError("ValidationException", f"not an S3 URI: {uri}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class Emulator:
    def __init__(self, directory: Path, s3: Any = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._s3 = s3
        self._local = threading.local()
        self._log_lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)

    # -- plumbing --------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "db", None)
        if connection is None:
            connection = sqlite3.connect(self.dir / DB_FILE, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.db = connection
        return connection

    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.session.Session().client("s3")  # the local stack's endpoint, from the environment
        return self._s3

    def attach(self, client: Any) -> None:
        """Answer this client's calls: all of them for a wholly emulated service, only the listed
        operations of a partly emulated one (moto serves the rest)."""
        service = client.meta.service_model.service_name
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parameter-build.{service_id}", _remember_params)
        if service in SERVICES:
            client.meta.events.register(f"before-call.{service_id}", self._answerer(service))
        for operation in PARTLY.get(service, ()):
            client.meta.events.register(f"before-call.{service_id}.{operation}", self._answerer(service))

    def _answerer(self, service: str) -> Callable[..., tuple[AWSResponse, dict[str, Any]]]:
        def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            return self.call(service, model, context.get("sluice_params", {}))

        return answer

    def call(self, service: str, model: Any, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        operation = model.name
        handler = getattr(self, f"_{service.replace('-', '_')}__{_snake(operation)}", None)
        status, error = 200, None
        try:
            if handler is None:
                raise ServiceError("UnsupportedOperation", f"the local {service} does not emulate {operation}")
            if model.input_shape is not None:
                _check_limits(model.input_shape, params, operation)
            body = handler(params)
            report = ParamValidator().validate(body, model.output_shape) if model.output_shape else None
            if report is not None and report.has_errors():
                raise AssertionError(f"the local {service} {operation} answered off-model: {report.generate_report()}")
        except ServiceError as exc:
            status, error = exc.status, exc.code
            body = {"Error": {"Code": exc.code, "Message": str(exc)}}
        self._log(service, operation, params, status, error)
        body["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4()), "HTTPHeaders": {}}
        return AWSResponse(f"local://{service}/{operation}", status, {}, None), body

    def _log(self, service: str, operation: str, params: dict[str, Any], status: int, error: str | None) -> None:
        items = next((len(v) for v in params.values() if isinstance(v, list)), 1)
        entry: dict[str, Any] = {
            "at": _now().isoformat(timespec="milliseconds"),
            "service": service,
            "operation": operation,
        }
        entry |= {"items": items, "status": status, **({"error": error} if error else {})}
        with self._log_lock, (self.dir / CALLS_FILE).open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    # -- set-up, by the local stack ----------------------------------------------------------------

    def create_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> None:
        self._db().execute("INSERT OR REPLACE INTO data_sources VALUES (?, ?, ?, ?)", (kb, ds, bucket, prefix))

    def create_index(self, index_id: str, fields: dict[str, str]) -> None:
        self._db().execute("INSERT OR REPLACE INTO kendra_indexes VALUES (?, ?)", (index_id, json.dumps(fields)))

    # -- Bedrock Agent: direct ingestion -----------------------------------------------------------

    def _data_source(self, params: dict[str, Any]) -> tuple[str, str, str, str]:
        kb, ds = params["knowledgeBaseId"], params["dataSourceId"]
        row = self._db().execute("SELECT bucket, prefix FROM data_sources WHERE kb = ? AND ds = ?", (kb, ds)).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no data source {ds} in knowledge base {kb}", 404)
        return kb, ds, row[0], row[1]

    def _first_use(self, token: str | None) -> bool:
        if not token:
            return True
        return self._db().execute("INSERT OR IGNORE INTO tokens VALUES (?)", (token,)).rowcount == 1

    @staticmethod
    def _detail(kb: str, ds: str, uri: str, status: str, reason: str = "") -> dict[str, Any]:
        detail: dict[str, Any] = {
            "knowledgeBaseId": kb,
            "dataSourceId": ds,
            "status": status,
            "identifier": {"dataSourceType": "S3", "s3": {"uri": uri}},
            "updatedAt": _now(),
        }
        return detail | ({"statusReason": reason} if reason else {})

    def _index_chunk(self, kb: str, ds: str, uri: str, metadata_uri: str | None) -> tuple[str, str]:
        """Read a chunk and its sidecar from S3, as the service does; index it. (status, reason)"""
        bucket, key = _split_s3(uri)
        try:
            text = self.s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - whatever S3 said becomes the document's failure
            return "FAILED", f"cannot read {uri}: {exc}"[:300]
        metadata: dict[str, Any] = {}
        if metadata_uri:
            m_bucket, m_key = _split_s3(metadata_uri)
            try:
                raw = self.s3().get_object(Bucket=m_bucket, Key=m_key)["Body"].read()
                if len(raw) > MAX_SIDECAR_BYTES:
                    return "METADATA_UPDATE_FAILED", f"metadata file is {len(raw)} bytes; the limit is 10 KB"
                metadata = json.loads(raw).get("metadataAttributes", {})
            except Exception as exc:  # noqa: BLE001
                return "METADATA_UPDATE_FAILED", f"cannot read {metadata_uri}: {exc}"[:300]
        db = self._db()
        db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        db.execute("INSERT INTO kb_fts VALUES (?, ?, ?)", (text, kb, uri))
        db.execute(
            "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, 'INDEXED', '', ?, ?, ?)",
            (kb, ds, uri, text, json.dumps(metadata), _now().isoformat()),
        )
        return "INDEXED", ""

    def _unindex_chunk(self, kb: str, ds: str, uri: str) -> None:
        db = self._db()
        db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        db.execute("DELETE FROM kb_chunks WHERE kb = ? AND ds = ? AND uri = ?", (kb, ds, uri))

    def _bedrock_agent__ingest_knowledge_base_documents(self, params: dict[str, Any]) -> dict[str, Any]:
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
                    self._db().execute(
                        "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, ?, ?, '', '{}', ?)",
                        (kb, ds, uri, status, reason, _now().isoformat()),
                    )
            details.append(self._detail(kb, ds, uri, "STARTING"))
        return {"documentDetails": details}

    def _bedrock_agent__delete_knowledge_base_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        first = self._first_use(params.get("clientToken"))
        details = []
        for identifier in params["documentIdentifiers"]:
            uri = identifier["s3"]["uri"]
            if first:
                self._unindex_chunk(kb, ds, uri)
            details.append(self._detail(kb, ds, uri, "DELETING"))
        return {"documentDetails": details}

    def _bedrock_agent__get_knowledge_base_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        details = []
        for identifier in params["documentIdentifiers"]:
            uri = identifier["s3"]["uri"]
            row = (
                self._db()
                .execute("SELECT status, reason FROM kb_chunks WHERE kb = ? AND ds = ? AND uri = ?", (kb, ds, uri))
                .fetchone()
            )
            details.append(self._detail(kb, ds, uri, *(row or ("NOT_FOUND", ""))))
        return {"documentDetails": details}

    def _bedrock_agent__list_knowledge_base_documents(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, _, _ = self._data_source(params)
        limit = int(params.get("maxResults") or 1000)
        after = params.get("nextToken") or ""
        rows = (
            self._db()
            .execute(
                "SELECT uri, status, reason FROM kb_chunks WHERE kb = ? AND ds = ? AND uri > ? ORDER BY uri LIMIT ?",
                (kb, ds, after, limit + 1),
            )
            .fetchall()
        )
        response: dict[str, Any] = {"documentDetails": [self._detail(kb, ds, *row) for row in rows[:limit]]}
        if len(rows) > limit:
            response["nextToken"] = rows[limit - 1][0]
        return response

    # -- Bedrock Agent: ingestion jobs -------------------------------------------------------------

    def _bedrock_agent__start_ingestion_job(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, bucket, prefix = self._data_source(params)
        db = self._db()
        running = db.execute(
            "SELECT job_id FROM jobs WHERE kb = ? AND ds = ? AND status IN ('STARTING', 'IN_PROGRESS')", (kb, ds)
        ).fetchone()
        if running:
            raise ServiceError("ConflictException", f"ingestion job {running[0]} is already running on {ds}", 409)
        job_id = uuid.uuid4().hex[:10].upper()
        statistics = self._sync_data_source(kb, ds, bucket, prefix)
        db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, 'IN_PROGRESS', ?, ?, 0)",
            (job_id, kb, ds, json.dumps(statistics), _now().isoformat()),
        )
        return {"ingestionJob": self._job(job_id)}

    def _sync_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> dict[str, int]:
        """What a sync does: index what is in the prefix, drop from the index what is not."""
        present = set()
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            present |= {o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith(".metadata.json")}
        indexed = {r[0] for r in self._db().execute("SELECT uri FROM kb_chunks WHERE kb = ? AND ds = ?", (kb, ds))}
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
        row = (
            self._db()
            .execute("SELECT kb, ds, status, statistics, started_at FROM jobs WHERE job_id = ?", (job_id,))
            .fetchone()
        )
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
            "updatedAt": _now(),
        }

    def _bedrock_agent__get_ingestion_job(self, params: dict[str, Any]) -> dict[str, Any]:
        # A job is seen running once, then complete: the local sync already happened at its start.
        self._db().execute(
            "UPDATE jobs SET status = CASE WHEN polls >= 1 THEN 'COMPLETE' ELSE status END, polls = polls + 1 "
            "WHERE job_id = ?",
            (params["ingestionJobId"],),
        )
        return {"ingestionJob": self._job(params["ingestionJobId"])}

    # -- Bedrock Agent Runtime -----------------------------------------------------------------------

    def _bedrock_agent_runtime__retrieve(self, params: dict[str, Any]) -> dict[str, Any]:
        kb = params["knowledgeBaseId"]
        config = (params.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {}
        limit = int(config.get("numberOfResults", 5))
        rows = (
            self._db()
            .execute(
                "SELECT kb_fts.uri, kb_fts.text, bm25(kb_fts) AS rank, c.metadata FROM kb_fts "
                "JOIN kb_chunks c ON c.kb = kb_fts.kb AND c.uri = kb_fts.uri "
                "WHERE kb_fts MATCH ? AND kb_fts.kb = ? ORDER BY rank LIMIT ?",
                (_fts_query(params["retrievalQuery"]["text"]), kb, limit),
            )
            .fetchall()
        )
        results = []
        best = max((abs(rank) for _, _, rank, _ in rows), default=0.0)
        for uri, text, rank, metadata in rows:
            attributes = {k: _plain(v) for k, v in json.loads(metadata or "{}").items()}
            results.append(
                {
                    "content": {"type": "TEXT", "text": text},
                    "location": {"type": "S3", "s3Location": {"uri": uri}},
                    "score": round(abs(rank) / best, 4) if best > 1e-9 else 1.0,  # BM25, relative to the best hit
                    "metadata": {"x-amz-bedrock-kb-source-uri": uri, **attributes},
                }
            )
        return {"retrievalResults": results}

    # -- Bedrock: provisioned throughput -------------------------------------------------------------

    def _bedrock__create_provisioned_model_throughput(self, params: dict[str, Any]) -> dict[str, Any]:
        db = self._db()
        token = params.get("clientRequestToken")
        if token:
            row = db.execute("SELECT arn FROM provisioned WHERE token = ?", (token,)).fetchone()
            if row:  # the same request again: the same throughput
                return {"provisionedModelArn": row[0]}
        if db.execute("SELECT 1 FROM provisioned WHERE name = ?", (params["provisionedModelName"],)).fetchone():
            raise ServiceError("ResourceInUseException", f"{params['provisionedModelName']} already exists", 400)
        arn = f"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/{uuid.uuid4().hex[:12]}"
        db.execute(
            "INSERT INTO provisioned VALUES (?, ?, ?, ?, ?, 0, ?)",
            (arn, params["provisionedModelName"], params["modelId"], params["modelUnits"], token, _now().isoformat()),
        )
        return {"provisionedModelArn": arn}

    def _bedrock__get_provisioned_model_throughput(self, params: dict[str, Any]) -> dict[str, Any]:
        db = self._db()
        ident = params["provisionedModelId"]
        row = db.execute(
            "SELECT arn, name, model, units, checks, created_at FROM provisioned WHERE arn = ? OR name = ?",
            (ident, ident),
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no provisioned model {ident}", 404)
        arn, name, model, units, checks, created = row
        db.execute("UPDATE provisioned SET checks = checks + 1 WHERE arn = ?", (arn,))
        created_at = datetime.fromisoformat(created)
        return {
            "modelUnits": units,
            "desiredModelUnits": units,
            "provisionedModelName": name,
            "provisionedModelArn": arn,
            "modelArn": model,
            "desiredModelArn": model,
            "foundationModelArn": "arn:aws:bedrock:us-east-1::foundation-model/local",
            "status": "InService" if checks >= PROVISIONING_CHECKS else "Creating",
            "creationTime": created_at,
            "lastModifiedTime": _now(),
        }

    # -- Kendra ------------------------------------------------------------------------------------

    def _fields(self, index_id: str) -> dict[str, str]:
        row = self._db().execute("SELECT fields FROM kendra_indexes WHERE index_id = ?", (index_id,)).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no Kendra index {index_id}", 404)
        return dict(json.loads(row[0]))

    def _kendra__describe_index(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields(params["Id"])
        reserved = {"_source_uri": "STRING_VALUE", "_last_updated_at": "DATE_VALUE", "_file_type": "STRING_VALUE"}
        return {
            "Id": params["Id"],
            "Name": "sluice-local",
            "Edition": "DEVELOPER_EDITION",
            "Status": "ACTIVE",
            "DocumentMetadataConfigurations": [{"Name": n, "Type": t} for n, t in {**reserved, **fields}.items()],
        }

    def _kendra__batch_put_document(self, params: dict[str, Any]) -> dict[str, Any]:
        index_id = params["IndexId"]
        fields = self._fields(index_id)
        failed = []
        for d in params["Documents"]:
            try:
                self._put_kendra_document(index_id, fields, d, params.get("RoleArn"))
            except ServiceError as exc:
                failed.append({"Id": d["Id"], "ErrorCode": "InvalidRequest", "ErrorMessage": str(exc)})
        return {"FailedDocuments": failed}

    def _kendra__start_data_source_sync_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self._fields(params["IndexId"])
        db = self._db()
        row = db.execute(
            "SELECT execution FROM kendra_sync_jobs WHERE index_id = ? AND ds = ? AND running = 1",
            (params["IndexId"], params["Id"]),
        ).fetchone()
        if row:
            raise ServiceError("ResourceInUseException", f"data source {params['Id']} is syncing ({row[0]})", 400)
        execution = uuid.uuid4().hex
        db.execute(
            "INSERT OR REPLACE INTO kendra_sync_jobs VALUES (?, ?, ?, 1, ?)",
            (params["IndexId"], params["Id"], execution, _now().isoformat()),
        )
        return {"ExecutionId": execution}

    def _kendra__stop_data_source_sync_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self._db().execute(
            "UPDATE kendra_sync_jobs SET running = 0 WHERE index_id = ? AND ds = ?", (params["IndexId"], params["Id"])
        )
        return {}

    def _kendra__list_data_source_sync_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = (
            self._db()
            .execute(
                "SELECT execution, running, started_at FROM kendra_sync_jobs WHERE index_id = ? AND ds = ?",
                (params["IndexId"], params["Id"]),
            )
            .fetchall()
        )
        history = [
            {"ExecutionId": e, "Status": "SYNCING" if running else "SUCCEEDED", "StartTime": datetime.fromisoformat(t)}
            for e, running, t in rows
        ]
        if params.get("StatusFilter"):
            history = [h for h in history if h["Status"] == params["StatusFilter"]]
        return {"History": history}

    def _running_execution(self, index_id: str, ds: str) -> str | None:
        row = (
            self._db()
            .execute(
                "SELECT execution FROM kendra_sync_jobs WHERE index_id = ? AND ds = ? AND running = 1", (index_id, ds)
            )
            .fetchone()
        )
        return str(row[0]) if row else None

    def _put_kendra_document(self, index_id: str, fields: dict[str, str], d: dict[str, Any], role: str | None) -> None:
        for attribute in d.get("Attributes", []):
            name = attribute["Key"]
            if not name.startswith("_") and name not in fields:
                raise ServiceError("InvalidRequest", f"No document metadata configuration found for key {name}")
        given = {a["Key"]: _plain(a["Value"]) for a in d.get("Attributes", [])}
        if "_data_source_id" in given:
            running = self._running_execution(index_id, str(given["_data_source_id"]))
            if running is None or given.get("_data_source_sync_job_execution_id") != running:
                raise ServiceError("InvalidRequest", "the data source has no running sync job with that execution id")
        if "S3Path" in d:
            if not role:
                raise ServiceError("InvalidRequest", "a document by S3Path needs the request's RoleArn")
            data = self.s3().get_object(Bucket=d["S3Path"]["Bucket"], Key=d["S3Path"]["Key"])["Body"].read()
        else:
            data = d.get("Blob", b"")
        text = data.decode("utf-8", "replace")
        attributes = {a["Key"]: _plain(a["Value"]) for a in d.get("Attributes", [])}
        db = self._db()
        db.execute("DELETE FROM kendra_fts WHERE index_id = ? AND id = ?", (index_id, d["Id"]))
        db.execute("INSERT INTO kendra_fts VALUES (?, ?, ?, ?)", (text, d.get("Title", ""), index_id, d["Id"]))
        db.execute(
            "INSERT OR REPLACE INTO kendra_docs VALUES (?, ?, ?, ?, ?, ?)",
            (
                index_id,
                d["Id"],
                d.get("Title", ""),
                text,
                json.dumps(attributes),
                json.dumps(d.get("AccessControlList", [])),
            ),
        )

    def _kendra__batch_delete_document(self, params: dict[str, Any]) -> dict[str, Any]:
        db = self._db()
        self._fields(params["IndexId"])
        for doc_id in params["DocumentIdList"]:
            db.execute("DELETE FROM kendra_fts WHERE index_id = ? AND id = ?", (params["IndexId"], doc_id))
            db.execute("DELETE FROM kendra_docs WHERE index_id = ? AND id = ?", (params["IndexId"], doc_id))
        return {"FailedDocuments": []}

    def _kendra__batch_get_document_status(self, params: dict[str, Any]) -> dict[str, Any]:
        statuses = []
        for info in params["DocumentInfoList"]:
            row = (
                self._db()
                .execute(
                    "SELECT 1 FROM kendra_docs WHERE index_id = ? AND id = ?", (params["IndexId"], info["DocumentId"])
                )
                .fetchone()
            )
            statuses.append({"DocumentId": info["DocumentId"], "DocumentStatus": "INDEXED" if row else "NOT_FOUND"})
        return {"DocumentStatusList": statuses, "Errors": []}

    def _kendra__retrieve(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("PageSize", 10))
        rows = (
            self._db()
            .execute(
                "SELECT kendra_fts.id, d.title, snippet(kendra_fts, 0, '', '', ' … ', 48), bm25(kendra_fts) AS rank "
                "FROM kendra_fts JOIN kendra_docs d ON d.index_id = kendra_fts.index_id AND d.id = kendra_fts.id "
                "WHERE kendra_fts MATCH ? AND kendra_fts.index_id = ? ORDER BY rank LIMIT ?",
                (_fts_query(params["QueryText"]), params["IndexId"], limit),
            )
            .fetchall()
        )
        items = []
        for n, (doc_id, title, passage, rank) in enumerate(rows):
            confidence = "VERY_HIGH" if n == 0 else "HIGH" if abs(rank) > 2 else "MEDIUM"
            items.append(
                {
                    "Id": f"{doc_id}#{n}",
                    "DocumentId": doc_id,
                    "DocumentTitle": title,
                    "Content": passage,
                    "DocumentURI": doc_id,
                    "ScoreAttributes": {"ScoreConfidence": confidence},
                }
            )
        return {"QueryId": uuid.uuid4().hex, "ResultItems": items}


def _plain(value: Any) -> Any:
    """An attribute value without its type wrapper (Bedrock sidecar values and Kendra values)."""
    if isinstance(value, dict):
        if "value" in value and isinstance(value["value"], dict):
            value = value["value"]
        for key in ("stringValue", "numberValue", "booleanValue", "stringListValue"):
            if key in value:
                return value[key]
        for key in ("StringValue", "LongValue", "StringListValue"):
            if key in value:
                return value[key]
        if "DateValue" in value:
            date = value["DateValue"]
            return date.isoformat() if isinstance(date, datetime) else str(date)
    return value


def _check_limits(shape: Any, value: Any, path: str) -> None:
    """The model's max constraints, which botocore's client-side validation leaves to the service."""
    limit = shape.metadata.get("max")
    if shape.type_name == "list":
        if limit is not None and len(value) > limit:
            raise ServiceError("ValidationException", f"{path}: {len(value)} items; the maximum is {limit}")
        for n, item in enumerate(value):
            _check_limits(shape.member, item, f"{path}[{n}]")
    elif shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                _check_limits(member, value[name], f"{path}.{name}")
    elif shape.type_name == "string" and limit is not None and len(value) > limit:
        raise ServiceError("ValidationException", f"{path}: {len(value)} characters; the maximum is {limit}")


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["sluice_params"] = dict(params)


_installed: Emulator | None = None
_lambdas: Callable[[str], Callable[[dict[str, Any]], dict[str, Any]] | None] | None = None
_install_lock = threading.Lock()


def _patch_clients() -> None:
    """Every client this process creates from now on gets the hooks (idempotent)."""
    if getattr(botocore.session.Session.create_client, "_sluice_original", None) is not None:
        return
    original = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        if _installed is not None and (service_name in SERVICES or service_name in PARTLY):
            _installed.attach(client)
        if _lambdas is not None and service_name == "lambda":
            client.meta.events.register("before-parameter-build.lambda.Invoke", _remember_params)
            client.meta.events.register("before-call.lambda.Invoke", _invoke_in_process)
        return client

    create_client._sluice_original = original  # type: ignore[attr-defined]
    botocore.session.Session.create_client = create_client


def install(directory: Path, s3: Any = None) -> Emulator:
    """From now on, every client this process creates for an emulated service is answered by the
    emulator over ``directory``. Idempotent."""
    global _installed
    with _install_lock:
        if _installed is None or _installed.dir != directory:
            _installed = Emulator(directory, s3)
        _patch_clients()
        return _installed


def route_lambda(resolve: Callable[[str], Callable[[dict[str, Any]], dict[str, Any]] | None]) -> None:
    """Lambda Invoke calls made in this process (by moto's Step Functions interpreter, for one) go to
    ``resolve(function name or ARN)``, a callable taking the event and returning the handler's
    result, or raising what the handler raised; None leaves the call to moto."""
    global _lambdas
    with _install_lock:
        _lambdas = resolve
        _patch_clients()


def _invoke_in_process(
    params: dict[str, Any], context: dict[str, Any], **_: Any
) -> tuple[AWSResponse, dict[str, Any]] | None:
    api = context.get("sluice_params") or {}
    name = str(api.get("FunctionName", ""))
    handler = _lambdas(name) if _lambdas is not None else None
    if handler is None:
        return None
    raw = api.get("Payload") or b"{}"
    event = json.loads(raw.read() if hasattr(raw, "read") else raw)
    body: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    try:
        payload: Any = handler(event)
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports a function error
        error_type = getattr(exc, "error_type", None) or type(exc).__name__  # a worker's, or the handler's own
        payload = {"errorType": error_type, "errorMessage": str(exc), "stackTrace": []}
        body["FunctionError"] = "Unhandled"
    data = json.dumps(payload, default=str).encode()
    body["Payload"] = StreamingBody(io.BytesIO(data), len(data))
    body["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4()), "HTTPHeaders": {}}
    return AWSResponse(f"local://lambda/{name}", 200, {}, None), body


def uninstall() -> None:
    global _installed, _lambdas
    with _install_lock:
        original = getattr(botocore.session.Session.create_client, "_sluice_original", None)
        if original is not None:
            botocore.session.Session.create_client = original
        _installed = None
        _lambdas = None


def read_calls(directory: Path) -> list[dict[str, Any]]:
    path = directory / CALLS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
