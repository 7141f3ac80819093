"""tune_lora.py (Optuna search with nested MLflow runs) and compare_runs.py on the demo."""

import mlflow
import pytest
from conftest import script_here

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
