"""The one way the project's tools open MLflow runs: experiment, run, parameters.

Training (`reviewkit.tracking.logger`), evaluate.py (`reviewkit.evaluation.mlflow_run`) and
tune_lora.py get or create their experiment with `experiment_id`, open a run with `start_run`
(the UI's source tags always set, `parent_run_id` nesting it), take a run up again with
`resume_run` and log parameters with `log_params`: masked (`reviewkit.common.redact`) and in
batches within MLflow's limits. The run a training output directory names
(OUTPUT_DIR/mlflow_run.json, read by `reviewkit.tracking.store.stored_run`) is found with
`run_in_store`. Datasets are linked with `log_dataset_inputs`. Values that must survive a dead
server go through `reviewkit.tracking.queue`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..common.redact import mask_uri, redact
from .conventions import source_tags
from .store import stored_run

# MLflow's limits for one log_batch call (mlflow.utils.validation; the REST API refuses more).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VAL_LENGTH = 6000


def open_client(tracking_uri: str):
    """An MlflowClient of the store at TRACKING_URI (the URI as given: credentials included)."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri)


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment NAME, created (with ARTIFACT_LOCATION) if the store has none; when another process
    creates it at the same moment, that one is used."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # MlflowException RESOURCE_ALREADY_EXISTS: lost the race; anything else is raised below
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database file (`mlartifacts/`); other stores choose their own."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def start_run(client, experiment: str, run_name: str, tags: dict | None = None,
              parent_run_id: str | None = None) -> str:
    """A new RUNNING run in the experiment with id EXPERIMENT: the UI's source tags, TAGS, nested under
    PARENT_RUN_ID if given; returns its id."""
    tags = {**source_tags(), **(tags or {}), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
    return client.create_run(experiment, run_name=run_name, tags=tags).info.run_id


def resume_run(client, run_id: str | None) -> bool:
    """Mark the run RUNNING again; False when there is no such run in this store (or no RUN_ID)."""
    if not run_id:
        return False
    try:
        client.update_run(run_id, status="RUNNING")
        return True
    except Exception:  # noqa: BLE001 - MlflowException: deleted, or in another tracking store
        return False


def run_in_store(client, output_dir: str | os.PathLike, tracking_uri: str) -> str | None:
    """The id of the run OUTPUT_DIR/mlflow_run.json names, if it was logged to this tracking store and is there."""
    stored = stored_run(output_dir)
    if not stored.get("run_id") or mask_uri(stored.get("tracking_uri")) != mask_uri(tracking_uri):
        return None
    try:
        client.get_run(stored["run_id"])
    except Exception:  # noqa: BLE001 - MlflowException: deleted or unknown in this store
        return None
    return stored["run_id"]


def log_dataset_inputs(client, run_id: str, inputs: list) -> None:
    """Link the MLflow DatasetInputs INPUTS to the run. MLflow's store looks each dataset up and then inserts the
    missing ones; when another process (a second tune_lora worker) inserts the same dataset in between, the insert
    breaks the store's unique key, and a second call finds that row and links it."""
    try:
        client.log_inputs(run_id, datasets=inputs)
    except Exception:  # noqa: BLE001 - MlflowException: lost the race; anything else fails again below
        client.log_inputs(run_id, datasets=inputs)


def masked_params(params: dict) -> list:
    """PARAMS as MLflow Params, by name: each value as text with its credentials masked, cut to MLflow's limit."""
    from mlflow.entities import Param

    return [Param(key, redact(value)[:MAX_PARAM_VAL_LENGTH]) for key, value in sorted(params.items())]


def log_params(client, run_id: str, params: dict) -> None:
    """Log PARAMS masked (`masked_params`), at most MAX_PARAMS_TAGS_PER_BATCH a call."""
    items = masked_params(params)
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[start:start + MAX_PARAMS_TAGS_PER_BATCH])
