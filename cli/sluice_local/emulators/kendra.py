"""Kendra: documents put (inline or by S3 path) and deleted in batches, their status, data source
sync jobs, and Retrieve.

What it keeps of the service's behaviour: custom attributes the index does not declare are
refused, and so are S3 paths without a role; documents naming a data source need its running sync
job's execution id; one sync job at a time per data source; deleting what was never there is
success. Retrieval is BM25 over the text.
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
    broken,
    fts_query,
    now,
    plain_value,
)

LOCAL_KENDRA_FIELDS = {"department": "STRING_VALUE", "audience": "STRING_LIST_VALUE", "year": "LONG_VALUE"}
_RESERVED_FIELDS = {"_source_uri": "STRING_VALUE", "_last_updated_at": "DATE_VALUE", "_file_type": "STRING_VALUE"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS kendra_indexes (index_id TEXT PRIMARY KEY, fields TEXT);
CREATE TABLE IF NOT EXISTS kendra_docs (
    index_id TEXT, id TEXT, title TEXT, text TEXT, attributes TEXT, acl TEXT, PRIMARY KEY (index_id, id));
CREATE VIRTUAL TABLE IF NOT EXISTS kendra_fts USING fts5(text, title, index_id UNINDEXED, id UNINDEXED);
CREATE TABLE IF NOT EXISTS kendra_sync_jobs (index_id TEXT, ds TEXT, execution TEXT, running INTEGER,
    started_at TEXT, PRIMARY KEY (index_id, ds));
"""


