"""The best epoch of a run: the one with the lowest validation loss, the first of equals.

Training's summary, the MLflow run's `best_epoch` / `best_eval_loss` and plot_runs.py's marked
point all take it from here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable


def eval_losses(log_history: Iterable[dict]) -> list[tuple[int, float]]:
    """(epoch, eval_loss) of each evaluation in a Trainer's `state.log_history`, in order."""
    return [(round(entry["epoch"]), entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]


def pick_best_epoch(points: Iterable[tuple[int, float]]) -> tuple[int, float]:
    """(epoch, loss) with the lowest loss among (epoch, loss) POINTS, the earliest on a tie; ValueError if none."""
    return min(points, key=lambda point: point[1])
