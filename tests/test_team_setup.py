"""A team's setup on a real PostgreSQL server with a password: tracking, `mlflow server`, the shared LoRA search.

The password (tests/postgres_server.py: every character hard for a URI between distinctive pieces)
never shows, whole or any piece of it: not in a file under the output directory, on a console line,
in an MLflow param, tag, artifact or logged model, or in an Optuna attribute. The commands here are
the ones docs/team.md gives.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import mlflow
import pytest
from conftest import SCRIPTS, console_lines, script, tool_env
from mlflow_server import TrackingServer
from postgres_server import ENCODED_PASSWORD, PASSWORD, PASSWORD_PIECES, RAW_PASSWORD, free_port

pytestmark = pytest.mark.slow  # real trainings against a real database server

# Credentials a user may have in the environment: none of them may be written anywhere either. (libpq ignores
# PGPASSWORD when the URI has a password; one test gives the real password through it instead.)
ENV_SECRETS = {"MLFLOW_TRACKING_TOKEN": "tok-Envsecret-7731", "HF_TOKEN": "hf_Envsecret8842xyz",
               "PGPASSWORD": "pg-Envsecret-5519", "MLFLOW_TRACKING_PASSWORD": "mtp-Envsecret-6604"}
SECRETS = (PASSWORD, ENCODED_PASSWORD, RAW_PASSWORD, *PASSWORD_PIECES, *ENV_SECRETS.values())
# urllib and requests end an http URI's userinfo at its last `@` but its host part at the first `/`, `?` or `#`:
# of the hard characters only `@` and `:` can stay raw there.
HTTP_PASSWORD = urllib.parse.quote(PASSWORD, safe="@:")
DEMO = ["--demo", "--num_train_epochs", 1, "--max_train_samples", 200]


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def leaking_files(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().decode("utf-8", errors="replace")
            if leaks(data):
                found[str(path.relative_to(root))] = leaks(data)
    return found


def mlflow_leaks(tracking_uri: str, download_to: Path) -> dict[str, list[str]]:
    """Secrets in any param, tag, experiment or artifact of any run or logged model of the store."""
    client = mlflow.MlflowClient(tracking_uri)
    found = {}
    for experiment in client.search_experiments():
        if leaks(str(experiment.artifact_location)) or leaks(json.dumps(experiment.tags)):
            found[f"experiment {experiment.name}"] = leaks(str(experiment.artifact_location) + str(experiment.tags))
        for run in client.search_runs([experiment.experiment_id]):
            values = json.dumps({**run.data.params, **run.data.tags, "name": run.info.run_name}, ensure_ascii=False)
            if leaks(values):
                found[f"run {run.info.run_name} params/tags"] = leaks(values)
            target = download_to / run.info.run_id
            target.mkdir(parents=True, exist_ok=True)
            client.download_artifacts(run.info.run_id, "", str(target))
            found.update({f"run {run.info.run_name} artifact {name}": hit
                          for name, hit in leaking_files(target).items()})
        for model in client.search_logged_models([experiment.experiment_id]):
            values = json.dumps({**model.params, **model.tags, "name": model.name}, ensure_ascii=False)
            if leaks(values):
                found[f"model {model.name} params/tags"] = leaks(values)
            target = download_to / model.model_id
            mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, dst_path=str(target),
                                                tracking_uri=tracking_uri)
            found.update({f"model {model.name} file {name}": hit for name, hit in leaking_files(target).items()})
    return found


def study_leaks(storage_url: str) -> dict[str, list[str]]:
    """Secrets in any attribute, param or value of any study of an Optuna storage, or of its trials."""
    import optuna

    storage = optuna.storages.get_storage(storage_url)
    found = {}
    for study in storage.get_all_studies():
        trials = storage.get_all_trials(storage.get_study_id_from_name(study.study_name), deepcopy=False)
        values = json.dumps([study.user_attrs, study.system_attrs]
                            + [[t.user_attrs, t.system_attrs, t.params, t.value] for t in trials], default=str)
        if leaks(values):
            found[f"study {study.study_name}"] = leaks(values)
    return found


def run_env() -> dict:
    return {**ENV_SECRETS}


@pytest.mark.parametrize("script_name, password_from", [("train_t5.py", "uri"), ("train_lora.py", "PGPASSWORD")])
def test_training_tracked_straight_to_postgres_reads_back_and_leaks_nothing(postgres, tmp_path, script_name,
                                                                            password_from):
    """The URI as a flag with the password in it, or in MLFLOW_TRACKING_URI without it and the password in PGPASSWORD."""
    database = f"direct_{script_name.removesuffix('.py')}"
    postgres.create_database(database)
    uri = postgres.uri(database, password=RAW_PASSWORD)
    if password_from == "uri":
        flags, env = ["--tracking_uri", uri], run_env()
    else:
        env = {**run_env(), "MLFLOW_TRACKING_URI": f"postgresql://mlflow@127.0.0.1:{postgres.port}/{database}",
               "PGPASSWORD": PASSWORD}
        flags = []
    result = script(script_name, *DEMO, "--num_train_epochs", 2, "--output_dir", tmp_path / "run", *flags,
                    env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = json.loads((tmp_path / "run" / "mlflow_run.json").read_text(encoding="utf-8"))["run_id"]
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    shown_user = "mlflow:***" if password_from == "uri" else "mlflow"
    assert run.data.params["tracking_uri"] == f"postgresql://{shown_user}@127.0.0.1:{postgres.port}/{database}"
    assert [m.step for m in client.get_metric_history(run_id, "eval_loss")] == [1, 2]
    assert {"summary.json", "report.json"} <= {a.path for a in client.list_artifacts(run_id)}
    assert not leaks(result.stdout + result.stderr)
    assert leaking_files(tmp_path) == {}  # output directory, model card, and the ./mlruns artifact root here
    assert mlflow_leaks(uri, tmp_path.parent / f"{tmp_path.name}-artifacts") == {}


@pytest.fixture(scope="module")
def postgres_server(postgres, tmp_path_factory):
    """`mlflow server` with its backend store in PostgreSQL, as docs/team.md starts it; one for both scripts."""
    server = TrackingServer(tmp_path_factory.mktemp("server"), backend_store_uri=postgres.create_database("server"))
    server.start()
    yield server
    server.kill()


@pytest.mark.parametrize("script_name", ["train_t5.py", "train_lora.py"])
def test_training_through_mlflow_server_backed_by_postgres(postgres_server, tmp_path, script_name):
    server = postgres_server
    # Credentials in the server URI, as for a server behind basic auth (this one ignores them).
    with_credentials = server.uri.replace("http://", f"http://viewer:{HTTP_PASSWORD}@")
    result = script(script_name, *DEMO, "--num_train_epochs", 2, "--output_dir", tmp_path / "run",
                    "--tracking_uri", with_credentials, env=run_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(server.uri)
    run_id = json.loads((tmp_path / "run" / "mlflow_run.json").read_text(encoding="utf-8"))["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["num_train_epochs"] == "2.0"
    assert run.data.params["tracking_uri"] == server.uri.replace("http://", "http://viewer:***@")
    for metric in ("eval_loss", "train_loss"):
        assert [m.step for m in client.get_metric_history(run_id, metric)] == [1, 2]
    assert {"summary.json", "report.json"} <= {a.path for a in client.list_artifacts(run_id)}
    assert any((server.root / "artifacts").rglob(f"{run_id}/artifacts/summary.json"))  # in the server's store
    assert not leaks(result.stdout + result.stderr)
    assert leaking_files(tmp_path / "run") == {}
    assert mlflow_leaks(server.uri, tmp_path / "downloaded") == {}
    # The same run, read straight from the server's PostgreSQL database.
    assert mlflow.MlflowClient(server.backend_store_uri).get_run(run_id).data.params["num_train_epochs"] == "2.0"


@pytest.mark.parametrize("case", ["wrong password", "database down"])
def test_an_unusable_database_gives_one_line_without_the_password(postgres, tmp_path, case):
    from reviewkit.common.errors import TrackingError
    from reviewkit.tracking.store import check_tracking_uri

    uri = (postgres.uri("postgres", password="Wr0ng%40Secret-pg") if case == "wrong password"
           else f"postgresql://mlflow:{ENCODED_PASSWORD}@127.0.0.1:{free_port()}/mlflowdb")
    started = time.monotonic()
    with pytest.raises(TrackingError) as raised:
        check_tracking_uri(uri)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "127.0.0.1" in message and ("postgres" if case == "wrong password" else "mlflowdb") in message
    assert not leaks(message) and "Wr0ng" not in message
    for name, flag in (("train_t5.py", "--tracking_uri"), ("tune_lora.py", "--storage")):
        result = script(name, "--demo", "--output_dir", tmp_path / name, flag, uri,
                        *(["--tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}"] if flag == "--storage" else []))
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
        assert "127.0.0.1" in lines[0] and not leaks(lines[0]) and "Wr0ng" not in lines[0]


@pytest.mark.parametrize("userinfo", [
    # SQLAlchemy ends a password at its first raw `@` and takes the rest for the host (and the port, the query).
    f"mlflow:{urllib.parse.quote(PASSWORD, safe='@')}@", f"mlflow:{PASSWORD.replace('%', '%25')}@"],
    ids=["raw @", "all raw"])
@pytest.mark.parametrize("scheme", ["postgresql://", "postgresql//", "postgresql:/"])
def test_a_uri_the_drivers_misread_gives_one_line_without_the_password(scheme, userinfo):
    """No database is reached: `postgresql//` is taken for a directory, `postgresql:/` does not parse."""
    from reviewkit.common.errors import TrackingError
    from reviewkit.tracking.store import check_tracking_uri

    with pytest.raises(TrackingError) as raised:
        check_tracking_uri(f"{scheme}{userinfo}127.0.0.1:{free_port()}/mlflowdb")
    message = str(raised.value)
    assert "\n" not in message and "127.0.0.1" in message and not leaks(message), message


def tune_worker(output_dir: Path, storage: str, tracking: str, *extra) -> subprocess.Popen:
    command = [sys.executable, str(SCRIPTS / "tune_lora.py"), *map(str, DEMO), "--output_dir", str(output_dir),
               "--storage", storage, "--tracking_uri", tracking, *map(str, extra)]
    output_dir.mkdir(parents=True)
    return subprocess.Popen(command, stdout=open(output_dir.parent / f"{output_dir.name}.out", "w"),
                            stderr=open(output_dir.parent / f"{output_dir.name}.err", "w"), env=tool_env(run_env()),
                            cwd=output_dir.parent)


def console(output_dir: Path) -> str:
    return "".join((output_dir.parent / f"{output_dir.name}.{kind}").read_text() for kind in ("out", "err"))


def study_trials(storage: str, name: str = "tune_lora"):
    import optuna

    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def search_runs(tracking: str):
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("tune_lora").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return client, parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def configuration(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_three_workers_share_one_postgres_study_with_exact_distinct_trials(postgres, tmp_path):
    from optuna.trial import TrialState

    postgres.create_database("study_three")
    storage, tracking = postgres.uri("study_three", password=RAW_PASSWORD), postgres.create_database("tracking_three")
    names = [f"worker{i}" for i in (1, 2, 3)]
    workers = [tune_worker(tmp_path / name, storage, tracking, "--trials", 4) for name in names]
    for worker in workers:
        assert worker.wait(timeout=900) == 0, "".join(console(tmp_path / name) for name in names)
    trials = study_trials(storage)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4 and len({t.number for t in finished}) == 4
    # Distinct work: every worker seeds TPE from the study's seed and the trial number, not its own process.
    assert len({configuration(t) for t in finished}) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert {t.user_attrs["mlflow_run_id"] for t in finished}.__len__() == 4  # each trial trained once
    client, parents, children = search_runs(tracking)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(int(c.data.tags["trial"]) for c in children) == sorted(t.number for t in finished)
    assert all(c.info.status == "FINISHED" for c in children)
    table = (Path(client.download_artifacts(parents[0].info.run_id, "trials.md", str(tmp_path))).read_text())
    assert sorted(int(line.split("|")[1]) for line in table.splitlines()[2:]) == sorted(t.number for t in finished)
    # The search used more than one process.
    assert sum(any((tmp_path / name).glob("trial-*/summary.json")) for name in names) >= 2
    # A rerun that adds a trial adds only a configuration no trial had.
    again = tune_worker(tmp_path / "rerun", storage, tracking, "--trials", 5)
    assert again.wait(timeout=900) == 0, console(tmp_path / "rerun")
    finished = [t for t in study_trials(storage) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5 and len({configuration(t) for t in finished}) == 5
    assert search_runs(tracking)[1][0].info.status == "FINISHED"
    for name in [*names, "rerun"]:
        assert not leaks(console(tmp_path / name))
        assert leaking_files(tmp_path / name) == {}
    assert mlflow_leaks(tracking, tmp_path / "downloaded") == {}
    assert study_leaks(storage) == {}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_workers_trial_is_retried_and_no_run_stays_running(postgres, tmp_path):
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    storage, tracking = postgres.create_database("study_kill"), postgres.create_database("tracking_kill")
    common = ("--trials", 3, "--heartbeat_interval", 1)
    victim = tune_worker(tmp_path / "victim", storage, tracking, *common)
    deadline = time.monotonic() + 600
    while not any((tmp_path / "victim").glob("trial-*/mlflow_run.json")):  # its first trial is training
        assert victim.poll() is None and time.monotonic() < deadline, console(tmp_path / "victim")
        time.sleep(0.2)
    survivor = tune_worker(tmp_path / "survivor", storage, tracking, *common)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=900) == 0, console(tmp_path / "survivor")
    trials = study_trials(storage)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3 and len({t.number for t in finished}) == 3
    killed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")]
    assert len(killed) == 1
    assert [RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in finished].count(killed[0].number) == 1
    client, parents, children = search_runs(tracking)
    assert len(parents) == 1 and all(r.info.status != "RUNNING" for r in [*parents, *children])
    # The killed trial's run and its retry's run, both named after the original trial.
    same_trial = [r for r in children if r.info.run_name == f"trial {killed[0].number}"]
    assert sorted(r.info.status for r in same_trial) == ["FINISHED", "KILLED"]
    assert not leaks(console(tmp_path / "survivor"))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_database_that_goes_away_mid_trial_is_one_line_and_a_rerun_reaches_the_count(postgres, tmp_path):
    from optuna.trial import TrialState

    postgres.create_database("study_gone")
    storage, tracking = postgres.uri("study_gone", password=RAW_PASSWORD), postgres.create_database("tracking_gone")
    common = ("--num_train_epochs", 2, "--trials", 2, "--heartbeat_interval", 1)
    worker = tune_worker(tmp_path / "worker", storage, tracking, *common)
    deadline = time.monotonic() + 600
    while not any((tmp_path / "worker").glob("trial-*/mlflow_run.json")):  # its first trial is training
        assert worker.poll() is None and time.monotonic() < deadline, console(tmp_path / "worker")
        time.sleep(0.2)
    postgres.stop()
    try:
        assert worker.wait(timeout=300) == 1, console(tmp_path / "worker")
    finally:
        postgres.start()
    said = console(tmp_path / "worker")
    assert "Traceback" not in said and not leaks(said)
    errors = [line for line in console_lines(said) if line.startswith("error:")]
    assert len(errors) == 1, said[-3000:]
    line = errors[0]
    assert line.startswith("error: the database went away (") and line.endswith("rerun the same command once it is back")
    again = tune_worker(tmp_path / "again", storage, tracking, *common)
    assert again.wait(timeout=900) == 0, console(tmp_path / "again")
    finished = [t for t in study_trials(storage) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2
    client, parents, children = search_runs(tracking)
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert all(c.info.status != "RUNNING" for c in children)  # the lost trial's run was closed by its retry