class Kendra:
    def __init__(self, db: Database, s3: S3Client) -> None:
        self._db = db
        self._s3 = s3

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("kendra", "DescribeIndex"): self.describe_index,
            ("kendra", "BatchPutDocument"): self.batch_put_document,
            ("kendra", "BatchDeleteDocument"): self.batch_delete_document,
            ("kendra", "BatchGetDocumentStatus"): self.batch_get_document_status,
            ("kendra", "StartDataSourceSyncJob"): self.start_data_source_sync_job,
            ("kendra", "StopDataSourceSyncJob"): self.stop_data_source_sync_job,
            ("kendra", "ListDataSourceSyncJobs"): self.list_data_source_sync_jobs,
            ("kendra", "Retrieve"): self.retrieve,
        }

    def create_index(self, index_id: str, fields: dict[str, str]) -> None:
        """Set-up, by the local stack: an index and the custom attributes it declares."""
        self._db.execute("INSERT OR REPLACE INTO kendra_indexes VALUES (?, ?)", (index_id, json.dumps(fields)))

    def describe_index(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields(params["Id"])
        return {
            "Id": params["Id"],
            "Name": "sluice-local",
            "Edition": "DEVELOPER_EDITION",
            "Status": "ACTIVE",
            "DocumentMetadataConfigurations": [
                {"Name": n, "Type": t} for n, t in {**_RESERVED_FIELDS, **fields}.items()
            ],
        }

    # -- documents ---------------------------------------------------------------------------------

    def batch_put_document(self, params: dict[str, Any]) -> dict[str, Any]:
        index_id = params["IndexId"]
        fields = self._fields(index_id)
        failed = []
        for d in params["Documents"]:
            try:
                self._put_document(index_id, fields, d, params.get("RoleArn"))
            except ServiceError as exc:
                failed.append({"Id": d["Id"], "ErrorCode": "InvalidRequest", "ErrorMessage": str(exc)})
        return {"FailedDocuments": failed}

    def batch_delete_document(self, params: dict[str, Any]) -> dict[str, Any]:
        self._fields(params["IndexId"])
        for doc_id in params["DocumentIdList"]:
            self._db.execute("DELETE FROM kendra_fts WHERE index_id = ? AND id = ?", (params["IndexId"], doc_id))
            self._db.execute("DELETE FROM kendra_docs WHERE index_id = ? AND id = ?", (params["IndexId"], doc_id))
        return {"FailedDocuments": []}

    def batch_get_document_status(self, params: dict[str, Any]) -> dict[str, Any]:
        statuses = []
        for info in params["DocumentInfoList"]:
            row = self._db.execute(
                "SELECT 1 FROM kendra_docs WHERE index_id = ? AND id = ?", (params["IndexId"], info["DocumentId"])
            ).fetchone()
            statuses.append({"DocumentId": info["DocumentId"], "DocumentStatus": "INDEXED" if row else "NOT_FOUND"})
        return {"DocumentStatusList": statuses, "Errors": []}

    # -- data source sync jobs ---------------------------------------------------------------------

    def start_data_source_sync_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self._fields(params["IndexId"])
        running = self._running_execution(params["IndexId"], params["Id"])
        if running:
            raise ServiceError("ResourceInUseException", f"data source {params['Id']} is syncing ({running})", 400)
        execution = uuid.uuid4().hex
        self._db.execute(
            "INSERT OR REPLACE INTO kendra_sync_jobs VALUES (?, ?, ?, 1, ?)",
            (params["IndexId"], params["Id"], execution, now().isoformat()),
        )
        return {"ExecutionId": execution}

    def stop_data_source_sync_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self._db.execute(
            "UPDATE kendra_sync_jobs SET running = 0 WHERE index_id = ? AND ds = ?", (params["IndexId"], params["Id"])
        )
        return {}

    def list_data_source_sync_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = self._db.execute(
            "SELECT execution, running, started_at FROM kendra_sync_jobs WHERE index_id = ? AND ds = ?",
            (params["IndexId"], params["Id"]),
        ).fetchall()
        history = [
            {"ExecutionId": e, "Status": "SYNCING" if running else "SUCCEEDED", "StartTime": datetime.fromisoformat(t)}
            for e, running, t in rows
        ]
        if params.get("StatusFilter"):
            history = [h for h in history if h["Status"] == params["StatusFilter"]]
        return {"History": history}

    # -- search ------------------------------------------------------------------------------------

    def retrieve(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("PageSize", 10))
        rows = self._db.execute(
            "SELECT kendra_fts.id, d.title, snippet(kendra_fts, 0, '', '', ' … ', 48), bm25(kendra_fts) AS rank, "
            "d.acl FROM kendra_fts JOIN kendra_docs d ON d.index_id = kendra_fts.index_id AND d.id = kendra_fts.id "
            "WHERE kendra_fts MATCH ? AND kendra_fts.index_id = ? ORDER BY rank",
            (fts_query(params["QueryText"]), params["IndexId"]),
        ).fetchall()
        user = params.get("UserContext")
        if user is not None and not broken(self._db, "filters"):
            rows = [row for row in rows if _visible(json.loads(row[4] or "[]"), user)]
        items = []
        for n, (doc_id, title, passage, rank, _) in enumerate(rows[:limit]):
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

    # -- the index ---------------------------------------------------------------------------------

    def _fields(self, index_id: str) -> dict[str, str]:
        row = self._db.execute("SELECT fields FROM kendra_indexes WHERE index_id = ?", (index_id,)).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no Kendra index {index_id}", 404)
        return dict(json.loads(row[0]))

    def _running_execution(self, index_id: str, ds: str) -> str | None:
        row = self._db.execute(
            "SELECT execution FROM kendra_sync_jobs WHERE index_id = ? AND ds = ? AND running = 1", (index_id, ds)
        ).fetchone()
        return str(row[0]) if row else None

    def _put_document(self, index_id: str, fields: dict[str, str], d: dict[str, Any], role: str | None) -> None:
        for attribute in d.get("Attributes", []):
            name = attribute["Key"]
            if not name.startswith("_") and name not in fields:
                raise ServiceError("InvalidRequest", f"No document metadata configuration found for key {name}")
        attributes = {a["Key"]: plain_value(a["Value"]) for a in d.get("Attributes", [])}
        if "_data_source_id" in attributes:
            running = self._running_execution(index_id, str(attributes["_data_source_id"]))
            if running is None or attributes.get("_data_source_sync_job_execution_id") != running:
                raise ServiceError("InvalidRequest", "the data source has no running sync job with that execution id")
        if "S3Path" in d:
            if not role:
                raise ServiceError("InvalidRequest", "a document by S3Path needs the request's RoleArn")
            data = self._s3().get_object(Bucket=d["S3Path"]["Bucket"], Key=d["S3Path"]["Key"])["Body"].read()
        else:
            data = d.get("Blob", b"")
        text = data.decode("utf-8", "replace")
        title = d.get("Title", "")
        acl = json.dumps(d.get("AccessControlList", []))
        self._db.execute("DELETE FROM kendra_fts WHERE index_id = ? AND id = ?", (index_id, d["Id"]))
        self._db.execute("INSERT INTO kendra_fts VALUES (?, ?, ?, ?)", (text, title, index_id, d["Id"]))
        self._db.execute(
            "INSERT OR REPLACE INTO kendra_docs VALUES (?, ?, ?, ?, ?, ?)",
            (index_id, d["Id"], title, text, json.dumps(attributes), acl),
        )


def _visible(acl: list[dict[str, str]], user: dict[str, Any]) -> bool:
    """Kendra's access check with a UserContext: a document without an access list is open; one with
    a list needs an ALLOW for the user or one of the groups, and no DENY for any of them."""
    if not acl:
        return True
    who = {("USER", str(user.get("UserId", "")).lower())} | {("GROUP", g) for g in user.get("Groups") or []}
    entries = {(e["Access"], e["Type"], e["Name"].lower() if e["Type"] == "USER" else e["Name"]) for e in acl}
    allowed = any(("ALLOW", *w) in entries for w in who)
    return allowed and not any(("DENY", *w) in entries for w in who)
