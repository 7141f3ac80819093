"""The shared Optuna study of tune_lora.py: distinct work for every trial, and one experiment per study.

- `TrialSeededTPE`: TPE whose randomness comes from (study seed, trial number), not from the
  process. Workers started together, and reruns, would otherwise each draw the same sequence from
  `TPESampler(seed)` and train the same configurations. With `constant_liar`, a trial still running
  in another worker counts as a bad result, so parallel workers steer away from each other.
- `grid_points`: the grid of `--grid`, in a seeded order; the study's creator enqueues them and
  the storage hands each WAITING trial to one worker only.
- `study_settings` / `settings_differences`: what makes the study's trials comparable (data,
  epochs, base model, ...), recorded by the creator; a worker whose own differ does not join.
"""

from __future__ import annotations

import itertools
import random

import optuna
from optuna.samplers import BaseSampler, TPESampler

# Optuna's RDB storage keeps study names in an indexed column of this many characters.
STUDY_NAME_MAX_LENGTH = 512


def trial_seed(study_seed: int, trial_number: int) -> int:
    return (study_seed * 1_000_003 + trial_number) % 2**32


class TrialSeededTPE(BaseSampler):
    """TPESampler(constant_liar=True) seeded anew for each trial from (seed, trial number)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._tpe = self._for_trial(0)

    def _for_trial(self, number: int) -> TPESampler:
        return TPESampler(seed=trial_seed(self.seed, number), constant_liar=True)

    def before_trial(self, study, trial) -> None:
        self._tpe = self._for_trial(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)


def grid_points(grid: dict[str, list], seed: int) -> list[dict]:
    """Every combination of the grid's values, in an order shuffled by `seed` (a search stopped early still
    covers the grid evenly)."""
    names = list(grid)
    points = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    random.Random(seed).shuffle(points)
    return points


def enqueue_grid(study: optuna.Study, grid: dict[str, list], seed: int, count: int) -> int:
    """Queue the grid points that no trial of the study holds yet, up to `count` trials in all; returns how many."""
    from optuna.trial import TrialState

    held = [t.params or t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL]
    wanted = max(0, count - len(held))
    fresh = [point for point in grid_points(grid, seed) if point not in held][:wanted]
    for point in fresh:
        study.enqueue_trial(point)
    return len(fresh)


def check_study_name(name: str) -> None:
    """ValueError with one line when NAME cannot name a study."""
    if not name.strip():
        raise ValueError("--study_name is empty: name the study (workers with the same name form one search)")
    if len(name) > STUDY_NAME_MAX_LENGTH:
        raise ValueError(f"--study_name is {len(name)} characters long; a study name has at most "
                         f"{STUDY_NAME_MAX_LENGTH}")


def settings_differences(recorded: dict, mine: dict) -> list[str]:
    """'NAME: the study's VALUE, this worker's VALUE' for every setting that differs."""
    return [f"{name}: the study's {recorded.get(name)!r}, this worker's {value!r}"
            for name, value in mine.items() if recorded.get(name) != value]
