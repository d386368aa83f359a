"""What the emulated services share: their SQLite database, the call log, the check of a request
and an answer against the service's model, and the helpers for full-text search and S3 URIs."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.validate import ParamValidator

DB_FILE = "index.db"
CALLS_FILE = "calls.jsonl"

Operation = Callable[[dict[str, Any]], dict[str, Any]]  # the request's parameters -> the answer's body
S3Client = Callable[[], Any]  # the S3 client the services read documents with, made on first use


class ServiceError(Exception):
    """What the service answers instead of a result: an error code and an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class Database:
    """The emulated services' SQLite database, one connection per thread. Several processes share
    the file (SQLite locks it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, parameters)


# What Sluice assumes of AWS, each of which a test can break in the emulators to show that `sluice
# verify` catches it (Emulator.break_assumption). name -> what breaking it does.
ASSUMPTIONS = {
    "model_access": "Bedrock reports model access not granted for every model",
    "knowledge_base": "the stack's knowledge base is gone",
    "indexing": "ingested chunks never become INDEXED",
    "metadata": "Retrieve returns chunks without their sidecar attributes",
    "citations": "RetrieveAndGenerate answers without citations",
    "filters": "Retrieve and RetrieveAndGenerate ignore metadata filters",
    "client_token": "a repeated client token is refused",
    "deletion": "deleted chunks stay in the index",
}
ASSUMPTIONS_SCHEMA = "CREATE TABLE IF NOT EXISTS broken (name TEXT PRIMARY KEY);"


def broken(db: Database, name: str) -> bool:
    """Whether a test broke this assumption (see ASSUMPTIONS)."""
    return db.execute("SELECT 1 FROM broken WHERE name = ?", (name,)).fetchone() is not None


class CallLog:
    """Every emulated call, appended to a JSON Lines file that processes share and the demo reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, service: str, operation: str, params: dict[str, Any], status: int, error: str | None) -> None:
        items = next((len(v) for v in params.values() if isinstance(v, list)), 1)
        entry: dict[str, Any] = {"at": now().isoformat(timespec="milliseconds"), "service": service}
        entry |= {"operation": operation, "items": items, "status": status, **({"error": error} if error else {})}
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


def read_calls(directory: Path) -> list[dict[str, Any]]:
    """The call log of the emulators over ``directory``, oldest first."""
    path = directory / CALLS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_request_limits(shape: Any, value: Any, path: str) -> None:
    """The model's max constraints, which botocore's client-side validation leaves to the service."""
    limit = shape.metadata.get("max")
    if shape.type_name == "list":
        if limit is not None and len(value) > limit:
            raise ServiceError("ValidationException", f"{path}: {len(value)} items; the maximum is {limit}")
        for n, item in enumerate(value):
            check_request_limits(shape.member, item, f"{path}[{n}]")
    elif shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                check_request_limits(member, value[name], f"{path}.{name}")
    elif shape.type_name == "string" and limit is not None and len(value) > limit:
        raise ServiceError("ValidationException", f"{path}: {len(value)} characters; the maximum is {limit}")


def check_answer(service: str, model: Any, body: dict[str, Any]) -> None:
    """An emulator's answer must fit the operation's output shape, as AWS's does."""
    report = ParamValidator().validate(body, model.output_shape) if model.output_shape else None
    if report is not None and report.has_errors():
        raise AssertionError(f"the local {service} {model.name} answered off-model: {report.generate_report()}")


def now() -> datetime:
    return datetime.now(UTC)


def fts_query(text: str) -> str:
    """Words of a free-text query, OR-ed, each quoted: FTS5 syntax characters in it stay literal."""
    words = re.findall(r"\w+", text.lower())
    return " OR ".join(f'"{w}"' for w in words) or '""'


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ServiceError("ValidationException", f"not an S3 URI: {uri}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def plain_value(value: Any) -> Any:
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
