"""What moto's Bedrock backend lacks (moto serves the model customization jobs): provisioned
throughput and on-demand custom model deployments (a repeated client request token gets the same one
back; both can be deleted), the model catalogue that `sluice ask`, `sluice verify` and the fine-tune
workflow's ValidateInput consult (foundation models with the customizations they take, their
availability, inference profiles), the account's quota of customization jobs at once (Service
Quotas), Converse, for the fine-tune workflow's evaluation, the evaluation jobs in which a judge
model scores answers brought to it, and batch inference jobs (refused for a custom Nova model, which
AWS's batch inference table lists as not available; the others answer as Converse does).

No model runs locally. Converse answers as a stand-in that makes an evaluation's comparison mean
something: a custom model (called through its deployment or provisioned throughput) answers with the
answer of the training record whose question is closest to the one asked, which is what fine-tuning
on question-and-answer pairs aims at; a base model restates the question, as a model that never saw
the answers might. The judge of an evaluation job scores each answer against its reference (ROUGE-L
for correctness, token F1 for any other metric), on AWS's 0 to 1 scale, and writes its result lines
where AWS's jobs do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sluice.finetune.dataset import Example, parse_jsonl
from sluice.finetune.families import FINE_TUNING
from sluice.finetune.scoring import rouge_l, token_f1
from sluice.pipeline.files import split_s3_uri
from sluice_local.emulators.common import Database, Operation, ServiceError, broken, now

JOB_QUOTA = 4  # the local account's "(Model customization) Scheduled customization jobs"

PROVISIONING_CHECKS = 1  # a provisioned throughput is Creating for this many checks, then InService
DEPLOYING_CHECKS = 1  # a custom model deployment is Creating for this many checks, then Active
JUDGING_CHECKS = 1  # an evaluation job is InProgress for this many checks, then Completed

SCHEMA = """
CREATE TABLE IF NOT EXISTS provisioned (arn TEXT PRIMARY KEY, name TEXT, model TEXT, units INTEGER,
    token TEXT, checks INTEGER, created_at TEXT);
CREATE TABLE IF NOT EXISTS deployments (arn TEXT PRIMARY KEY, name TEXT, model TEXT, description TEXT,
    token TEXT, checks INTEGER, created_at TEXT);
CREATE TABLE IF NOT EXISTS invocation_jobs (arn TEXT PRIMARY KEY, name TEXT UNIQUE, request TEXT, token TEXT,
    checks INTEGER, created_at TEXT);
CREATE TABLE IF NOT EXISTS evaluation_jobs (arn TEXT PRIMARY KEY, name TEXT UNIQUE, request TEXT, token TEXT,
    checks INTEGER, created_at TEXT);
