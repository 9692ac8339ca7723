"""Decision metrics on cases small enough to compute by hand."""

from __future__ import annotations

import random

import pytest

from training.eval.metrics import (
    TurnResult,
    best_thresholds,
    candidate_thresholds,
    confusion,
    confusions,
    metrics,
)


def _r(p: float, gold: bool, complied: bool | None = None) -> TurnResult:
    return TurnResult(conversation=0, message=0, p_speak=p, gold_speak=gold, complied=complied)


# 2 true speaks, 1 false interruption, 1 miss, 3 correct silences at threshold 0.5.
CASE = [
    _r(0.9, True, complied=True),
    _r(0.6, True),
    _r(0.7, False, complied=False),
    _r(0.2, True),
    _r(0.1, False),
    _r(0.4, False),
    _r(0.0, False),
]


def test_confusion_counts_at_threshold() -> None:
    c = confusion(CASE, 0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 3)
    # p_speak equal to the threshold speaks, as the runtimes decide.
    assert confusion([_r(0.5, True)], 0.5).tp == 1


def test_counted_confusions_match_one_pass_per_threshold() -> None:
    # Ties on the threshold, forced turns (gold either way), turns put to another person and
    # both rule settings: the counted sweep must decide every turn as TurnResult.spoke does.
    rng = random.Random(7)
    data = [
        TurnResult(
            conversation=0,
            message=i,
            p_speak=rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, rng.random()]),
            gold_speak=rng.random() < 0.3,
            forced=rng.random() < 0.1,
            to_other=rng.random() < 0.1,
        )
        for i in range(400)
    ]
    thresholds = [*candidate_thresholds(data), 0.25, 0.5, 0.75]
    for rules in (True, False):
        assert confusions(data, thresholds, rules) == [confusion(data, t, rules) for t in thresholds]


def test_metrics_match_hand_computation() -> None:
    m = metrics(CASE, 0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["false_interruption_rate"] == pytest.approx(1 / 4)
    assert m["missed_intervention_rate"] == pytest.approx(1 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert m["forced_compliance"] == pytest.approx(1 / 2)
    assert (m["turns"], m["speak_turns"], m["forced_turns"]) == (7, 3, 2)


def test_unequal_precision_and_recall() -> None:
    # At 0.15: speaks on 0.9, 0.6, 0.7, 0.2, 0.4 -> tp 3, fp 2, fn 0, tn 2.
    m = metrics(CASE, 0.15)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 * 0.6 / 1.6)
    assert m["false_interruption_rate"] == pytest.approx(2 / 4)


def test_never_speaking_scores_zero_not_undefined() -> None:
    m = metrics(CASE, 1.5)
    assert (m["precision"], m["recall"], m["f1"], m["false_interruption_rate"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["missed_intervention_rate"] == 1.0
    assert m["balanced_accuracy"] == pytest.approx(0.5)


def test_no_forced_turns_gives_none() -> None:
    assert metrics([_r(0.3, False)], 0.5)["forced_compliance"] is None


def test_balanced_accuracy_with_one_class_only() -> None:
    # All gold silent: balanced accuracy is the specificity alone.
    m = metrics([_r(0.9, False), _r(0.1, False)], 0.5)
    assert m["balanced_accuracy"] == pytest.approx(0.5)


def test_best_threshold_separates_classes() -> None:
    data = [_r(0.8, True), _r(0.7, True), _r(0.3, False), _r(0.1, False)]
    best, f1 = best_thresholds(data, 1.0)[0]
    assert f1 == 1.0
    assert best == pytest.approx(0.5)  # midpoint between 0.3 and 0.7
    assert candidate_thresholds(data)[0] == 0.0
    assert candidate_thresholds(data)[-1] > 1.0


def test_best_threshold_on_hand_case() -> None:
    # Candidates: speaking on {0.9, 0.7, 0.6} gives F1 2/3; adding 0.4 and 0.2 gives 3/4 (tp 3, fp 2).
    best, f1 = best_thresholds(CASE, 1.0)[0]
    assert f1 == pytest.approx(0.75)
    assert best == pytest.approx(0.15)


def test_best_threshold_within_a_false_interruption_cap() -> None:
    # At 0.15 two of the four silent turns are interrupted (50%). Allowing one (25%): speaking
    # on {0.9, 0.7, 0.6} is best, F1 2/3 at the midpoint 0.5; allowing none: only 0.9, F1 1/2.
    best, capped = best_thresholds(CASE, 0.25)
    assert best == pytest.approx((0.15, 0.75)) and capped == pytest.approx((0.5, 2 / 3))
    assert best_thresholds(CASE, 0.0)[1] == pytest.approx((0.8, 0.5))


def test_no_capped_threshold_when_forced_turns_alone_exceed_the_cap() -> None:
    forced_silent = TurnResult(conversation=0, message=0, p_speak=0.0, gold_speak=False, forced=True)
    best, capped = best_thresholds([forced_silent, _r(0.9, True)], 0.0)
    assert capped is None and best[1] == pytest.approx(2 / 3)
