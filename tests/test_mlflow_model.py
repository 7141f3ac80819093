"""The kept model as an MLflow model: logged and registered by a demo run, loaded as a pyfunc, served over HTTP."""

import concurrent.futures
import json
import shutil
import signal
import threading
import time
import urllib.parse
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import script_here, tool_env, train_here
from model_server import ModelServer
from mlflow.exceptions import MlflowException

from reviewkit.data.prompt import build_prompt
from reviewkit.model.generation import SamplingSettings, generate_reviews, load_for_generation
from reviewkit.model.mlflow_model import served_device, stop_with_the_server
from reviewkit.training.config import parse_config
from uvicorn import Config, Server

# The module's demo runs are built once: all its tests go to one xdist worker.
pytestmark = pytest.mark.xdist_group("mlflow_model")
QUICK = ("--num_train_epochs", 1, "--max_train_samples", 300)
REGISTERED = "demo_reviews"


class DemoRun:
    """A demo training run in WORKDIR/run, logged to WORKDIR/mlflow.db, read back with MlflowClient."""

    def __init__(self, script: str, workdir: Path, *extra):
        self.workdir = workdir
        self.tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
        self.result = train_here(script, workdir, *QUICK, *extra)
        assert self.result.returncode == 0, self.result.stderr[-3000:]
        self.client = mlflow.MlflowClient(self.tracking_uri)
        self.run_id = json.loads((workdir / "run" / "mlflow_run.json").read_text(encoding="utf-8"))["run_id"]

    def model_outputs(self):
        return self.client.get_run(self.run_id).outputs.model_outputs

    def logged_model(self):
        (output,) = self.model_outputs()
        return self.client.get_logged_model(output.model_id)


def local_dir(artifact_location: str) -> Path:
    return Path(urllib.parse.urlparse(artifact_location).path)


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    return DemoRun("train_t5.py", tmp_path_factory.mktemp("t5"), "--register_model", REGISTERED)


@pytest.fixture(scope="module")
def t5_pyfunc(t5_run):
    return mlflow.pyfunc.load_model(t5_run.logged_model().artifact_location)


def test_a_demo_run_logs_its_model_linked_to_the_run_and_registers_a_version(t5_run):
    (output,) = t5_run.model_outputs()
    assert output.step == 1  # the kept epoch
    model = t5_run.logged_model()
    assert model.source_run_id == t5_run.run_id and model.status == "READY" and model.name == "train_t5"
    version = t5_run.client.get_model_version(REGISTERED, "1")
    assert version.run_id == t5_run.run_id and version.source == f"models:/{model.model_id}"
    assert f"MLflow model models:/{model.model_id} logged, registered as {REGISTERED} version 1" in t5_run.result.stdout
    files = local_dir(model.artifact_location)
    weights = files / "artifacts" / "final" / "model.safetensors"
    assert weights.read_bytes() == (t5_run.workdir / "run" / "final" / "model.safetensors").read_bytes()
    assert (files / "code" / "reviewkit" / "data" / "prompt.py").is_file() and (files / "mlflow_model.py").is_file()
    assert not [p for p in files.rglob("*") if p.suffix in (".pkl", ".bin", ".pt", ".pth", ".pyc")]
    assert "torch==" in (files / "requirements.txt").read_text(encoding="utf-8")
    mlmodel = mlflow.models.Model.load(str(files))
    assert mlmodel.run_id == t5_run.run_id and mlmodel.model_id == model.model_id
    assert mlmodel.signature.inputs.input_names() == ["rating", "rubrics", "keywords"]
    assert {p.name for p in mlmodel.signature.params.params} == {
        "temperature", "top_p", "top_k", "no_repeat_ngram_size", "max_new_tokens", "seed"}
    assert mlmodel.load_input_example(str(files)).to_dict("records")[0]["rating"] == 5


