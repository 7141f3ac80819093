"""Automatic measures of generated reviews, for comparing runs per requested rating.

Each measure is a plain function over lists of texts, so it can be checked on hand-made inputs:
rating consistency (against the ratings reviewkit.evaluation.rating_classifier predicts), keyword coverage
(lemmatised) and distinct-1/2. Copying of training reviews is reviewkit.evaluation.copy_check.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from ..data.keywords import Lemmatizer, lemma_id

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


def rating_consistency(requested: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """(share predicted == requested, share within ±1)."""
    requested, predicted = np.asarray(requested), np.asarray(predicted)
    if not len(requested):
        return 0.0, 0.0
    return float((requested == predicted).mean()), float((np.abs(requested - predicted) <= 1).mean())
