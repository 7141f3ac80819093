"""Automatic measures of generated reviews, for comparing runs per requested rating.

Each measure is a plain function over lists of texts, so it can be checked on hand-made inputs:
rating consistency (a TF-IDF + logistic regression rating classifier trained on real reviews),
keyword coverage (lemmatised), distinct-1/2, copying of training reviews (cosine similarity of
word-trigram counts), and length.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import normalize

from .keywords import Lemmatizer, lemma_id

COPY_SIMILARITY = 0.8
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (word level); 0 when there are none."""
    grams = Counter(tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def keyword_coverage(keywords: Sequence[Sequence[str]], texts: Sequence[str], lemmatizer: Lemmatizer) -> float:
    """Share of prompt keywords (lemmas) found among the lemmas of their generated review."""
    found = total = 0
    for wanted, text in zip(keywords, texts):
        present = set(lemmatizer.content_lemma_ids(text))
        found += sum(lemma_id(k) in present for k in wanted)
        total += len(wanted)
    return found / total if total else 0.0


def copied(texts: Sequence[str], training_texts: Sequence[str], threshold: float = COPY_SIMILARITY) -> np.ndarray:
    """Per text: True if some training review shares word trigrams with cosine similarity >= threshold."""
    vectorizer = HashingVectorizer(analyzer="word", ngram_range=(3, 3), norm=None, alternate_sign=False,
                                   n_features=2**22)
    generated = normalize(vectorizer.transform(texts))
    result = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(training_texts), 50_000):
        train = normalize(vectorizer.transform(training_texts[start:start + 50_000]))
        similarity = (generated @ train.T).max(axis=1).toarray().ravel() if train.shape[0] else 0
        result |= similarity >= threshold
    return result


class RatingClassifier:
    """Predicts a review's rating from its text: TF-IDF of words and bigrams + logistic regression."""

    def __init__(self, seed: int = 0):
        self._model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
            LogisticRegression(max_iter=2000, random_state=seed),
        )

    def fit(self, texts: Sequence[str], ratings: Sequence[int]) -> "RatingClassifier":
        self._model.fit(list(texts), list(ratings))
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.predict(list(texts))


def rating_consistency(requested: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """(share predicted == requested, share within ±1)."""
    requested, predicted = np.asarray(requested), np.asarray(predicted)
    if not len(requested):
        return 0.0, 0.0
    return float((requested == predicted).mean()), float((np.abs(requested - predicted) <= 1).mean())
