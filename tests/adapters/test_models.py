"""check_model asks Bedrock what a model is now (botocore's Stubber checks each request and answer
against Bedrock's own service model): on-demand or through this region's inference profile, access
granted or not, LEGACY or not, unknown; a custom model you deployed, ready or not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from sluice.adapters.aws.models import check_model

REGION = "us-east-1"
FM = f"arn:aws:bedrock:{REGION}::foundation-model/"
DEPLOYMENT = f"arn:aws:bedrock:{REGION}:123456789012:custom-model-deployment/a1b2c3d4e5f6"
PROVISIONED = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/f6e5d4c3b2a1"
CUSTOM = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abc123"
CREATED = datetime(2025, 6, 1, tzinfo=UTC)


def _model(model_id: str, ways: list[str], status: str = "ACTIVE", **lifecycle: Any) -> dict[str, Any]:
    return {
        "modelDetails": {
            "modelArn": FM + model_id,
            "modelId": model_id,
            "modelName": model_id,
            "providerName": "Amazon",
            "inferenceTypesSupported": ways,
            "modelLifecycle": {"status": status, **lifecycle},
        }
    }


def _availability(model_id: str, authorized: bool = True, agreement: str = "AVAILABLE") -> dict[str, Any]:
    return {
        "modelId": model_id,
        "agreementAvailability": {"status": agreement},
        "authorizationStatus": "AUTHORIZED" if authorized else "NOT_AUTHORIZED",
        "entitlementAvailability": "AVAILABLE",
        "regionAvailability": "AVAILABLE",
    }


def _profile(profile_id: str, model_id: str, regions: list[str]) -> dict[str, Any]:
    return {
        "inferenceProfileName": profile_id,
        "inferenceProfileArn": f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/{profile_id}",
        "inferenceProfileId": profile_id,
        "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{model_id}"} for r in regions],
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


def test_an_on_demand_model_is_called_by_its_id(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response("get_foundation_model", _model("m.embed", ["ON_DEMAND"]), {"modelIdentifier": "m.embed"})
    stub.add_response("get_foundation_model_availability", _availability("m.embed"), {"modelId": "m.embed"})
    check = check_model(client, "m.embed", REGION)
    assert check.usable and check.invoke_id == "m.embed" and not check.warnings


def test_a_model_without_on_demand_calls_goes_through_this_geographys_profile(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    model = "amazon.nova-2-lite-v1:0"
    stub.add_response("get_foundation_model", _model(model, ["INFERENCE_PROFILE"]), {"modelIdentifier": model})
    profiles = [
        _profile("global.amazon.nova-2-lite-v1:0", model, [REGION, "eu-west-1"]),
        _profile("eu.amazon.nova-2-lite-v1:0", model, ["eu-west-1"]),
        _profile("us.amazon.nova-2-lite-v1:0", model, [REGION, "us-west-2"]),
    ]
    stub.add_response(
        "list_inference_profiles",
        {"inferenceProfileSummaries": profiles[:2], "nextToken": "page-2"},
        {"typeEquals": "SYSTEM_DEFINED"},
    )
    stub.add_response(
        "list_inference_profiles",
        {"inferenceProfileSummaries": profiles[2:]},
        {"typeEquals": "SYSTEM_DEFINED", "nextToken": "page-2"},
    )
    stub.add_response("get_foundation_model_availability", _availability(model), {"modelId": model})
    check = check_model(client, model, REGION)
    assert check.usable
    assert check.invoke_id.endswith("inference-profile/us.amazon.nova-2-lite-v1:0")  # its geography before global
    assert "no on-demand calls" in check.warnings[0]


def test_access_not_granted_is_said_plainly(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response("get_foundation_model", _model("m.x", ["ON_DEMAND"]), {"modelIdentifier": "m.x"})
    stub.add_response(
        "get_foundation_model_availability",
        _availability("m.x", authorized=False, agreement="NOT_AVAILABLE"),
        {"modelId": "m.x"},
    )
    check = check_model(client, "m.x", REGION)
    assert not check.usable
    assert any("model access has not been granted" in p for p in check.problems)
    assert any("accept its offer" in p for p in check.problems)


def test_a_legacy_model_is_a_warning_with_its_end(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    end = datetime(2027, 1, 31, tzinfo=UTC)
    stub.add_response(
        "get_foundation_model",
        _model("m.old", ["ON_DEMAND"], "LEGACY", endOfLifeTime=end),
        {"modelIdentifier": "m.old"},
    )
    stub.add_response("get_foundation_model_availability", _availability("m.old"), {"modelId": "m.old"})
    check = check_model(client, "m.old", REGION)
    assert check.usable and check.warnings == ["m.old is LEGACY and ends on 2027-01-31: move to a current model"]


def test_an_unknown_model_is_refused_with_where_to_look(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_client_error("get_foundation_model", "ValidationException", "The provided model identifier is invalid.")
    check = check_model(client, "m.nope", REGION)
    assert not check.usable and "list-foundation-models" in check.problems[0]


def test_an_inference_profile_is_called_as_given_and_its_model_checked(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    profile = _profile("us.amazon.nova-2-lite-v1:0", "amazon.nova-2-lite-v1:0", [REGION])
    stub.add_response("get_inference_profile", profile, {"inferenceProfileIdentifier": "us.amazon.nova-2-lite-v1:0"})
    model = "amazon.nova-2-lite-v1:0"
    stub.add_response("get_foundation_model", _model(model, ["INFERENCE_PROFILE"]), {"modelIdentifier": model})
    stub.add_response("get_foundation_model_availability", _availability(model), {"modelId": model})
    check = check_model(client, "us.amazon.nova-2-lite-v1:0", REGION)
    assert check.usable and check.invoke_id == profile["inferenceProfileArn"]


def _deployment(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "customModelDeploymentArn": DEPLOYMENT,
        "modelDeploymentName": "support-answers",
        "modelArn": CUSTOM,
        "createdAt": CREATED,
        "status": status,
        **extra,
    }


def _provisioned(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "support-answers-pt",
        "provisionedModelArn": PROVISIONED,
        "modelArn": CUSTOM,
        "desiredModelArn": CUSTOM,
        "foundationModelArn": FM + "amazon.nova-micro-v1:0:128k",
        "status": status,
        "creationTime": CREATED,
        "lastModifiedTime": CREATED,
        **extra,
    }


def test_an_active_custom_model_deployment_is_called_by_its_arn(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response(
        "get_custom_model_deployment", _deployment("Active"), {"customModelDeploymentIdentifier": DEPLOYMENT}
    )
    check = check_model(client, DEPLOYMENT, REGION)
    assert check.usable and check.invoke_id == DEPLOYMENT and check.name == "support-answers"
    assert not check.warnings


def test_a_provisioned_throughput_in_service_is_called_by_its_arn(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response(
        "get_provisioned_model_throughput", _provisioned("InService"), {"provisionedModelId": PROVISIONED}
    )
    check = check_model(client, PROVISIONED, REGION)
    assert check.usable and check.invoke_id == PROVISIONED and check.name == "support-answers-pt"


@pytest.mark.parametrize(
    ("identifier", "operation", "answer", "said"),
    [
        (DEPLOYMENT, "get_custom_model_deployment", _deployment("Creating"), "is Creating, not yet Active: wait"),
        (PROVISIONED, "get_provisioned_model_throughput", _provisioned("Creating"), "not yet InService: wait"),
        (PROVISIONED, "get_provisioned_model_throughput", _provisioned("Updating"), "is Updating, not yet InService"),
        (
            DEPLOYMENT,
            "get_custom_model_deployment",
            _deployment("Failed", failureMessage="The custom model was deleted."),
            "failed: The custom model was deleted.; deploy the custom model again",
        ),
        (
            PROVISIONED,
            "get_provisioned_model_throughput",
            _provisioned("Failed"),
            "failed: Bedrock gives no reason; deploy",
        ),
    ],
)
def test_a_deployed_model_that_is_not_ready_is_refused_with_what_to_do(
    bedrock: tuple[Any, Stubber], identifier: str, operation: str, answer: dict[str, Any], said: str
) -> None:
    client, stub = bedrock
    stub.add_response(operation, answer)
    check = check_model(client, identifier, REGION)
    assert not check.usable and not check.invoke_id
    assert len(check.problems) == 1 and said in check.problems[0], check.problems


@pytest.mark.parametrize(
    ("identifier", "operation", "code", "said"),
    [
        (
            DEPLOYMENT,
            "get_custom_model_deployment",
            "ResourceNotFoundException",
            f"is not a custom model deployment in {REGION}: check the ARN (aws bedrock list-custom-model-deployments)",
        ),
        (
            PROVISIONED,
            "get_provisioned_model_throughput",
            "ResourceNotFoundException",
            "is not a provisioned throughput in us-east-1: check the ARN (aws bedrock list-provisioned-model-",
        ),
        (DEPLOYMENT, "get_custom_model_deployment", "AccessDeniedException", "(bedrock:GetCustomModelDeployment for"),
    ],
)
def test_a_deployed_model_bedrock_will_not_describe_is_refused_with_where_to_look(
    bedrock: tuple[Any, Stubber], identifier: str, operation: str, code: str, said: str
) -> None:
    client, stub = bedrock
    stub.add_client_error(operation, code, "not here")
    check = check_model(client, identifier, REGION)
    assert not check.usable and len(check.problems) == 1 and said in check.problems[0], check.problems
