"""Shares of correct reviews and the difference between two models' shares.

The share of one model: a 95% Wilson score interval. The difference of two shares: Newcombe's
hybrid score interval (method 10 of Newcombe 1998, "Interval estimation for the difference between
independent proportions", Statistics in Medicine 17:873–890), built from the two Wilson intervals.
The test of "no difference": McNemar's exact test when the marks are paired (both models wrote a
review for the same prompts), otherwise Fisher's exact test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy.stats import binomtest, fisher_exact

MCNEMAR = "McNemar's exact test"
FISHER = "Fisher's exact test"


def wilson_interval(correct: int, marked: int, confidence: float = 0.95) -> tuple[float, float]:
    interval = binomtest(correct, marked).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def newcombe_interval(correct_a: int, marked_a: int, correct_b: int, marked_b: int,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Interval of share_a − share_b by Newcombe's hybrid score method (no continuity correction)."""
    share_a, share_b = correct_a / marked_a, correct_b / marked_b
    low_a, high_a = wilson_interval(correct_a, marked_a, confidence)
    low_b, high_b = wilson_interval(correct_b, marked_b, confidence)
    difference = share_a - share_b
    return (difference - math.hypot(share_a - low_a, high_b - share_b),
            difference + math.hypot(high_a - share_a, share_b - low_b))


def mcnemar_exact_p(only_a_correct: int, only_b_correct: int) -> float:
    """Two-sided exact McNemar test: the discordant pairs against Binomial(b + c, 1/2)."""
    discordant = only_a_correct + only_b_correct
    return 1.0 if discordant == 0 else float(binomtest(only_a_correct, discordant, 0.5).pvalue)


def fisher_exact_p(correct_a: int, marked_a: int, correct_b: int, marked_b: int) -> float:
    table = [[correct_a, marked_a - correct_a], [correct_b, marked_b - correct_b]]
    return float(fisher_exact(table).pvalue)


@dataclass(frozen=True)
class Comparison:
    difference: float  # share of model a − share of model b, each over all its marked entries
    low: float
    high: float
    test: str  # MCNEMAR or FISHER
    p_value: float
    pairs: int = 0  # McNEMAR: prompts marked for both models
    only_a_correct: int = 0
    only_b_correct: int = 0


def compare(marks_a: Sequence[int], marks_b: Sequence[int], pairs: Sequence[tuple[int, int]] | None) -> Comparison:
    """Compare two models' 0/1 marks; `pairs`: (mark a, mark b) per prompt marked for both, None if unpaired."""
    correct_a, correct_b = sum(marks_a), sum(marks_b)
    low, high = newcombe_interval(correct_a, len(marks_a), correct_b, len(marks_b))
    difference = correct_a / len(marks_a) - correct_b / len(marks_b)
    if not pairs:
        return Comparison(difference, low, high, FISHER,
                          fisher_exact_p(correct_a, len(marks_a), correct_b, len(marks_b)))
    only_a = sum(1 for a, b in pairs if a > b)
    only_b = sum(1 for a, b in pairs if b > a)
    return Comparison(difference, low, high, MCNEMAR, mcnemar_exact_p(only_a, only_b), len(pairs), only_a, only_b)
