"""Realism of generated reviews: how well a classifier tells them from real reviews of the same prompts.

The measure is a cross-validated ROC AUC: a TF-IDF (word 1-2-grams and char_wb 2-5-grams) +
logistic regression classifier is trained on generated (label 1) against real (label 0) reviews
with stratified k-fold cross-validation, and the AUC is computed from the out-of-fold decision
scores. 0.5: the classifier cannot tell them apart; 1.0: every generated review is recognised.
Its 95% interval is a percentile bootstrap of those scores, each class resampled on its own.
The interval covers the sampling of the texts, not the variation of refitting the classifier.

At a few hundred reviews even two samples of real reviews do not give exactly 0.5, so each AUC
comes with a control: the same classifier on two disjoint halves of the real reviews, of the same
size as the generated side where the real reviews allow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import bootstrap, rankdata
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import FeatureUnion, make_pipeline

FOLDS = 5
MIN_PER_SIDE = 2 * FOLDS  # every test fold then holds at least two texts of each side
RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class AucEstimate:
    """A cross-validated ROC AUC with its bootstrap interval; `size`: texts on each side."""

    auc: float
    low: float
    high: float
    size: int


@dataclass(frozen=True)
class Realism:
    """Generated against real reviews, and the real-against-real control; None with a reason when not measured."""

    generated: AucEstimate | None
    control: AucEstimate | None
    reason: str = ""

    def as_measures(self) -> dict[str, float]:
        """The measured values under the names evaluate.py logs (`realism_auc`, `realism_control_auc_low`, ...)."""
        measures = {}
        for prefix, estimate in (("realism", self.generated), ("realism_control", self.control)):
            if estimate is not None:
                measures.update({f"{prefix}_auc": estimate.auc, f"{prefix}_auc_low": estimate.low,
                                 f"{prefix}_auc_high": estimate.high, f"{prefix}_n": estimate.size})
        return measures


def discriminator(seed: int = 0):
    """TF-IDF of word 1-2-grams and char_wb 2-5-grams, then logistic regression."""
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])
    return make_pipeline(features, LogisticRegression(max_iter=2000, random_state=seed))


def auc_from_ranks(positive: np.ndarray, negative: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC AUC as the Mann-Whitney U of the positive scores over n_pos * n_neg (ties count half)."""
    ranks = rankdata(np.concatenate([positive, negative], axis=axis), axis=axis)
    n_pos, n_neg = positive.shape[axis], negative.shape[axis]
    rank_sum = np.take(ranks, np.arange(n_pos), axis=axis).sum(axis=axis)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auc_interval(positive: Sequence[float], negative: Sequence[float], seed: int = 0,
                 resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC; each class is resampled on its own, so both stay present."""
    result = bootstrap((np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)), auc_from_ranks,
                       n_resamples=resamples, confidence_level=confidence, method="percentile", vectorized=True,
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def separability(first: Sequence[str], second: Sequence[str], seed: int = 0, folds: int = FOLDS,
                 resamples: int = RESAMPLES) -> AucEstimate:
    """Cross-validated AUC of telling `first` (positive) from `second`, with its bootstrap interval."""
    texts = [*first, *second]
    labels = np.r_[np.ones(len(first), dtype=int), np.zeros(len(second), dtype=int)]
    folds_split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(discriminator(seed), texts, labels, cv=folds_split, method="decision_function")
    low, high = auc_interval(scores[labels == 1], scores[labels == 0], seed, resamples)
    return AucEstimate(float(roc_auc_score(labels, scores)), low, high, min(len(first), len(second)))


def measure_realism(generated: Sequence[str], real: Sequence[str], real_pool: Sequence[str],
                    seed: int = 0) -> Realism:
    """`generated` against `real` (the reviews their prompts came from); the control splits `real_pool`.

    Each control half has len(generated) reviews, or half of `real_pool` when it is smaller.
    A side under MIN_PER_SIDE texts is not measured; the reason says why.
    """
    reasons = []  # why the AUC or its control is missing
    estimate = control = None
    if min(len(generated), len(real)) < MIN_PER_SIDE:
        reasons.append(f"not measured: {len(generated)} generated against {len(real)} real reviews, "
                       f"{MIN_PER_SIDE} of each needed for {FOLDS}-fold cross-validation")
    else:
        estimate, reason = _guarded(separability, generated, real, seed)
        reasons += [f"not measured: {reason}"] if reason else []
    half = min(len(generated), len(real_pool) // 2)
    if half < MIN_PER_SIDE:
        reasons.append(f"control not measured: {len(real_pool)} real reviews give halves of {half}, "
                       f"{MIN_PER_SIDE} needed")
    else:
        order = np.random.default_rng(seed).permutation(len(real_pool))
        halves = [[real_pool[i] for i in order[:half]], [real_pool[i] for i in order[half:2 * half]]]
        control, reason = _guarded(separability, *halves, seed)
        reasons += [f"control not measured: {reason}"] if reason else []
    return Realism(estimate, control, "; ".join(reasons))


def _guarded(measure, first, second, seed) -> tuple[AucEstimate | None, str]:
    try:
        return measure(first, second, seed), ""
    except ValueError as exc:  # e.g. no word or character at all on both sides: an empty vocabulary
        return None, f"classifier could not be fitted ({str(exc).splitlines()[0]})"


def realism_by_rating(ratings: Sequence[int], generated: Sequence[str], real: Sequence[str],
                      pool_ratings: Sequence[int], pool_texts: Sequence[str], seed: int = 0) -> dict[str, Realism]:
    """{rating: Realism} per requested rating and "all".

    generated[i] was generated for the prompt of real[i], of rating ratings[i]; the control of a
    rating splits the pool's reviews of that rating, the control of "all" the whole pool.
    """
    if not len(ratings) == len(generated) == len(real) or len(pool_ratings) != len(pool_texts):
        raise ValueError("ratings, generated and real reviews (and pool ratings and texts) must have equal lengths")
    ratings, pool_ratings = np.asarray(ratings), np.asarray(pool_ratings)
    groups = {str(rating): (ratings == rating, pool_ratings == rating) for rating in sorted(set(ratings.tolist()))}
    groups["all"] = (np.ones(len(ratings), dtype=bool), np.ones(len(pool_ratings), dtype=bool))
    return {name: measure_realism([t for t, m in zip(generated, chosen) if m], [t for t, m in zip(real, chosen) if m],
                                  [t for t, m in zip(pool_texts, in_pool) if m], seed)
            for name, (chosen, in_pool) in groups.items()}
