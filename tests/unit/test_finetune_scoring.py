"""Scoring a custom model against its base model: the metrics worked by hand, the means, and the
decision that a custom model is kept only when it is better."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.finetune.scoring import (
    DEFAULT_METRICS,
    MAX_TOKENS,
    METRICS,
    Scores,
    compare,
    exact_match,
    normalise,
    rouge_l,
    score_answers,
    table,
    token_f1,
)

# Text that normalises to something: words, articles, case, punctuation and spacing to strip.
WORDS = st.sampled_from(["the", "A", "an", "cat", "Cat.", "sat", "on", "mat", "dog!", "“Straße”", "strasse", "1,000"])
PHRASES = st.lists(WORDS, max_size=12).map(" ".join)
TEXTS = st.one_of(st.text(max_size=60), PHRASES)


# -- normalise -------------------------------------------------------------------------------------


def test_normalise_lowercases_strips_punctuation_and_drops_articles() -> None:
    assert normalise("The Cat, sat on a mat!") == ["cat", "sat", "on", "mat"]
    assert normalise("An  answer\tthere\n") == ["answer", "there"]  # "there" is not "the"


def test_normalise_removes_punctuation_without_splitting_on_it() -> None:
    assert normalise("don't stop: well-known $5+3") == ["dont", "stop", "wellknown", "53"]


def test_normalise_is_unicode_aware() -> None:
    assert normalise("«STRASSE» — Straße¡") == ["strasse", "strasse"]  # casefold; P* categories
    assert normalise("Cafe\u0301 ＡＢＣ") == normalise("Café abc")  # NFKC: decomposed, full-width
    assert normalise("the\u3000end。") == ["end"]  # ideographic space and full stop


def test_normalise_of_nothing_but_articles_and_punctuation_is_empty() -> None:
    assert normalise("") == normalise("  ... the, a; an! ") == []


# -- the metrics, by hand --------------------------------------------------------------------------


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower", "The Eiffel Tower in Paris") == 0.0
    assert exact_match("tower eiffel", "eiffel tower") == 0.0  # order matters


def test_exact_match_of_empty_answers() -> None:
    assert exact_match("", "the") == 1.0  # both normalise to nothing
    assert exact_match("", "Paris") == exact_match("Paris", "") == 0.0


def test_token_f1_by_hand() -> None:
    # prediction [eiffel, tower, paris], reference [eiffel, tower]: P 2/3, R 1, F1 2PR/(P+R) = 0.8
    assert token_f1("The Eiffel Tower, Paris", "eiffel tower") == pytest.approx(0.8)
    assert token_f1("london", "paris") == 0.0
    assert token_f1("tower eiffel", "Eiffel Tower") == 1.0  # order does not matter


def test_token_f1_counts_repeated_tokens_as_a_multiset() -> None:
    # prediction [paris, paris, paris], reference [paris, france]: one shared; P 1/3, R 1/2, F1 0.4
    assert token_f1("Paris Paris Paris", "Paris, France") == pytest.approx(0.4)
    # shared twice: P 2/3, R 2/2, F1 0.8
    assert token_f1("paris paris london", "paris paris") == pytest.approx(0.8)


def test_token_f1_of_empty_answers() -> None:
    assert token_f1("", "") == token_f1("!", "an") == 1.0
    assert token_f1("", "paris") == token_f1("paris", "the") == 0.0


def test_rouge_l_by_a_known_lcs() -> None:
    # [police, killed, gunman] and [police, kill, gunman]: LCS [police, gunman] = 2; P 2/3, R 2/3
    assert rouge_l("police killed the gunman", "police kill the gunman") == pytest.approx(2 / 3)
    # prediction [x, y, z, w, v], reference [y, x, w, z, v]: LCS length 3 (x w v); F 2*3/(5+5) = 0.6
    assert rouge_l("x y z w v", "y x w z v") == pytest.approx(0.6)


def test_rouge_l_rewards_order_where_f1_does_not() -> None:
    assert token_f1("gunman killed police", "police killed gunman") == 1.0
    assert rouge_l("gunman killed police", "police killed gunman") == pytest.approx(1 / 3)


def test_rouge_l_of_empty_answers() -> None:
    assert rouge_l("", "the") == 1.0
    assert rouge_l("", "paris") == rouge_l("paris", "") == 0.0


def test_rouge_l_scores_only_the_first_max_tokens_of_each_side() -> None:
    reference = "w " * MAX_TOKENS
    assert rouge_l(reference + "runaway tail", reference) == 1.0
    assert token_f1(reference + "runaway tail", reference) < 1.0


def test_the_metrics_are_named_and_the_default_is_all_three_in_order() -> None:
    assert list(METRICS.items()) == [("exact_match", exact_match), ("token_f1", token_f1), ("rouge_l", rouge_l)]
    assert DEFAULT_METRICS == ("exact_match", "token_f1", "rouge_l")


# -- score_answers ---------------------------------------------------------------------------------


def test_score_answers_averages_each_metric_over_the_answers() -> None:
    answers = [
        ("The Eiffel Tower.", "Eiffel Tower"),  # EM 1, F1 1, ROUGE-L 1
        ("Eiffel Tower, Paris", "Eiffel Tower"),  # EM 0, F1 0.8, ROUGE-L 0.8
        ("London", "Paris"),  # 0, 0, 0
    ]
    scores = score_answers(answers, DEFAULT_METRICS)
    assert scores == Scores(means={"exact_match": 0.3333, "token_f1": 0.6, "rouge_l": 0.6}, count=3)


def test_score_answers_scores_only_the_named_metrics_in_their_order() -> None:
    scores = score_answers([("a b", "a b c")], ["rouge_l", "exact_match"])
    assert list(scores.means) == ["rouge_l", "exact_match"]
    assert scores.as_dict() == {"means": {"rouge_l": 0.6667, "exact_match": 0.0}, "count": 1}


def test_an_unknown_metric_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown metric 'bleu'; the metrics are exact_match, token_f1, rouge_l"):
        score_answers([("a", "a")], ["token_f1", "bleu"])
    with pytest.raises(ValueError, match="no metric named; the metrics are exact_match"):
        score_answers([("a", "a")], [])
    with pytest.raises(ValueError, match="metric 'BLEU' was not scored for both models"):
        compare(Scores({}, 1), Scores({}, 1), ["BLEU"])
    judged = compare(
        Scores({"judge:Correctness": 0.5}, 1), Scores({"judge:Correctness": 0.75}, 1), ["judge:Correctness"]
    )
    assert judged.custom_wins  # a metric computed elsewhere (a judge's) compares as well


def test_an_empty_prompt_set_is_refused() -> None:
    with pytest.raises(ValueError, match="no answers to score"):
        score_answers([], DEFAULT_METRICS)


# -- compare ---------------------------------------------------------------------------------------

BASE = Scores(means={"exact_match": 0.1, "token_f1": 0.5, "rouge_l": 0.45}, count=10)


def test_a_custom_model_better_on_one_metric_and_as_good_on_the_rest_wins() -> None:
    custom = Scores(means={"exact_match": 0.4, "token_f1": 0.5, "rouge_l": 0.4512}, count=10)
    comparison = compare(BASE, custom, DEFAULT_METRICS)
    assert comparison.custom_wins
    assert comparison.as_dict() == {
        "metrics": {
            "exact_match": {"base": 0.1, "custom": 0.4, "delta": 0.3},
            "token_f1": {"base": 0.5, "custom": 0.5, "delta": 0.0},
            "rouge_l": {"base": 0.45, "custom": 0.4512, "delta": 0.0012},
        },
        "custom_wins": True,
    }
    assert json.loads(json.dumps(comparison.as_dict())) == comparison.as_dict()


def test_a_custom_model_worse_on_any_metric_does_not_win() -> None:
    custom = Scores(means={"exact_match": 0.9, "token_f1": 0.9, "rouge_l": 0.4499}, count=10)
    comparison = compare(BASE, custom, DEFAULT_METRICS)
    assert not comparison.custom_wins
    assert comparison.metrics["rouge_l"].delta == -0.0001


def test_a_custom_model_worse_everywhere_loses_and_the_base_would_win_the_other_way() -> None:
    custom = Scores(means={"exact_match": 0.0, "token_f1": 0.3, "rouge_l": 0.2}, count=10)
    assert not compare(BASE, custom, DEFAULT_METRICS).custom_wins
    assert compare(custom, BASE, DEFAULT_METRICS).custom_wins


def test_a_tie_is_not_a_win() -> None:
    comparison = compare(BASE, BASE, DEFAULT_METRICS)
    assert not comparison.custom_wins
    assert {row.delta for row in comparison.metrics.values()} == {0.0}


def test_compare_reads_only_the_named_metrics() -> None:
    custom = Scores(means={"exact_match": 0.0, "token_f1": 0.6, "rouge_l": 0.45}, count=10)
    assert compare(BASE, custom, ["token_f1"]).custom_wins
    assert not compare(BASE, custom, DEFAULT_METRICS).custom_wins


def test_compare_refuses_a_metric_one_model_was_not_scored_on() -> None:
    with pytest.raises(ValueError, match="metric 'rouge_l' was not scored for both models"):
        compare(BASE, Scores(means={"exact_match": 0.2, "token_f1": 0.6}, count=10), DEFAULT_METRICS)


def test_table_has_a_header_and_one_line_per_metric() -> None:
    custom = Scores(means={"exact_match": 0.4, "token_f1": 0.45, "rouge_l": 0.45}, count=10)
    assert table(compare(BASE, custom, DEFAULT_METRICS)) == (
        "metric       base    custom  delta\n"
        "exact_match  0.1000  0.4000  +0.3000\n"
        "token_f1     0.5000  0.4500  -0.0500\n"
        "rouge_l      0.4500  0.4500  +0.0000"
    )


# -- properties ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEFAULT_METRICS)
@given(prediction=TEXTS, reference=TEXTS)
def test_every_metric_is_between_0_and_1(name: str, prediction: str, reference: str) -> None:
    assert 0.0 <= METRICS[name](prediction, reference) <= 1.0


@given(prediction=TEXTS, reference=TEXTS)
def test_token_f1_and_rouge_l_are_symmetric(prediction: str, reference: str) -> None:
    assert token_f1(prediction, reference) == token_f1(reference, prediction)
    assert rouge_l(prediction, reference) == rouge_l(reference, prediction)


@given(text=TEXTS)
def test_identical_text_scores_1_on_every_metric(text: str) -> None:
    # Text that normalises to no token is covered too: two empty answers agree.
    assert all(metric(text, text) == 1.0 for metric in METRICS.values())


@given(prediction=TEXTS, reference=TEXTS)
def test_exact_match_is_at_most_rouge_l_which_is_at_most_token_f1(prediction: str, reference: str) -> None:
    # A common subsequence is a common multiset, so below MAX_TOKENS ROUGE-L never beats F1.
    assert exact_match(prediction, reference) <= rouge_l(prediction, reference) <= token_f1(prediction, reference)
