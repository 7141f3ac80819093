"""The MLflow client layer (reviewkit.tracking.client), the durable queue of metric values
(reviewkit.tracking.queue) and the best epoch (reviewkit.tracking.epochs), without training.

Real MLflow on a sqlite store in tmp_path; a dead server is a closed port on 127.0.0.1. MlflowClient.log_batch
is watched (or broken) from outside, on the client object, by monkeypatch; a second process's insert is
placed inside MLflow's own transaction by a SQLAlchemy `before_flush` listener.
"""

import json
import socket
import sqlite3

import pytest

from conftest import seed_mlflow_store
from reviewkit.tracking.client import (MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH,
                                       experiment_id, log_dataset_inputs, log_params, open_client, resume_run,
                                       run_in_store, start_run)
from reviewkit.tracking.conventions import dataset_inputs
from reviewkit.tracking.epochs import eval_losses, pick_best_epoch
from reviewkit.tracking.queue import PENDING_FILE, PendingQueue
from reviewkit.tracking.store import RUN_ID_FILE, store_run, stored_run


@pytest.fixture
def store(tmp_path):
    """(tracking URI, client, id of a RUNNING run) of a fresh sqlite store."""
    seed_mlflow_store(tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = open_client(uri)
    return uri, client, start_run(client, experiment_id(client, "queue"), "queue test")


@pytest.fixture
def dead_uri(monkeypatch) -> str:
    """An HTTP tracking URI with a password where nothing listens; MLflow does not retry it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://reviewer:queue-secret-7@127.0.0.1:{port}"


def watch_batches(monkeypatch, client, fail_calls=()) -> list[dict]:
    """Each log_batch call's keyword arguments, in order; the calls numbered in FAIL_CALLS (from 0) raise."""
    calls, real = [], client.log_batch

    def log_batch(run_id, **kwargs):
        number = len(calls)
        calls.append(kwargs)
        if number in fail_calls:
            raise ConnectionError("Connection refused")
        return real(run_id, **kwargs)

    monkeypatch.setattr(client, "log_batch", log_batch)
    return calls


def steps(client, run_id: str, name: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, name))


def test_batch_limits_are_mlflows():
    from mlflow.utils import validation

    assert MAX_METRICS_PER_BATCH == validation.MAX_METRICS_PER_BATCH
    assert MAX_PARAMS_TAGS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert MAX_PARAM_VAL_LENGTH == validation.MAX_PARAM_VAL_LENGTH


def test_server_down_keeps_the_values_on_disk_with_one_warning(tmp_path, dead_uri, capsys):
    from reviewkit.common.redact import mask_uri

    queue = PendingQueue(open_client(dead_uri), "run-1", tmp_path / PENDING_FILE, mask_uri(dead_uri))
    queue.add({"loss": 1.5, "epoch": 0.5}, 10)
    queue.add({"eval_loss": 2.0}, 1)
    assert not queue.flush(force=True)
    records = [json.loads(line) for line in (tmp_path / PENDING_FILE).read_text(encoding="utf-8").splitlines()]
    assert [(r["run_id"], r["step"], r["metrics"]) for r in records] == [
        ("run-1", 10, {"loss": 1.5, "epoch": 0.5}), ("run-1", 1, {"eval_loss": 2.0})]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: MLflow {mask_uri(dead_uri)} failed (")
    assert f"training goes on and keeps the values in {tmp_path / PENDING_FILE}, retrying every 30 s" in err
    assert "queue-secret-7" not in err + (tmp_path / PENDING_FILE).read_text(encoding="utf-8")


def test_values_over_the_batch_limit_go_in_calls_within_it(tmp_path, store, monkeypatch):
    uri, client, run_id = store
    calls = watch_batches(monkeypatch, client, fail_calls={0})  # the server is away for the first value
    queue = PendingQueue(client, run_id, tmp_path / PENDING_FILE, uri)
    for step in range(25):  # 25 steps of 100 metrics: 2,500 values
        queue.add({f"m{i}": float(step) for i in range(100)}, step)
    queue.add({f"wide{i}": 1.0 for i in range(1500)}, 0)  # one step over the limit on its own
    assert len(calls) == 1 and len(queue) == 26
    assert queue.flush(force=True)
    sizes = [len(call["metrics"]) for call in calls[1:]]
    assert sizes == [1000, 1000, 500, 1000, 500]  # whole steps first, then the wide one split
    assert not (tmp_path / PENDING_FILE).exists()
    assert steps(client, run_id, "m0") == list(range(25)) and steps(client, run_id, "wide1499") == [0]


def test_a_failure_midway_keeps_only_the_unsent_values(tmp_path, store, monkeypatch):
    uri, client, run_id = store
    calls = watch_batches(monkeypatch, client, fail_calls={1})
    queue = PendingQueue(client, run_id, tmp_path / PENDING_FILE, uri)
    queue.records = [{"run_id": run_id, "step": step, "timestamp": 1_000 + step,
                      "metrics": {f"m{i}": float(step) for i in range(500)}} for step in range(4)]
    assert not queue.flush(force=True)
    assert [r["step"] for r in map(json.loads, (tmp_path / PENDING_FILE).read_text().splitlines())] == [2, 3]
    assert queue.flush(force=True) and len(calls) == 3
    assert steps(client, run_id, "m499") == [0, 1, 2, 3]


def test_a_new_process_sends_the_kept_values_exactly_once(tmp_path, store, dead_uri, monkeypatch):
    uri, client, run_id = store
    path = tmp_path / PENDING_FILE
    before = PendingQueue(open_client(dead_uri), run_id, path, "dead")  # the process that lost the server
    for step in (1, 2, 3):
        before.add({"loss": 1.0 / step}, step)
    timestamps = [json.loads(line)["timestamp"] for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open("a", encoding="utf-8") as file:  # another run's value, and a line torn by a kill
        file.write(json.dumps({"run_id": "other", "step": 9, "timestamp": 0, "metrics": {"loss": 9.0}}) + "\n")
        file.write('{"run_id": "' + run_id + '", "st')

    after = PendingQueue(client, run_id, path, uri)  # the rerun
    after.load()
    assert len(after) == 3 and after.flush(force=True) and not path.exists()
    again = PendingQueue(client, run_id, path, uri)
    again.load()
    calls = watch_batches(monkeypatch, client)
    assert again.flush(force=True) and calls == []
    history = sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, "loss"))
    assert history == [(1, 1.0, timestamps[0]), (2, 0.5, timestamps[1]), (3, pytest.approx(1 / 3), timestamps[2])]


