"""What moto's Bedrock backend lacks (moto serves the model customization jobs): provisioned
throughput and on-demand custom model deployments (a repeated client request token gets the same one
back), and the model catalogue
that `sluice ask`, `sluice verify` and the fine-tune workflow's ValidateInput consult (foundation
models with the customizations they take, their availability, inference profiles)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sluice_local.emulators.common import Database, Operation, ServiceError, broken, now

PROVISIONING_CHECKS = 1  # a provisioned throughput is Creating for this many checks, then InService
DEPLOYING_CHECKS = 1  # a custom model deployment is Creating for this many checks, then Active

SCHEMA = """
CREATE TABLE IF NOT EXISTS provisioned (arn TEXT PRIMARY KEY, name TEXT, model TEXT, units INTEGER,
    token TEXT, checks INTEGER, created_at TEXT);
CREATE TABLE IF NOT EXISTS deployments (arn TEXT PRIMARY KEY, name TEXT, model TEXT, description TEXT,
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


class CustomModelDeployments:
    """On-demand inference for a custom model: CreateCustomModelDeployment, GetCustomModelDeployment."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock", "CreateCustomModelDeployment"): self.create,
            ("bedrock", "GetCustomModelDeployment"): self.get,
        }

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("clientRequestToken")
        if token:
            row = self._db.execute("SELECT arn FROM deployments WHERE token = ?", (token,)).fetchone()
            if row:  # the same request again: the same deployment
                return {"customModelDeploymentArn": row[0]}
        name = params["modelDeploymentName"]
        if self._db.execute("SELECT 1 FROM deployments WHERE name = ?", (name,)).fetchone():
            raise ServiceError("ValidationException", f"a custom model deployment named {name} already exists", 400)
        arn = f"arn:aws:bedrock:{REGION}:123456789012:custom-model-deployment/{uuid.uuid4().hex[:12]}"
        self._db.execute(
            "INSERT INTO deployments VALUES (?, ?, ?, ?, ?, 0, ?)",
            (arn, name, params["modelArn"], params.get("description"), token, now().isoformat()),
        )
        return {"customModelDeploymentArn": arn}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["customModelDeploymentIdentifier"]
        row = self._db.execute(
            "SELECT arn, name, model, description, checks, created_at FROM deployments WHERE arn = ? OR name = ?",
            (ident, ident),
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no custom model deployment {ident}", 404)
        arn, name, model, description, checks, created = row
        self._db.execute("UPDATE deployments SET checks = checks + 1 WHERE arn = ?", (arn,))
        answer = {
            "customModelDeploymentArn": arn,
            "modelDeploymentName": name,
            "modelArn": model,
            "createdAt": datetime.fromisoformat(created),
            "status": "Active" if checks >= DEPLOYING_CHECKS else "Creating",
            "lastUpdatedAt": now(),
        }
        return answer | ({"description": description} if description else {})


REGION = "us-east-1"
_FM = f"arn:aws:bedrock:{REGION}::foundation-model/"
# The local Bedrock's catalogue: a small copy of the real one's shapes. Titan V2 embeds on demand; Nova
# 2 Lite (the default generation model) answers only through inference profiles, as in AWS; a LEGACY
# model for the warnings.
# Customization: AWS's fine-tuning page names a model's customizable version by an id with a context
# suffix (amazon.nova-micro-v1:0:128k), served by provisioned throughput; those carry
# customizationsSupported here, the on-demand ids none. Nova fine-tunes and distils on Bedrock, no
# continued pre-training ("Customizing Amazon Nova models", Nova user guide); Titan Text G1 - Express
# took both, and is here LEGACY (only AWS's older customization page lists it) so the workflow's
# warning shows. The local stack is one Region that sees every model the events/ examples use: on AWS,
# Claude 3 Haiku and Llama are customized in us-west-2 only, the Nova models in us-east-1 only.
_LEGACY = {"status": "LEGACY"}
_TEXT_MODEL = {"inputModalities": ["TEXT"], "outputModalities": ["TEXT"], "status": "ACTIVE"}
_CUSTOMIZABLE = {"inferenceTypesSupported": ["PROVISIONED"]}
MODELS: dict[str, dict[str, Any]] = {
    "amazon.titan-embed-text-v2:0": {
        "modelName": "Titan Text Embeddings V2",
        "providerName": "Amazon",
        "inputModalities": ["TEXT"],
        "outputModalities": ["EMBEDDING"],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "customizationsSupported": [],
        "status": "ACTIVE",
    },
    "amazon.nova-2-lite-v1:0": {
        "modelName": "Nova 2 Lite",
        "providerName": "Amazon",
        "inputModalities": ["TEXT", "IMAGE", "VIDEO"],
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["INFERENCE_PROFILE"],
        "customizationsSupported": [],
        "status": "ACTIVE",
    },
    "amazon.nova-lite-v1:0": {
        "modelName": "Nova Lite",
        "providerName": "Amazon",
        "inputModalities": ["TEXT", "IMAGE", "VIDEO"],
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
        "customizationsSupported": [],
        "status": "ACTIVE",
    },
    "anthropic.claude-3-haiku-20240307-v1:0": {
        "modelName": "Claude 3 Haiku",
        "providerName": "Anthropic",
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "customizationsSupported": [],
        "status": "LEGACY",
    },
    # The customizable versions the events/ examples name.
    "amazon.nova-micro-v1:0:128k": {
        "modelName": "Nova Micro",
        "providerName": "Amazon",
        **_TEXT_MODEL,
        **_CUSTOMIZABLE,
        "customizationsSupported": ["FINE_TUNING", "DISTILLATION"],
    },
    "amazon.nova-lite-v1:0:300k": {
        "modelName": "Nova Lite",
        "providerName": "Amazon",
        **_TEXT_MODEL,
        "inputModalities": ["TEXT", "IMAGE", "VIDEO"],
        **_CUSTOMIZABLE,
        "customizationsSupported": ["FINE_TUNING", "DISTILLATION"],
    },
    "anthropic.claude-3-haiku-20240307-v1:0:200k": {
        "modelName": "Claude 3 Haiku",
        "providerName": "Anthropic",
        **_TEXT_MODEL,
        **_CUSTOMIZABLE,
        "customizationsSupported": ["FINE_TUNING"],
        **_LEGACY,  # one model, one lifecycle: as its on-demand id above
    },
    "meta.llama3-1-8b-instruct-v1:0:128k": {
        "modelName": "Llama 3.1 8B Instruct",
        "providerName": "Meta",
        **_TEXT_MODEL,
        **_CUSTOMIZABLE,
        "customizationsSupported": ["FINE_TUNING"],
    },
    "amazon.titan-text-express-v1": {
        "modelName": "Titan Text G1 - Express",
        "providerName": "Amazon",
        **_TEXT_MODEL,
        "inferenceTypesSupported": ["ON_DEMAND"],
        "customizationsSupported": [],
        **_LEGACY,
    },
    "amazon.titan-text-express-v1:0:8k": {
        "modelName": "Titan Text G1 - Express",
        "providerName": "Amazon",
        **_TEXT_MODEL,
        **_CUSTOMIZABLE,
        "customizationsSupported": ["FINE_TUNING", "CONTINUED_PRE_TRAINING"],
        **_LEGACY,
    },
}
PROFILES = {
    "us.amazon.nova-2-lite-v1:0": ("amazon.nova-2-lite-v1:0", ("us-east-1", "us-east-2", "us-west-2")),
    "global.amazon.nova-2-lite-v1:0": ("amazon.nova-2-lite-v1:0", ("us-east-1", "eu-west-1", "ap-northeast-1")),
    "us.amazon.nova-lite-v1:0": ("amazon.nova-lite-v1:0", ("us-east-1", "us-east-2", "us-west-2")),
}


def model_id_of(identifier: str) -> str:
    """A model or profile identifier (id or ARN) -> the foundation model's id, or '' when unknown."""
    name = identifier.rsplit("/", 1)[-1]
    if name in MODELS:
        return name
    return PROFILES[name][0] if name in PROFILES else ""


class ModelCatalogue:
    """GetFoundationModel, its availability and the inference profiles, from MODELS and PROFILES."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock", "GetFoundationModel"): self.get_model,
            ("bedrock", "GetFoundationModelAvailability"): self.availability,
            ("bedrock", "GetInferenceProfile"): self.get_profile,
            ("bedrock", "ListInferenceProfiles"): self.list_profiles,
        }

    def get_model(self, params: dict[str, Any]) -> dict[str, Any]:
        model_id = params["modelIdentifier"].rsplit("/", 1)[-1]
        if model_id not in MODELS:
            raise ServiceError("ValidationException", f"The provided model identifier is invalid: {model_id}", 400)
        model = MODELS[model_id]
        lifecycle: dict[str, Any] = {"status": model["status"]}
        if model["status"] == "LEGACY":
            lifecycle["endOfLifeTime"] = datetime(2027, 1, 31, tzinfo=UTC)
        details = {k: v for k, v in model.items() if k != "status"}
        details |= {"modelArn": _FM + model_id, "modelId": model_id, "modelLifecycle": lifecycle}
        return {"modelDetails": details | {"responseStreamingSupported": True}}

    def availability(self, params: dict[str, Any]) -> dict[str, Any]:
        model_id = params["modelId"]
        if model_id not in MODELS:
            raise ServiceError("ValidationException", f"The provided model identifier is invalid: {model_id}", 400)
        granted = not broken(self._db, "model_access")
        return {
            "modelId": model_id,
            "agreementAvailability": {"status": "AVAILABLE"},
            "authorizationStatus": "AUTHORIZED" if granted else "NOT_AUTHORIZED",
            "entitlementAvailability": "AVAILABLE",
            "regionAvailability": "AVAILABLE",
        }

    def get_profile(self, params: dict[str, Any]) -> dict[str, Any]:
        profile_id = params["inferenceProfileIdentifier"].rsplit("/", 1)[-1]
        if profile_id not in PROFILES:
            raise ServiceError("ResourceNotFoundException", f"no inference profile {profile_id}", 404)
        return _profile(profile_id)

    def list_profiles(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("typeEquals", "SYSTEM_DEFINED") != "SYSTEM_DEFINED":
            return {"inferenceProfileSummaries": []}
        return {"inferenceProfileSummaries": [_profile(p) for p in PROFILES]}


def _profile(profile_id: str) -> dict[str, Any]:
    model_id, regions = PROFILES[profile_id]
    return {
        "inferenceProfileName": f"{profile_id.split('.', 1)[0].upper()} {MODELS[model_id]['modelName']}",
        "inferenceProfileArn": f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/{profile_id}",
        "inferenceProfileId": profile_id,
        "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{model_id}"} for r in regions],
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }
