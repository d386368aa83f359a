"""Whether a Bedrock model can be called here, asked of Bedrock at run time (the catalogue moves: models
become LEGACY, and many current ones take on-demand calls only through an inference profile).

``check_model`` takes a foundation-model id or ARN, or an inference-profile id or ARN, and answers
with what to call (the identifier itself, or the cross-region inference profile of this region that
serves a model refusing on-demand calls), the problems that stop a call (no access granted, not in
this region, an offer not accepted) and warnings (LEGACY, with its end of life). It also takes the
ARN of a custom model you deployed (a custom model deployment, on demand, or a provisioned
throughput): called as it is, once it is Active / InService.

``customization_support`` answers the fine-tune workflow's question of a base model: which
customizations Bedrock offers for it in the client's Region, and its lifecycle;
``customization_job_quota`` how many jobs a search may run at once; ``converse_text`` one answer,
for the evaluation of a custom model against its base model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from botocore import xform_name
from botocore.exceptions import ClientError

from sluice.adapters.aws import error_code
from sluice.finetune.settings import CustomizationSupport

# An inference profile: its ARN, or a system-defined profile's id, a geography before the model's id.
_PROFILE = re.compile(
    r"^arn:aws[a-z-]*:bedrock:[^:]*:\d*:(application-)?inference-profile/|^(us|us-gov|eu|apac|jp|au|ca|global)\."
)
ANSWER_TOKENS = 1024  # an evaluation answer's limit: references are answers, not essays
# A custom model deployed by you: on demand, or with provisioned throughput (by ARN only: a provisioned
# throughput's name cannot be told from a model id).
_DEPLOYED = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:\d*:(custom-model-deployment|provisioned-model)/")
_GEOGRAPHIES = {"us": ("us-", "ca-"), "eu": ("eu-",), "apac": ("ap-",), "jp": ("ap-northeast-1", "ap-northeast-3")}


class _Deployment(NamedTuple):
    kind: str  # as a reader names it
    operation: str  # the one that describes it
    parameter: str  # its identifier parameter
    name_key: str  # the name in its answer
    ready: str  # the status in which it takes calls
    listing: str  # where to find the right ARN


_DEPLOYMENTS = {
    "custom-model-deployment": _Deployment(
        "custom model deployment",
        "GetCustomModelDeployment",
        "customModelDeploymentIdentifier",
        "modelDeploymentName",
        "Active",
        "aws bedrock list-custom-model-deployments",
    ),
    "provisioned-model": _Deployment(
        "provisioned throughput",
        "GetProvisionedModelThroughput",
        "provisionedModelId",
        "provisionedModelName",
        "InService",
        "aws bedrock list-provisioned-model-throughputs",
    ),
}


@dataclass
class ModelCheck:
    identifier: str  # what was asked about
    invoke_id: str = ""  # what to call: the identifier, or the inference profile that serves it
    name: str = ""
    problems: list[str] = field(default_factory=list)  # each stops a call; each says what to do
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems and bool(self.invoke_id)


def check_model(bedrock: Any, identifier: str, region: str) -> ModelCheck:
    """What Bedrock says of ``identifier`` in ``region`` (``bedrock`` is a Bedrock control-plane client)."""
    deployed = _DEPLOYED.match(identifier)
    if deployed:
        return _check_deployment(bedrock, identifier, _DEPLOYMENTS[deployed.group(1)], region)
    check = ModelCheck(identifier)
    try:
        if _PROFILE.match(identifier):
            profile = bedrock.get_inference_profile(inferenceProfileIdentifier=identifier)
            check.invoke_id = profile["inferenceProfileArn"]
            check.name = profile.get("inferenceProfileName", identifier)
            here = [m["modelArn"] for m in profile.get("models", []) if f":{region}:" in m["modelArn"]]
            model_id = (here or [m["modelArn"] for m in profile.get("models", [])] or [""])[0].rsplit("/", 1)[-1]
            if model_id:
                _lifecycle_and_access(bedrock, model_id, check)
            return check
        details = bedrock.get_foundation_model(modelIdentifier=identifier)["modelDetails"]
    except ClientError as exc:
        check.problems.append(_refusal(identifier, exc, region))
        return check
    check.name = f"{details.get('providerName', '')} {details.get('modelName', identifier)}".strip()
    ways = details.get("inferenceTypesSupported") or []
    if "ON_DEMAND" in ways:
        check.invoke_id = details.get("modelId", identifier)
    elif "INFERENCE_PROFILE" in ways:
        profile_arn = _profile_serving(bedrock, details["modelArn"], region)
        if profile_arn:
            check.invoke_id = profile_arn
            check.warnings.append(f"{identifier} takes no on-demand calls; using the inference profile {profile_arn}")
        else:
            check.problems.append(
                f"{identifier} takes no on-demand calls and no inference profile in {region} serves it: "
                "pass an inference profile (aws bedrock list-inference-profiles) or choose another model"
            )
    else:
        check.problems.append(
            f"{identifier} supports only {', '.join(ways) or 'no inference type'} here: "
            "choose a model with on-demand or inference-profile access"
        )
    _lifecycle(details, check)
    _access(bedrock, details.get("modelId", identifier), check)
    return check


def _check_deployment(bedrock: Any, identifier: str, deployment: _Deployment, region: str) -> ModelCheck:
    """A deployed custom model is called by its ARN (RetrieveAndGenerate's ``modelArn`` pattern admits
    both kinds), but only in its ready status: Bedrock refuses calls while it is being created, and for
    good once it has failed."""
    check = ModelCheck(identifier)
    try:
        found = getattr(bedrock, xform_name(deployment.operation))(**{deployment.parameter: identifier})
    except ClientError as exc:
        code = error_code(exc)
        if code == "AccessDeniedException":
            check.problems.append(f"not allowed to read {identifier} (bedrock:{deployment.operation} for your role)")
        elif code in ("ResourceNotFoundException", "ValidationException"):
            check.problems.append(
                f"{identifier} is not a {deployment.kind} in {region}: check the ARN ({deployment.listing})"
            )
        else:
            check.problems.append(f"{identifier}: {code}: {exc.response.get('Error', {}).get('Message', '')}")
        return check
    check.name = str(found.get(deployment.name_key) or identifier)
    status = found.get("status")
    if status == deployment.ready:
        check.invoke_id = identifier
    elif status == "Failed":
        reason = found.get("failureMessage") or "Bedrock gives no reason"
        check.problems.append(f"{identifier} failed: {reason}; deploy the custom model again")
    else:
        check.problems.append(
            f"{identifier} is {status}, not yet {deployment.ready}: wait until it is "
            f"({deployment.listing} shows its status), then ask again"
        )
    return check


def _lifecycle_and_access(bedrock: Any, model_id: str, check: ModelCheck) -> None:
    try:
        details = bedrock.get_foundation_model(modelIdentifier=model_id)["modelDetails"]
    except ClientError:
        return  # the profile is what is called; its model's details are a courtesy
    _lifecycle(details, check)
    _access(bedrock, model_id, check)


def _lifecycle(details: dict[str, Any], check: ModelCheck) -> None:
    lifecycle = details.get("modelLifecycle") or {}
    if lifecycle.get("status") == "LEGACY":
        end = lifecycle.get("endOfLifeTime")
        when = f" and ends on {end:%Y-%m-%d}" if isinstance(end, datetime) else ""
        check.warnings.append(f"{check.identifier} is LEGACY{when}: move to a current model")


def _access(bedrock: Any, model_id: str, check: ModelCheck) -> None:
    try:
        availability = bedrock.get_foundation_model_availability(modelId=model_id)
    except ClientError as exc:
        if error_code(exc) == "AccessDeniedException":
            check.warnings.append(f"cannot read {model_id}'s availability (bedrock:GetFoundationModelAvailability)")
        return
    if availability.get("regionAvailability") == "NOT_AVAILABLE":
        check.problems.append(f"{model_id} is not available in this region: choose another region or model")
    if availability.get("authorizationStatus") == "NOT_AUTHORIZED":
        check.problems.append(
            f"model access has not been granted for {model_id}: grant it in the Bedrock console (Model access), "
            "or allow bedrock:InvokeModel on it for your role"
        )
    agreement = (availability.get("agreementAvailability") or {}).get("status")
    if agreement in ("NOT_AVAILABLE", "ERROR") or availability.get("entitlementAvailability") == "NOT_AVAILABLE":
        detail = (availability.get("agreementAvailability") or {}).get("errorMessage") or "no agreement in place"
        check.problems.append(
            f"{model_id}: {detail}; open the model in the Bedrock console once to accept its offer "
            "(some providers ask for a first-use form)"
        )
    elif agreement == "PENDING":
        check.problems.append(f"{model_id}: its agreement is still pending; try again in a few minutes")


def _profile_serving(bedrock: Any, model_arn: str, region: str) -> str:
    """The system-defined inference profile that serves ``model_arn`` from ``region``: one of this
    region's geography first (data stays in it), a global one otherwise; empty when there is none."""
    candidates = []
    token: str | None = None
    while True:
        page = bedrock.list_inference_profiles(typeEquals="SYSTEM_DEFINED", **({"nextToken": token} if token else {}))
        for profile in page.get("inferenceProfileSummaries", []):
            arns = [m["modelArn"] for m in profile.get("models", [])]
            if profile.get("status", "ACTIVE") == "ACTIVE" and model_arn in arns:
                candidates.append(profile)
        token = page.get("nextToken")
        if not token:
            break

    def rank(profile: dict[str, Any]) -> int:
        prefix = str(profile.get("inferenceProfileId", "")).split(".", 1)[0]
        if region.startswith(_GEOGRAPHIES.get(prefix, ("\0",))):
            return 0
        return 1 if prefix == "global" else 2

    candidates.sort(key=rank)
    return str(candidates[0]["inferenceProfileArn"]) if candidates and rank(candidates[0]) < 2 else ""


def _refusal(identifier: str, exc: ClientError, region: str) -> str:
    code = error_code(exc)
    if code == "AccessDeniedException":
        return f"not allowed to read {identifier} (bedrock:GetFoundationModel / GetInferenceProfile for your role)"
    if code in ("ResourceNotFoundException", "ValidationException"):
        return (
            f"{identifier} is not a model or inference profile in {region}: "
            "check the id (aws bedrock list-foundation-models)"
        )
    return f"{identifier}: {code}: {exc.response.get('Error', {}).get('Message', '')}"


def customization_support(bedrock: Any, identifier: str) -> CustomizationSupport:
    """What Bedrock says of a base model (id or foundation-model ARN) in the client's Region:
    ``customizationsSupported`` and the lifecycle, from GetFoundationModel. Not allowed to ask
    (AccessDenied): ``skipped`` says so and nothing is refused. An identifier Bedrock does not know
    here: ``known`` is False. Any other error is raised (a transient one is retried by the caller)."""
    region = str(bedrock.meta.region_name or "")
    try:
        details = bedrock.get_foundation_model(modelIdentifier=identifier)["modelDetails"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "AccessDeniedException":
            return CustomizationSupport(identifier, region, skipped="bedrock:GetFoundationModel was denied")
        if code in ("ResourceNotFoundException", "ValidationException"):
            return CustomizationSupport(identifier, region, known=False)
        raise
    lifecycle = details.get("modelLifecycle") or {}
    end = lifecycle.get("endOfLifeTime")
    return CustomizationSupport(
        model_id=str(details.get("modelId") or identifier),
        region=region,
        customizations=tuple(details.get("customizationsSupported") or ()),
        lifecycle=str(lifecycle.get("status", "")),
        end_of_life=f"{end:%Y-%m-%d}" if isinstance(end, datetime) else "",
    )


CUSTOMIZATION_JOB_QUOTA = "L-0406044C"  # Service Quotas: bedrock "(Model customization) Scheduled customization jobs"


def customization_job_quota(quotas: Any) -> tuple[int | None, str]:
    """How many customization jobs this account may run at once (``quotas``: a Service Quotas
    client), or None and why it could not be read; the search then trusts its own max_parallel."""
    try:
        quota = quotas.get_service_quota(ServiceCode="bedrock", QuotaCode=CUSTOMIZATION_JOB_QUOTA)["Quota"]
    except ClientError as exc:
        code = error_code(exc)
        if code in ("AccessDeniedException", "NoSuchResourceException", "IllegalArgumentException"):
            return None, f"Service Quotas answered {code}"
        raise
    value = quota.get("Value")
    return (int(value), "") if isinstance(value, int | float) else (None, "Service Quotas gave no value")


def converse_text(runtime: Any, model_id: str, system: str | None, turns: Sequence[tuple[str, str]]) -> str:
    """One answer from Converse (``runtime``: a Bedrock Runtime client), at temperature 0 so a rerun
    of an evaluation asks the same question the same way."""
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": [{"role": role, "content": [{"text": text}]} for role, text in turns],
        "inferenceConfig": {"maxTokens": ANSWER_TOKENS, "temperature": 0},
    }
    if system:
        request["system"] = [{"text": system}]
    blocks = runtime.converse(**request)["output"]["message"]["content"]
    return "".join(block.get("text", "") for block in blocks)
