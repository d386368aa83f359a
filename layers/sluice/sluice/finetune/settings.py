"""The fine-tune execution input, checked before any data is read.

A customization job runs for hours and is billed by the token, and Bedrock reports many mistakes
only once it has started. Everything that can be known from the input alone is therefore checked
first, every problem collected (one run tells the user all of them), and the result is a plain
JSON dict the state machine carries to every later state:

    {"base_model": "amazon.nova-micro-v1:0:128k", "custom_model_name": "support-bot",
     "dataset": {"source": "corpus", "prefix": "faq/", "filter": {"kinds": ["jsonl", "csv"]}},
     "hyperparameters": {"epochCount": 2}, "provisioned_throughput": {"model_units": 1}}

The base model is also checked with Bedrock, at run time, through a ``SupportLookup`` the
composition root wires to GetFoundationModel: a model Bedrock does not know in this Region, or
cannot customize the way asked, is a problem like the others (naming what to use instead); a LEGACY
model, or a check Bedrock would not answer (access denied), is a warning the settings carry to the
dataset report and the execution's output. The family table says how to build the data; Bedrock says
whether the model takes it today.

Names Bedrock needs to be idempotent (the job name and client token) are derived from the Step
Functions execution name, so a retried state sends the same request again.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sluice.finetune.families import (
    CONTINUED_PRE_TRAINING,
    FAMILIES,
    FINE_TUNING,
    Family,
    family_for,
    known_prefixes,
    listed_models,
)
from sluice.finetune.scoring import DEFAULT_METRICS, METRICS
from sluice.model import Kind

FIELDS = (
    "base_model",
    "custom_model_name",
    "customization_type",
    "dataset",
    "hyperparameters",
    "validation_split",
    "provisioned_throughput",
    "deployment",
    "tags",
    "poll_seconds",
    "retrain_when_changed",
    "search",
    "max_training_tokens",
    "evaluation",
    "promote_only_if_better",
    "batch",
)
MAX_NAME = 63
# Bedrock's job-name pattern. Custom model names must match both it and the service model's own
# CustomModelName pattern ([0-9a-zA-Z][_-]?){1,63}: letters and digits with single hyphens between.
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*")
_MODEL_NAME = re.compile(r"([0-9a-zA-Z][_-]?){1,63}")
_THROUGHPUT_NAME = re.compile(r"([0-9a-zA-Z][_-]?)+")
_TAG_TEXT = re.compile(r"[a-zA-Z0-9\s._:/=+@-]*")
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)", re.DOTALL)
MAX_TAGS = 50
DEFAULT_VALIDATION_SPLIT = 0.1
MAX_VALIDATION_SPLIT = 0.5
DEFAULT_POLL_SECONDS = 600
MAX_POLL_SECONDS = 3600
SHOWN_PROBLEMS = 20
# Job checks one execution makes before it stops following (the job goes on): each check costs about
# 11 history events, and a standard workflow holds 25,000.
MAX_CHECKS = 2000
KINDS = tuple(kind.value for kind in Kind)
# A search's trials share one execution's history: each is a job loop of its own.
MAX_TRIALS = 20
MAX_PARALLEL = 40  # an inline Map state runs at most 40 iterations at once
DEFAULT_PARALLEL = 2
KEEP = ("best", "all")
# Evaluation: the held-out prompts both models answer (Bedrock's evaluation jobs take at most 1,000).
DEFAULT_EVALUATION_PROMPTS = 100
MAX_EVALUATION_PROMPTS = 1000
# A judge model scores both models' answers in Bedrock evaluation jobs ("bring your own responses"):
# the built-in judge metrics, each scored 0 to 1, and which identifiers Bedrock takes for the judge
# (a model id, a system inference profile's id, or either's ARN; not an application profile).
JUDGE_METRICS = (
    "Builtin.Correctness",
    "Builtin.Completeness",
    "Builtin.Faithfulness",
    "Builtin.Helpfulness",
    "Builtin.Coherence",
    "Builtin.Relevance",
    "Builtin.FollowingInstructions",
    "Builtin.ProfessionalStyleAndTone",
)
DEFAULT_JUDGE_METRICS = ("Builtin.Correctness", "Builtin.Completeness")
_JUDGE_MODEL = re.compile(
    r"(arn:aws[a-z-]*:bedrock:[a-z0-9-]+:(\d{12})?:(foundation-model|inference-profile)/)?[a-z0-9.:-]{1,200}"
)
ON_DEMAND, PROVISIONED, NO_DEPLOYMENT = "on_demand", "provisioned", "none"
DEPLOYMENTS = (ON_DEMAND, PROVISIONED, NO_DEPLOYMENT)


class FineTuneInputError(ValueError):
    """The execution input is wrong; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        # The message becomes the execution's cause (at most 32,768 characters): bounded.
        lines = "\n".join(f"- {shorten(p)}" for p in self.problems[:SHOWN_PROBLEMS])
        more = f"\n(and {count - SHOWN_PROBLEMS} more)" if count > SHOWN_PROBLEMS else ""
        super().__init__(f"The fine-tune input has {count} problem{'' if count == 1 else 's'}:\n{lines}{more}")


