"""Rating balance of the training split: 5-star reviews dominate the data, so the rare ratings get help.

Modes (`--balance`):
- none: the data as it is (the original experiments);
- oversample: each epoch draws len(train) examples with replacement, each rating with the same
  expected count (weights 1/count of the example's rating), a fresh draw per epoch
  (samplers.EpochWeightedSampler);
- weighted: every example is seen once per epoch, its loss weighted by the inverse frequency of its
  rating, capped at `weight_cap` and normalised to a mean of 1 over the split;
- downsample: at most `max_per_rating` random examples of each rating (default: the count of the
  rarest rating), fixed for the whole run.
Validation always keeps its natural distribution.
"""

from __future__ import annotations

import numpy as np

BALANCE_MODES = ("none", "oversample", "weighted", "downsample")


def rating_counts(ratings) -> dict[int, int]:
    values, counts = np.unique(np.asarray(ratings), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def oversample_weights(ratings) -> np.ndarray:
    """Sampling weight per example: 1 / (count of its rating), so every rating is drawn equally often."""
    _, inverse, counts = np.unique(np.asarray(ratings), return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def loss_weights(ratings, weight_cap: float) -> dict[int, float]:
    """Loss weight per rating: inverse frequency, capped at `weight_cap` times the most frequent rating's, mean 1."""
    counts = rating_counts(ratings)
    raw = {r: 1.0 / c for r, c in counts.items()}
    floor = min(raw.values())
    capped = {r: min(w, weight_cap * floor) for r, w in raw.items()}
    mean = sum(capped[r] * c for r, c in counts.items()) / sum(counts.values())
    return {r: w / mean for r, w in capped.items()}


def downsample_indices(ratings, max_per_rating: int | None, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most `max_per_rating` random rows of each rating."""
    ratings = np.asarray(ratings)
    counts = rating_counts(ratings)
    cap = max_per_rating or min(counts.values())
    rng = np.random.default_rng(seed)
    kept = [rng.choice(np.flatnonzero(ratings == r), size=min(c, cap), replace=False) for r, c in counts.items()]
    return np.sort(np.concatenate(kept))