def test_the_pyfunc_writes_one_review_per_row_with_the_project_prompt_and_sampling(t5_run, t5_pyfunc):
    row = {"rating": 4, "rubrics": "Кафе;Кофейня", "keywords": "кофе, десерт"}
    params = {"seed": 7, "max_new_tokens": 12, "temperature": 0.8}
    (review,) = t5_pyfunc.predict(pd.DataFrame([row]), params=params)
    model, tokenizer = load_for_generation(str(t5_run.workdir / "run" / "final"), None, served_device())
    expected = generate_reviews(model, tokenizer, [build_prompt(4, "Кафе;Кофейня", "кофе, десерт")],
                                SamplingSettings(seed=7, max_new_tokens=12, temperature=0.8))
    assert review == expected[0][0] and review
    as_lists = {**row, "rubrics": ["Кафе", "Кофейня"], "keywords": ["кофе", "десерт"]}
    assert t5_pyfunc.predict(pd.DataFrame([as_lists]), params=params) == [review]
    rows = pd.DataFrame([row, {"rating": 1, "rubrics": "Бар", "keywords": "шумно"}, row])
    reviews = t5_pyfunc.predict(rows, params={"max_new_tokens": 12})
    assert len(reviews) == 3 and all(isinstance(r, str) and r for r in reviews)


@pytest.mark.parametrize("rows, params, message", [
    ([{"rating": 7, "rubrics": "Кафе", "keywords": "кофе"}], None, "record 0: rating must be an integer from 1 to 5, got 7"),
    # As sent: MLflow's "long" column turned these into 5, 1 and 1 before the check saw them.
    ([{"rating": 5.5, "rubrics": "Кафе", "keywords": "кофе"}], None, "rating must be an integer from 1 to 5, got 5.5"),
    ([{"rating": 1.9, "rubrics": "Кафе", "keywords": "кофе"}], None, "rating must be an integer from 1 to 5, got 1.9"),
    ([{"rating": True, "rubrics": "Кафе", "keywords": "кофе"}], None, "rating must be an integer from 1 to 5, got True"),
    ([{"rating": "5", "rubrics": "Кафе", "keywords": "кофе"}], None, "rating must be an integer from 1 to 5, got '5'"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}, {"rating": 5, "rubrics": "Кафе", "keywords": 3}], None,
     "record 1: keywords must be a string or a list of strings, got 3"),
    ([{"rating": 5, "rubrics": "Кафе"}], None, "missing inputs ['keywords']"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}], {"top_p": 1.5}, "params: top_p must be a number"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}], {"max_new_tokens": 0}, "params: max_new_tokens must be"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}], {"max_new_tokens": 1_000_000_000},
     "params: max_new_tokens 1000000000 is above the model's max_target_length 256"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}] * 257, None, "257 records in one request; at most 256"),
    ([{"rating": 5, "rubrics": "Кафе", "keywords": ", ".join(["слово"] * 10_000)}], None,
     "record 0: keywords is 69998 characters long; at most 4096"),
    ([{"rating": 5, "rubrics": "К" * 1_000_000, "keywords": "кофе"}], None,
     "record 0: rubrics is 1000000 characters long; at most 4096"),
])
def test_a_bad_row_or_param_is_a_clear_invalid_parameter_error(t5_pyfunc, rows, params, message):
    with pytest.raises(MlflowException) as raised:
        t5_pyfunc.predict(pd.DataFrame(rows), params=params)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE" and message in raised.value.message


def test_concurrent_requests_with_one_seed_get_the_reviews_of_that_request_alone(t5_pyfunc):
    rows = pd.DataFrame([{"rating": r, "rubrics": "Кафе", "keywords": "кофе, десерт"} for r in (1, 3, 5)])
    params = {"seed": 11, "max_new_tokens": 16}
    alone = t5_pyfunc.predict(rows, params=params)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda _: t5_pyfunc.predict(rows, params=params), range(8)))
    assert together == [alone] * 8


