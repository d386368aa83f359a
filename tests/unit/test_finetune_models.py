"""ValidateInput asks Bedrock about the base model at run time (through the SupportLookup port): a
model Bedrock cannot customize the way asked in this Region, or does not know, is refused before any
dataset work, naming what to use instead; a LEGACY model is a warning carried into the dataset
report and the execution's output; a check Bedrock would not answer is a warning, not a failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.finetune.families import CONTINUED_PRE_TRAINING, FINE_TUNING, listed_models
from sluice.finetune.settings import CustomizationSupport, FineTuneInputError, validate_input
from sluice.finetune.workflow import FineTuneSteps
from support.fakes import FakeBucketWriter, FakeObjectReader, FakeRegistry

NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
TITAN = "amazon.titan-text-express-v1:0:8k"
REGION = "us-east-1"
BUCKET = "processed"
UPLOAD = f"s3://{BUCKET}/finetune/uploads/pairs.jsonl"


class Bedrock:
    """A SupportLookup answering from a fixed catalogue, recording what it was asked."""

    def __init__(self, **models: CustomizationSupport) -> None:
        self.models = models
        self.asked: list[str] = []

    def __call__(self, base_model: str) -> CustomizationSupport:
        self.asked.append(base_model)
        model = base_model.rsplit("/", 1)[-1]
        return self.models.get(model) or CustomizationSupport(model, REGION, known=False)


def nova(*customizations: str, lifecycle: str = "ACTIVE") -> CustomizationSupport:
    return CustomizationSupport(NOVA_MICRO, REGION, customizations=customizations, lifecycle=lifecycle)


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "base_model": NOVA_MICRO,
        "custom_model_name": "support-bot",
        "dataset": {"source": "s3", "uri": UPLOAD},
    }
    return {**base, **fields}


def refused(raw: dict[str, Any], bedrock: Bedrock) -> list[str]:
    with pytest.raises(FineTuneInputError) as caught:
        validate_input(raw, "run-1", support=bedrock)
    return caught.value.problems


def test_a_model_bedrock_fine_tunes_here_passes_and_what_bedrock_said_is_kept() -> None:
    bedrock = Bedrock(**{NOVA_MICRO: nova(FINE_TUNING, "DISTILLATION")})
    settings = validate_input(event(), "run-1", support=bedrock)
    assert bedrock.asked == [NOVA_MICRO]
    assert settings["model_check"] == {
        "model_id": NOVA_MICRO,
        "region": REGION,
        "checked": True,
        "customizations": ["FINE_TUNING", "DISTILLATION"],
        "lifecycle": "ACTIVE",
    }
    assert settings["warnings"] == []
    assert json.loads(json.dumps(settings)) == settings  # the state machine carries it


def test_without_the_port_only_the_input_is_checked() -> None:
    settings = validate_input(event(), "run-1")
    assert "model_check" not in settings and "warnings" not in settings


def test_an_id_bedrock_offers_no_customization_for_is_refused_naming_the_customizable_one() -> None:
    on_demand = "amazon.nova-micro-v1:0"
    bedrock = Bedrock(**{on_demand: CustomizationSupport(on_demand, REGION, customizations=())})
    (problem,) = refused(event(base_model=on_demand), bedrock)
    assert problem == (
        f"Bedrock cannot fine-tune {on_demand} in {REGION} (it offers no customization for it); "
        f"to customize Amazon Nova Micro, name {NOVA_MICRO} (us-east-1)"
    )


def test_an_unsupported_customization_type_is_refused_with_what_to_use_instead() -> None:
    bedrock = Bedrock(**{TITAN: CustomizationSupport(TITAN, REGION, customizations=(FINE_TUNING,))})
    (problem,) = refused(event(base_model=TITAN, customization_type=CONTINUED_PRE_TRAINING), bedrock)
    assert problem.startswith(f"Bedrock cannot continue pre-training {TITAN} in {REGION} (it offers FINE_TUNING")
    assert problem.endswith(
        "no model AWS's current fine-tuning page lists takes CONTINUED_PRE_TRAINING: fine-tune instead "
        f"(customization_type FINE_TUNING, with prompt and answer pairs), e.g. {NOVA_MICRO}"
    )


def test_a_model_bedrock_does_not_know_in_this_region_is_refused_naming_the_regions_models() -> None:
    haiku = "anthropic.claude-3-haiku-20240307-v1:0:200k"  # AWS customizes it in us-west-2 only
    (problem,) = refused(event(base_model=haiku), Bedrock())
    assert problem == (
        f"base_model {haiku!r} is not a foundation model Bedrock knows in {REGION}; AWS's fine-tuning page "
        "lists these in us-east-1: amazon.nova-micro-v1:0:128k, amazon.nova-lite-v1:0:300k, amazon.nova-pro-v1:0:300k"
    )


def test_a_region_without_listed_models_is_told_where_they_are() -> None:
    elsewhere = CustomizationSupport(NOVA_MICRO, "eu-west-1", known=False)
    with pytest.raises(FineTuneInputError) as caught:
        validate_input(event(base_model="meta.llama3-3-70b-instruct-v1:0:128k"), "run-1", support=lambda _: elsewhere)
    (problem,) = caught.value.problems
    assert "not a foundation model Bedrock knows in eu-west-1; AWS's fine-tuning page lists " in problem
    assert "amazon.nova-micro-v1:0:128k" in problem and "in us-east-1" in problem and "in us-west-2" in problem


def test_bedrock_problems_come_with_the_inputs_own_all_at_once() -> None:
    problems = refused(event(base_model="amazon.nova-micro-v1:0", poll_seconds=0), Bedrock())
    assert len(problems) == 2
    assert problems[0].startswith("base_model 'amazon.nova-micro-v1:0' is not a foundation model Bedrock knows")
    assert problems[1].startswith("poll_seconds")


def test_bedrock_is_not_asked_about_a_model_or_type_the_input_already_rules_out() -> None:
    bedrock = Bedrock(**{NOVA_MICRO: nova(FINE_TUNING)})
    refused(event(base_model="openai.gpt-5"), bedrock)
    refused(event(customization_type=CONTINUED_PRE_TRAINING), bedrock)  # Nova has no continued pre-training
    refused(event(customization_type="DISTILLATION"), bedrock)
    assert bedrock.asked == []


def test_continued_pretraining_refused_by_the_table_says_the_models_are_legacy_and_what_to_do() -> None:
    (problem,) = refused(event(customization_type=CONTINUED_PRE_TRAINING), Bedrock())
    assert problem.startswith("Amazon Nova Micro does not support continued pre-training; these do: Amazon Titan")
    assert "(legacy: AWS's current fine-tuning page lists none of them)" in problem
    assert problem.endswith(
        f"fine-tune instead (customization_type FINE_TUNING, with prompt and answer pairs), e.g. {NOVA_MICRO}"
    )


def test_a_legacy_model_is_a_warning_not_a_refusal() -> None:
    titan = CustomizationSupport(
        TITAN,
        REGION,
        customizations=(FINE_TUNING, CONTINUED_PRE_TRAINING),
        lifecycle="LEGACY",
        end_of_life="2027-01-31",
    )
    settings = validate_input(event(base_model=TITAN), "run-1", support=Bedrock(**{TITAN: titan}))
    assert settings["model_check"]["lifecycle"] == "LEGACY"
    assert settings["warnings"] == [
        f"{TITAN} is LEGACY in Bedrock (its end of life: 2027-01-31): move to a current model; AWS's fine-tuning "
        "page lists these in us-east-1: amazon.nova-micro-v1:0:128k, amazon.nova-lite-v1:0:300k, "
        "amazon.nova-pro-v1:0:300k"
    ]


def test_a_check_bedrock_would_not_answer_is_a_warning_and_nothing_is_refused() -> None:
    denied = CustomizationSupport(NOVA_MICRO, REGION, skipped="bedrock:GetFoundationModel was denied")
    settings = validate_input(event(), "run-1", support=lambda _: denied)
    assert settings["model_check"] == {"model_id": NOVA_MICRO, "region": REGION, "checked": False}
    assert settings["warnings"] == [
        f"{NOVA_MICRO} was not checked with Bedrock (bedrock:GetFoundationModel was denied): "
        "the customization job will say whether it can be customized"
    ]


def test_the_listed_models_are_the_current_pages_by_region() -> None:
    fine_tuning = listed_models(FINE_TUNING)
    assert fine_tuning["us-east-1"] == [NOVA_MICRO, "amazon.nova-lite-v1:0:300k", "amazon.nova-pro-v1:0:300k"]
    assert "anthropic.claude-3-haiku-20240307-v1:0:200k" in fine_tuning["us-west-2"]
    assert not any("titan" in m or "cohere" in m or "llama2" in m for ids in fine_tuning.values() for m in ids)
    assert listed_models(CONTINUED_PRE_TRAINING) == {}


# The warnings travel: settings -> dataset report -> execution output ---------------------------------


def _steps(support: Any) -> tuple[FineTuneSteps, FakeBucketWriter]:
    reader, writer = FakeObjectReader(), FakeBucketWriter(BUCKET)
    pairs = [{"prompt": f"When does pilot {i} board?", "completion": f"At buoy {i}."} for i in range(10)]
    reader.put(BUCKET, "finetune/uploads/pairs.jsonl", "\n".join(json.dumps(p) for p in pairs).encode())
    steps = FineTuneSteps(
        documents=FakeRegistry(),
        reader=reader,
        writer=writer,
        processed_bucket=BUCKET,
        readable_buckets=frozenset({BUCKET}),
        support=support,
    )
    return steps, writer


def _run(steps: FineTuneSteps, payload: dict[str, Any]) -> dict[str, Any]:
    state = steps.run("validate-input", payload, "run-1")
    state = steps.run("prepare-dataset", state, "run-1")
    state |= {"job": {"JobArn": "arn:job"}, "check": {"OutputModelArn": "arn:model"}}
    return steps.run("record-model", state, "run-1")


def test_a_legacy_warning_is_in_the_dataset_report_and_the_execution_output() -> None:
    titan = CustomizationSupport(TITAN, REGION, customizations=(FINE_TUNING,), lifecycle="LEGACY")
    steps, writer = _steps(Bedrock(**{TITAN: titan}))
    state = _run(steps, event(base_model=TITAN))
    report = json.loads(writer.files[next(k for k in writer.files if k.endswith("report.json"))])
    assert report["warnings"][0].startswith(f"{TITAN} is LEGACY in Bedrock: move to a current model")
    assert report["warnings_total"] == len(report["warnings"]) == 1
    assert state["dataset"]["report"]["warnings"] == report["warnings"]
    assert state["result"]["warnings"] == [report["warnings"][0]]


def test_an_active_model_leaves_no_warning() -> None:
    steps, _ = _steps(Bedrock(**{NOVA_MICRO: nova(FINE_TUNING)}))
    state = _run(steps, event())
    assert state["result"]["warnings"] == [] and state["dataset"]["report"]["warnings"] == []


def test_a_refused_model_stops_before_any_dataset_work() -> None:
    steps, writer = _steps(Bedrock())
    with pytest.raises(FineTuneInputError, match="is not a foundation model Bedrock knows"):
        steps.run("validate-input", event(), "run-1")
    assert writer.files == {}


def test_on_demand_is_refused_outside_the_region_aws_serves_the_family_on_demand() -> None:
    west = CustomizationSupport(NOVA_MICRO, "us-west-2", customizations=(FINE_TUNING,), lifecycle="ACTIVE")
    (problem,) = refused(event(deployment="on_demand"), Bedrock(**{NOVA_MICRO: west}))
    assert problem.startswith("a custom Amazon Nova Micro is deployed on demand only in us-east-1, not us-west-2")
    settings = validate_input(
        event(deployment="on_demand"), "run-1", support=Bedrock(**{NOVA_MICRO: nova(FINE_TUNING)})
    )
    assert settings["deployment_name"] == "support-bot-od"
