"""The trained model as an MLflow model: a pyfunc that writes one review per row of rating, rubrics, keywords.

`log_review_model` logs OUTPUT_DIR/final to a training run as an MLflow 3 LoggedModel (listed
under the run's "Logged models") and can register it as a new version of a registered model;
`mlflow models serve -m models:/NAME/VERSION --env-manager local` then serves it. The model's
directory holds:

    MLmodel, requirements.txt, ...   the pyfunc flavor, signature, input example; the project's requirements.txt
    mlflow_model.py                  this file: MLflow runs it to build the model ("models from code")
    code/reviewkit/                  the project's package: its prompt and generation code
    artifacts/final/                 the kept model (safetensors), or a LoRA adapter
    artifacts/<base>/                a LoRA adapter's base model, when that was a local directory

Nothing is pickled. An adapter on a hub base (cointegrated/rut5-small) ships without it: it loads
the base from the Hugging Face hub or its local cache. Input: columns `rating` (1-5), `rubrics`
("Кафе;Кофейня" or a list) and `keywords` ("кофе, десерт" or a list); sampling settings are the
request's `params` (the signature's, with SamplingSettings' defaults). A bad row or param is a
MlflowException with INVALID_PARAMETER_VALUE: the scoring server answers 400 with its message.
The model loads on the device that $REVIEWKIT_DEVICE names (auto, cpu, cuda, cuda:N; default auto);
a bad or absent device fails the load with a one-line DeviceError.

One request's bounds: at most $REVIEWKIT_MAX_RECORDS records (256), rubrics and keywords of at most
4096 characters each, max_new_tokens up to the model's max_target_length, prompts cut to its
max_source_length; anything more is a 400. Requests generate one at a time, in arrival order, so a
request's seed alone decides its reviews. Each has a deadline of $REVIEWKIT_MAX_SECONDS (50 s, at most
5/6 of the scoring server's request timeout), counted from when the model got it: a request still
waiting for its turn then is a 503, and generation stops there, its reviews cut where they are.
Under `mlflow models serve`, SIGTERM or Ctrl-C stops generation at once (requests in progress or
waiting get a 503), so the server exits within seconds.

MLflow runs this file on its own, not as `reviewkit.model.mlflow_model`: hence the absolute imports and
the `set_model` call at the bottom.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import (INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS,
                                          TEMPORARILY_UNAVAILABLE, ErrorCode)
from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

from reviewkit.common.cli import float_above, int_in
from reviewkit.common.errors import DeviceError
from reviewkit.common.paths import PACKAGE_DIR, PROJECT_ROOT
from reviewkit.model.device import GenerationDevice, device_choice, resolve_device
from reviewkit.model.generation import (SEED_MAX, GenerationCutoff, SamplingSettings, TrainedLengths, generate_reviews,
                                        load_for_generation, prompt_of, with_empty_nulls)

REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
DEVICE_VARIABLE = "REVIEWKIT_DEVICE"
# One request's bounds: records, characters of a rubrics or keywords value (the prompt keeps ~64 tokens of them
# anyway), and seconds from its arrival at the model (below the scoring server's timeout, so none outlives its
# request).
MAX_RECORDS_VARIABLE, MAX_RECORDS = "REVIEWKIT_MAX_RECORDS", 256
MAX_FIELD_CHARS = 4096
MAX_SECONDS_VARIABLE, MAX_SECONDS = "REVIEWKIT_MAX_SECONDS", 50.0
SERVER_TIMEOUT_VARIABLE = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"  # set by `mlflow models serve` (-t, default 60)
INPUT_EXAMPLE = pd.DataFrame([{"rating": 5, "rubrics": "Кафе;Кофейня", "keywords": "кофе, десерт, уютно"}])
# The request params and their checks: the same bounds as the scripts' sampling flags.
PARAM_CHECKS = {"temperature": float_above(0), "top_p": float_above(0, 1), "top_k": int_in(0),
                "no_repeat_ngram_size": int_in(0), "max_new_tokens": int_in(1), "seed": int_in(0, SEED_MAX)}
_DEFAULTS = SamplingSettings()
SIGNATURE = ModelSignature(
    # AnyType: MLflow passes each value as sent. With "long" it turned 5.5, 1.9 and true into 5, 1 and 1
    # before checked_row could refuse them. Rubrics and keywords may each be a string or a list of strings.
    inputs=Schema([ColSpec(AnyType(), "rating"), ColSpec(AnyType(), "rubrics"), ColSpec(AnyType(), "keywords")]),
    outputs=Schema([ColSpec("string")]),
    params=ParamSchema([ParamSpec(name, "double" if isinstance(getattr(_DEFAULTS, name), float) else "long",
                                  getattr(_DEFAULTS, name)) for name in PARAM_CHECKS]),
)


class ReviewModel(mlflow.pyfunc.PythonModel):
    """One generated review per input row, with the project's prompt and sampling."""

    def load_context(self, context):
        artifacts = context.artifacts
        device = served_device()
        self.model, self.tokenizer = load_for_generation(artifacts["model"], artifacts.get("base_model"), device)
        self.lengths = TrainedLengths.of(artifacts["model"])
        self.max_records = int(os.environ.get(MAX_RECORDS_VARIABLE) or MAX_RECORDS)
        self.max_seconds = request_seconds()
        # generate_reviews seeds torch's process-wide generator: requests generate one at a time, in arrival order,
        # on this one thread, so a request's seed alone decides its reviews, whatever the scoring server runs beside
        # it. One thread also keeps one malloc arena: the server's memory stays flat under concurrent requests.
        self.generator = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reviewkit-generate")
        self.stopping = threading.Event()
        if os.environ.get(SERVER_TIMEOUT_VARIABLE):  # served by `mlflow models serve`, not loaded in a user's process
            stop_with_the_server(self.stopping)
        print(f"reviewkit: the model generates on {device.description}; at most {self.max_records} records and "
              f"{self.max_seconds:g} s per request", file=sys.stderr, flush=True)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        cutoff = GenerationCutoff(time.monotonic() + self.max_seconds, self.stopping)
        try:
            settings = sampling_settings(params or {})
            if settings.max_new_tokens > self.lengths.max_target_length:
                raise ValueError(f"params: max_new_tokens {settings.max_new_tokens} is above the model's "
                                 f"max_target_length {self.lengths.max_target_length}")
            if len(model_input) > self.max_records:
                raise ValueError(f"{len(model_input)} records in one request; at most {self.max_records} "
                                 f"(${MAX_RECORDS_VARIABLE})")
            rows = with_empty_nulls(model_input.to_dict("records"))
            prompts = [prompt_of(checked_row(row, f"record {i}"), f"record {i}") for i, row in enumerate(rows)]
        except ValueError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        if not prompts:
            return []
        job = self.generator.submit(self.generate, prompts, settings, cutoff)
        try:
            reviews = job.result(timeout=max(cutoff.deadline - time.monotonic(), 0))
        except concurrent.futures.TimeoutError:
            reviews = None if job.cancel() else job.result()  # one that has started ends at the deadline
        if self.stopping.is_set():
            raise MlflowException("the server is stopping", error_code=TEMPORARILY_UNAVAILABLE)
        if reviews is None:
            raise MlflowException(f"the server is busy: no turn to generate within {self.max_seconds:g} s "
                                  f"(${MAX_SECONDS_VARIABLE})", error_code=TEMPORARILY_UNAVAILABLE)
        return [texts[0] for texts in reviews]

    def generate(self, prompts: list[str], settings: SamplingSettings, cutoff: GenerationCutoff):
        """The reviews; None when the request's deadline passed (or the server began stopping) before its turn."""
        if cutoff.reached():
            return None
        return generate_reviews(self.model, self.tokenizer, prompts, settings,
                                max_source_length=self.lengths.max_source_length, cutoff=cutoff)


