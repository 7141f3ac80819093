"""Seeded train/validation/test split grouped by organization.

sklearn's GroupShuffleSplit sizes a split by its number of groups; a few organizations with
thousands of reviews then push the row fractions far from the requested ones. Here groups are
shuffled with the seed and whole groups fill test, then validation, up to the requested share
of rows; the rest is train.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

SPLITS = ("train", "validation", "test")


def organization_keys(names: Sequence[str], addresses: Sequence[str]) -> list[str]:
    """One key per organization; a row with neither name nor address is its own organization."""
    return [
        f"{name}\x1f{address}" if name or address else f"\x00row{i}"
        for i, (name, address) in enumerate(zip(names, addresses))
    ]


def grouped_split(groups: Sequence[str], validation_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Return, per row, 0 (train), 1 (validation) or 2 (test); rows of a group share one split."""
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise ValueError("validation and test fractions must be >= 0 and sum to less than 1")
    unique, inverse, sizes = np.unique(np.asarray(groups, dtype=object), return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    filled = np.cumsum(sizes[order])
    n_rows = len(groups)
    test_end = np.searchsorted(filled, test_fraction * n_rows, side="left") + (test_fraction > 0)
    validation_end = np.searchsorted(filled, (test_fraction + validation_fraction) * n_rows, side="left") + (
        validation_fraction > 0
    )
    validation_end = max(validation_end, test_end)
    split_of_group = np.zeros(len(unique), dtype=np.int8)
    split_of_group[order[:test_end]] = 2
    split_of_group[order[test_end:validation_end]] = 1
    return split_of_group[inverse.reshape(-1)]


def rating_distribution(ratings: Sequence[int]) -> dict[str, float]:
    counts = Counter(int(r) for r in ratings)
    total = sum(counts.values())
    return {str(r): round(counts[r] / total, 4) if total else 0.0 for r in range(1, 6)}
