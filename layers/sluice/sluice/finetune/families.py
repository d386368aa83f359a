"""The base models Bedrock can customize, grouped by family: the JSONL format each expects, its
hyperparameters and its dataset limits.

Limits are checked here, before a job starts, because Bedrock checks them only once the job is
running, after a wait of many minutes. The figures come from the Bedrock user guide (the prepare-data
page, the per-family hyperparameter pages and the quota table). Where
a figure is not documented the value chosen is the one that refuses rather than lets a job fail
late, and the comment beside it says so. Record counts are adjustable quotas: an account with a
raised quota needs a raised figure here too.

Whether a model can be customized, and how, is not decided here: the workflow asks Bedrock at run
time (GetFoundationModel). What this table adds is where to turn instead: the model ids and Regions
AWS's current fine-tuning page lists ("Customize a model with fine-tuning in Amazon Bedrock",
section "Supported models and Regions for fine-tuning"; docs/finetune.md keeps the copy). Families
only the older page lists ("Supported models and Regions for fine-tuning and continued
pre-training": Titan Text G1, Cohere Command, Llama 2) are ``listed=False``: still accepted, never
suggested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FINE_TUNING = "FINE_TUNING"
CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"

PROMPT_COMPLETION = "prompt_completion"
CLAUDE_MESSAGES = "claude_messages"
CONVERSE = "converse"


@dataclass(frozen=True, slots=True)
class HyperParameter:
    name: str  # the API name, as Bedrock's hyperParameters map spells it
    minimum: float
    maximum: float
    default: float | None
    integer: bool


@dataclass(frozen=True, slots=True)
class Family:
    key: str
    label: str
    prefixes: tuple[str, ...]  # base-model id prefixes, e.g. "amazon.titan-text-express"
    fine_tuning_format: str  # PROMPT_COMPLETION | CLAUDE_MESSAGES | CONVERSE
    hyperparameters: tuple[HyperParameter, ...]
    max_records: int  # train + validation, for fine-tuning
    max_record_tokens: int  # input + output tokens of one record
    # No minimum record count is documented for Titan, Cohere or Nova (Nova recommends 100 or more
    # per task, without a hard floor): 1 lets Bedrock decide.
    min_records: int = 1
    max_validation_records: int | None = None
    continued_pretraining: bool = False
    supports_validation: bool = True
    max_pretraining_records: int | None = None  # train + validation, for continued pre-training
    # On AWS's current fine-tuning page: the base-model ids it names for a customization job and the
    # Regions it lists them in (single-region support). Empty where the page was not read in full.
    listed: bool = True
    model_ids: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    # Where AWS serves a custom model of this family on demand (a custom model deployment, for models
    # customized on or after 2025-07-16): the Bedrock user guide page "Deploy a custom model for
    # on-demand inference" (deploy-custom-model-on-demand) lists Nova Micro, Lite, Pro and 2 Lite in
    # us-east-1 and Llama 3.3 70B in us-west-2. Empty: provisioned throughput only.
    on_demand_regions: tuple[str, ...] = ()

    def hyperparameter(self, name: str) -> HyperParameter | None:
        return next((hp for hp in self.hyperparameters if hp.name == name), None)

    def record_limit(self, customization_type: str) -> int:
        """The most records (train + validation) a job of this type takes."""
        if customization_type == CONTINUED_PRE_TRAINING and self.max_pretraining_records is not None:
            return self.max_pretraining_records
        return self.max_records


def _hp(name: str, minimum: float, maximum: float, default: float | None, integer: bool = False) -> HyperParameter:
    return HyperParameter(name, minimum, maximum, default, integer)


_TITAN = (
    _hp("epochCount", 1, 10, 5, integer=True),
    _hp("batchSize", 1, 64, 1, integer=True),
    _hp("learningRate", 0.0, 1, 0.00001),
    _hp("learningRateWarmupSteps", 0, 250, 5, integer=True),
)
_TITAN_PREMIER = (
    _hp("epochCount", 1, 5, 2, integer=True),
    _hp("batchSize", 1, 1, 1, integer=True),
    _hp("learningRate", 0.0000001, 0.00001, 0.000001),
    _hp("learningRateWarmupSteps", 0, 20, 5, integer=True),
)


def _cohere(max_batch: int) -> tuple[HyperParameter, ...]:
    # From the Bedrock user guide page cm-hp-cohere-command.html.
    return (
        _hp("epochCount", 1, 100, 1, integer=True),
        _hp("batchSize", 8, max_batch, 8, integer=True),
        _hp("learningRate", 0.000005, 0.1, 0.00001),
        _hp("earlyStoppingThreshold", 0, 0.1, 0.01),
        _hp("earlyStoppingPatience", 1, 10, 6, integer=True),
        _hp("evalPercentage", 5, 50, 20),
    )


_LLAMA = (
    _hp("epochCount", 1, 10, 5, integer=True),
    _hp("batchSize", 1, 1, 1, integer=True),
    _hp("learningRate", 0.000005, 0.1, 0.0001),
)
# earlyStoppingEnabled is UNVERIFIED as a key, so it is left out: an unknown name is refused rather
# than sent to a job that might reject it.
_CLAUDE = (
    _hp("epochCount", 1, 10, 2, integer=True),
    _hp("batchSize", 4, 256, 32, integer=True),
    _hp("learningRateMultiplier", 0.1, 2, 1),
    _hp("earlyStoppingThreshold", 0, 0.1, 0.001),
    _hp("earlyStoppingPatience", 1, 10, 2, integer=True),
)
_NOVA = (
    _hp("epochCount", 1, 5, 2, integer=True),
    _hp("learningRate", 0.000001, 0.0001, 0.00001),
    _hp("learningRateWarmupSteps", 0, 100, 10, integer=True),
)
_NOVA_RECORD_TOKENS = 32_000  # UNVERIFIED: no per-record figure found for Nova; Claude's is used.

FAMILIES: tuple[Family, ...] = (
    # Titan's token limit falls with the batch size (Express: 2,048 at batch 2-4; Lite: 2,048 at
    # batch 3-6); the batch-1 figure is checked.
    Family(
        key="titan-text-express",
        label="Amazon Titan Text G1 - Express",
        prefixes=("amazon.titan-text-express",),
        fine_tuning_format=PROMPT_COMPLETION,
        continued_pretraining=True,
        hyperparameters=_TITAN,
        max_records=10_000,
        max_record_tokens=4_096,
        max_pretraining_records=100_000,
        listed=False,
    ),
    Family(
        key="titan-text-lite",
        label="Amazon Titan Text G1 - Lite",
        prefixes=("amazon.titan-text-lite",),
        fine_tuning_format=PROMPT_COMPLETION,
        continued_pretraining=True,
        hyperparameters=_TITAN,
        max_records=10_000,
        max_record_tokens=4_096,
        max_pretraining_records=100_000,
        listed=False,
    ),
    Family(
        key="titan-text-premier",
        label="Amazon Titan Text Premier",
        prefixes=("amazon.titan-text-premier",),
        fine_tuning_format=PROMPT_COMPLETION,
        hyperparameters=_TITAN_PREMIER,
        max_records=20_000,
        max_record_tokens=4_096,
        listed=False,
    ),
    # Cohere: training at most 10,000 records and validation at most 1,000; no quota for their sum
    # is listed, so the sum is held to 10,000. Tokens: 4,096 in + 2,048 out.
    Family(
        key="cohere-command",
        label="Cohere Command",
        prefixes=("cohere.command-text",),
        fine_tuning_format=PROMPT_COMPLETION,
        hyperparameters=_cohere(max_batch=8),
        max_records=10_000,
        max_validation_records=1_000,
        max_record_tokens=6_144,
        listed=False,
    ),
    Family(
        key="cohere-command-light",
        label="Cohere Command Light",
        prefixes=("cohere.command-light-text",),
        fine_tuning_format=PROMPT_COMPLETION,
        hyperparameters=_cohere(max_batch=32),
        max_records=10_000,
        max_validation_records=1_000,
        max_record_tokens=6_144,
        listed=False,
    ),
    # Llama 2: the 100-10,000 record range is documented for Llama 3.x and assumed here. No token
    # figure is documented; the customizable variants have a 4k context (meta.llama2-13b-v1:0:4k),
    # so 4,096 rather than Llama 3's 16,000 (UNVERIFIED).
    Family(
        key="llama2",
        label="Meta Llama 2",
        prefixes=("meta.llama2",),
        fine_tuning_format=PROMPT_COMPLETION,
        hyperparameters=_LLAMA,
        min_records=100,
        max_records=10_000,
        max_record_tokens=4_096,
        listed=False,
    ),
    Family(
        key="llama3.1",
        label="Meta Llama 3.1",
        prefixes=("meta.llama3-1",),
        fine_tuning_format=PROMPT_COMPLETION,
        hyperparameters=_LLAMA,
        min_records=100,
        max_records=10_000,
        max_record_tokens=16_000,
        model_ids=("meta.llama3-1-8b-instruct-v1:0:128k", "meta.llama3-1-70b-instruct-v1:0:128k"),
        regions=("us-west-2",),
    ),
    Family(
        key="llama3.2",
        label="Meta Llama 3.2",
        prefixes=("meta.llama3-2",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_LLAMA,
        min_records=100,
        max_records=10_000,
        max_record_tokens=16_000,
        model_ids=(
            "meta.llama3-2-1b-instruct-v1:0:128k",
            "meta.llama3-2-3b-instruct-v1:0:128k",
            "meta.llama3-2-11b-instruct-v1:0:128k",
        ),
        regions=("us-west-2",),
    ),
    # The longest matching prefix wins, so the 90B model gets its own, lower token limit. (The model
    # ids of Llama 3.2 90B and 3.3 were cut off the copy of the page read: none named here.)
    Family(
        key="llama3.2-90b",
        label="Meta Llama 3.2 90B",
        prefixes=("meta.llama3-2-90b",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_LLAMA,
        min_records=100,
        max_records=10_000,
        max_record_tokens=10_000,
        regions=("us-west-2",),
    ),
    # Llama 3.3's hyperparameters are not on the Llama pages (2, 3.1, 3.2); 3.2's are assumed
    # (UNVERIFIED).
    Family(
        key="llama3.3",
        label="Meta Llama 3.3",
        prefixes=("meta.llama3-3",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_LLAMA,
        min_records=100,
        max_records=10_000,
        max_record_tokens=16_000,
        regions=("us-west-2",),
        on_demand_regions=("us-west-2",),  # Llama 3.3 70B, the only 3.3 Bedrock customizes
    ),
    Family(
        key="claude-3-haiku",
        label="Anthropic Claude 3 Haiku",
        prefixes=("anthropic.claude-3-haiku",),
        fine_tuning_format=CLAUDE_MESSAGES,
        hyperparameters=_CLAUDE,
        min_records=32,
        max_records=10_000,
        max_validation_records=1_000,
        max_record_tokens=32_000,
        model_ids=("anthropic.claude-3-haiku-20240307-v1:0:200k",),
        regions=("us-west-2",),
    ),
    Family(
        key="nova-micro",
        label="Amazon Nova Micro",
        prefixes=("amazon.nova-micro",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_NOVA,
        max_records=20_000,
        max_record_tokens=_NOVA_RECORD_TOKENS,
        model_ids=("amazon.nova-micro-v1:0:128k",),
        regions=("us-east-1",),
        on_demand_regions=("us-east-1",),
    ),
    Family(
        key="nova-lite",
        label="Amazon Nova Lite",
        prefixes=("amazon.nova-lite",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_NOVA,
        max_records=20_000,
        max_record_tokens=_NOVA_RECORD_TOKENS,
        model_ids=("amazon.nova-lite-v1:0:300k",),
        regions=("us-east-1",),
        on_demand_regions=("us-east-1",),
    ),
    Family(
        key="nova-pro",
        label="Amazon Nova Pro",
        prefixes=("amazon.nova-pro",),
        fine_tuning_format=CONVERSE,
        hyperparameters=_NOVA,
        max_records=10_000,
        max_record_tokens=_NOVA_RECORD_TOKENS,
        model_ids=("amazon.nova-pro-v1:0:300k",),
        regions=("us-east-1",),
        on_demand_regions=("us-east-1",),
    ),
)


def model_id(base_model: str) -> str:
    """The model id in a base-model identifier: an id is itself; a foundation-model ARN
    (``arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1:0:8k``) ends with it."""
    return base_model.strip().rsplit("/", 1)[-1]


def family_for(base_model: str, families: Sequence[Family] = FAMILIES) -> Family | None:
    """The family of a base model (id or ARN), by the longest matching id prefix; None if unknown."""
    identifier = model_id(base_model)
    matches = [(len(p), f) for f in families for p in f.prefixes if identifier.startswith(p)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def known_prefixes(families: Sequence[Family] = FAMILIES) -> list[str]:
    return [p for f in families for p in f.prefixes]


def supports(family: Family, customization_type: str) -> bool:
    """Whether the family's format handles the type (Bedrock says, at run time, whether the model does)."""
    return customization_type == FINE_TUNING or (
        customization_type == CONTINUED_PRE_TRAINING and family.continued_pretraining
    )


def listed_models(customization_type: str, families: Sequence[Family] = FAMILIES) -> dict[str, list[str]]:
    """The model ids AWS's current fine-tuning page lists for ``customization_type`` among the
    families Sluice knows, by the Region it lists them in."""
    by_region: dict[str, list[str]] = {}
    for family in families:
        if family.listed and supports(family, customization_type):
            for region in family.regions:
                by_region.setdefault(region, []).extend(family.model_ids)
    return {region: ids for region, ids in by_region.items() if ids}
