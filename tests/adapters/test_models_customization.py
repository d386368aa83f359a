"""customization_support asks Bedrock (GetFoundationModel) which customizations a base model takes in
the client's Region, and its lifecycle; botocore's Stubber checks each request and answer against
Bedrock's own service model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from sluice.adapters.aws.models import customization_support
from sluice.finetune.settings import CustomizationSupport

REGION = "us-east-1"
FM = f"arn:aws:bedrock:{REGION}::foundation-model/"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"


def _details(model_id: str, customizations: list[str], status: str = "ACTIVE", **lifecycle: Any) -> dict[str, Any]:
    return {
        "modelDetails": {
            "modelArn": FM + model_id,
            "modelId": model_id,
            "modelName": "Nova Micro",
            "providerName": "Amazon",
            "customizationsSupported": customizations,
            "inferenceTypesSupported": ["PROVISIONED"],
            "modelLifecycle": {"status": status, **lifecycle},
        }
    }


def test_the_customizations_and_lifecycle_bedrock_gives(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    answer = _details(NOVA_MICRO, ["FINE_TUNING", "DISTILLATION"])
    stubber.add_response("get_foundation_model", answer, {"modelIdentifier": NOVA_MICRO})
    assert customization_support(client, NOVA_MICRO) == CustomizationSupport(
        NOVA_MICRO, REGION, customizations=("FINE_TUNING", "DISTILLATION"), lifecycle="ACTIVE"
    )


def test_an_arn_is_asked_as_given_and_answered_with_the_models_id(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    titan = "amazon.titan-text-express-v1:0:8k"
    end = datetime(2027, 1, 31, tzinfo=UTC)
    answer = _details(titan, ["FINE_TUNING", "CONTINUED_PRE_TRAINING"], "LEGACY", endOfLifeTime=end)
    stubber.add_response("get_foundation_model", answer, {"modelIdentifier": FM + titan})
    support = customization_support(client, FM + titan)
    assert (support.model_id, support.lifecycle, support.end_of_life) == (titan, "LEGACY", "2027-01-31")
    assert support.customizations == ("FINE_TUNING", "CONTINUED_PRE_TRAINING")


def test_a_model_without_customizations_says_so(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    answer = _details("amazon.nova-micro-v1:0", [])
    del answer["modelDetails"]["customizationsSupported"]  # optional in the service model
    stubber.add_response("get_foundation_model", answer, {"modelIdentifier": "amazon.nova-micro-v1:0"})
    support = customization_support(client, "amazon.nova-micro-v1:0")
    assert support.known and support.customizations == ()


@pytest.mark.parametrize("code", ["ValidationException", "ResourceNotFoundException"])
def test_a_model_bedrock_does_not_know_here_is_unknown(bedrock: tuple[Any, Stubber], code: str) -> None:
    client, stubber = bedrock
    haiku = "anthropic.claude-3-haiku-20240307-v1:0:200k"
    stubber.add_client_error("get_foundation_model", code, "The provided model identifier is invalid.", 400)
    assert customization_support(client, haiku) == CustomizationSupport(haiku, REGION, known=False)


def test_access_denied_skips_the_check_and_says_why(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    stubber.add_client_error("get_foundation_model", "AccessDeniedException", "not authorized", 403)
    support = customization_support(client, NOVA_MICRO)
    assert support.skipped == "bedrock:GetFoundationModel was denied" and support.known


def test_other_errors_reach_the_caller(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    stubber.add_client_error("get_foundation_model", "ThrottlingException", "slow down", 429)
    with pytest.raises(ClientError, match="ThrottlingException"):
        customization_support(client, NOVA_MICRO)