def test_prompts_are_cut_to_the_trained_length(t5_run, t5_pyfunc, monkeypatch):
    files = local_dir(t5_run.logged_model().artifact_location)
    recorded = json.loads((files / "artifacts" / "final" / "training_lengths.json").read_text(encoding="utf-8"))
    assert recorded == {"max_source_length": 64, "max_target_length": 256}  # train_t5.py's, written by training
    model = t5_pyfunc.unwrap_python_model().model
    calls, generate = [], model.generate
    monkeypatch.setattr(model, "generate", lambda **kwargs: calls.append(kwargs) or generate(**kwargs))
    row = {"rating": 5, "rubrics": "Кафе", "keywords": ", ".join(["слово"] * 500)}  # far more than 64 tokens
    (review,) = t5_pyfunc.predict(pd.DataFrame([row]), params={"max_new_tokens": 4})
    assert calls[0]["input_ids"].shape[1] == 64


WORST = {"rows": pd.DataFrame([{"rating": 1 + i % 5, "rubrics": "Кафе;Бар", "keywords": "кофе, шумно"}
                               for i in range(256)]),
         "params": {"max_new_tokens": 256, "temperature": 50.0, "top_k": 0, "top_p": 1.0}}


def test_the_worst_request_ends_at_its_deadline_with_its_reviews_cut(t5_pyfunc, monkeypatch):
    served = t5_pyfunc.unwrap_python_model()
    monkeypatch.setattr(served, "max_seconds", 1.0)
    started = time.monotonic()
    reviews = t5_pyfunc.predict(WORST["rows"], params=WORST["params"])
    assert time.monotonic() - started < 1.0 + 1.5 and len(reviews) == 256
    # Uncut, each batch of 64 runs to 256 tokens (~1.7 s each here): the batches after the deadline stay empty.
    assert reviews.count("") >= 128