"""


class ProvisionedThroughput:
    def __init__(self, db: Database) -> None:
        self._db = db

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock", "CreateProvisionedModelThroughput"): self.create,
            ("bedrock", "GetProvisionedModelThroughput"): self.get,
            ("bedrock", "DeleteProvisionedModelThroughput"): self.delete,
        }

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["provisionedModelId"]
        if not self._db.execute("DELETE FROM provisioned WHERE arn = ? OR name = ?", (ident, ident)).rowcount:
            raise ServiceError("ResourceNotFoundException", f"no provisioned model {ident}", 404)
        return {}

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
            ("bedrock", "DeleteCustomModelDeployment"): self.delete,
        }

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["customModelDeploymentIdentifier"]
        if not self._db.execute("DELETE FROM deployments WHERE arn = ? OR name = ?", (ident, ident)).rowcount:
            raise ServiceError("ResourceNotFoundException", f"no custom model deployment {ident}", 404)
        return {}

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
    "amazon.nova-micro-v1:0": {  # what the evaluation calls for a customized Nova Micro's base
        "modelName": "Nova Micro",
        "providerName": "Amazon",
        "inputModalities": ["TEXT"],
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


class Quotas:
    """Service Quotas' GetServiceQuota, for the one quota Sluice reads (moto knows only VPC's)."""

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {("service-quotas", "GetServiceQuota"): self.get}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        if (params["ServiceCode"], params["QuotaCode"]) != ("bedrock", "L-0406044C"):
            raise ServiceError(
                "NoSuchResourceException", "The request failed because the specified quota does not exist."
            )
        quota = {
            "ServiceCode": "bedrock",
            "ServiceName": "Amazon Bedrock",
            "QuotaArn": f"arn:aws:servicequotas:{REGION}:123456789012:bedrock/L-0406044C",
            "QuotaCode": "L-0406044C",
            "QuotaName": "(Model customization) Scheduled customization jobs",
            "Value": float(JOB_QUOTA),
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
        return {"Quota": quota}


class Runtime:
    """Converse (bedrock-runtime): see the module's note on what answers."""

    def __init__(self, db: Database, client: Callable[[str], Any]) -> None:
        self._db = db
        self._client = client  # the local stack's clients: moto's Bedrock (custom models) and S3
        self._pairs: dict[str, tuple[tuple[str, str], ...]] = {}  # by training file

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {("bedrock-runtime", "Converse"): self.converse}

    def converse(self, params: dict[str, Any]) -> dict[str, Any]:
        question = _last_user_text(params["messages"])
        model = params["modelId"]
        custom = model if ":custom-model/" in model else self._custom_model(model)
        if custom is None and not model_id_of(model):
            raise ServiceError("ValidationException", f"The provided model identifier is invalid: {model}", 400)
        answer = self.answer(custom, question)
        tokens_in, tokens_out = len(question.split()), len(answer.split())
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": tokens_in + tokens_out},
            "metrics": {"latencyMs": 1},
        }

    def answer(self, custom_model: str | None, question: str) -> str:
        """A custom model's answer: its closest training question's; a base model restates the question."""
        if custom_model is None:
            return f"I cannot say for sure. You asked: {question}"
        pairs = self._training_pairs(custom_model)
        return max(pairs, key=lambda pair: token_f1(pair[0], question))[1] if pairs else question

    def _custom_model(self, identifier: str) -> str | None:
        """The custom model behind a deployment or provisioned-throughput ARN (None: neither); a
        deployment that is not Active yet, or a throughput not in service, refuses as AWS does."""
        for table in ("deployments", "provisioned"):
            row = self._db.execute(f"SELECT model, checks FROM {table} WHERE arn = ?", (identifier,)).fetchone()
            if row is not None:
                if row[1] < (DEPLOYING_CHECKS if table == "deployments" else PROVISIONING_CHECKS):
                    raise ServiceError("ValidationException", f"{identifier} is not ready to take calls yet", 400)
                return str(row[0])
        return None

    def _training_pairs(self, model_arn: str) -> tuple[tuple[str, str], ...]:
        """The (question, answer) pairs of the model's training file: its conversations' last exchange."""
        uri = self._client("bedrock").get_custom_model(modelIdentifier=model_arn)["trainingDataConfig"]["s3Uri"]
        if uri not in self._pairs:
            parts = split_s3_uri(uri)
            data = self._client("s3").get_object(Bucket=parts[0], Key=parts[1])["Body"].read() if parts else b""
            records, _ = parse_jsonl(data, customization_type=FINE_TUNING)
            self._pairs[uri] = tuple(
                (r.turns[-2][1], r.turns[-1][1]) for r in records if isinstance(r, Example) and len(r.turns) >= 2
            )
        return self._pairs[uri]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    user = [m for m in messages if m.get("role") == "user"] or [{"content": []}]
    return " ".join(str(block.get("text", "")) for block in user[-1]["content"] if isinstance(block, dict))


