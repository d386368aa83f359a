"""Base-model families: which model a job trains, and the limits its dataset is checked against."""

from __future__ import annotations

import pytest

from sluice.finetune.families import (
    CLAUDE_MESSAGES,
    CONTINUED_PRE_TRAINING,
    CONVERSE,
    FAMILIES,
    FINE_TUNING,
    PROMPT_COMPLETION,
    Family,
    family_for,
)


@pytest.mark.parametrize(
    ("base_model", "key", "fmt"),
    [
        ("amazon.titan-text-express-v1:0:8k", "titan-text-express", PROMPT_COMPLETION),
        ("amazon.titan-text-lite-v1:0:4k", "titan-text-lite", PROMPT_COMPLETION),
        ("amazon.titan-text-premier-v1:0:32k", "titan-text-premier", PROMPT_COMPLETION),
        ("cohere.command-text-v14:7:4k", "cohere-command", PROMPT_COMPLETION),
        ("cohere.command-light-text-v14:7:4k", "cohere-command-light", PROMPT_COMPLETION),
        ("meta.llama2-13b-v1:0:4k", "llama2", PROMPT_COMPLETION),
        ("meta.llama3-1-8b-instruct-v1:0:128k", "llama3.1", PROMPT_COMPLETION),
        ("meta.llama3-2-3b-instruct-v1:0:128k", "llama3.2", CONVERSE),
        ("meta.llama3-2-90b-instruct-v1:0:128k", "llama3.2-90b", CONVERSE),
        ("meta.llama3-3-70b-instruct-v1:0:128k", "llama3.3", CONVERSE),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "claude-3-haiku", CLAUDE_MESSAGES),
        ("amazon.nova-micro-v1:0:128k", "nova-micro", CONVERSE),
        ("amazon.nova-lite-v1:0:300k", "nova-lite", CONVERSE),
        ("amazon.nova-pro-v1:0:300k", "nova-pro", CONVERSE),
    ],
)
def test_each_documented_model_maps_to_its_family_and_format(base_model: str, key: str, fmt: str) -> None:
    family = family_for(base_model)
    assert family is not None and family.key == key and family.fine_tuning_format == fmt


def test_an_arn_is_matched_by_the_model_id_after_its_last_slash() -> None:
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1:0:8k"
    family = family_for(arn)
    assert family is not None and family.key == "titan-text-express"


def test_unknown_and_near_miss_models_have_no_family() -> None:
    assert family_for("amazon.titan-embed-text-v2:0") is None
    assert family_for("anthropic.claude-3-sonnet-20240229-v1:0") is None
    assert family_for("arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-7b-instruct-v0:2") is None
    assert family_for("") is None


def test_llama_3_2_90b_gets_its_own_lower_token_limit() -> None:
    small, large = family_for("meta.llama3-2-11b-instruct-v1:0"), family_for("meta.llama3-2-90b-instruct-v1:0")
    assert small is not None and large is not None
    assert (small.max_record_tokens, large.max_record_tokens) == (16_000, 10_000)


def test_only_titan_express_and_lite_allow_continued_pretraining_with_their_larger_quota() -> None:
    assert {f.key for f in FAMILIES if f.continued_pretraining} == {"titan-text-express", "titan-text-lite"}
    express = family_for("amazon.titan-text-express-v1")
    assert express is not None
    assert express.record_limit(FINE_TUNING) == 10_000
    assert express.record_limit(CONTINUED_PRE_TRAINING) == 100_000


def test_documented_record_and_token_limits() -> None:
    def family(model: str) -> tuple[int, int, int | None, int]:
        f = family_for(model)
        assert f is not None
        return f.min_records, f.max_records, f.max_validation_records, f.max_record_tokens

    assert family("anthropic.claude-3-haiku-20240307-v1:0") == (32, 10_000, 1_000, 32_000)
    assert family("meta.llama3-1-70b-instruct-v1:0") == (100, 10_000, None, 16_000)
    assert family("cohere.command-text-v14") == (1, 10_000, 1_000, 4_096 + 2_048)
    assert family("amazon.titan-text-premier-v1:0") == (1, 20_000, None, 4_096)
    assert family("amazon.nova-pro-v1:0") == (1, 10_000, None, 32_000)
    assert family("amazon.nova-lite-v1:0")[1] == 20_000


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_every_default_lies_in_its_range_and_epochs_are_tunable(family: Family) -> None:
    assert family.hyperparameter("epochCount") is not None
    for hp in family.hyperparameters:
        assert hp.minimum <= hp.maximum
        assert hp.default is not None and hp.minimum <= hp.default <= hp.maximum, hp.name
        assert not hp.integer or float(hp.default).is_integer(), hp.name
    assert family.min_records <= family.max_records


def test_claude_and_nova_hyperparameters_are_their_own() -> None:
    claude, nova = family_for("anthropic.claude-3-haiku"), family_for("amazon.nova-micro-v1:0")
    assert claude is not None and nova is not None
    assert [hp.name for hp in claude.hyperparameters] == [
        "epochCount",
        "batchSize",
        "learningRateMultiplier",
        "earlyStoppingThreshold",
        "earlyStoppingPatience",
    ]
    assert nova.hyperparameter("batchSize") is None and nova.hyperparameter("learningRateWarmupSteps") is not None