def test_a_request_that_gets_no_turn_before_its_deadline_is_503_and_the_queue_goes_on(t5_pyfunc, monkeypatch):
    served = t5_pyfunc.unwrap_python_model()
    monkeypatch.setattr(served, "max_seconds", 0.5)
    release, generate = threading.Event(), served.model.generate
    monkeypatch.setattr(served.model, "generate", lambda **kwargs: release.wait(10) and generate(**kwargs))
    rows = pd.DataFrame([{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"}])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(t5_pyfunc.predict, rows, params={"max_new_tokens": 4})
        time.sleep(0.2)  # the first request holds the turn
        with pytest.raises(MlflowException) as raised:
            t5_pyfunc.predict(rows, params={"max_new_tokens": 4})
        release.set()
        assert len(first.result()) == 1
    assert raised.value.get_http_status_code() == 503 and "the server is busy" in raised.value.message
    assert len(t5_pyfunc.predict(rows, params={"max_new_tokens": 4})) == 1


def test_once_the_server_is_stopping_generation_ends_and_the_request_is_503(t5_pyfunc, monkeypatch):
    served = t5_pyfunc.unwrap_python_model()
    monkeypatch.setattr(served, "stopping", threading.Event())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        worst = pool.submit(t5_pyfunc.predict, WORST["rows"], params=WORST["params"])
        time.sleep(0.3)
        served.stopping.set()
        with pytest.raises(MlflowException) as raised:
            worst.result()
    assert time.monotonic() - started < 3.0
    assert raised.value.get_http_status_code() == 503 and raised.value.message == "the server is stopping"


def test_when_uvicorn_is_told_to_exit_the_model_stops_generating(monkeypatch):
    monkeypatch.setattr(Server, "handle_exit", Server.handle_exit)  # restored afterwards
    stopping = threading.Event()
    stop_with_the_server(stopping)
    server = Server(Config(app=None))
    server.handle_exit(signal.SIGTERM, None)
    assert stopping.is_set() and server.should_exit


def test_log_model_is_on_by_default_and_register_model_needs_it():
    config, _ = parse_config("", {}, {}, ["--demo"])
    assert config.log_model and config.register_model is None
    config, _ = parse_config("", {}, {}, ["--demo", "--log_model", "false"])
    assert not config.log_model
    result = script_here("train_t5.py", "--demo", "--log_model", "false", "--register_model", "x")
    assert result.returncode == 2 and "--register_model NAME needs a name and --log_model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_lora_run_logs_its_adapter_with_the_local_base_and_it_predicts_without_the_output_dir(tmp_path):
    run = DemoRun("train_lora.py", tmp_path)
    model = run.logged_model()
    assert model.tags["base_model"] == str(tmp_path / "run" / "demo_model")
    files = local_dir(model.artifact_location) / "artifacts"
    assert (files / "final" / "adapter_model.safetensors").stat().st_size < 1_000_000
    assert not (files / "final" / "model.safetensors").exists() and (files / "demo_model" / "model.safetensors").is_file()
    shutil.rmtree(tmp_path / "run")  # the adapter's recorded base path is gone: the shipped base must be used
    loaded = mlflow.pyfunc.load_model(model.artifact_location)
    reviews = loaded.predict(pd.DataFrame([{"rating": 2, "rubrics": "Кафе", "keywords": ["кофе", "холодно"]}]),
                             params={"max_new_tokens": 12})
    assert len(reviews) == 1 and reviews[0]


def test_a_failing_artifact_store_keeps_the_training_with_a_one_line_warning(tmp_path):
    (tmp_path / "mlartifacts").mkdir()
    (tmp_path / "mlartifacts" / "models").write_text("", encoding="utf-8")  # where logged models go: blocked
    run = DemoRun("train_t5.py", tmp_path)
    warnings = [line for line in run.result.stderr.splitlines() if "the model was not logged" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the model was not logged to MLflow (")
    assert warnings[0].endswith(f"it stays in {tmp_path / 'run' / 'final'}") and "Traceback" not in run.result.stderr
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    run_info = run.client.get_run(run.run_id)
    assert run_info.info.status == "FINISHED" and not run.model_outputs()
    (failed,) = run.client.search_logged_models([run_info.info.experiment_id])
    assert failed.status == "FAILED" and failed.source_run_id == run.run_id


def test_a_rerun_of_the_finished_command_logs_no_second_model(t5_run):
    first = t5_run.logged_model().model_id
    again = train_here("train_t5.py", t5_run.workdir, *QUICK, "--register_model", REGISTERED)
    assert again.returncode == 0, again.stderr[-3000:]
    assert t5_run.logged_model().model_id == first
    assert [str(v.version) for v in t5_run.client.search_model_versions(f"name = '{REGISTERED}'")] == ["1"]
    assert f"MLflow model models:/{first} logged, registered as {REGISTERED} version 1" in again.stdout


@pytest.fixture(scope="module")
def served_model(t5_run, tmp_path_factory):
    """A function giving the registered demo model under `mlflow models serve`, a 30 s deadline a request.

    The module's serving tests share one server; after a test has stopped it, the next one gets a new server.
    """
    servers = []

    def serve() -> ModelServer:
        if not servers or servers[-1].process.poll() is not None:
            env = tool_env({"MLFLOW_TRACKING_URI": t5_run.tracking_uri, "REVIEWKIT_MAX_SECONDS": "30"})
            servers.append(ModelServer(f"models:/{REGISTERED}/1", tmp_path_factory.mktemp("serve") / "serve.log", env))
            servers[-1].wait_until_up()
        return servers[-1]

    yield serve
    for server in servers:
        server.kill()


@pytest.mark.slow  # a second process: `mlflow models serve` imports torch and mlflow and loads the model
def test_mlflow_models_serve_answers_one_review_per_record_and_survives_bad_records(served_model):
    server = served_model()
    good = {"dataframe_records": [{"rating": 5, "rubrics": "Кафе", "keywords": "кофе"},
                                  {"rating": 2, "rubrics": "Кафе;Бар", "keywords": ["пиво", "шумно"]}],
            "params": {"max_new_tokens": 16, "seed": 3}}
    status, answer = server.post(good)
    assert status == 200 and len(answer["predictions"]) == 2 and all(answer["predictions"])
    status, error = server.post({"dataframe_records": [{"rating": 7, "rubrics": "Кафе", "keywords": "кофе"}]})
    assert status == 400 and "record 0: rating must be an integer from 1 to 5, got 7" in error["message"]
    status, error = server.post({"dataframe_records": [{"rating": 5, "rubrics": "Кафе"}]})
    assert status == 400 and "missing inputs ['keywords']" in error["message"]
    assert server.post(good) == (200, answer)  # still serving, and the same seed gives the same reviews


def record(**fields) -> dict:
    return {"rating": 5, "rubrics": "Кафе", "keywords": "кофе", **fields}


HOSTILE = [  # (body, status, part of the message)
    ({"dataframe_records": [record()] * 64, "params": {"max_new_tokens": 1_000_000_000, "temperature": 50,
                                                        "top_k": 0}},
     400, "max_new_tokens 1000000000 is above the model's max_target_length 256"),
    ({"dataframe_records": [record(keywords=["слово"] * 10_000)]}, 400, "keywords is 60000 characters long"),
    ({"dataframe_records": [record(rubrics="К" * 1_000_000)]}, 400, "rubrics is 1000000 characters long"),
    ({"dataframe_records": [record()] * 500}, 400, "500 records in one request; at most 256"),
    ({"dataframe_records": [record(rating=5.5)]}, 400, "rating must be an integer from 1 to 5, got 5.5"),
    ({"dataframe_records": [record(rating=True)]}, 400, "rating must be an integer from 1 to 5, got True"),
    ({"dataframe_records": [record(rating="5")]}, 400, "rating must be an integer from 1 to 5, got '5'"),
]


@pytest.mark.slow  # a second process: `mlflow models serve` imports torch and mlflow and loads the model
def test_hostile_requests_get_a_400_or_end_in_time_and_the_server_stays_well_and_stops_on_sigterm(served_model):
    server = served_model()
    valid = {"dataframe_records": [record(), record(rating=1, keywords=["грязно", "долго"])],
             "params": {"max_new_tokens": 32, "seed": 5}}
    status, alone = server.post(valid)
    assert status == 200
    rss_before = server.rss()
    for body, status, message in HOSTILE:
        answer = server.post(body, timeout=30)
        assert answer[0] == status and message in answer[1]["message"], (message, str(answer)[:300])

    # The worst valid request: the most records, the longest reviews, sampling that never ends a review early.
    worst = {"dataframe_records": [record(rating=1 + i % 5) for i in range(256)],
             "params": {"max_new_tokens": 256, "temperature": 50, "top_k": 0, "top_p": 1.0}}
    started = time.monotonic()
    status, answer = server.post(worst, timeout=60)
    assert status == 200 and len(answer["predictions"]) == 256 and time.monotonic() - started < 30 + 5
    time.sleep(2)
    cpu = server.cpu_seconds()
    time.sleep(2)
    assert server.cpu_seconds() - cpu < 0.2  # idle again: nothing generates on after the answer

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda _: server.post(valid), range(8)))
    assert together == [(200, alone)] * 8
    assert server.ping() == 200 and server.post(valid) == (200, alone)
    assert server.rss() < rss_before * 1.25, (server.rss(), rss_before)

    # SIGTERM while worst requests generate and wait: the server is gone in seconds, not after their work.
    pool = concurrent.futures.ThreadPoolExecutor(3)
    pending = [pool.submit(server.post, worst, 60) for _ in range(3)]
    time.sleep(1.5)
    assert server.terminate(timeout=30) < 5
    assert {future.result()[0] for future in pending} <= {503}, [str(f.result())[:200] for f in pending]
    pool.shutdown()