@dataclass(frozen=True, slots=True)
class CustomizationSupport:
    """What Bedrock says of a base model, in the Region asked, at run time (GetFoundationModel)."""

    model_id: str
    region: str
    known: bool = True  # False: Bedrock knows no such foundation model there
    customizations: tuple[str, ...] = ()  # FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, ...
    lifecycle: str = ""  # ACTIVE or LEGACY
    end_of_life: str = ""  # YYYY-MM-DD, when Bedrock gives a LEGACY model's end
    skipped: str = ""  # why Bedrock could not be asked; nothing is refused then


# The port: a base-model identifier (id or ARN) -> what Bedrock says of it.
SupportLookup = Callable[[str], CustomizationSupport]
_DOING = {FINE_TUNING: "fine-tune", CONTINUED_PRE_TRAINING: "continue pre-training"}


def shorten(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def job_name_for(execution_name: str) -> str:
    """A valid, deterministic job name for the execution: its own name when that is one, else the
    name with disallowed characters replaced and a hash of the original appended, so two
    executions whose names clean up alike still get different jobs."""
    cleaned = re.sub(r"[^a-zA-Z0-9+.\-]+", "-", execution_name)
    cleaned = re.sub(r"^[^a-zA-Z0-9]+", "", cleaned)
    if cleaned == execution_name and len(cleaned) <= MAX_NAME:
        return cleaned
    digest = hashlib.sha256(execution_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: MAX_NAME - 9].rstrip('-') or 'finetune'}-{digest}"


def client_token_for(execution_name: str) -> str:
    """The job's idempotency token: the same execution always sends the same one."""
    return hashlib.sha256(f"sluice-finetune:{execution_name}".encode("utf-8", "surrogatepass")).hexdigest()


def parameter_text(value: float, integer: bool) -> str:
    """A hyperparameter as Bedrock's string map wants it: ``2``, ``0.00001`` (never ``1e-05``)."""
    if integer:
        return str(int(value))
    return format(Decimal(repr(float(value))).normalize(), "f")


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    number = _number(value) if not isinstance(value, str) else None
    return int(number) if number is not None and number.is_integer() else None


