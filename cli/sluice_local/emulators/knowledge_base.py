"""A Bedrock knowledge base: its creation over an S3 Vectors index and its S3 data sources (as the
stack's template creates them), Bedrock Agent's direct ingestion (documents in, out, their status)
and ingestion jobs, and Bedrock Agent Runtime's Retrieve and RetrieveAndGenerate.

What it keeps of the service's behaviour: the index's dimension must equal the embedding
dimensions; S3 documents must lie inside the data source's bucket and prefix; metadata sidecars over
10 KB fail, and so does custom metadata a vector cannot keep (1 KB, 35 keys), and filterable metadata
over 2 KB (the chunk's text counts unless the index marks AMAZON_BEDROCK_TEXT non-filterable); a
repeated client token is ignored; one ingestion job at a time per data source (ConflictException);
deleting what was never there is success; metadata filters (equals ... listContains, andAll, orAll)
apply. Retrieval is BM25 over the text, not vectors: good enough to see that edits, deletions and
filters arrive. RetrieveAndGenerate answers extractively, quoting the top passages, and says so; its
model may also be a custom model deployed through the local Bedrock, once that is ready.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sluice_local.emulators.bedrock import DEPLOYING_CHECKS, MODELS, PROFILES, PROVISIONING_CHECKS, model_id_of
from sluice_local.emulators.common import (
    Database,
    Operation,
    S3Client,
    ServiceError,
    broken,
    fts_query,
    now,
    plain_value,
    split_s3_uri,
)
from sluice_local.emulators.filters import matches
from sluice_local.emulators.vectors import index_row

MAX_SIDECAR_BYTES = 10 * 1024
JOB_SECONDS = 10  # a job nobody polls has ended this long after its start
MAX_FILTERABLE_BYTES = 2048  # S3 Vectors: filterable metadata per vector
REGION, ACCOUNT = "us-east-1", "123456789012"
# A generation model deployed through the local Bedrock (bedrock.CustomModelDeployments, ProvisionedThroughput).
_DEPLOYED = re.compile(r"^arn:aws:bedrock:[^:]*:\d*:(custom-model-deployment|provisioned-model)/")
_DEPLOYED_TABLES = {
    "custom-model-deployment": ("deployments", DEPLOYING_CHECKS),
    "provisioned-model": ("provisioned", PROVISIONING_CHECKS),
}
_FOUNDATION = f"arn:aws:bedrock:{REGION}::foundation-model/"
EMULATED = "Emulated answer (sentences quoted from the top passages): "  # how a local answer begins
NO_ANSWER = "Sorry, I am unable to assist you with this request."  # Bedrock's answer when nothing was retrieved
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
CREATE TABLE IF NOT EXISTS knowledge_bases (kb TEXT PRIMARY KEY, name TEXT, request TEXT, index_arn TEXT,
    created_at TEXT);
CREATE TABLE IF NOT EXISTS data_sources (kb TEXT, ds TEXT, bucket TEXT, prefix TEXT, request TEXT,
    PRIMARY KEY (kb, ds));
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kb_chunks (
    kb TEXT, ds TEXT, uri TEXT, status TEXT, reason TEXT, text TEXT, metadata TEXT, updated_at TEXT,
    PRIMARY KEY (kb, ds, uri));
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(text, kb UNINDEXED, uri UNINDEXED);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kb TEXT, ds TEXT, status TEXT, statistics TEXT, started_at TEXT, polls INTEGER);
CREATE TABLE IF NOT EXISTS job_tokens (token TEXT PRIMARY KEY, job_id TEXT);
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
            ("bedrock-agent-runtime", "RetrieveAndGenerate"): self.retrieve_and_generate,
            ("bedrock-agent", "CreateKnowledgeBase"): self.create_knowledge_base,
            ("bedrock-agent", "GetKnowledgeBase"): self.get_knowledge_base,
            ("bedrock-agent", "CreateDataSource"): self.create_data_source_call,
            ("bedrock-agent", "GetDataSource"): self.get_data_source,
        }

    def create_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> None:
        """Set-up of an existing knowledge base's data source, named by parameter (``existing`` mode);
        the knowledge base is adopted with it."""
        self.adopt(kb)
        self._db.execute("INSERT OR REPLACE INTO data_sources VALUES (?, ?, ?, ?, '{}')", (kb, ds, bucket, prefix))

    # -- the knowledge base and its data sources ---------------------------------------------------

    def adopt(self, kb: str) -> None:
        """Set-up of a knowledge base made elsewhere (``existing`` mode): its store is not S3 Vectors."""
        request = {
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/existing-knowledge-base",
            "knowledgeBaseConfiguration": {
                "type": "VECTOR",
                "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": f"{_FOUNDATION}amazon.titan-embed-text-v2:0"},
            },
        }
        self._db.execute(
            "INSERT OR IGNORE INTO knowledge_bases VALUES (?, ?, ?, '', ?)",
            (kb, kb, json.dumps(request), now().isoformat()),
        )

    def create_knowledge_base(self, params: dict[str, Any]) -> dict[str, Any]:
        config = params["knowledgeBaseConfiguration"]
        vector = config.get("vectorKnowledgeBaseConfiguration") or {}
        storage = params.get("storageConfiguration") or {}
        if config["type"] != "VECTOR" or storage.get("type") != "S3_VECTORS":
            raise ServiceError("ValidationException", "the local knowledge base is a VECTOR one on S3_VECTORS")
        model_id = vector["embeddingModelArn"].rsplit("/", 1)[-1]
        if "EMBEDDING" not in MODELS.get(model_id, {}).get("outputModalities", []):
            raise ServiceError("ValidationException", f"{vector['embeddingModelArn']} is not an embedding model")
        dimensions = int(
            ((vector.get("embeddingModelConfiguration") or {}).get("bedrockEmbeddingModelConfiguration") or {}).get(
                "dimensions", 1024
            )
        )
        index_arn = (storage.get("s3VectorsConfiguration") or {}).get("indexArn", "")
        dimension = index_row(self._db, index_arn)[3]
        if dimension != dimensions:
            raise ServiceError(
                "ValidationException",
                f"The embedding dimensions ({dimensions}) differ from the vector index's dimension ({dimension})",
            )
        kb = uuid.uuid4().hex[:10].upper()
        self._db.execute(
            "INSERT INTO knowledge_bases VALUES (?, ?, ?, ?, ?)",
            (kb, params["name"], json.dumps(params), index_arn, now().isoformat()),
        )
        return self.get_knowledge_base({"knowledgeBaseId": kb})

    def get_knowledge_base(self, params: dict[str, Any]) -> dict[str, Any]:
        kb = params["knowledgeBaseId"]
        row = self._knowledge_base(kb)
        request, created = json.loads(row[1]), datetime.fromisoformat(row[2])
        body = {
            "knowledgeBaseId": kb,
            "name": row[0],
            "knowledgeBaseArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:knowledge-base/{kb}",
            "roleArn": request["roleArn"],
            "knowledgeBaseConfiguration": request["knowledgeBaseConfiguration"],
            "status": "ACTIVE",
            "createdAt": created,
            "updatedAt": created,
        }
        if request.get("storageConfiguration"):
            body["storageConfiguration"] = request["storageConfiguration"]
        return {"knowledgeBase": body}

    def create_data_source_call(self, params: dict[str, Any]) -> dict[str, Any]:
        kb = params["knowledgeBaseId"]
        self._knowledge_base(kb)
        s3 = params["dataSourceConfiguration"].get("s3Configuration") or {}
        prefixes = s3.get("inclusionPrefixes") or [""]
        if len(prefixes) > 1:
            raise ServiceError("ValidationException", "an S3 data source takes at most one inclusion prefix")
        ds = uuid.uuid4().hex[:10].upper()
        bucket = s3["bucketArn"].rsplit(":", 1)[-1]
        self._db.execute(
            "INSERT INTO data_sources VALUES (?, ?, ?, ?, ?)", (kb, ds, bucket, prefixes[0], json.dumps(params))
        )
        return self.get_data_source({"knowledgeBaseId": kb, "dataSourceId": ds})

    def get_data_source(self, params: dict[str, Any]) -> dict[str, Any]:
        kb, ds, bucket, prefix = self._data_source(params)
        request = json.loads(
            self._db.execute("SELECT request FROM data_sources WHERE kb = ? AND ds = ?", (kb, ds)).fetchone()[0]
        ) or {
            "name": ds,
            "dataSourceConfiguration": {
                "type": "S3",
                "s3Configuration": {"bucketArn": f"arn:aws:s3:::{bucket}", "inclusionPrefixes": [prefix]},
            },
        }
        source = {k: v for k, v in request.items() if k not in ("clientToken", "knowledgeBaseId")}
        source |= {"knowledgeBaseId": kb, "dataSourceId": ds, "status": "AVAILABLE"}
        source |= {"createdAt": now(), "updatedAt": now()}
        return {"dataSource": source}

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
            if first and not broken(self._db, "deletion"):
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
        token = params.get("clientToken")
        started = self._db.execute("SELECT job_id FROM job_tokens WHERE token = ?", (token,)).fetchone()
        if started:  # a repeated request is ignored: the job it started is the answer
            return {"ingestionJob": self._job(started[0])}
        # A job ends on its own: one nobody asked about for JOB_SECONDS has ended (its sync was made at
        # its start), so a job whose caller lost track of it does not block the data source for good.
        ended = (now() - timedelta(seconds=JOB_SECONDS)).isoformat()
        self._db.execute(
            "UPDATE jobs SET status = 'COMPLETE' WHERE kb = ? AND ds = ? AND status = 'IN_PROGRESS' AND started_at < ?",
            (kb, ds, ended),
        )
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
        if token:
            self._db.execute("INSERT INTO job_tokens VALUES (?, ?)", (token, job_id))
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
        self._knowledge_base(kb)
        return {"retrievalResults": self._passages(kb, params["retrievalQuery"]["text"], params)}

    def retrieve_and_generate(self, params: dict[str, Any]) -> dict[str, Any]:
        """An extractive answer: from each of the top passages, its sentence sharing most words with
        the question, quoted and cited. It begins with EMULATED, so no one takes it for a model's."""
        config = params.get("retrieveAndGenerateConfiguration") or {}
        kb_config = config.get("knowledgeBaseConfiguration") or {}
        if config.get("type") != "KNOWLEDGE_BASE" or not kb_config:
            raise ServiceError("ValidationException", "the local RetrieveAndGenerate answers from a knowledge base")
        self._check_generation_model(kb_config["modelArn"])
        kb = kb_config["knowledgeBaseId"]
        self._knowledge_base(kb)
        question = params["input"]["text"]
        passages = self._passages(kb, question, kb_config)
        session = params.get("sessionId") or str(uuid.uuid4())
        if not passages:
            return {"output": {"text": NO_ANSWER}, "citations": [], "sessionId": session}
        text, citations = EMULATED, []
        words = set(re.findall(r"\w{3,}", question.lower()))
        for passage in passages[:3]:
            sentence = _best_sentence(passage["content"]["text"], words)
            if not sentence:
                continue
            start = len(text)
            text += sentence + " "
            part = {"textResponsePart": {"text": sentence, "span": {"start": start, "end": start + len(sentence) - 1}}}
            reference = {k: v for k, v in passage.items() if k != "score"}  # a reference has no score
            citations.append({"generatedResponsePart": part, "retrievedReferences": [reference]})
        if broken(self._db, "citations"):
            citations = []
        return {"output": {"text": text.rstrip()}, "citations": citations, "sessionId": session}

    def _passages(self, kb: str, query: str, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The top chunks for ``query`` that pass the configuration's filter, best first."""
        search = (config.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {}
        limit = int(search.get("numberOfResults", 5))
        condition = None if broken(self._db, "filters") else search.get("filter")
        rows = self._db.execute(
            "SELECT kb_fts.uri, kb_fts.text, bm25(kb_fts) AS rank, c.metadata FROM kb_fts "
            "JOIN kb_chunks c ON c.kb = kb_fts.kb AND c.uri = kb_fts.uri "
            "WHERE kb_fts MATCH ? AND kb_fts.kb = ? ORDER BY rank",
            (fts_query(query), kb),
        )  # read lazily: the loop stops at the limit
        found = []
        for uri, text, rank, metadata in rows:
            attributes = {k: plain_value(v) for k, v in json.loads(metadata or "{}").items()}
            if condition is not None and not matches(condition, attributes):
                continue
            found.append((uri, text, rank, attributes))
            if len(found) == limit:
                break
        best = max((abs(rank) for _, _, rank, _ in found), default=0.0)
        results = []
        dropped = broken(self._db, "metadata")
        for uri, text, rank, attributes in found:
            results.append(
                {
                    "content": {"type": "TEXT", "text": text},
                    "location": {"type": "S3", "s3Location": {"uri": uri}},
                    "score": round(abs(rank) / best, 4) if best > 1e-9 else 1.0,  # BM25, relative to the best hit
                    "metadata": {"x-amz-bedrock-kb-source-uri": uri, **({} if dropped else attributes)},
                }
            )
        return results

    def _knowledge_base(self, kb: str) -> tuple[Any, ...]:
        """The knowledge base's name, creation request and time; ResourceNotFound when it is not there."""
        row = self._db.execute("SELECT name, request, created_at FROM knowledge_bases WHERE kb = ?", (kb,)).fetchone()
        if row is None or broken(self._db, "knowledge_base"):
            raise ServiceError("ResourceNotFoundException", f"no knowledge base {kb}", 404)
        return tuple(row)

    def _check_generation_model(self, identifier: str) -> None:
        deployed = _DEPLOYED.match(identifier)
        if deployed:
            self._check_deployed_model(identifier, deployed.group(1))
            return
        model_id = model_id_of(identifier)
        if not model_id or "TEXT" not in MODELS[model_id]["outputModalities"]:
            raise ServiceError("ValidationException", f"The provided model identifier is invalid: {identifier}")
        if broken(self._db, "model_access"):
            raise ServiceError("AccessDeniedException", f"You don't have access to the model {model_id}", 403)
        through_profile = identifier.rsplit("/", 1)[-1] in PROFILES
        if not through_profile and "ON_DEMAND" not in MODELS[model_id]["inferenceTypesSupported"]:
            raise ServiceError(
                "ValidationException",
                f"Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry your request "
                "with the ID or ARN of an inference profile that contains this model.",
            )

    def _check_deployed_model(self, identifier: str, kind: str) -> None:
        """A custom model deployment or provisioned throughput the local Bedrock made: it answers once
        its Get would say Active / InService."""
        table, ready_after = _DEPLOYED_TABLES[kind]
        row = self._db.execute(f"SELECT checks FROM {table} WHERE arn = ?", (identifier,)).fetchone()
        if row is None or row[0] < ready_after:
            raise ServiceError("ValidationException", f"The provided model identifier is invalid: {identifier}")

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
        first = self._db.execute("INSERT OR IGNORE INTO tokens VALUES (?)", (token,)).rowcount == 1
        if not first and broken(self._db, "client_token"):
            raise ServiceError("ValidationException", f"client token {token} has already been used", 400)
        return first

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
        filterable = self._filterable_bytes(kb, text, uri, metadata)
        if filterable > MAX_FILTERABLE_BYTES:
            return "FAILED", f"Filterable metadata must have at most {MAX_FILTERABLE_BYTES} bytes ({filterable})"
        if broken(self._db, "indexing"):
            return "IN_PROGRESS", ""
        self._db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        self._db.execute("INSERT INTO kb_fts VALUES (?, ?, ?)", (text, kb, uri))
        self._db.execute(
            "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, 'INDEXED', '', ?, ?, ?)",
            (kb, ds, uri, text, json.dumps(metadata), now().isoformat()),
        )
        return "INDEXED", ""

    def _filterable_bytes(self, kb: str, text: str, uri: str, metadata: dict[str, Any]) -> int:
        """What the vector index may filter on: every key it does not mark non-filterable, Bedrock's
        own AMAZON_BEDROCK_TEXT (the chunk) and AMAZON_BEDROCK_METADATA (its source) among them. 0 for a
        knowledge base this emulator did not create (its store is not S3 Vectors)."""
        row = self._db.execute("SELECT index_arn FROM knowledge_bases WHERE kb = ?", (kb,)).fetchone()
        if row is None or not row[0]:
            return 0
        non_filterable = set(json.loads(index_row(self._db, row[0])[5]))
        sizes = {"AMAZON_BEDROCK_TEXT": len(text.encode()), "AMAZON_BEDROCK_METADATA": len(json.dumps({"source": uri}))}
        sizes |= {name: _metadata_bytes({name: value}) for name, value in metadata.items()}
        return sum(size for name, size in sizes.items() if name not in non_filterable)

    def _unindex_chunk(self, kb: str, ds: str, uri: str) -> None:
        self._db.execute("DELETE FROM kb_fts WHERE kb = ? AND uri = ?", (kb, uri))
        self._db.execute("DELETE FROM kb_chunks WHERE kb = ? AND ds = ? AND uri = ?", (kb, ds, uri))

    def _sync_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> dict[str, int]:
        """What a sync does: index what is in the prefix, drop from the index what is not."""
        present = set()
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            present |= {o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith(".metadata.json")}
        rows = self._db.execute("SELECT uri, status FROM kb_chunks WHERE kb = ? AND ds = ?", (kb, ds)).fetchall()
        indexed = {uri for uri, status in rows if status == "INDEXED"}  # a failed one is tried again
        stats = {"numberOfDocumentsScanned": len(present), "numberOfNewDocumentsIndexed": 0}
        stats |= {"numberOfDocumentsDeleted": 0, "numberOfDocumentsFailed": 0}
        for key in sorted(present):
            uri = f"s3://{bucket}/{key}"
            if uri in indexed:
                continue
            status, reason = self._index_chunk(kb, ds, uri, f"{uri}.metadata.json")
            stats["numberOfNewDocumentsIndexed" if status == "INDEXED" else "numberOfDocumentsFailed"] += 1
            if status != "INDEXED":  # GetKnowledgeBaseDocuments tells which, and why
                self._db.execute(
                    "INSERT OR REPLACE INTO kb_chunks VALUES (?, ?, ?, ?, ?, '', '{}', ?)",
                    (kb, ds, uri, status, reason, now().isoformat()),
                )
        for uri in {uri for uri, _ in rows} - {f"s3://{bucket}/{k}" for k in present}:
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


def _best_sentence(text: str, words: set[str]) -> str:
    """The sentence of ``text`` sharing most words with the question (the first on a tie)."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n{2,}", text) if len(s.strip()) > 20]
    if not sentences:
        return " ".join(text.split())[:300]
    best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w{3,}", s.lower()))))
    return " ".join(best.split())[:400]
