"""Amazon S3 Vectors: vector buckets and indexes, as far as the stack creates and `sluice verify`
reads them. The knowledge base consults an index's dimension (it must equal the embedding model's)
and its non-filterable metadata keys (filterable metadata is limited to 2 KB a vector)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sluice_local.emulators.common import Database, Operation, ServiceError, now

REGION, ACCOUNT = "us-east-1", "123456789012"
SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_buckets (name TEXT PRIMARY KEY, arn TEXT, encryption TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS vector_indexes (arn TEXT PRIMARY KEY, bucket TEXT, name TEXT, data_type TEXT,
    dimension INTEGER, metric TEXT, non_filterable TEXT, created_at TEXT);
"""


class VectorStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("s3vectors", "CreateVectorBucket"): self.create_bucket,
            ("s3vectors", "GetVectorBucket"): self.get_bucket,
            ("s3vectors", "CreateIndex"): self.create_index,
            ("s3vectors", "GetIndex"): self.get_index,
        }

    def create_bucket(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["vectorBucketName"]
        arn = f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{name}"
        encryption = json.dumps(params.get("encryptionConfiguration") or {"sseType": "AES256"})
        if self._db.execute("SELECT 1 FROM vector_buckets WHERE name = ?", (name,)).fetchone():
            raise ServiceError("ConflictException", f"vector bucket {name} already exists", 409)
        self._db.execute("INSERT INTO vector_buckets VALUES (?, ?, ?, ?)", (name, arn, encryption, now().isoformat()))
        return {"vectorBucketArn": arn}

    def get_bucket(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("vectorBucketName") or _name_of(params.get("vectorBucketArn", ""))
        row = self._db.execute(
            "SELECT arn, encryption, created_at FROM vector_buckets WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise ServiceError("NotFoundException", f"no vector bucket {name}", 404)
        bucket = {"vectorBucketName": name, "vectorBucketArn": row[0], "creationTime": datetime.fromisoformat(row[2])}
        return {"vectorBucket": bucket | {"encryptionConfiguration": json.loads(row[1])}}

    def create_index(self, params: dict[str, Any]) -> dict[str, Any]:
        bucket = params.get("vectorBucketName") or _name_of(params.get("vectorBucketArn", ""))
        self.get_bucket({"vectorBucketName": bucket})
        name, dimension = params["indexName"], int(params["dimension"])
        if params["dataType"] != "float32" or params["distanceMetric"] not in ("cosine", "euclidean"):
            raise ServiceError("ValidationException", "dataType is float32; distanceMetric cosine or euclidean")
        if not 1 <= dimension <= 4096:
            raise ServiceError("ValidationException", f"dimension {dimension}: it is 1 to 4096")
        keys = (params.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys") or []
        arn = f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{bucket}/index/{name}"
        self._db.execute(
            "INSERT INTO vector_indexes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (arn, bucket, name, params["dataType"], dimension, params["distanceMetric"], json.dumps(keys), _now()),
        )
        return {"indexArn": arn}

    def get_index(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params.get("indexArn") or (
            f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{params.get('vectorBucketName')}/index/{params.get('indexName')}"
        )
        row = index_row(self._db, arn)
        bucket, name, data_type, dimension, metric, keys, created = row
        index = {"vectorBucketName": bucket, "indexName": name, "indexArn": arn}
        index["creationTime"] = datetime.fromisoformat(created)
        index |= {"dataType": data_type, "dimension": dimension, "distanceMetric": metric}
        return {"index": index | {"metadataConfiguration": {"nonFilterableMetadataKeys": json.loads(keys)}}}


def index_row(db: Database, arn: str) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT bucket, name, data_type, dimension, metric, non_filterable, created_at "
        "FROM vector_indexes WHERE arn = ?",
        (arn,),
    ).fetchone()
    if row is None:
        raise ServiceError("NotFoundException", f"no vector index {arn}", 404)
    return tuple(row)


def _now() -> str:
    return now().isoformat()


def _name_of(bucket_arn: str) -> str:
    return bucket_arn.rsplit("bucket/", 1)[-1]
