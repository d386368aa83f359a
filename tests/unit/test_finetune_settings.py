"""The fine-tune execution input: every mistake reported at once, before any data is read."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.finetune.families import FAMILIES, family_for
from sluice.finetune.settings import (
    FineTuneInputError,
    client_token_for,
    job_name_for,
    parameter_text,
    validate_input,
)

TITAN = "amazon.titan-text-express-v1:0:8k"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*")
CLIENT_TOKEN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "base_model": TITAN,
        "custom_model_name": "support-bot",
        "dataset": {"source": "corpus", "prefix": "faq/"},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def problems(raw: dict[str, Any], execution: str = "run-1") -> list[str]:
    with pytest.raises(FineTuneInputError) as caught:
        validate_input(raw, execution)
    return caught.value.problems


def only_problem(raw: dict[str, Any]) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_a_minimal_input_gets_the_family_defaults() -> None:
    settings = validate_input(event(), "run-1")
    assert settings == {
        "base_model": TITAN,
        "family": "titan-text-express",
        "family_label": "Amazon Titan Text G1 - Express",
        "fine_tuning_format": "prompt_completion",
        "custom_model_name": "support-bot",
        "customization_type": "FINE_TUNING",
        "job_name": "run-1",
        "client_token": client_token_for("run-1"),
        "hyperparameters": {
            "epochCount": "5",
            "batchSize": "1",
            "learningRate": "0.00001",
            "learningRateWarmupSteps": "5",
        },
        "epochs": 5,
        "validation_split": 0.1,
        "dataset": {"source": "corpus", "prefix": "faq/", "filter": {"kinds": [], "attributes": {}}},
        "poll_seconds": 600,
        "max_checks": 2000,
        "tags": [],
        "max_record_tokens": 4096,
        "min_records": 1,
        "max_records": 10_000,
        "max_validation_records": None,
        "deployment": "none",
        "lineage": "support-bot",
        "trials": [  # one job, under the execution's own names
            {
                "trial": "t1",
                "hyperparameters": settings["hyperparameters"],
                "varied": {},
                "epochs": 5,
                "job_name": "run-1",
                "custom_model_name": "support-bot",
                "client_token": client_token_for("run-1"),
            }
        ],
        "max_parallel": 1,
        "keep": "best",
    }
    assert json.loads(json.dumps(settings)) == settings


def test_every_problem_is_reported_at_once_in_a_readable_message() -> None:
    raw = {
        "base_model": "openai.gpt-5",
        "custom_model_name": "my model",
        "dataset": {"source": "ftp"},
        "validation_split": 0.9,
        "poll_seconds": 0,
        "hyperparamters": {},
    }
    with pytest.raises(FineTuneInputError) as caught:
        validate_input(raw, "run-1")
    assert len(caught.value.problems) == 6
    text = str(caught.value)
    assert text.startswith("The fine-tune input has 6 problems:\n- ")
    assert text.count("\n- ") == 6
    assert "'hyperparamters' (did you mean 'hyperparameters'?)" in text
    assert "base_model 'openai.gpt-5' is not a model Sluice can fine-tune" in text
    assert "amazon.titan-text-express" in text and "anthropic.claude-3-haiku" in text


def test_one_problem_is_worded_in_the_singular() -> None:
    with pytest.raises(FineTuneInputError, match=r"^The fine-tune input has 1 problem:\n- poll_seconds"):
        validate_input(event(poll_seconds=5000), "run-1")


def test_the_input_must_be_an_object() -> None:
    with pytest.raises(FineTuneInputError, match="must be a JSON object"):
        validate_input(["base_model"], "run-1")  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["base_model", "custom_model_name"])
def test_required_fields(missing: str) -> None:
    assert only_problem(event(**{missing: None})) == f"{missing} is required"


def test_the_dataset_is_required() -> None:
    assert only_problem(event(dataset=None)).startswith("dataset is required")


@pytest.mark.parametrize("name", ["my.model", "-bot", "bot--v2", "bot__v2", "bot_-v2", "b" * 64, "bot v2", "bot+"])
def test_custom_model_names_bedrock_would_refuse(name: str) -> None:
    assert only_problem(event(custom_model_name=name)).startswith(f"custom_model_name {name!r} must be 1 to 63")


@pytest.mark.parametrize("name", ["bot", "Support-Bot-2", "bot_v2", "a" * 63])
def test_custom_model_names_bedrock_accepts(name: str) -> None:
    assert validate_input(event(custom_model_name=name), "run-1")["custom_model_name"] == name


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("FINE_TUNING", "FINE_TUNING"),
        ("fine-tuning", "FINE_TUNING"),
        ("continued-pre-training", "CONTINUED_PRE_TRAINING"),
        ("CONTINUED_PRE_TRAINING", "CONTINUED_PRE_TRAINING"),
    ],
)
def test_customization_type_spellings(given: str, canonical: str) -> None:
    assert validate_input(event(customization_type=given), "run-1")["customization_type"] == canonical


def test_continued_pretraining_uses_its_own_record_quota() -> None:
    settings = validate_input(event(customization_type="continued-pre-training"), "run-1")
    assert settings["max_records"] == 100_000


def test_continued_pretraining_is_refused_where_the_family_has_none() -> None:
    found = only_problem(event(base_model=CLAUDE, customization_type="continued-pre-training"))
    assert found.startswith("Anthropic Claude 3 Haiku does not support continued pre-training; these do: Amazon Titan")


@pytest.mark.parametrize("value", ["DISTILLATION", "pretraining", 3])
def test_unsupported_customization_types(value: object) -> None:
    assert only_problem(event(customization_type=value)).startswith(
        "customization_type must be FINE_TUNING or CONTINUED_PRE_TRAINING"
    )


def test_an_unknown_hyperparameter_names_the_allowed_ones() -> None:
    found = only_problem(event(hyperparameters={"epochs": 3}))
    assert found == (
        "hyperparameter 'epochs' (did you mean 'epochCount'?) is not one of Amazon Titan Text G1 - Express's: "
        "epochCount, batchSize, learningRate, learningRateWarmupSteps"
    )


def test_a_hyperparameter_out_of_range_names_the_range() -> None:
    found = problems(event(base_model=CLAUDE, hyperparameters={"batchSize": 2, "learningRateMultiplier": "2.5"}))
    assert found == [
        "hyperparameter batchSize is 2; Anthropic Claude 3 Haiku takes 4 to 256",
        "hyperparameter learningRateMultiplier is 2.5; Anthropic Claude 3 Haiku takes 0.1 to 2",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (2.5, "hyperparameter epochCount must be a whole number, not 2.5"),
        ("two", "hyperparameter epochCount must be a number, not 'two'"),
        (True, "hyperparameter epochCount must be a number, not True"),
        ("nan", "hyperparameter epochCount must be a number, not 'nan'"),
    ],
)
def test_hyperparameter_values_must_be_numbers_of_the_right_kind(value: object, problem: str) -> None:
    assert only_problem(event(hyperparameters={"epochCount": value})) == problem


def test_hyperparameters_become_strings_and_missing_ones_take_the_defaults() -> None:
    settings = validate_input(
        event(base_model=CLAUDE, hyperparameters={"epochCount": "3", "learningRateMultiplier": 0.5}), "run-1"
    )
    assert settings["hyperparameters"] == {
        "epochCount": "3",
        "batchSize": "32",
        "learningRateMultiplier": "0.5",
        "earlyStoppingThreshold": "0.001",
        "earlyStoppingPatience": "2",
    }
    assert settings["epochs"] == 3


def test_small_learning_rates_are_written_without_exponents() -> None:
    settings = validate_input(event(hyperparameters={"learningRate": "1e-6"}), "run-1")
    assert settings["hyperparameters"]["learningRate"] == "0.000001"
    assert [parameter_text(v, False) for v in (0.00001, 0.0, 1.0, 100.0, 0.1)] == ["0.00001", "0", "1", "100", "0.1"]
    assert parameter_text(2.0, True) == "2"


@pytest.mark.parametrize("split", [-0.1, 0.51, "0.1", None])
def test_validation_split_range(split: object) -> None:
    raw = event()
    raw["validation_split"] = split
    assert only_problem(raw).startswith("validation_split must be a number from 0 to 0.5")


def test_validation_split_zero_and_half_are_accepted() -> None:
    assert validate_input(event(validation_split=0), "run-1")["validation_split"] == 0
    assert validate_input(event(validation_split=0.5), "run-1")["validation_split"] == 0.5


def test_a_family_without_validation_support_refuses_a_split_and_defaults_to_none() -> None:
    titan = family_for(TITAN)
    assert titan is not None
    families = [*FAMILIES[1:], replace(titan, supports_validation=False)]
    with pytest.raises(FineTuneInputError) as caught:
        validate_input(event(validation_split=0.2), "run-1", families=families)
    assert caught.value.problems == [f"{titan.label} takes no validation data: validation_split must be 0"]
    assert validate_input(event(), "run-1", families=families)["validation_split"] == 0.0


def test_provisioned_throughput_keys_appear_only_when_asked_for() -> None:
    assert "throughput_name" not in validate_input(event(), "run-1")
    assert "model_units" not in validate_input(event(provisioned_throughput=False), "run-1")
    settings = validate_input(event(provisioned_throughput=True), "run-1")
    assert (settings["throughput_name"], settings["model_units"]) == ("support-bot-pt", 1)
    settings = validate_input(event(provisioned_throughput={"model_units": 2, "name": "bot_pt"}), "run-1")
    assert (settings["throughput_name"], settings["model_units"]) == ("bot_pt", 2)


def test_the_default_throughput_name_fits_even_for_a_long_model_name() -> None:
    settings = validate_input(event(custom_model_name="a" * 59 + "-bc", provisioned_throughput=True), "run-1")
    name = settings["throughput_name"]
    assert len(name) <= 63 and re.fullmatch(r"([0-9a-zA-Z][_-]?)+", name)


NOVA_LITE = "amazon.nova-lite-v1:0:300k"


def test_the_deployment_defaults_to_what_provisioned_throughput_says() -> None:
    """Inputs from before the deployment field keep their meaning."""
    assert validate_input(event(), "run-1")["deployment"] == "none"
    assert validate_input(event(provisioned_throughput=False), "run-1")["deployment"] == "none"
    settings = validate_input(event(provisioned_throughput={"model_units": 2}), "run-1")
    assert (settings["deployment"], settings["model_units"]) == ("provisioned", 2)
    assert "deployment_name" not in settings


def test_deployment_provisioned_alone_buys_one_model_unit_and_agrees_with_provisioned_throughput() -> None:
    settings = validate_input(event(deployment="provisioned"), "run-1")
    assert (settings["throughput_name"], settings["model_units"]) == ("support-bot-pt", 1)
    settings = validate_input(event(deployment="provisioned", provisioned_throughput={"model_units": 3}), "run-1")
    assert (settings["deployment"], settings["model_units"]) == ("provisioned", 3)
    assert "throughput_name" not in validate_input(event(deployment="none"), "run-1")


def test_on_demand_names_a_deployment_and_buys_no_throughput() -> None:
    settings = validate_input(event(base_model=NOVA_LITE, deployment="on_demand"), "run-1")
    assert settings["deployment"] == "on_demand" and settings["deployment_name"] == "support-bot-od"
    assert "throughput_name" not in settings
    long_name = validate_input(
        event(base_model=NOVA_LITE, custom_model_name="a" * 60 + "_b", deployment="on-demand"), "r"
    )
    assert len(long_name["deployment_name"]) <= 63 and "_-" not in long_name["deployment_name"]


@pytest.mark.parametrize(
    "base_model", [TITAN, CLAUDE, "meta.llama3-1-8b-instruct-v1:0:128k", "meta.llama3-2-90b-instruct-v1:0:128k"]
)
def test_on_demand_is_refused_for_a_family_aws_does_not_serve_on_demand(base_model: str) -> None:
    problem = only_problem(event(base_model=base_model, deployment="on_demand", validation_split=0))
    assert "cannot be deployed on demand" in problem
    assert "Amazon Nova Lite (us-east-1)" in problem and "Meta Llama 3.3 (us-west-2)" in problem
    assert '"deployment": "provisioned"' in problem


def test_the_family_table_says_which_families_deploy_on_demand_and_where() -> None:
    on_demand = {f.key: f.on_demand_regions for f in FAMILIES if f.on_demand_regions}
    assert on_demand == {
        "nova-micro": ("us-east-1",),
        "nova-lite": ("us-east-1",),
        "nova-pro": ("us-east-1",),
        "llama3.3": ("us-west-2",),
    }


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"deployment": "on_demand", "provisioned_throughput": True}, "deployment is 'on_demand' but provisioned_throughput"),
        ({"deployment": "none", "provisioned_throughput": {"model_units": 1}}, "deployment is 'none' but provisioned_throughput"),
        ({"deployment": "provisioned", "provisioned_throughput": False}, 'deployment is "provisioned" but provisioned_throughput is false'),
        ({"deployment": "serverless"}, "deployment must be 'on_demand', 'provisioned', 'none', not 'serverless'"),
        ({"deployment": 1}, "deployment must be 'on_demand', 'provisioned', 'none', not 1"),
    ],
)  # fmt: skip
def test_a_deployment_that_contradicts_provisioned_throughput_or_is_unknown_is_refused(
    fields: dict[str, Any], says: str
) -> None:
    assert says in only_problem(event(base_model=NOVA_LITE, **fields))


@pytest.mark.parametrize(
    ("throughput", "start"),
    [
        ({"model_units": 0}, "provisioned_throughput.model_units must be a whole number of at least 1"),
        ({"model_units": "2"}, "provisioned_throughput.model_units must be a whole number of at least 1"),
        ({"name": "bad name"}, "provisioned_throughput.name must be 1 to 63"),
        ({"units": 1}, "unknown field provisioned_throughput.'units'"),
        ("yes", "provisioned_throughput must be true or an object"),
    ],
)
def test_provisioned_throughput_problems(throughput: object, start: str) -> None:
    assert only_problem(event(provisioned_throughput=throughput)).startswith(start)


def test_tags_become_key_value_pairs() -> None:
    settings = validate_input(event(tags={"team": "support", "cost-center": "42"}), "run-1")
    assert settings["tags"] == [{"Key": "team", "Value": "support"}, {"Key": "cost-center", "Value": "42"}]


@pytest.mark.parametrize(
    ("tags", "start"),
    [
        ({f"k{i}": "v" for i in range(51)}, "tags holds 51 entries; the limit is 50"),
        ({"k" * 129: "v"}, "tag key 'kkk"),
        ({"team": "v" * 257}, "tag 'team': the value must be up to 256"),
        ({"team": 7}, "tag 'team': the value must be up to 256"),
        ({"aws:team": "x"}, "tag key 'aws:team': the aws: prefix is reserved"),
        (["team"], "tags must be an object"),
    ],
)
def test_tag_problems(tags: object, start: str) -> None:
    assert only_problem(event(tags=tags)).startswith(start)


@pytest.mark.parametrize("seconds", [0, 3601, "600", 1.5, True])
def test_poll_seconds_range(seconds: object) -> None:
    assert only_problem(event(poll_seconds=seconds)).startswith("poll_seconds must be a whole number from 1 to 3600")


def test_poll_seconds_accepted() -> None:
    assert validate_input(event(poll_seconds=60), "run-1")["poll_seconds"] == 60


@pytest.mark.parametrize("share", [0, -0.5, 1.5, "0.2"])
def test_retrain_when_changed_range(share: object) -> None:
    assert only_problem(event(retrain_when_changed=share)).startswith("retrain_when_changed is the share")


def test_retrain_when_changed_is_present_only_when_given() -> None:
    assert "retrain_when_changed" not in validate_input(event(), "run-1")
    assert validate_input(event(retrain_when_changed=1), "run-1")["retrain_when_changed"] == 1.0


def test_a_corpus_filter_is_normalised() -> None:
    dataset = {
        "source": "corpus",
        "filter": {"kinds": ["JSONL", "csv", "jsonl"], "attributes": {"team": "support", "year": 2024}},
    }
    settings = validate_input(event(dataset=dataset), "run-1")
    assert settings["dataset"] == {
        "source": "corpus",
        "prefix": "",
        "filter": {"kinds": ["jsonl", "csv"], "attributes": {"team": "support", "year": 2024.0}},
    }


@pytest.mark.parametrize(
    ("dataset", "start"),
    [
        ({"source": "corpus", "filter": {"kinds": ["xlsx"]}}, "dataset.filter.kinds: 'xlsx' is not a document kind"),
        ({"source": "corpus", "filter": {"kinds": "pdf"}}, "dataset.filter.kinds must be a list"),
        ({"source": "corpus", "filter": {"attributes": {"a": [1]}}}, "dataset.filter.attributes.a must be"),
        ({"source": "corpus", "filter": {"kind": ["pdf"]}}, "unknown field dataset.filter.'kind'"),
        ({"source": "corpus", "prefix": 3}, "dataset.prefix must be a string"),
        ({"source": "corpus", "uri": "s3://a/b"}, "unknown field dataset.'uri'"),
        ({"source": "s3"}, "dataset.uri must be an S3 object URI"),
        ({"source": "s3", "uri": "s3://my-bucket/"}, "dataset.uri must be an S3 object URI"),
        ({"source": "s3", "uri": "https://my-bucket/train.jsonl"}, "dataset.uri must be an S3 object URI"),
        ({"source": "web"}, 'dataset.source must be "corpus" or "s3"'),
        ("s3://my-bucket/train.jsonl", "dataset is required"),
    ],
)
def test_dataset_problems(dataset: object, start: str) -> None:
    assert only_problem(event(dataset=dataset)).startswith(start)


def test_an_s3_dataset_is_split_into_bucket_and_key() -> None:
    dataset = validate_input(event(dataset={"source": "s3", "uri": "s3://my-bucket/data/train.jsonl"}), "r")["dataset"]
    assert dataset == {
        "source": "s3",
        "uri": "s3://my-bucket/data/train.jsonl",
        "bucket": "my-bucket",
        "key": "data/train.jsonl",
    }


def test_a_valid_execution_name_is_the_job_name() -> None:
    assert job_name_for("nightly-2025-01-01.v2") == "nightly-2025-01-01.v2"


def test_a_long_execution_name_is_shortened_deterministically() -> None:
    long_name = "fine-tune-" + "x" * 70
    name = job_name_for(long_name)
    assert len(name) == 63 and JOB_NAME.fullmatch(name)
    assert name == job_name_for(long_name)
    assert name != job_name_for(long_name + "y")  # the hash tells apart names sharing a long prefix


@pytest.mark.parametrize("execution", ["_private run", "Über Lauf #3", "!!!", "日本語", "a b"])
def test_odd_execution_names_become_valid_job_names(execution: str) -> None:
    name = job_name_for(execution)
    assert JOB_NAME.fullmatch(name) and len(name) <= 63 and name == job_name_for(execution)


def test_names_that_clean_up_alike_still_differ() -> None:
    assert job_name_for("run 1") != job_name_for("run_1")
    assert job_name_for("run 1").startswith("run-1-")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_any_execution_name_gives_a_valid_job_name_and_client_token(execution: str) -> None:
    name, token = job_name_for(execution), client_token_for(execution)
    assert JOB_NAME.fullmatch(name) and 1 <= len(name) <= 63
    assert CLIENT_TOKEN.fullmatch(token) and 1 <= len(token) <= 256


def test_the_client_token_is_stable_per_execution() -> None:
    first, again, other = (validate_input(event(), n)["client_token"] for n in ("run-1", "run-1", "run-2"))
    assert first == again != other


def test_an_empty_execution_name_is_a_problem() -> None:
    assert problems(event(), execution="") == ["the execution has no name to derive the job name from"]


# A hyperparameter search and an evaluation --------------------------------------------------------------

NOVA = "amazon.nova-micro-v1:0:128k"


def test_a_grid_becomes_one_trial_per_combination_each_named_apart() -> None:
    search = {"grid": {"learningRate": [0.00001, 0.00005], "epochCount": [1, 3]}, "max_parallel": 3}
    settings = validate_input(
        event(base_model=NOVA, hyperparameters={"learningRateWarmupSteps": 5}, search=search), "run-1"
    )
    trials = settings["trials"]
    assert [t["varied"] for t in trials] == [
        {"learningRate": "0.00001", "epochCount": "1"},
        {"learningRate": "0.00001", "epochCount": "3"},
        {"learningRate": "0.00005", "epochCount": "1"},
        {"learningRate": "0.00005", "epochCount": "3"},
    ]
    assert all(t["hyperparameters"]["learningRateWarmupSteps"] == "5" for t in trials)  # the input's own stays
    assert [t["epochs"] for t in trials] == [1, 3, 1, 3]
    assert [t["job_name"] for t in trials] == ["run-1-t1", "run-1-t2", "run-1-t3", "run-1-t4"]
    assert [t["custom_model_name"] for t in trials] == [f"support-bot-t{n}" for n in range(1, 5)]
    assert len({t["client_token"] for t in trials}) == 4 and all(
        CLIENT_TOKEN.fullmatch(t["client_token"]) for t in trials
    )
    assert settings["max_parallel"] == 3 and settings["keep"] == "best"
    assert settings["max_checks"] == 500  # the history's checks, shared


def test_listed_trials_and_long_names_stay_within_bedrocks_limits() -> None:
    trials = [{"learningRate": 0.00002}, {"learningRate": 0.00003, "epochCount": 4}]
    settings = validate_input(
        event(base_model=NOVA, custom_model_name="m" * 63, search={"trials": trials, "max_parallel": 9}), "r" * 80
    )
    assert [len(t["custom_model_name"]) for t in settings["trials"]] == [63, 63]
    assert all(JOB_NAME.fullmatch(t["job_name"]) and len(t["job_name"]) <= 63 for t in settings["trials"])
    assert settings["max_parallel"] == 2  # never more than there are trials


@pytest.mark.parametrize(
    ("search", "says"),
    [
        ({"grid": {"learningRate": [0.00001]}, "trials": [{}]}, "one of grid and trials"),
        ({}, "one of grid and trials"),
        ({"grid": {"learningRate": []}}, "search.grid must map each hyperparameter to a non-empty list"),
        ({"trials": []}, "search.trials must be a non-empty list"),
        ({"grid": {"learningRate": [0.001]}}, "search trial 1: hyperparameter learningRate is 0.001; Amazon Nova"),
        ({"grid": {"learningRat": [0.00001]}}, "did you mean 'learningRate'?"),
        ({"grid": {"epochCount": list(range(1, 6)), "learningRate": [1e-5, 2e-5, 3e-5, 4e-5, 5e-5]}}, "has 25 trials"),
        ({"trials": [{}], "max_parallel": 0}, "search.max_parallel must be a whole number from 1 to 40"),
        ({"trials": [{}], "keep": "winner"}, 'search.keep must be "best"'),
        ({"trials": [{}], "every": 1}, "unknown field search.'every'"),
        ("grid", "search must be"),
    ],
)
def test_a_malformed_search_is_refused_saying_what_is_wrong(search: Any, says: str) -> None:
    assert any(says in p for p in problems(event(base_model=NOVA, search=search))), problems(
        event(base_model=NOVA, search=search)
    )


def test_two_trials_with_the_same_hyperparameters_are_refused() -> None:
    found = problems(event(base_model=NOVA, search={"trials": [{"epochCount": 2}, {}]}))  # 2 is Nova's default
    assert found == ["search trials t1 and t2 have the same hyperparameters"]


def test_a_token_budget_must_be_a_positive_whole_number() -> None:
    assert validate_input(event(max_training_tokens=10**6), "run-1")["max_training_tokens"] == 10**6
    assert only_problem(event(max_training_tokens=0)).startswith("max_training_tokens must be a whole number")


def test_an_evaluation_needs_a_served_model_a_held_out_set_and_known_metrics() -> None:
    settings = validate_input(event(base_model=NOVA, deployment="on_demand", evaluation={}), "run-1")
    assert settings["evaluation"] == {
        "dataset": "validation",
        "metrics": ["exact_match", "token_f1", "rouge_l"],
        "max_prompts": 100,
        "promote_only_if_better": False,
    }
    assert "deployed" in only_problem(event(base_model=NOVA, evaluation={}))
    assert "validation_split is 0" in only_problem(
        event(base_model=NOVA, deployment="on_demand", validation_split=0, evaluation={})
    )
    assert "'bleu' is not one of exact_match, token_f1, rouge_l" in only_problem(
        event(base_model=NOVA, deployment="on_demand", evaluation={"metrics": ["bleu"]})
    )
    assert "max_prompts must be a whole number from 1 to 1000" in only_problem(
        event(base_model=NOVA, deployment="on_demand", evaluation={"max_prompts": 5000})
    )
    uri = {"source": "s3", "uri": "s3://bucket/eval.jsonl"}
    own = validate_input(
        event(base_model=NOVA, deployment="provisioned", validation_split=0, evaluation={"dataset": uri}), "r"
    )
    assert own["evaluation"]["dataset"] == uri


def test_promote_only_if_better_needs_an_evaluation_to_decide_by() -> None:
    assert (
        only_problem(event(promote_only_if_better=True)) == 'promote_only_if_better needs an "evaluation" to decide by'
    )
    settings = validate_input(
        event(base_model=NOVA, deployment="on_demand", evaluation={}, promote_only_if_better=True), "run-1"
    )
    assert settings["evaluation"]["promote_only_if_better"] is True


def test_a_judge_model_is_checked_and_its_metrics_are_built_in_ones() -> None:
    served = {"base_model": NOVA, "deployment": "on_demand"}
    settings = validate_input(event(**served, evaluation={"judge_model": "us.amazon.nova-pro-v1:0"}), "run-1")
    assert settings["evaluation"]["judge_model"] == "us.amazon.nova-pro-v1:0"
    assert settings["evaluation"]["judge_metrics"] == ["Builtin.Correctness", "Builtin.Completeness"]
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
    assert validate_input(event(**served, evaluation={"judge_model": arn}), "r")["evaluation"]["judge_model"] == arn
    assert "did you mean 'Builtin.Helpfulness'?" in only_problem(
        event(**served, evaluation={"judge_model": "amazon.nova-pro-v1:0", "judge_metrics": ["Builtin.Helpfulnes"]})
    )
    assert "judge_model must be a Bedrock model id" in only_problem(
        event(
            **served,
            evaluation={"judge_model": "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x"},
        )
    )
    assert only_problem(event(**served, evaluation={"judge_metrics": ["Builtin.Correctness"]})) == (
        "evaluation.judge_metrics needs evaluation.judge_model, the model that judges"
    )


def test_a_batch_names_its_prompts_file_and_gets_its_own_job_name() -> None:
    settings = validate_input(event(batch={"prompts": "s3://bucket/prompts.jsonl"}), "run-1")
    assert settings["batch"] == {
        "prompts": "s3://bucket/prompts.jsonl",
        "job_name": "run-1-batch",
        "client_token": client_token_for("run-1/batch"),
    }
    assert "batch.prompts must be an S3 object URI" in only_problem(event(batch={"prompts": "prompts.jsonl"}))
    assert "unknown field batch.'model'" in only_problem(event(batch={"prompts": "s3://bucket/p.jsonl", "model": "x"}))


def test_the_judges_and_the_batchs_job_loops_share_the_history_with_the_trials() -> None:
    served = {
        "base_model": NOVA,
        "deployment": "on_demand",
        "search": {"trials": [{"epochCount": 1}, {"epochCount": 2}]},
    }
    alone = validate_input(event(**served), "run-1")
    judged = validate_input(event(**served, evaluation={"judge_model": "us.amazon.nova-pro-v1:0"}), "run-1")
    both = validate_input(
        event(
            **served, evaluation={"judge_model": "us.amazon.nova-pro-v1:0"}, batch={"prompts": "s3://bucket/p.jsonl"}
        ),
        "run-1",
    )
    # 2,000 checks in all: two trials; then two judge jobs more; then the batch job too.
    assert [s["max_checks"] for s in (alone, judged, both)] == [1000, 500, 400]
