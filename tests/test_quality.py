"""Automatic quality measures on hand-made inputs whose right answer is known."""

import numpy as np
import pytest

from reviewkit.quality import RatingClassifier, copied, distinct_n, keyword_coverage, rating_consistency


def test_distinct_n():
    assert distinct_n(["кофе кофе кофе"], 1) == pytest.approx(1 / 3)
    assert distinct_n(["вкусный кофе", "вкусный чай"], 2) == 1.0
    assert distinct_n(["вкусный кофе", "вкусный кофе"], 2) == 0.5
    assert distinct_n(["кофе"], 2) == 0.0


def test_keyword_coverage_is_lemmatised(lemmatizer):
    texts = ["Вкусные десерты и крепкий кофе", "Хороший сервис"]
    assert keyword_coverage([["десерт", "кофе"], ["парковка"]], texts, lemmatizer) == pytest.approx(2 / 3)
    assert keyword_coverage([[]], ["что угодно"], lemmatizer) == 0.0


def test_a_text_that_copies_a_training_review_counts_as_copied():
    training = ["Очень уютное кафе, вкусный кофе и свежие десерты, персонал вежливый и быстрый",
                "Ужасный сервис, ждали заказ час и ушли голодными"]
    generated = ["Очень уютное кафе, вкусный кофе и свежие десерты, персонал вежливый и быстрый!",
                 "Неплохой салон, мастер аккуратно подстригла, цены средние",
                 "Очень уютное кафе, но кофе холодный"]
    assert copied(generated, training).tolist() == [True, False, False]


def test_rating_classifier_learns_wording_and_consistency_counts_matches():
    good = ["отлично вкусно рекомендую", "прекрасно уютно отлично", "вкусно отлично прекрасно"] * 10
    bad = ["ужасно грязно никогда", "отвратительно грязно ужасно", "никогда ужасно отвратительно"] * 10
    classifier = RatingClassifier().fit(good + bad, [5] * len(good) + [1] * len(bad))
    assert classifier.predict(["отлично и вкусно", "грязно и ужасно"]).tolist() == [5, 1]
    assert rating_consistency([5, 4, 1, 2], np.array([5, 5, 3, 2])) == (0.5, 0.75)
