"""Scoring a custom model against its base model: both answer the held-out prompts, each answer is
scored against the prompt's reference answer, and the custom model is kept only if it did better.

The metrics are the usual ones for short generated answers, chosen because they need no model and
no package (this runs in a Lambda): exact match and token F1 as the SQuAD evaluation script defines
them, and ROUGE-L, which unlike F1 rewards tokens that come in the reference's order. All three read
the text through ``normalise`` so a capital, a full stop or an article does not count as a miss.

The decision is ``Comparison.custom_wins``: at least as good on every metric and better on one.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from math import fsum
from typing import Any

Metric = Callable[[str, str], float]  # (prediction, reference) -> a score in [0, 1]

ARTICLES = frozenset({"a", "an", "the"})
# The SQuAD script strips Python's string.punctuation, which also holds the ASCII symbols $+<=>^`|~;
# they are kept in the set so ASCII text scores as it does there.
_ASCII_PUNCTUATION = frozenset(string.punctuation)
# ROUGE-L's LCS takes time in the product of the two lengths: a runaway answer (a model that loops
# until its token limit) is scored on its first MAX_TOKENS normalised tokens, as is its reference,
# which bounds one comparison to about four million steps.
MAX_TOKENS = 2048
PLACES = 4  # a mean is reported, and compared, rounded to this many decimal places


def _punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P") or char in _ASCII_PUNCTUATION


def normalise(text: str) -> list[str]:
    """The tokens the metrics compare, by the SQuAD convention: lower-cased, punctuation removed
    (not replaced by a space: "don't" is "dont"), split on whitespace, and the articles a, an and
    the dropped.

    Unicode-aware where SQuAD is ASCII-minded: NFKC first, so composed and decomposed accents and
    full-width letters compare equal; ``casefold`` rather than ``lower`` ("Straße" is "strasse");
    punctuation is any character of a Unicode punctuation category (P*) as well as SQuAD's ASCII
    set; whitespace is any Unicode whitespace.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(char for char in folded if not _punctuation(char))
    return [token for token in kept.split() if token not in ARTICLES]


def _overlap_f1(common: int, predicted: int, expected: int) -> float:
    """The F-measure (beta 1) of ``common`` tokens shared by sequences of the two lengths: 2PR/(P+R),
    written as 2c/(m+n). Two empty answers agree (1.0); one empty answer shares nothing (0.0)."""
    if predicted == 0 or expected == 0:
        return float(predicted == expected)
    return 2 * common / (predicted + expected)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two normalise to the same tokens, else 0.0."""
    return float(normalise(prediction) == normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token-overlap F1: the tokens shared by the two, counted as multisets (a token the
    prediction repeats counts only as often as the reference has it), order ignored."""
    predicted, expected = normalise(prediction), normalise(reference)
    common = sum((Counter(predicted) & Counter(expected)).values())
    return _overlap_f1(common, len(predicted), len(expected))


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """The length of the longest common subsequence, by the dynamic programme over the two
    sequences kept one row at a time, the row as long as the shorter sequence."""
    longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
    previous = [0] * (len(shorter) + 1)
    for token in longer:
        current = [0]
        for j, other in enumerate(shorter, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L's F-measure (beta 1): the longest common subsequence of the two token sequences as a
    share of each (precision and recall), over the first MAX_TOKENS tokens of each side."""
    predicted, expected = normalise(prediction)[:MAX_TOKENS], normalise(reference)[:MAX_TOKENS]
    return _overlap_f1(_lcs_length(predicted, expected), len(predicted), len(expected))


METRICS: dict[str, Metric] = {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l}
DEFAULT_METRICS: tuple[str, ...] = ("exact_match", "token_f1", "rouge_l")


def _known(metrics: Sequence[str]) -> None:
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        named = f"unknown metric {', '.join(map(repr, unknown))}" if unknown else "no metric named"
        raise ValueError(f"{named}; the metrics are {', '.join(METRICS)}")


@dataclass(frozen=True, slots=True)
class Scores:
    """One model over one prompt set: each metric's mean over the answers, rounded to PLACES."""

    means: Mapping[str, float]
    count: int  # the answers scored

    def as_dict(self) -> dict[str, Any]:
        return {"means": dict(self.means), "count": self.count}


def score_answers(answers: Sequence[tuple[str, str]], metrics: Sequence[str] = DEFAULT_METRICS) -> Scores:
    """Scores ``(prediction, reference)`` pairs by each named metric. An empty set is refused: a
    mean of nothing would read as a score of 0 and decide a comparison on no evidence."""
    _known(metrics)
    if not answers:
        raise ValueError("no answers to score")
    means = {name: _mean(METRICS[name], answers) for name in metrics}
    return Scores(means=means, count=len(answers))


def _mean(metric: Metric, answers: Sequence[tuple[str, str]]) -> float:
    return round(fsum(metric(prediction, reference) for prediction, reference in answers) / len(answers), PLACES)


@dataclass(frozen=True, slots=True)
class MetricComparison:
    base: float
    custom: float
    delta: float  # custom - base, rounded to PLACES


@dataclass(frozen=True, slots=True)
class Comparison:
    metrics: Mapping[str, MetricComparison]  # in the order the metrics were named
    custom_wins: bool

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": {name: asdict(row) for name, row in self.metrics.items()}, "custom_wins": self.custom_wins}


def compare(base: Scores, custom: Scores, metrics: Sequence[str] = DEFAULT_METRICS) -> Comparison:
    """Each metric's means side by side, and the decision: the custom model wins when its mean is
    at least the base model's on every metric and strictly higher on at least one.

    A tie is not a win, so ``promote_only_if_better`` never promotes a model that changed nothing,
    and a gain on one metric never pays for a loss on another. The means are compared as rounded,
    so a difference too small to show in PLACES places is a tie. Any metric both sides were scored on
    may be compared (a judge model's too), not only those computed here.
    """
    if not metrics:
        raise ValueError("no metric named")
    missing = [name for name in metrics if name not in base.means or name not in custom.means]
    if missing:
        raise ValueError(f"metric {', '.join(map(repr, missing))} was not scored for both models")
    rows = {
        name: MetricComparison(
            base.means[name], custom.means[name], round(custom.means[name] - base.means[name], PLACES)
        )
        for name in metrics
    }
    wins = all(row.delta >= 0 for row in rows.values()) and any(row.delta > 0 for row in rows.values())
    return Comparison(metrics=rows, custom_wins=wins)


def table(comparison: Comparison) -> str:
    """The comparison as text, a header and one line per metric, for a log or a terminal."""
    width = max([len("metric"), *map(len, comparison.metrics)])
    number = PLACES + 2  # "0.1234"
    lines = [f"{'metric':<{width}}  {'base':<{number}}  {'custom':<{number}}  delta"]
    lines += [
        f"{name:<{width}}  {row.base:.{PLACES}f}  {row.custom:.{PLACES}f}  {row.delta:+.{PLACES}f}"
        for name, row in comparison.metrics.items()
    ]
    return "\n".join(lines)
