"""tune_lora.py (Optuna search with nested MLflow runs) and compare_runs.py on the demo."""

import signal
import time

import mlflow
import optuna
import pytest
from conftest import SCRIPTS, console_lines, run_python, script_here

pytestmark = pytest.mark.slow  # real trainings: the whole module runs in the full suite only


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    args = ["--demo", "--num_train_epochs", 1, "--max_train_samples", 200, "--output_dir", tmp / "tune",
            "--tracking_uri", tracking]
    first = script_here("tune_lora.py", *args, "--trials", 3)
    assert first.returncode == 0, first.stderr[-3000:]
    return tmp, tracking, args, first


def search_runs(tracking):
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("tune_lora")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return client, parents[0], children


def test_three_trials_are_nested_runs_and_the_lowest_objective_wins(search):
    tmp, tracking, _, first = search
    client, parent, children = search_runs(tracking)
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.params["max_train_samples"] == "200" and c.data.params["lora_r"] in {"2", "4", "8", "16", "32"}
               for c in children)
    complete = [c for c in children if "pruned_at_epoch" not in c.data.tags]
    best = min(complete, key=lambda c: c.data.metrics["best_eval_loss"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_eval_loss"] == pytest.approx(best.data.metrics["best_eval_loss"])
    assert parent.data.metrics["best_trial"] == int(best.data.tags["trial"])
    assert parent.data.tags["best_lora_r"] == best.data.params["lora_r"]
    assert parent.data.tags["best_lora_target_modules"] == best.data.params["lora_target_modules"]
    assert "trials.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    command = next(line.strip() for line in first.stdout.splitlines() if "scripts/train_lora.py" in line)
    assert command.startswith("python scripts/train_lora.py --demo --lora_r ")
    assert f"--lora_r {best.data.params['lora_r']} " in command


def test_rerun_resumes_the_study_and_adds_only_the_missing_trials(search):
    tmp, tracking, args, _ = search
    _, parent_before, _ = search_runs(tracking)
    again = script_here("tune_lora.py", *args, "--trials", 4)
    assert again.returncode == 0, again.stderr[-3000:]
    _, parent, children = search_runs(tracking)
    assert parent.info.run_id == parent_before.info.run_id
    assert len(children) == 4
    assert sorted(int(c.data.tags["trial"]) for c in children) == [0, 1, 2, 3]
    # The added trial is a new configuration, not a replay of the first one (the same seed gave that before).
    trials = optuna.load_study(study_name="tune_lora", storage=f"sqlite:///{tmp / 'tune' / 'study.db'}").trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert "note: study 'tune_lora' was counting to 3 trials; this worker counts to 4" in again.stderr


@pytest.mark.parametrize("flags, differences", [
    (["--num_train_epochs", 2], ["num_train_epochs: the study's 1.0, this worker's 2.0"]),
    (["--num_train_epochs", 1, "--max_train_samples", 100], ["max_train_samples: the study's 200, this worker's 100"]),
    (["--num_train_epochs", 1, "--grid"], ["search: the study's 'tpe', this worker's 'grid'", "search space: "]),
    (["--num_train_epochs", 1, "--ratings", "1,2"], ["data (train.parquet digest): the study's '"]),
])
def test_a_worker_with_other_settings_refuses_to_join_and_names_each_difference(search, flags, differences):
    tmp, tracking, args, _ = search
    data = ["--max_train_samples", 200] if "--max_train_samples" not in flags else []
    study = optuna.load_study(study_name="tune_lora", storage=f"sqlite:///{tmp / 'tune' / 'study.db'}")
    before = len(study.trials)
    result = script_here("tune_lora.py", "--demo", *data, *flags, "--output_dir", tmp / "tune", "--tracking_uri",
                         tracking, "--trials", 4)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: this worker does not match study 'tune_lora': ")
    assert all(difference in line for difference in differences)
    assert line.count("this worker's") == len(differences)
    assert line.endswith("A new --study_name starts a new study")
    assert len(study.trials) == before


@pytest.mark.parametrize("stop, code, said", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                              (signal.SIGINT, 130, "interrupted")])
def test_a_stopped_worker_fails_its_trial_kills_its_run_and_says_one_line(tmp_path, stop, code, said):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--demo", "--num_train_epochs", 2, "--max_train_samples", 200, "--output_dir", tmp_path / "tune",
            "--tracking_uri", tracking, "--trials", 2]
    worker = run_python(SCRIPTS / "tune_lora.py", *args, wait=False)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "tune").glob("trial-0/mlflow_run.json")):  # the first trial is training
        assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()[-3000:]
        time.sleep(0.2)
    worker.send_signal(stop)
    stderr = worker.communicate(timeout=120)[1]
    assert worker.returncode == code and "Traceback" not in stderr, f"exit {worker.returncode}: {stderr[-3000:]}"
    (line,) = [line for line in console_lines(stderr) if line.startswith(said)]
    assert "rerun the same command to resume" in line
    study = optuna.load_study(study_name="tune_lora", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("tune_lora").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("search tune_lora", "KILLED"),
                                                                      ("trial 0", "KILLED")]
    resumed = script_here("tune_lora.py", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("tune_lora").experiment_id])
    assert [r.info.status for r in runs if r.info.run_name == "search tune_lora"] == ["FINISHED"]
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2