class EvaluationJobs:
    """CreateEvaluationJob and GetEvaluationJob, for a judge over answers you bring ("bring your own
    responses"): a job completes after JUDGING_CHECKS checks, its result lines written when it does."""

    def __init__(self, db: Database, client: Callable[[str], Any]) -> None:
        self._db = db
        self._client = client

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {("bedrock", "CreateEvaluationJob"): self.create, ("bedrock", "GetEvaluationJob"): self.get}

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("clientRequestToken")
        if token:
            row = self._db.execute("SELECT arn FROM evaluation_jobs WHERE token = ?", (token,)).fetchone()
            if row:
                return {"jobArn": row[0]}
        if self._db.execute("SELECT 1 FROM evaluation_jobs WHERE name = ?", (params["jobName"],)).fetchone():
            raise ServiceError("ConflictException", f"an evaluation job named {params['jobName']} exists", 400)
        automated = params["evaluationConfig"].get("automated") or {}
        sources = [m.get("precomputedInferenceSource") for m in params["inferenceConfig"].get("models", [])]
        if not automated.get("evaluatorModelConfig") or len(sources) != 1 or sources[0] is None:
            raise ServiceError(
                "ValidationException", "the local Bedrock judges one model's own responses with an evaluator model", 400
            )
        arn = f"arn:aws:bedrock:{REGION}:123456789012:evaluation-job/{uuid.uuid4().hex[:12]}"
        request = json.dumps(params, default=str)
        self._db.execute(
            "INSERT INTO evaluation_jobs VALUES (?, ?, ?, ?, 0, ?)",
            (arn, params["jobName"], request, token, now().isoformat()),
        )
        return {"jobArn": arn}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["jobIdentifier"]
        row = self._db.execute(
            "SELECT arn, name, request, checks, created_at FROM evaluation_jobs WHERE arn = ?", (ident,)
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no evaluation job {ident}", 404)
        arn, name, request, checks, created = row
        self._db.execute("UPDATE evaluation_jobs SET checks = checks + 1 WHERE arn = ?", (arn,))
        asked = json.loads(request)
        status = "Completed" if checks >= JUDGING_CHECKS else "InProgress"
        if status == "Completed" and checks == JUDGING_CHECKS:
            self._judge(arn, asked)
        return {
            "jobName": name,
            "status": status,
            "jobArn": arn,
            "roleArn": asked["roleArn"],
            "jobType": "Automated",
            "applicationType": asked.get("applicationType", "ModelEvaluation"),
            "evaluationConfig": asked["evaluationConfig"],
            "inferenceConfig": asked["inferenceConfig"],
            "outputDataConfig": asked["outputDataConfig"],
            "creationTime": datetime.fromisoformat(created),
            "lastModifiedTime": now(),
        }

    def _judge(self, arn: str, asked: dict[str, Any]) -> None:
        """The result lines, at AWS's place: <output>/<job name>/<job id>/models/<source>/taskTypes/
        <task type>/datasets/<dataset>/<id>_output.jsonl."""
        s3 = self._client("s3")
        source = asked["inferenceConfig"]["models"][0]["precomputedInferenceSource"]["inferenceSourceIdentifier"]
        output = split_s3_uri(asked["outputDataConfig"]["s3Uri"].rstrip("/") + "/x")
        for config in asked["evaluationConfig"]["automated"]["datasetMetricConfigs"]:
            dataset = split_s3_uri(config["dataset"]["datasetLocation"]["s3Uri"])
            if dataset is None or output is None:
                continue
            lines = []
            for line in s3.get_object(Bucket=dataset[0], Key=dataset[1])["Body"].read().splitlines():
                record = json.loads(line)
                answer = record["modelResponses"][0]["response"]
                reference = record.get("referenceResponse", "")
                scores = [
                    {
                        "metricName": m,
                        "result": round((rouge_l if m.endswith("Correctness") else token_f1)(answer, reference), 4),
                    }
                    for m in config["metricNames"]
                ]
                lines.append({"automatedEvaluationResult": {"scores": scores}, "inputRecord": record})
            folder = output[1].removesuffix("x")
            key = (
                f"{folder}{asked['jobName']}/{arn.rsplit('/', 1)[-1]}/models/{source}/taskTypes/{config['taskType']}/"
                f"datasets/{config['dataset']['name']}/{uuid.uuid4().hex}_output.jsonl"
            )
            body = "".join(json.dumps(line) + "\n" for line in lines).encode()
            s3.put_object(Bucket=output[0], Key=key, Body=body)


class InvocationJobs:
    """CreateModelInvocationJob and GetModelInvocationJob: a batch job over Converse records completes
    after one check, its output written where AWS writes it (``<output>/<job id>/<input>.out`` and
    ``manifest.json.out``)."""

    def __init__(self, db: Database, client: Callable[[str], Any], runtime: Runtime) -> None:
        self._db = db
        self._client = client
        self._runtime = runtime

    def operations(self) -> dict[tuple[str, str], Operation]:
        return {
            ("bedrock", "CreateModelInvocationJob"): self.create,
            ("bedrock", "GetModelInvocationJob"): self.get,
        }

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("clientRequestToken")
        if token:
            row = self._db.execute("SELECT arn FROM invocation_jobs WHERE token = ?", (token,)).fetchone()
            if row:
                return {"jobArn": row[0]}
        model = params["modelId"]
        if ":custom-model/" in model:
            base = self._client("bedrock").get_custom_model(modelIdentifier=model)["baseModelArn"]
            if "amazon.nova" in base:
                raise ServiceError(
                    "ValidationException", f"Batch inference is not supported for the custom model {model}", 400
                )
        arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{uuid.uuid4().hex[:12]}"
        self._db.execute(
            "INSERT INTO invocation_jobs VALUES (?, ?, ?, ?, 0, ?)",
            (arn, params["jobName"], json.dumps(params, default=str), token, now().isoformat()),
        )
        return {"jobArn": arn}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params["jobIdentifier"]
        row = self._db.execute(
            "SELECT arn, name, request, checks, created_at FROM invocation_jobs WHERE arn = ? OR name = ?",
            (ident, ident),
        ).fetchone()
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"no model invocation job {ident}", 404)
        arn, name, request, checks, created = row
        self._db.execute("UPDATE invocation_jobs SET checks = checks + 1 WHERE arn = ?", (arn,))
        asked = json.loads(request)
        answer: dict[str, Any] = {
            "jobArn": arn,
            "jobName": name,
            "modelId": asked["modelId"],
            "roleArn": asked["roleArn"],
            "status": "InProgress",
            "submitTime": datetime.fromisoformat(created),
            "inputDataConfig": asked["inputDataConfig"],
            "outputDataConfig": asked["outputDataConfig"],
        }
        if checks >= 1:  # run once, when first seen done; later checks read what it did
            done = asked.pop("sluice_done", None) or self._run(arn, asked)
            stored = json.dumps({**asked, "sluice_done": done}, default=str)
            self._db.execute("UPDATE invocation_jobs SET request = ? WHERE arn = ?", (stored, arn))
            answer |= {"status": "Completed", **done, "endTime": now()}
        return answer

    def _run(self, arn: str, asked: dict[str, Any]) -> dict[str, Any]:
        s3 = self._client("s3")
        source = split_s3_uri(asked["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        target = split_s3_uri(asked["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].rstrip("/") + "/x")
        if source is None or target is None:
            return {"message": "the input or output URI is not an S3 object URI"}
        lines = s3.get_object(Bucket=source[0], Key=source[1])["Body"].read().splitlines()
        model = asked["modelId"]
        custom = model if ":custom-model/" in model else None
        out = []
        for line in lines:
            record = json.loads(line)
            question = _last_user_text(record["modelInput"].get("messages", []))
            text = self._runtime.answer(custom, question)
            message = {"role": "assistant", "content": [{"text": text}]}
            out.append({**record, "modelOutput": {"output": {"message": message}, "stopReason": "end_turn"}})
        folder = f"{target[1].removesuffix('x')}{arn.rsplit('/', 1)[-1]}/"
        body = "".join(json.dumps(row) + "\n" for row in out).encode()
        s3.put_object(Bucket=target[0], Key=f"{folder}{source[1].rsplit('/', 1)[-1]}.out", Body=body)
        counts = {"totalRecordCount": len(out), "processedRecordCount": len(out), "successRecordCount": len(out)}
        manifest = json.dumps(counts | {"errorRecordCount": 0}).encode()
        s3.put_object(Bucket=target[0], Key=f"{folder}manifest.json.out", Body=manifest)
        return counts | {"errorRecordCount": 0}
