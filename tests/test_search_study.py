"""The search's study without training: per-trial seeded TPE, grid points handed out once, settings, bad input."""

import optuna
import pytest
from conftest import script_here

from reviewkit.training.search import (STUDY_NAME_MAX_LENGTH, TrialSeededTPE, check_study_name, enqueue_grid,
                                       grid_points, settings_differences)

SPACE = {"r": (2, 4, 8, 16, 32), "alpha": (1, 4, 8, 16, 32), "modules": ("q,v", "k,q,v", "q,k,v,o")}
GRID = {"r": [4, 16], "alpha": [1, 16], "modules": ["q,v", "k,q,v"]}


def draw(trial):
    return (trial.suggest_categorical("r", SPACE["r"]), trial.suggest_categorical("alpha", SPACE["alpha"]),
            trial.suggest_categorical("modules", SPACE["modules"]),
            trial.suggest_float("lr", 1e-4, 1e-2, log=True))


def configurations(study):
    return [tuple(t.params.values()) for t in study.trials]


def test_workers_sharing_a_study_draw_distinct_configurations_reproducibly(tmp_path):
    # Three "workers" (three sampler objects of the same --seed, as three processes build them) take turns on one
    # study: with TPESampler(seed) each would replay the same sequence.
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage)
    workers = [optuna.load_study(study_name="s", storage=storage, sampler=TrialSeededTPE(seed=42)) for _ in range(3)]
    for round_ in range(3):
        for study in workers:
            study.optimize(lambda t: sum(map(hash, draw(t))) % 7, n_trials=1)
    drawn = configurations(workers[0])
    assert len(drawn) == 9 and len(set(drawn)) == 9
    # The draws depend on the seed and the trial number only: a fresh study replays them.
    again = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'again.db'}",
                                sampler=TrialSeededTPE(seed=42))
    again.optimize(lambda t: sum(map(hash, draw(t))) % 7, n_trials=9)
    assert configurations(again)[:5] == drawn[:5]  # the random start-up trials; TPE then follows the objective


def test_the_same_study_seed_in_a_plain_tpe_sampler_repeats_itself(tmp_path):
    # What the search did before: the duplicate this module exists to prevent.
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage)
    for _ in range(2):
        optuna.load_study(study_name="s", storage=storage,
                          sampler=optuna.samplers.TPESampler(seed=42)).optimize(lambda t: draw(t)[0], n_trials=1)
    first, second = configurations(optuna.load_study(study_name="s", storage=storage))
    assert first == second


def test_grid_points_are_queued_once_and_handed_to_one_trial_each(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="g", storage=storage)
    assert enqueue_grid(study, GRID, seed=0, count=6) == 6
    assert enqueue_grid(study, GRID, seed=0, count=6) == 0  # a second call queues nothing already held
    workers = [optuna.load_study(study_name="g", storage=storage) for _ in range(2)]
    for round_ in range(3):
        for worker in workers:
            worker.optimize(lambda t: len(t.suggest_categorical("modules", GRID["modules"]))
                            + t.suggest_categorical("r", GRID["r"]) + t.suggest_categorical("alpha", GRID["alpha"]),
                            n_trials=1)
    taken = [(t.params["r"], t.params["alpha"], t.params["modules"]) for t in study.trials]
    assert len(taken) == 6 and len(set(taken)) == 6
    assert enqueue_grid(study, GRID, seed=0, count=8) == 2  # a rerun with more trials adds the rest only
    queued = [t.system_attrs["fixed_params"] for t in study.trials if t.state.name == "WAITING"]
    assert {tuple(p.values()) for p in queued}.isdisjoint(set(taken)) and len(queued) == 2
    assert sorted(map(str, grid_points(GRID, 1))) == sorted(map(str, grid_points(GRID, 0)))  # same grid, other order


def test_settings_differences_name_both_values():
    recorded = {"num_train_epochs": 1.0, "search": "tpe", "data": "ab12"}
    assert settings_differences(recorded, {"num_train_epochs": 1.0, "search": "tpe", "data": "ab12"}) == []
    assert settings_differences(recorded, {"num_train_epochs": 2.0, "search": "grid", "data": "ab12"}) == [
        "num_train_epochs: the study's 1.0, this worker's 2.0", "search: the study's 'tpe', this worker's 'grid'"]


@pytest.mark.parametrize("name, message", [("", "--study_name is empty"), ("  ", "--study_name is empty"),
                                           ("x" * (STUDY_NAME_MAX_LENGTH + 1), "a study name has at most 512")])
def test_study_names_that_cannot_name_a_study(name, message):
    with pytest.raises(ValueError, match=message):
        check_study_name(name)
    check_study_name("x" * STUDY_NAME_MAX_LENGTH)


@pytest.mark.parametrize("storage, message", [
    ("{tmp}", "is a directory; give the path of a journal file in it"),
    ("{tmp}/missing/study.log", "the directory {tmp}/missing does not exist"),
    ("postgresql//mlflow:pw@db.example/optuna", "looks like a database URL without '://'"),
    ("postgresql:/mlflow:pw@db.example/optuna", "looks like a database URL without '://'"),
])
def test_a_storage_that_cannot_hold_the_study_is_one_line(tmp_path, storage, message):
    storage, message = storage.format(tmp=tmp_path), message.format(tmp=tmp_path)
    result = script_here("tune_lora.py", "--demo", "--trials", 1, "--output_dir", tmp_path / "out",
                         "--storage", storage, "--tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --storage ") and message in line


@pytest.mark.parametrize("flags, message", [(["--study_name", ""], "--study_name is empty"),
                                            (["--grid", "--trials", 9], "--grid has 8 points; --trials 9 asks")])
def test_bad_search_flags_are_usage_errors(tmp_path, flags, message):
    result = script_here("tune_lora.py", "--demo", "--output_dir", tmp_path, *flags)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_joining_worker_says_what_it_waits_for(tmp_path, monkeypatch, capsys):
    import tune_lora

    study = optuna.create_study(study_name="w", storage=f"sqlite:///{tmp_path / 'study.db'}")
    monkeypatch.setattr(tune_lora, "PARENT_WAIT_S", 0.2)  # the creator never names the parent run here
    tune_lora.wait_for_creator(study)
    assert "waiting up to 0 s for the worker that created study 'w' to record its settings and MLflow run" \
        in capsys.readouterr().err
    study.set_user_attr("mlflow_parent", {"run_id": "abc"})
    tune_lora.wait_for_creator(study)
    assert capsys.readouterr().err == ""  # nothing to wait for, nothing said