def request_seconds() -> float:
    """$REVIEWKIT_MAX_SECONDS (default 50), at most 5/6 of the scoring server's request timeout when it is known."""
    seconds = float(os.environ.get(MAX_SECONDS_VARIABLE) or MAX_SECONDS)
    server_timeout = os.environ.get(SERVER_TIMEOUT_VARIABLE)
    return min(seconds, float(server_timeout) * 5 / 6) if server_timeout else seconds


def stop_with_the_server(stopping: threading.Event) -> None:
    """Set `stopping` (generation ends at the next token) when the scoring server is told to stop.

    The scoring server is uvicorn: on SIGTERM or Ctrl-C it waits for the requests in progress before it exits,
    so without this for as long as their generation ran. Its own handler, installed after the model loads,
    is `Server.handle_exit`: the model joins it there.
    """
    from uvicorn.server import Server

    handle_exit = Server.handle_exit

    def handle_exit_and_stop_generating(self, sig, frame):
        stopping.set()
        handle_exit(self, sig, frame)

    Server.handle_exit = handle_exit_and_stop_generating


def served_device() -> GenerationDevice:
    """The device $REVIEWKIT_DEVICE names (default auto); DeviceError naming the variable when it is bad or absent."""
    choice = os.environ.get(DEVICE_VARIABLE) or "auto"
    try:
        return resolve_device(device_choice(choice))
    except (argparse.ArgumentTypeError, DeviceError) as exc:
        raise DeviceError(f"{DEVICE_VARIABLE}={choice}: {exc}") from None