def test_experiment_is_got_or_created_once_even_in_a_race(store, monkeypatch):
    _, client, _ = store
    assert experiment_id(client, "queue") == experiment_id(client, "queue")
    created = client.create_experiment("raced")  # by another process, between our look-up and our create
    real, answers = client.get_experiment_by_name, iter([None])
    monkeypatch.setattr(client, "get_experiment_by_name", lambda name: next(answers, None) or real(name))
    assert experiment_id(client, "raced") == created


def test_a_dataset_another_process_inserts_first_is_linked_not_lost(tmp_path, store):
    """The race of two tune_lora workers: the other inserts the dataset between our look-up and our insert."""
    import pandas as pd
    from mlflow.store.tracking.dbmodels.models import SqlDataset
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    uri, client, run_id = store
    data_dir = tmp_path / "reviews"
    data_dir.mkdir()
    for split in ("train", "validation"):
        pd.DataFrame({"text": [f"{split} review"]}).to_parquet(data_dir / f"{split}.parquet")
    inputs = dataset_inputs(data_dir)
    other_client = open_client(uri)
    other_run = start_run(other_client, experiment_id(other_client, "queue"), "the other worker")
    raced = []

    def the_other_worker_first(session, flush_context, instances):
        if not raced and any(isinstance(row, SqlDataset) for row in session.new):
            raced.append(True)
            other_client.log_inputs(other_run, datasets=inputs)

    event.listen(Session, "before_flush", the_other_worker_first)
    try:
        log_dataset_inputs(client, run_id, inputs)
    finally:
        event.remove(Session, "before_flush", the_other_worker_first)
    assert raced
    linked = {run: sorted(i.dataset.digest for i in client.get_run(run).inputs.dataset_inputs)
              for run in (run_id, other_run)}
    assert linked[run_id] == linked[other_run] and len(linked[run_id]) == 2
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT count(*) FROM datasets").fetchone() == (2,)


def test_params_are_masked_cut_and_sent_in_batches(store, monkeypatch):
    _, client, run_id = store
    calls = watch_batches(monkeypatch, client)
    params = {f"p{i:03d}": i for i in range(250)}
    params.update(tracking_uri="postgresql://mlflow:param-secret-9@db:5432/mlflow", long="x" * 7000)
    log_params(client, run_id, params)
    assert [len(call["params"]) for call in calls] == [100, 100, 52]
    logged = client.get_run(run_id).data.params
    assert logged["tracking_uri"] == "postgresql://mlflow:***@db:5432/mlflow"
    assert len(logged["long"]) == MAX_PARAM_VAL_LENGTH and logged["p249"] == "249"


def test_the_stored_run_is_found_only_in_its_own_store(tmp_path, store):
    uri, client, run_id = store
    (tmp_path / "out").mkdir()
    store_run(tmp_path / "out", "sqlite:///x.db?password=run-file-secret", "elsewhere")
    assert "run-file-secret" not in (tmp_path / "out" / RUN_ID_FILE).read_text(encoding="utf-8")
    assert run_in_store(client, tmp_path / "out", uri) is None
    store_run(tmp_path / "out", uri, run_id)
    assert stored_run(tmp_path / "out") == {"tracking_uri": uri, "run_id": run_id}
    assert run_in_store(client, tmp_path / "out", uri) == run_id
    assert run_in_store(client, tmp_path / "none", uri) is None
    client.set_terminated(run_id)
    assert resume_run(client, run_id) and client.get_run(run_id).info.status == "RUNNING"
    assert not resume_run(client, "0" * 32) and not resume_run(client, None)


def test_the_best_epoch_is_the_first_lowest_validation_loss():
    history = [{"loss": 3.0, "epoch": 0.5}, {"eval_loss": 2.5, "epoch": 1.0}, {"eval_loss": 2.1, "epoch": 2.0},
               {"eval_loss": 2.1, "epoch": 3.0}, {"eval_loss": 2.4, "epoch": 4.0}]
    assert eval_losses(history) == [(1, 2.5), (2, 2.1), (3, 2.1), (4, 2.4)]
    assert pick_best_epoch(eval_losses(history)) == (2, 2.1)
    with pytest.raises(ValueError):
        pick_best_epoch([])
