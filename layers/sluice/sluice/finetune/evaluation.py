"""The custom model against its base model, on prompts neither was trained on.

Each held-out record's conversation, up to its last assistant turn, is the prompt; that turn is the
reference. Both models answer every prompt (through ``Ask``, the composition root's Converse call),
each answer is scored against the reference (``sluice.finetune.scoring``), and a prompt either model
could not answer is left out for both (the two sides are always scored on the same prompts), named
in ``failures``. A model that answers none is an EvaluationError: there is nothing to compare.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.finetune.dataset import Example, Record
from sluice.finetune.scoring import METRICS, Comparison, compare, score_answers

# (model identifier, system prompt or None, the conversation so far: (role, text) turns) -> the answer
Ask = Callable[[str, str | None, Sequence[tuple[str, str]]], str]
CALLS_AT_ONCE = 4  # Converse calls in flight: well under any account's on-demand request quota
SHOWN_FAILURES = 5


class EvaluationError(RuntimeError):
    """Nothing could be compared: no prompts, or no prompt answered by both models."""


@dataclass(frozen=True, slots=True)
class Prompt:
    source: str
    system: str | None
    turns: tuple[tuple[str, str], ...]  # ends with the user's turn
    reference: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    comparison: Comparison
    answered: list[dict[str, Any]]  # per prompt: the prompt, the reference, both answers, both scores
    failures: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "prompts": len(self.answered),
            "failed_prompts": len(self.failures),
            "failures": self.failures[:SHOWN_FAILURES],
            **self.comparison.as_dict(),
        }


def held_out(records: Sequence[Record], limit: int) -> list[Prompt]:
    """The prompts of the first ``limit`` conversations (records without one are skipped)."""
    prompts = []
    for record in records:
        if isinstance(record, Example) and record.turns and record.turns[-1][0] == "assistant":
            *turns, (_, reference) = record.turns
            prompts.append(Prompt(record.source, record.system, tuple(turns), reference))
        if len(prompts) == limit:
            break
    return prompts


def evaluate(prompts: Sequence[Prompt], ask: Ask, base: str, custom: str, metrics: Sequence[str]) -> Evaluation:
    """Both models' answers to every prompt, scored; raises EvaluationError when none can be compared."""
    if not prompts:
        raise EvaluationError("the evaluation dataset holds no conversation to take a prompt from")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; the metrics are {', '.join(METRICS)}")

    def both(prompt: Prompt) -> tuple[str, str]:
        return ask(base, prompt.system, prompt.turns), ask(custom, prompt.system, prompt.turns)

    answered: list[dict[str, Any]] = []
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(CALLS_AT_ONCE) as pool:
        futures = [pool.submit(both, prompt) for prompt in prompts]
        for prompt, future in zip(prompts, futures, strict=True):
            try:
                base_answer, custom_answer = future.result()
            except Exception as exc:  # noqa: BLE001 - one prompt's failure is recorded, not fatal
                failures.append(f"{prompt.source}: {type(exc).__name__}: {exc}"[:500])
                continue
            answered.append(
                {
                    "source": prompt.source,
                    "prompt": prompt.turns[-1][1],
                    "reference": prompt.reference,
                    "base": base_answer,
                    "custom": custom_answer,
                }
            )
    if not answered:
        raise EvaluationError(f"no prompt was answered by both models; the first failures: {failures[:SHOWN_FAILURES]}")
    base_scores = score_answers([(a["base"], a["reference"]) for a in answered], metrics)
    custom_scores = score_answers([(a["custom"], a["reference"]) for a in answered], metrics)
    for row in answered:
        row["scores"] = {
            side: {m: round(METRICS[m](row[side], row["reference"]), 4) for m in metrics} for side in ("base", "custom")
        }
    return Evaluation(compare(base_scores, custom_scores, metrics), answered, failures)