def checked_row(row: dict, where: str) -> dict:
    rating = row["rating"]
    if isinstance(rating, bool) or not isinstance(rating, (int, np.integer)) or not 1 <= rating <= 5:
        raise ValueError(f"{where}: rating must be an integer from 1 to 5, got {rating!r}")
    for name in ("rubrics", "keywords"):
        value = row[name]
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ValueError(f"{where}: {name} must be a string or a list of strings, got {value!r}")
        chars = len(value) if isinstance(value, str) else sum(len(v) + 1 for v in value)
        if chars > MAX_FIELD_CHARS:
            raise ValueError(f"{where}: {name} is {chars} characters long; at most {MAX_FIELD_CHARS}")
    return row


def sampling_settings(params: dict) -> SamplingSettings:
    values = {}
    for name, value in params.items():
        try:
            values[name] = PARAM_CHECKS[name](str(value))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"params: {name} {exc}") from None
    return SamplingSettings(**values)


@dataclass(frozen=True)
class LoggedReviewModel:
    model_id: str
    model_uri: str  # models:/<model_id>
    registered_version: str | None = None


def log_review_model(tracking_uri: str, run_id: str, model_dir: Path, name: str, step: int,
                     base_model: str | None = None, register_as: str | None = None) -> LoggedReviewModel:
    """Log `model_dir` (a full model or a LoRA adapter) to the run as a LoggedModel linked at `step`.

    `base_model`: a LoRA adapter's base; a local directory ships with the model, a hub id is only
    referenced by the adapter's config. A run that already has a logged model keeps it: a rerun of
    a finished command uploads nothing again. `register_as` also registers the model as a version
    of that registered model, once. Raises whatever MLflow raises.
    """
    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    if outputs:
        model = client.get_logged_model(outputs[0].model_id)
    else:
        model = client.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id,
                                           tags={"base_model": base_model} if base_model else None)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "model"
                save_review_model(local, model_dir, base_model, mlflow.models.Model(
                    artifact_path=model.artifact_location, run_id=run_id, model_uuid=model.model_id,
                    model_id=model.model_id))
                client.log_model_artifacts(model.model_id, str(local))
        except Exception:
            with contextlib.suppress(Exception):  # the server may be gone: the model then stays PENDING
                client.finalize_logged_model(model.model_id, "FAILED")
            raise
        client.finalize_logged_model(model.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    version = register(client, register_as, model, run_id) if register_as else None
    return LoggedReviewModel(model.model_id, f"models:/{model.model_id}", version)


def save_review_model(path: Path, model_dir: Path, base_model: str | None, mlflow_model=None) -> None:
    """The pyfunc model directory at `path`; see the module docstring for its layout."""
    artifacts = {"model": str(model_dir)}
    if base_model and Path(base_model).is_dir():
        artifacts["base_model"] = str(base_model)
    with quiet_mlflow():
        mlflow.pyfunc.save_model(
            str(path), python_model=__file__, artifacts=artifacts, code_paths=[str(PACKAGE_DIR)],
            signature=SIGNATURE, input_example=INPUT_EXAMPLE, pip_requirements=str(REQUIREMENTS),
            mlflow_model=mlflow_model)
    for cache in list(path.rglob("__pycache__")):  # bytecode of the shipped package, this interpreter's
        shutil.rmtree(cache)


@contextlib.contextmanager
def quiet_mlflow():
    """Without MLflow's INFO lines and its progress bar for copying the local files into the model."""
    mlflow_logger = logging.getLogger("mlflow")
    level, progress_bar = mlflow_logger.level, os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    mlflow_logger.setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        mlflow_logger.setLevel(level)
        if progress_bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = progress_bar


def register(client, name: str, model, run_id: str) -> str:
    """The version of `name` that holds this LoggedModel: an existing one, or a new one."""
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    source = f"models:/{model.model_id}"  # the source that links the version to its LoggedModel
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if version.name == name and version.source == source:
            return str(version.version)
    with global_tracking_uri(client.tracking_uri):
        return str(client.create_model_version(name, source=source, run_id=run_id, model_id=model.model_id).version)


@contextlib.contextmanager
def global_tracking_uri(uri: str):
    """A database registry resolves models:/<id> through MLflow's global tracking URI, not through its client's.

    The project never sets that global itself (its clients are given their URI): afterwards it is
    unset again and $MLFLOW_TRACKING_URI is as it was.
    """
    environment = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        if environment is not None:
            os.environ["MLFLOW_TRACKING_URI"] = environment


mlflow.models.set_model(ReviewModel())
