"""Realism (reviewkit.evaluation.realism) on synthetic texts whose answer is known: told apart, not told apart, too few."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from reviewkit.evaluation import realism
from reviewkit.evaluation.realism import (MIN_PER_SIDE, auc_from_ranks, auc_interval, measure_realism,
                                          realism_by_rating, separability)

CAFE = "кафе кофе десерт вкусно уютно персонал быстро цены место зал музыка официант заказ меню чай суп".split()
COMPLAINT = "ужасно грязно долго хамство очередь никогда плохо холодно грубо обман".split()


def texts(count: int, vocabulary: list[str], seed: int) -> list[str]:
    """`count` texts of 12 words drawn from `vocabulary`: two calls with one vocabulary share a distribution."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(vocabulary, 12)) for _ in range(count)]


def test_auc_from_ranks_is_roc_auc_with_ties_and_along_an_axis():
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 6, size=(3, 40)), rng.integers(0, 5, size=(3, 55))  # many ties
    for row in range(3):
        labels = np.r_[np.ones(40), np.zeros(55)]
        expected = roc_auc_score(labels, np.r_[positive[row], negative[row]])
        assert auc_from_ranks(positive, negative, axis=-1)[row] == pytest.approx(expected)
    assert auc_from_ranks(positive.T, negative.T, axis=0) == pytest.approx(auc_from_ranks(positive, negative))


def test_bootstrap_interval_holds_the_auc_narrows_with_more_scores_and_is_seeded():
    rng = np.random.default_rng(1)
    small = rng.normal(0.8, 1, 30), rng.normal(0, 1, 30)
    large = rng.normal(0.8, 1, 600), rng.normal(0, 1, 600)
    low, high = auc_interval(*small, seed=3)
    assert low < auc_from_ranks(*small) < high
    large_low, large_high = auc_interval(*large, seed=3)
    assert large_low < auc_from_ranks(*large) < large_high
    assert large_high - large_low < (high - low) / 2  # about 1/sqrt(20) of it
    assert auc_interval(*small, seed=3) == (low, high)
    assert auc_interval([2.0, 3.0, 4.0] * 5, [0.0, 1.0] * 6) == (1.0, 1.0)  # always separated: no spread


def test_texts_of_different_wording_are_told_apart():
    estimate = separability(texts(60, COMPLAINT, 1), texts(60, CAFE, 2))
    assert estimate.auc > 0.95 and estimate.low > 0.9 and estimate.size == 60


def test_texts_of_one_distribution_are_not_told_apart_out_of_fold():
    estimate = separability(texts(100, CAFE, 1), texts(100, CAFE, 2))
    assert 0.3 < estimate.auc < 0.65  # in-sample scores of this classifier would give about 1.0
    assert estimate.low < estimate.auc < estimate.high


def test_control_splits_the_pool_into_disjoint_halves_sized_like_the_generated_side(monkeypatch):
    calls = []
    monkeypatch.setattr(realism, "separability", lambda first, second, seed: calls.append((first, second)))
    pool = [f"отзыв {i}" for i in range(100)]
    measure_realism(texts(30, CAFE, 1), texts(30, CAFE, 2), pool)
    control_first, control_second = calls[1]
    assert len(control_first) == len(control_second) == 30 and not set(control_first) & set(control_second)
    calls.clear()
    measure_realism(texts(80, CAFE, 1), texts(80, CAFE, 2), pool)  # the pool allows halves of 50 only
    assert [len(side) for side in calls[1]] == [50, 50] and not set(calls[1][0]) & set(calls[1][1])


def test_a_rating_with_too_few_prompts_is_not_measured_and_says_why():
    ratings = [5] * 40 + [2] * 4
    generated = texts(40, CAFE, 1) + texts(4, COMPLAINT, 2)
    real = texts(40, CAFE, 3) + texts(4, COMPLAINT, 4)
    pool_ratings = [5] * 90 + [2] * 12
    pool = texts(90, CAFE, 5) + texts(12, COMPLAINT, 6)
    result = realism_by_rating(ratings, generated, real, pool_ratings, pool, seed=0)
    assert list(result) == ["2", "5", "all"]
    assert result["2"].generated is None and result["2"].control is None and result["2"].as_measures() == {}
    assert f"not measured: 4 generated against 4 real reviews, {MIN_PER_SIDE} of each needed" in result["2"].reason
    assert "control not measured: 12 real reviews give halves of 4" in result["2"].reason
    measured = result["5"].as_measures()
    assert result["5"].reason == "" and measured["realism_n"] == 40 and measured["realism_control_n"] == 40
    assert set(measured) == {f"{prefix}_{name}" for prefix in ("realism", "realism_control")
                             for name in ("auc", "auc_low", "auc_high", "n")}
    assert result["all"].generated.size == 44 and result["all"].control.size == 44
    assert realism_by_rating(ratings, generated, real, pool_ratings, pool, seed=0) == result  # seeded


def test_texts_without_any_word_are_not_measured_instead_of_failing():
    blank = ["", " ", "  "] * 5
    result = measure_realism(blank, blank, blank * 2)
    assert result.generated is None and result.control is None
    assert result.reason.startswith("not measured: classifier could not be fitted (empty vocabulary")
    assert "control not measured: classifier could not be fitted" in result.reason


def test_unequal_inputs_are_an_error():
    with pytest.raises(ValueError, match="equal lengths"):
        realism_by_rating([5, 5], ["a"], ["b", "c"], [5], ["d"])
