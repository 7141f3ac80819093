"""The training scripts against a real `mlflow server` over HTTP, including a server that dies mid-training."""

import json
import subprocess
import sys
import time

import mlflow
import pytest
from conftest import SCRIPTS, script_here, tool_env
from mlflow_server import TrackingServer

pytestmark = pytest.mark.slow  # real trainings: the whole module runs in the full suite only


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


def train(name, output_dir, uri, *extra, wait=True):
    """A --demo run on 640 training rows (20 steps an epoch): the HTTP traffic, not the data, is under test."""
    args = ["--demo", "--output_dir", output_dir, "--tracking_uri", uri, "--max_train_samples", 640, *extra]
    if not wait:  # both streams kept: the test reads what the run printed after the server died
        return subprocess.Popen([sys.executable, str(SCRIPTS / name), *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=tool_env())
    return script_here(name, *args)


def run_of(output_dir):
    return json.loads((output_dir / "mlflow_run.json").read_text(encoding="utf-8"))["run_id"]


def steps(client, run_id, name):
    return [m.step for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]


@pytest.mark.parametrize("script, epochs, expected_params", [
    ("train_t5.py", 2, {"lora_r": None}),
    ("train_lora.py", 1, {"lora_r": "4", "lora_target_modules": "q,v"}),
    ("train_lora_r1.py", 2, {"lora_r": "16", "ratings": "1,2", "keep_best": "True"}),
])
def test_each_script_logs_params_epochs_and_artifacts_over_http(server, tmp_path, script, epochs, expected_params):
    result = train(script, tmp_path / "run", server.uri, "--num_train_epochs", epochs)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(server.uri)
    run = client.get_run(run_of(tmp_path / "run"))
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(script.removesuffix(".py")).experiment_id
    params = run.data.params
    assert params["num_train_epochs"] == str(float(epochs)) and params["tracking_uri"] == server.uri
    assert {k: params.get(k) for k in expected_params} == expected_params
    for name in ("eval_loss", "train_loss"):
        assert steps(client, run.info.run_id, name) == list(range(1, epochs + 1))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"summary.json", "report.json"}
    summary = json.loads((tmp_path / client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
                          ).read_text(encoding="utf-8"))
    assert summary["run_id"] == run.info.run_id and summary["experiment"] == script.removesuffix(".py")
    assert not (tmp_path / "run" / "mlflow_pending.jsonl").exists()


def test_plot_runs_reads_the_server(server, tmp_path):
    """Runs after the three scripts above have logged to the module's server."""
    result = script_here("plot_runs.py", "--tracking_uri", server.uri, "--output_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("t5_val_loss", "t5_train_loss", "t5_epochs", "lora_val_loss", "lora_train_loss", "lora_epochs",
                 "lora_r12_val_loss", "compare_val_loss"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_server_killed_mid_training_keeps_checkpoints_and_a_rerun_completes_the_same_run(tmp_path_factory, tmp_path):
    server = TrackingServer(tmp_path_factory.mktemp("dying-server"))
    server.start()
    epochs, output = 3, tmp_path / "run"
    process = train("train_t5.py", output, server.uri, "--num_train_epochs", epochs, "--logging_steps", 5, wait=False)
    try:
        client = mlflow.MlflowClient(server.uri)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the first epoch has reached MLflow
            assert process.poll() is None, process.stderr.read()[-3000:]
            if (output / "mlflow_run.json").is_file() and steps(client, run_of(output), "eval_loss"):
                break
            time.sleep(0.5)
        server.kill()
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
        if server.process.poll() is None:
            server.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert "training goes on" in stderr and "left RUNNING" in stderr and "Traceback" not in stderr
    assert (output / "final" / "model.safetensors").is_file() and list(output.glob("checkpoint-*"))
    pending = (output / "mlflow_pending.jsonl").read_text(encoding="utf-8").splitlines()
    assert any("eval_loss" in json.loads(line)["metrics"] for line in pending)

    server.start()  # the same store: the run is still there, RUNNING, without the later epochs
    try:
        run_id = run_of(output)
        assert client.get_run(run_id).info.status == "RUNNING"
        assert steps(client, run_id, "eval_loss") == [1]
        rerun = train("train_t5.py", output, server.uri, "--num_train_epochs", epochs, "--logging_steps", 5)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "sent the MLflow values kept" in rerun.stdout + rerun.stderr
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert steps(client, run_id, "eval_loss") == steps(client, run_id, "train_loss") == list(range(1, epochs + 1))
        assert len(steps(client, run_id, "best_epoch")) == 1
        loss_steps = steps(client, run_id, "loss")
        assert loss_steps == sorted(set(loss_steps))
        assert {a.path for a in client.list_artifacts(run_id)} == {"summary.json", "report.json"}
        assert not (output / "mlflow_pending.jsonl").exists()
        assert len(client.search_runs([run.info.experiment_id])) == 1
    finally:
        server.kill()
