"""Bedrock's provisioned throughput, which moto's Bedrock backend lacks (moto serves the model
customization jobs). A repeated client request token gets the same throughput back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sluice_local.emulators.common import Database, Operation, ServiceError, now

PROVISIONING_CHECKS = 1  # a provisioned throughput is Creating for this many checks, then InService

SCHEMA = """
CREATE TABLE IF NOT EXISTS provisioned (arn TEXT PRIMARY KEY, name TEXT, model TEXT, units INTEGER,
    token TEXT, checks INTEGER, created_at TEXT);
"""


class ProvisionedThroughput:
    def __init__(self, db: Database) -> None:
        self._db = db

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock", "CreateProvisionedModelThroughput"): self.create,
            ("bedrock", "GetProvisionedModelThroughput"): self.get,
        }

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("clientRequestToken")
        if token:
            row = self._db.execute("SELECT arn FROM provisioned WHERE token = ?", (token,)).fetchone()
            if row:  # the same request again: the same throughput
                return {"provisionedModelArn": row[0]}
        name = params["provisionedModelName"]
        if self._db.execute("SELECT 1 FROM provisioned WHERE name = ?", (name,)).fetchone():
            raise ServiceError("ResourceInUseException", f"{name} already exists", 400)
        arn = f"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/{uuid.uuid4().hex[:12]}"
        self._db.execute(
            "INSERT INTO provisioned VALUES (?, ?, ?, ?, ?, 0, ?)",
            (arn, name, params["modelId"], params["modelUnits"], token, now().isoformat()),
        )
        return {"provisionedModelArn": arn}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["provisionedModelId"]
        row = self._db.execute(
            "SELECT arn, name, model, units, checks, created_at FROM provisioned WHERE arn = ? OR name = ?",
            (ident, ident),
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no provisioned model {ident}", 404)
        arn, name, model, units, checks, created = row
        self._db.execute("UPDATE provisioned SET checks = checks + 1 WHERE arn = ?", (arn,))
        return {
            "modelUnits": units,
            "desiredModelUnits": units,
            "provisionedModelName": name,
            "provisionedModelArn": arn,
            "modelArn": model,
            "desiredModelArn": model,
            "foundationModelArn": "arn:aws:bedrock:us-east-1::foundation-model/local",
            "status": "InService" if checks >= PROVISIONING_CHECKS else "Creating",
            "creationTime": datetime.fromisoformat(created),
            "lastModifiedTime": now(),
        }