def test_a_ctrl_c_that_a_finalizer_swallowed_still_stops_the_worker_at_the_next_step(tmp_path):
    """Python drops an exception raised inside `__del__`; the worker raises the recorded Ctrl-C again."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_python(SCRIPTS / "tune_lora.py", "--demo", "--num_train_epochs", 1, "--max_train_samples", 200,
                        "--output_dir", tmp_path / "tune", "--tracking_uri", tracking, "--trials", 2,
                        env={"REVIEWKIT_TEST_SIGINT_IN_FINALIZER_AT": "3"})
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = [line for line in console_lines(result.stderr) if line.startswith("interrupted")]
    assert "rerun the same command to resume" in line
    study = optuna.load_study(study_name="tune_lora", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    client = mlflow.MlflowClient(tracking)
    (trial_run,) = client.search_runs([client.get_experiment_by_name("tune_lora").experiment_id],
                                      "attributes.run_name = 'trial 0'")
    assert trial_run.info.status == "KILLED"
    assert client.get_metric_history(trial_run.info.run_id, "eval_loss") == []  # stopped within its first epoch


def test_a_worker_that_ends_while_another_trains_leaves_the_parent_running_for_it(tmp_path):
    # A journal file has no heartbeat, so a worker with nothing left to start exits instead of waiting.
    tracking, journal = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "study.log"
    mlflow.MlflowClient(tracking).search_experiments()  # the store's tables, before two processes race to make them

    def worker(name):
        return run_python(SCRIPTS / "tune_lora.py", "--demo", "--num_train_epochs", 1, "--max_train_samples", 200,
                          "--output_dir", tmp_path / name, "--tracking_uri", tracking, "--storage", journal,
                          "--trials", 2, wait=False)

    slow = worker("slow")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "slow").glob("trial-*/mlflow_run.json")):
        assert slow.poll() is None and time.monotonic() < deadline, slow.stderr.read()[-3000:]
        time.sleep(0.2)
    slow.send_signal(signal.SIGSTOP)  # its trial stays RUNNING while the other worker finishes
    try:
        fast = worker("fast")
        fast_err = fast.communicate(timeout=300)[1]
        assert fast.returncode == 0, fast_err[-3000:]
        assert "1 trial(s) of other workers still running: the worker that finishes the last one completes" in fast_err
        client = mlflow.MlflowClient(tracking)
        (parent,) = [r for r in client.search_runs([client.get_experiment_by_name("tune_lora").experiment_id])
                     if r.info.run_name == "search tune_lora"]
        assert parent.info.status == "RUNNING"
    finally:
        slow.send_signal(signal.SIGCONT)
    slow_err = slow.communicate(timeout=300)[1]
    assert slow.returncode == 0, slow_err[-3000:]
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    rows = (tmp_path / "slow" / "trials.md").read_text().splitlines()[2:]  # the worker that finished last wrote it
    assert sorted(int(row.split("|")[1]) for row in rows) == [0, 1]


def test_compare_runs_writes_a_table_and_a_plot(search, tmp_path):
    tmp, tracking, _, _ = search
    _, _, children = search_runs(tracking)
    chosen = children[:2]  # one by run id, one by its output directory
    trial_dir = tmp / "tune" / f"trial-{chosen[1].data.tags['trial']}"
    result = script_here("compare_runs.py", "--runs", chosen[0].info.run_id, trial_dir, "--tracking_uri", tracking,
                         "--output_dir", tmp_path, "--name", "trials")
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "trials.md").read_text(encoding="utf-8").splitlines()
    assert len(table) == 2 + len(chosen)
    for run, line in zip(chosen, table[2:]):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == run.info.run_name
        assert cells[1] == f"{int(run.data.params['trainable_parameters']):,} / {int(run.data.params['total_parameters']):,}"
        assert cells[4] == f"{run.data.metrics['best_eval_loss']:.4f}"
        assert cells[5].count("/") == 4 and "—" not in cells[5].split(" / ")[0]  # ★1 validation loss is there
        assert cells[7] == " / ".join(["—"] * 6) and cells[8] == "—"  # no evaluate.py run, so no realism
    assert (tmp_path / "trials.png").read_bytes()[:4] == b"\x89PNG"
    missing = script_here("compare_runs.py", "--runs", "0" * 32, "--tracking_uri", tracking, "--output_dir", tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("error: run 000") and "Traceback" not in missing.stderr