def hyperparameter_strings(values: Mapping[str, float], family: Family) -> tuple[dict[str, str], int]:
    """The job's hyperParameters map (the family's defaults for those not given) and its epochs."""
    strings = {}
    for hp in family.hyperparameters:
        value = values.get(hp.name, hp.default)
        if value is not None:
            strings[hp.name] = parameter_text(value, hp.integer)
    epoch_count = family.hyperparameter("epochCount")
    epochs = values.get("epochCount", epoch_count.default if epoch_count is not None else None)
    return strings, int(epochs or 1)


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Input:
    """Reads the execution input, collecting every problem instead of stopping at the first."""

    def __init__(self, event: Mapping[str, Any], families: Sequence[Family]) -> None:
        self.event = event
        self.families = families
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def unknown_fields(self, raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for name in raw:
            if name not in allowed:
                self.problems.append(
                    f"unknown field {where}{name!r}{_suggest(str(name), allowed)}; the fields are {', '.join(allowed)}"
                )

    def text(self, name: str) -> str | None:
        value = self.event.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            self.problems.append(f"{name} is required")
            return None
        if not isinstance(value, str):
            self.problems.append(f"{name} must be a string, not {value!r}")
            return None
        return value.strip()

    def family(self) -> tuple[str | None, Family | None]:
        base_model = self.text("base_model")
        if base_model is None:
            return None, None
        family = family_for(base_model, self.families)
        if family is None:
            self.problems.append(
                f"base_model {base_model!r} is not a model Sluice can fine-tune; known model id prefixes: "
                + ", ".join(known_prefixes(self.families))
            )
        return base_model, family

    def custom_model_name(self) -> str | None:
        name = self.text("custom_model_name")
        valid = name is None or (len(name) <= MAX_NAME and _MODEL_NAME.fullmatch(name))
        if not valid:
            self.problems.append(
                f"custom_model_name {name!r} must be 1 to {MAX_NAME} letters and digits, "
                "with single hyphens or underscores between them"
            )
        return name

    def customization_type(self, family: Family | None) -> str:
        raw = self.event.get("customization_type", FINE_TUNING)
        canonical = raw.strip().upper().replace("-", "_") if isinstance(raw, str) else None
        if canonical not in (FINE_TUNING, CONTINUED_PRE_TRAINING):
            self.problems.append(f"customization_type must be {FINE_TUNING} or {CONTINUED_PRE_TRAINING}, not {raw!r}")
            return FINE_TUNING
        if canonical == CONTINUED_PRE_TRAINING and family is not None and not family.continued_pretraining:
            able = ", ".join(f.label for f in self.families if f.continued_pretraining)
            instead = _instead(CONTINUED_PRE_TRAINING, "", self.families)
            self.problems.append(
                f"{family.label} does not support continued pre-training; these do: {able} "
                f"(legacy: AWS's current fine-tuning page lists none of them); {instead}"
            )
        return canonical

    def bedrock_says(
        self, base_model: str, family: Family, customization_type: str, lookup: SupportLookup
    ) -> dict[str, Any]:
        """What Bedrock says of the model now: a problem when it cannot be customized this way
        here, a warning when it is LEGACY or Bedrock would not answer. The answer, for the record."""
        support = lookup(base_model)
        checked: dict[str, Any] = {"model_id": support.model_id, "region": support.region}
        if support.skipped:
            self.warnings.append(
                f"{base_model} was not checked with Bedrock ({support.skipped}): "
                "the customization job will say whether it can be customized"
            )
            return checked | {"checked": False}
        checked |= {"checked": True, "customizations": list(support.customizations), "lifecycle": support.lifecycle}
        here = support.region or "this Region"
        if not support.known:
            self.problems.append(
                f"base_model {base_model!r} is not a foundation model Bedrock knows in {here}; "
                + _instead(customization_type, support.region, self.families, family, support.model_id)
            )
            return checked
        if customization_type not in support.customizations:
            offered = ", ".join(support.customizations) or "no customization"
            self.problems.append(
                f"Bedrock cannot {_DOING[customization_type]} {support.model_id} in {here} (it offers {offered} "
                "for it); " + _instead(customization_type, support.region, self.families, family, support.model_id)
            )
        if support.lifecycle == "LEGACY":
            end = f" (its end of life: {support.end_of_life})" if support.end_of_life else ""
            self.warnings.append(
                f"{support.model_id} is LEGACY in Bedrock{end}: move to a current model; "
                + _instead(customization_type, support.region, self.families)
            )
        return checked

    def dataset(self) -> dict[str, Any] | None:
        raw = self.event.get("dataset")
        usage = 'dataset is required: {"source": "corpus", "prefix": ...} or {"source": "s3", "uri": "s3://bucket/key"}'
        if raw is None:
            self.problems.append(usage)
            return None
        if not isinstance(raw, Mapping):
            self.problems.append(f"{usage}, not {raw!r}")
            return None
        source = raw.get("source")
        if source == "corpus":
            self.unknown_fields(raw, ("source", "prefix", "filter"), "dataset.")
            prefix = raw.get("prefix", "")
            if not isinstance(prefix, str):
                self.problems.append(f"dataset.prefix must be a string, not {prefix!r}")
                prefix = ""
            return {"source": "corpus", "prefix": prefix, "filter": self.corpus_filter(raw.get("filter"))}
        if source == "s3":
            self.unknown_fields(raw, ("source", "uri"), "dataset.")
            uri = raw.get("uri")
            match = _S3_URI.fullmatch(uri) if isinstance(uri, str) else None
            if match is None:
                self.problems.append(f"dataset.uri must be an S3 object URI (s3://bucket/key), not {uri!r}")
                return None
            return {"source": "s3", "uri": uri, "bucket": match.group(1), "key": match.group(2)}
        self.problems.append(f'dataset.source must be "corpus" or "s3", not {source!r}')
        return None

    def corpus_filter(self, raw: Any) -> dict[str, Any]:
        kinds: list[str] = []
        attributes: dict[str, str | float | bool] = {}
        if raw is None:
            return {"kinds": kinds, "attributes": attributes}
        if not isinstance(raw, Mapping):
            self.problems.append(f"dataset.filter must be an object with kinds and attributes, not {raw!r}")
            return {"kinds": kinds, "attributes": attributes}
        self.unknown_fields(raw, ("kinds", "attributes"), "dataset.filter.")
        raw_kinds = raw.get("kinds", [])
        if not isinstance(raw_kinds, list):
            self.problems.append(f"dataset.filter.kinds must be a list of document kinds, not {raw_kinds!r}")
            raw_kinds = []
        for kind in raw_kinds:
            name = kind.strip().lower() if isinstance(kind, str) else kind
            if name not in KINDS:
                self.problems.append(
                    f"dataset.filter.kinds: {kind!r} is not a document kind; the kinds are {', '.join(KINDS)}"
                )
            elif name not in kinds:
                kinds.append(name)
        raw_attributes = raw.get("attributes", {})
        if not isinstance(raw_attributes, Mapping):
            self.problems.append(f"dataset.filter.attributes must be an object, not {raw_attributes!r}")
            raw_attributes = {}
        for name, value in raw_attributes.items():
            if isinstance(value, bool | str):
                attributes[str(name)] = value
            elif (number := _number(value)) is not None:
                attributes[str(name)] = number  # document metadata holds every number as a float
            else:
                self.problems.append(
                    f"dataset.filter.attributes.{name} must be a string, number or boolean, not {value!r}"
                )
        return {"kinds": kinds, "attributes": attributes}

    def hyperparameters(self, family: Family) -> dict[str, float]:
        """The input's hyperparameters, each checked against the family's range (those it leaves
        out take the family's defaults later, in ``hyperparameter_strings``)."""
        raw = self.event.get("hyperparameters")
        return self.hyperparameter_values({} if raw is None else raw, family, "hyperparameter ")

    def hyperparameter_values(self, raw: Any, family: Family, where: str) -> dict[str, float]:
        if not isinstance(raw, Mapping):
            self.problems.append(f"{where.strip()}s must be an object, not {raw!r}")
            return {}
        allowed = [hp.name for hp in family.hyperparameters]
        values: dict[str, float] = {}
        for name, value in raw.items():
            hp = family.hyperparameter(str(name))
            if hp is None:
                self.problems.append(
                    f"{where}{name!r}{_suggest(str(name), allowed)} is not one of {family.label}'s: "
                    + ", ".join(allowed)
                )
                continue
            number = _number(value)
            if number is None:
                self.problems.append(f"{where}{name} must be a number, not {value!r}")
                continue
            if hp.integer and not number.is_integer():
                self.problems.append(f"{where}{name} must be a whole number, not {value!r}")
                continue
            if not hp.minimum <= number <= hp.maximum:
                given = parameter_text(number, hp.integer)
                low, high = parameter_text(hp.minimum, hp.integer), parameter_text(hp.maximum, hp.integer)
                self.problems.append(f"{where}{name} is {given}; {family.label} takes {low} to {high}")
                continue
            values[hp.name] = number
        return values

    def search(self, family: Family | None) -> tuple[list[dict[str, float]], int, str]:
        """The trials' hyperparameters (each overrides the input's own), at most how many run at
        once, and which custom models to keep. No search: one trial, the input's hyperparameters."""
        raw = self.event.get("search")
        if raw is None:
            return [{}], 1, "best"
        usage = 'search must be {"grid": {"learningRate": [...], ...}} or {"trials": [{...}, ...]}'
        if not isinstance(raw, Mapping):
            self.problems.append(f"{usage}, not {raw!r}")
            return [{}], 1, "best"
        self.unknown_fields(raw, ("grid", "trials", "max_parallel", "keep"), "search.")
        overrides: list[Any] = []
        if ("grid" in raw) == ("trials" in raw):
            self.problems.append(f"{usage}: one of grid and trials")
        elif "grid" in raw:
            grid = raw["grid"]
            if not isinstance(grid, Mapping) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
                self.problems.append(f"search.grid must map each hyperparameter to a non-empty list, not {grid!r}")
            else:
                overrides = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        elif not isinstance(raw["trials"], list) or not raw["trials"]:
            self.problems.append(
                f"search.trials must be a non-empty list of hyperparameter objects, not {raw['trials']!r}"
            )
        else:
            overrides = list(raw["trials"])
        if len(overrides) > MAX_TRIALS:
            self.problems.append(
                f"the search has {len(overrides)} trials; at most {MAX_TRIALS} run in one execution "
                "(each is a training job, billed in full): narrow the grid"
            )
            overrides = []
        trials = [
            self.hyperparameter_values(o, family, f"search trial {n}: hyperparameter ") if family is not None else {}
            for n, o in enumerate(overrides, 1)
        ]
        parallel = _whole(raw.get("max_parallel", DEFAULT_PARALLEL))
        if parallel is None or not 1 <= parallel <= MAX_PARALLEL:
            self.problems.append(
                f"search.max_parallel must be a whole number from 1 to {MAX_PARALLEL}, not {raw.get('max_parallel')!r}"
            )
            parallel = 1
        keep = raw.get("keep", "best")
        if keep not in KEEP:
            self.problems.append(
                f'search.keep must be "best" (the losing custom models are deleted: their storage is billed '
                f'monthly) or "all", not {keep!r}'
            )
            keep = "best"
        return trials or [{}], min(parallel, max(1, len(trials))), str(keep)

    def batch(self) -> str | None:
        """The prompts a batch inference job runs through the new model, when asked."""
        raw = self.event.get("batch")
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.problems.append(f'batch must be {{"prompts": "s3://bucket/prompts.jsonl"}}, not {raw!r}')
            return None
        self.unknown_fields(raw, ("prompts",), "batch.")
        uri = raw.get("prompts")
        if not (isinstance(uri, str) and _S3_URI.fullmatch(uri)):
            self.problems.append(f"batch.prompts must be an S3 object URI (s3://bucket/key.jsonl), not {uri!r}")
            return None
        return uri

    def max_training_tokens(self) -> int | None:
        raw = self.event.get("max_training_tokens")
        if raw is None:
            return None
        budget = _whole(raw)
        if budget is None or budget < 1:
            self.problems.append(f"max_training_tokens must be a whole number of tokens above 0, not {raw!r}")
            return None
        return budget

    def evaluation(self, deployment: str, validation_split: float) -> dict[str, Any] | None:
        """Which held-out prompts both models answer, how they are scored, and how many. Calling the
        custom model needs it served, so evaluation needs a deployment."""
        raw = self.event.get("evaluation")
        promote = self.event.get("promote_only_if_better", False)
        if not isinstance(promote, bool):
            self.problems.append(f"promote_only_if_better must be true or false, not {promote!r}")
        if raw is None:
            if promote is True:
                self.problems.append('promote_only_if_better needs an "evaluation" to decide by')
            return None
        if not isinstance(raw, Mapping):
            self.problems.append(
                'evaluation must be an object: {"dataset": "validation", "metrics": [...]}, not ' + repr(raw)
            )
            return None
        self.unknown_fields(raw, ("dataset", "metrics", "max_prompts", "judge_model", "judge_metrics"), "evaluation.")
        dataset: Any = raw.get("dataset", "validation")
        if dataset == "validation":
            if not validation_split:
                self.problems.append(
                    'evaluation.dataset "validation" asks the held-out validation records, but validation_split '
                    'is 0: set validation_split above 0, or name a file: {"source": "s3", "uri": "s3://..."}'
                )
        elif isinstance(dataset, Mapping) and dataset.get("source") == "s3":
            self.unknown_fields(dataset, ("source", "uri"), "evaluation.dataset.")
            uri = dataset.get("uri")
            if not (isinstance(uri, str) and _S3_URI.fullmatch(uri)):
                self.problems.append(f"evaluation.dataset.uri must be an S3 object URI (s3://bucket/key), not {uri!r}")
            dataset = {"source": "s3", "uri": uri}
        else:
            self.problems.append(
                f'evaluation.dataset must be "validation" or {{"source": "s3", "uri": "s3://..."}}, not {dataset!r}'
            )
        metrics = raw.get("metrics", list(DEFAULT_METRICS))
        if not isinstance(metrics, list) or not metrics:
            self.problems.append(
                f"evaluation.metrics must be a non-empty list of {', '.join(METRICS)}, not {metrics!r}"
            )
            metrics = list(DEFAULT_METRICS)
        for metric in metrics:
            if metric not in METRICS:
                self.problems.append(
                    f"evaluation.metrics: {metric!r}{_suggest(str(metric), list(METRICS))} is not one of "
                    + ", ".join(METRICS)
                )
        prompts = _whole(raw.get("max_prompts", DEFAULT_EVALUATION_PROMPTS))
        if prompts is None or not 1 <= prompts <= MAX_EVALUATION_PROMPTS:
            self.problems.append(
                f"evaluation.max_prompts must be a whole number from 1 to {MAX_EVALUATION_PROMPTS}, "
                f"not {raw.get('max_prompts')!r}"
            )
            prompts = DEFAULT_EVALUATION_PROMPTS
        if deployment == NO_DEPLOYMENT:
            self.problems.append(
                "evaluation calls the custom model, which Bedrock serves only once it is deployed: "
                f'set "deployment" to "{ON_DEMAND}" or "{PROVISIONED}"'
            )
        evaluation = {
            "dataset": dataset,
            "metrics": list(dict.fromkeys(m for m in metrics if m in METRICS)),
            "max_prompts": prompts,
            "promote_only_if_better": promote is True,
        }
        return evaluation | self.judge(raw)

    def judge(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The judge model and its metrics, when the evaluation asks for one."""
        model = raw.get("judge_model")
        if model is None:
            if "judge_metrics" in raw:
                self.problems.append("evaluation.judge_metrics needs evaluation.judge_model, the model that judges")
            return {}
        if not (isinstance(model, str) and _JUDGE_MODEL.fullmatch(model)):
            self.problems.append(
                "evaluation.judge_model must be a Bedrock model id or system inference profile (e.g. "
                f"us.amazon.nova-pro-v1:0), or its ARN, not {model!r}"
            )
        metrics = raw.get("judge_metrics", list(DEFAULT_JUDGE_METRICS))
        if not isinstance(metrics, list) or not metrics:
            self.problems.append(f"evaluation.judge_metrics must be a non-empty list, not {metrics!r}")
            metrics = list(DEFAULT_JUDGE_METRICS)
        for metric in metrics:
            if metric not in JUDGE_METRICS:
                self.problems.append(
                    f"evaluation.judge_metrics: {metric!r}{_suggest(str(metric), JUDGE_METRICS)} is not a built-in "
                    "judge metric: " + ", ".join(JUDGE_METRICS)
                )
        return {"judge_model": model, "judge_metrics": list(dict.fromkeys(m for m in metrics if m in JUDGE_METRICS))}

    def validation_split(self, family: Family | None) -> float:
        supported = family is None or family.supports_validation
        if "validation_split" not in self.event:
            return DEFAULT_VALIDATION_SPLIT if supported else 0.0
        raw = self.event["validation_split"]
        split = _number(raw) if not isinstance(raw, str) else None
        if split is None or not 0 <= split <= MAX_VALIDATION_SPLIT:
            self.problems.append(f"validation_split must be a number from 0 to {MAX_VALIDATION_SPLIT}, not {raw!r}")
            return 0.0
        if split and family is not None and not family.supports_validation:
            self.problems.append(f"{family.label} takes no validation data: validation_split must be 0")
        return split

    def throughput(self, custom_model_name: str | None, deployment: str) -> tuple[str, int] | None:
        raw = self.event.get("provisioned_throughput")
        if deployment != PROVISIONED or raw is False:  # false with "provisioned": refused already
            return None
        if raw is None or raw is True:
            raw = {}  # "deployment": "provisioned" alone: one model unit, the default name
        if not isinstance(raw, Mapping):
            self.problems.append(
                f"provisioned_throughput must be true or an object with model_units and name, not {raw!r}"
            )
            return None
        self.unknown_fields(raw, ("model_units", "name"), "provisioned_throughput.")
        units = _whole(raw.get("model_units", 1))
        if units is None or units < 1:
            self.problems.append(
                "provisioned_throughput.model_units must be a whole number of at least 1, "
                f"not {raw.get('model_units')!r}"
            )
        name = raw.get("name")
        if name is None:
            base = (custom_model_name or "custom-model")[: MAX_NAME - 3].rstrip("-_")
            name = f"{base}-pt"
        elif not (isinstance(name, str) and len(name) <= MAX_NAME and _THROUGHPUT_NAME.fullmatch(name)):
            self.problems.append(
                f"provisioned_throughput.name must be 1 to {MAX_NAME} letters and digits, "
                f"with single hyphens or underscores between them, not {name!r}"
            )
        return str(name), units or 1

    def deployment(self, family: Family | None, region: str) -> str:
        """How the new model is served: ``on_demand`` (a custom model deployment), ``provisioned``
        (provisioned throughput, as ``provisioned_throughput`` asks) or ``none``. Without the field,
        ``provisioned_throughput`` alone decides, as before it existed; the two must agree."""
        throughput = self.event.get("provisioned_throughput")
        wants_throughput = throughput is not None and throughput is not False
        implied = PROVISIONED if wants_throughput else NO_DEPLOYMENT
        raw = self.event.get("deployment")
        if raw is None:
            return implied
        choice = raw.strip().lower().replace("-", "_") if isinstance(raw, str) else None
        if choice not in DEPLOYMENTS:
            self.problems.append(f"deployment must be {', '.join(map(repr, DEPLOYMENTS))}, not {raw!r}")
            return implied
        if wants_throughput and choice != PROVISIONED:
            self.problems.append(
                f"deployment is {choice!r} but provisioned_throughput asks for provisioned throughput: "
                f'drop provisioned_throughput, or set deployment to "{PROVISIONED}"'
            )
        elif throughput is False and choice == PROVISIONED:
            self.problems.append('deployment is "provisioned" but provisioned_throughput is false: drop one of them')
        if choice == ON_DEMAND and family is not None:
            able = ", ".join(
                f"{f.label} ({', '.join(f.on_demand_regions)})" for f in self.families if f.on_demand_regions
            )
            if not family.on_demand_regions:
                self.problems.append(
                    f"{family.label} cannot be deployed on demand: AWS serves custom models on demand only for "
                    f'{able}; use "deployment": "{PROVISIONED}" (provisioned throughput) instead'
                )
            elif region and region not in family.on_demand_regions:
                self.problems.append(
                    f"a custom {family.label} is deployed on demand only in {', '.join(family.on_demand_regions)}, "
                    f'not {region}; use "deployment": "{PROVISIONED}" here'
                )
        return choice

    def tags(self) -> list[dict[str, str]]:
        raw = self.event.get("tags")
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            self.problems.append(f"tags must be an object of string keys and values, not {raw!r}")
            return []
        if len(raw) > MAX_TAGS:
            self.problems.append(f"tags holds {len(raw)} entries; the limit is {MAX_TAGS}")
        tags = []
        for key, value in raw.items():
            if not (isinstance(key, str) and 1 <= len(key) <= 128 and _TAG_TEXT.fullmatch(key)):
                self.problems.append(f"tag key {key!r} must be 1 to 128 letters, digits, spaces or . _ : / = + @ -")
            elif key.lower().startswith("aws:"):
                self.problems.append(f"tag key {key!r}: the aws: prefix is reserved for AWS")
            if not (isinstance(value, str) and len(value) <= 256 and _TAG_TEXT.fullmatch(value)):
                self.problems.append(
                    f"tag {key!r}: the value must be up to 256 letters, digits, spaces or . _ : / = + @ -"
                )
            tags.append({"Key": str(key), "Value": str(value)})
        return tags

    def poll_seconds(self) -> int:
        raw = self.event.get("poll_seconds", DEFAULT_POLL_SECONDS)
        seconds = _whole(raw)
        if seconds is None or not 1 <= seconds <= MAX_POLL_SECONDS:
            self.problems.append(f"poll_seconds must be a whole number from 1 to {MAX_POLL_SECONDS}, not {raw!r}")
            return DEFAULT_POLL_SECONDS
        return seconds

    def retrain_when_changed(self) -> float | None:
        if self.event.get("retrain_when_changed") is None:
            return None
        raw = self.event["retrain_when_changed"]
        share = _number(raw) if not isinstance(raw, str) else None
        if share is None or not 0 < share <= 1:
            self.problems.append(
                f"retrain_when_changed is the share of changed documents that triggers a new job: "
                f"a number above 0 and at most 1, not {raw!r}"
            )
            return None
        return share


def _instead(
    customization_type: str,
    region: str,
    families: Sequence[Family],
    family: Family | None = None,
    given: str = "",
) -> str:
    """What to use instead, from the family table: the customizable id of the same model when another
    id of it was given, else the models AWS's current fine-tuning page lists for the type (this
    Region's first), else fine-tuning."""
    if family is not None and family.listed and family.model_ids and given not in family.model_ids:
        where = f" ({', '.join(family.regions)})" if family.regions else ""
        return f"to customize {family.label}, name {' or '.join(family.model_ids)}{where}"
    listed = listed_models(customization_type, families)
    if not listed:
        fine_tuned = listed_models(FINE_TUNING, families)
        ids = fine_tuned.get(region) or next((ids for _, ids in sorted(fine_tuned.items())), [])
        return (
            f"no model AWS's current fine-tuning page lists takes {customization_type}: fine-tune instead "
            f"(customization_type {FINE_TUNING}, with prompt and answer pairs)" + (f", e.g. {ids[0]}" if ids else "")
        )
    if region in listed:
        return f"AWS's fine-tuning page lists these in {region}: {', '.join(listed[region])}"
    elsewhere = "; ".join(f"{', '.join(ids)} in {where}" for where, ids in sorted(listed.items()))
    return f"AWS's fine-tuning page lists {elsewhere}"


def validate_input(
    event: Mapping[str, Any],
    execution_name: str,
    *,
    families: Sequence[Family] = FAMILIES,
    support: SupportLookup | None = None,
) -> dict[str, Any]:
    """The settings every later state reads, or FineTuneInputError listing every problem.

    With ``support`` the base model is also checked with Bedrock (once the input names a model of a
    known family and a valid customization type): the settings then hold ``model_check`` (what
    Bedrock said) and ``warnings``. ``trials`` lists the jobs to run: one, or a search's."""
    if not isinstance(event, Mapping):
        raise FineTuneInputError([f"the input must be a JSON object, not {type(event).__name__}"])
    read = _Input(event, families)
    read.unknown_fields(event, FIELDS, "")
    if not execution_name:
        read.problems.append("the execution has no name to derive the job name from")
    base_model, family = read.family()
    custom_model_name = read.custom_model_name()
    problems_before = len(read.problems)
    customization_type = read.customization_type(family)
    type_ok = len(read.problems) == problems_before
    checked = None
    if support is not None and family is not None and base_model is not None and type_ok:
        checked = read.bedrock_says(base_model, family, customization_type, support)
    dataset = read.dataset()
    given = read.hyperparameters(family) if family is not None else {}
    overrides, max_parallel, keep = read.search(family)
    max_training_tokens = read.max_training_tokens()
    validation_split = read.validation_split(family)
    region = str(checked["region"]) if checked and checked.get("checked") else ""  # Bedrock's answer, or unknown
    deployment = read.deployment(family, region)
    throughput = read.throughput(custom_model_name, deployment)
    evaluation = read.evaluation(deployment, validation_split)
    batch = read.batch()
    tags = read.tags()
    poll_seconds = read.poll_seconds()
    retrain_when_changed = read.retrain_when_changed()
    if read.problems or family is None or base_model is None or custom_model_name is None or dataset is None:
        raise FineTuneInputError(read.problems)
    hyperparameters, epochs = hyperparameter_strings(given, family)
    settings: dict[str, Any] = {
        "base_model": base_model,
        "family": family.key,
        "family_label": family.label,
        "fine_tuning_format": family.fine_tuning_format,
        "custom_model_name": custom_model_name,
        "lineage": custom_model_name,  # scheduled retrains of one input compare against its own last model
        "customization_type": customization_type,
        "job_name": job_name_for(execution_name),
        "client_token": client_token_for(execution_name),
        "hyperparameters": hyperparameters,
        "epochs": epochs,
        "validation_split": validation_split,
        "dataset": dataset,
        "poll_seconds": poll_seconds,
        "tags": tags,
        "max_record_tokens": family.max_record_tokens,
        "min_records": family.min_records,
        "max_records": family.record_limit(customization_type),
        "max_validation_records": family.max_validation_records,
        "deployment": deployment,
    }
    # present only when asked for: the state machine tests IsPresent
    if throughput is not None:
        settings["throughput_name"], settings["model_units"] = throughput
        settings["throughput_client_token"] = client_token_for(f"{execution_name}/throughput")
    if deployment == ON_DEMAND:
        settings["deployment_name"] = f"{custom_model_name[: MAX_NAME - 3].rstrip('-_')}-od"
        settings["deployment_client_token"] = client_token_for(f"{execution_name}/deployment")
    if retrain_when_changed is not None:
        settings["retrain_when_changed"] = retrain_when_changed
        # A scheduled run makes a new model (and deployment) each time; Bedrock wants unique names.
        run = hashlib.sha256(execution_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        for name in ("custom_model_name", "throughput_name", "deployment_name"):
            if name in settings:
                settings[name] = f"{settings[name][:54].rstrip('-_')}-{run}"
    if max_training_tokens is not None:
        settings["max_training_tokens"] = max_training_tokens
    if evaluation is not None:
        settings["evaluation"] = evaluation
    if batch is not None:
        suffix = "-batch"
        settings["batch"] = {
            "prompts": batch,
            "job_name": f"{settings['job_name'][: MAX_NAME - len(suffix)].rstrip('-.+')}{suffix}",
            "client_token": client_token_for(f"{execution_name}/batch"),
        }
    settings["trials"] = trials_for(settings, overrides, given, family, execution_name)
    settings["max_parallel"] = max_parallel
    settings["keep"] = keep
    # A standard workflow holds 25,000 history events: every job loop shares the checks (each trial's,
    # the judge's two jobs', the batch job's), each followed for at most its share.
    loops = len(settings["trials"]) + (2 if evaluation and evaluation.get("judge_model") else 0) + (1 if batch else 0)
    settings["max_checks"] = max(1, MAX_CHECKS // loops)
    if checked is not None:
        settings["model_check"] = checked
        settings["warnings"] = read.warnings
    return settings


def trials_for(
    settings: Mapping[str, Any],
    overrides: Sequence[Mapping[str, float]],
    given: Mapping[str, float],
    family: Family,
    execution_name: str,
) -> list[dict[str, Any]]:
    """One job per trial: its hyperparameters (the input's, overridden by the trial's), and the names
    and idempotency token Bedrock needs. A single trial takes the execution's own names; a search's
    trial n takes ``-tn`` after them, so trials never collide and a retried state repeats its request."""
    trials = []
    for n, override in enumerate(overrides, 1):
        hyperparameters, epochs = hyperparameter_strings({**given, **override}, family)
        trial: dict[str, Any] = {
            "trial": f"t{n}",
            "hyperparameters": hyperparameters,
            "varied": {k: hyperparameters[k] for k in override if k in hyperparameters},
            "epochs": epochs,
            "job_name": settings["job_name"],
            "custom_model_name": settings["custom_model_name"],
            "client_token": settings["client_token"],
        }
        if len(overrides) > 1:
            suffix = f"-t{n}"
            trial["job_name"] = f"{settings['job_name'][: MAX_NAME - len(suffix)].rstrip('-.+')}{suffix}"
            trial["custom_model_name"] = (
                f"{settings['custom_model_name'][: MAX_NAME - len(suffix)].rstrip('-_')}{suffix}"
            )
            trial["client_token"] = client_token_for(f"{execution_name}/trial-{n}")
        trials.append(trial)
    seen: dict[str, str] = {}
    for trial in trials:
        key = json.dumps(trial["hyperparameters"], sort_keys=True)
        if key in seen:
            raise FineTuneInputError([f"search trials {seen[key]} and {trial['trial']} have the same hyperparameters"])
        seen[key] = trial["trial"]
    return trials
