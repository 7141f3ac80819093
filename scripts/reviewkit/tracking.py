"""MLflow logging of a training run as a transformers callback.

One MLflow run per training run: its id is stored in the output directory, so a resumed run
continues the same MLflow run instead of opening a new one. Metrics: per-step `loss`,
`learning_rate` and `epoch` (step = global step); once per epoch `train_loss` (mean over the
epoch's batches) and `eval_loss` (step = epoch number); at the end `best_epoch` and
`best_eval_loss`. Only the main process (rank 0) talks to MLflow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from transformers import TrainerCallback

from .files import atomic_write_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
RUN_ID_FILE = "mlflow_run.json"
STEP_METRICS = ("loss", "learning_rate", "grad_norm")


class TrackingError(Exception):
    """The tracking server cannot be used; the message is one line for the user."""


def resolve_tracking_uri(flag: str | None) -> str:
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail at once, before data or model are loaded, if an HTTP tracking server does not answer."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason})") from None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class EpochLoss:
    """Sums the training loss of the current epoch (the trainer adds, the logger takes the mean).

    Checkpoints are saved at epoch ends, right after the mean is taken, so a resumed run
    starts with an empty sum and loses nothing.
    """

    def __init__(self):
        self.total = 0.0
        self.batches = 0

    def add(self, value: float) -> None:
        self.total += value
        self.batches += 1

    def take_mean(self) -> float | None:
        mean = self.total / self.batches if self.batches else None
        self.total, self.batches = 0.0, 0
        return mean


class MlflowLogger(TrainerCallback):
    """Logs a training run to MLflow; see the module docstring for what is logged."""

    def __init__(self, tracking_uri: str, experiment: str, params: dict, epoch_loss: EpochLoss,
                 run_name: str | None = None):
        self.tracking_uri = tracking_uri
        self.epoch_loss = epoch_loss
        self.experiment = experiment
        self.params = params
        self.run_name = run_name
        self.run_id: str | None = None
        self._client = None
        self._logged_epochs: dict[str, set[int]] = {}
        self._last_logged_step = -1
        self._logged_summary: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        # args.process_index, not state.is_world_process_zero: transformers 5 resets the state in
        # train() and leaves that flag True on every rank.
        if args.process_index != 0:
            return
        import mlflow

        self._client = mlflow.MlflowClient(self.tracking_uri)
        run_file = Path(args.output_dir) / RUN_ID_FILE
        stored = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else {}
        if stored.get("tracking_uri") == self.tracking_uri and self._run_exists(stored.get("run_id")):
            self.run_id = stored["run_id"]
            self._client.update_run(self.run_id, status="RUNNING")
            self._load_logged()
        else:
            experiment = self._client.get_experiment_by_name(self.experiment)
            experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(
                self.experiment, artifact_location=self._artifact_location())
            run = self._client.create_run(experiment_id, run_name=self.run_name,
                                          tags={"git_commit": git_commit(), "script": self.experiment})
            self.run_id = run.info.run_id
            atomic_write_text(run_file, json.dumps({"tracking_uri": self.tracking_uri, "run_id": self.run_id}) + "\n")
            self._log_params(self.params)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._client is None or not logs or state.global_step <= self._last_logged_step:
            return
        metrics = {k: float(v) for k, v in logs.items() if k in STEP_METRICS and math.isfinite(float(v))}
        if metrics:
            metrics["epoch"] = float(state.epoch or 0.0)
            self._log(metrics, state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._client is not None:
            self._log({"epoch": float(state.epoch)}, state.global_step)
        mean = self.epoch_loss.take_mean()
        if mean is not None:
            self._log_epoch_metric("train_loss", mean, round(state.epoch))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self._log_epoch_metric("eval_loss", float(metrics["eval_loss"]), round(state.epoch))

    def _log_epoch_metric(self, name: str, value: float, epoch: int) -> None:
        """Once per epoch and name: a resumed run does not log an epoch twice."""
        logged = self._logged_epochs.setdefault(name, set())
        if self._client is None or epoch in logged:
            return
        logged.add(epoch)
        self._log({name: value}, epoch)

    def on_train_end(self, args, state, control, **kwargs):
        if self._client is None:
            return
        evals = [(round(e["epoch"]), e["eval_loss"]) for e in state.log_history if "eval_loss" in e]
        if evals:
            best_epoch, best_loss = min(evals, key=lambda pair: pair[1])
            best = {"best_epoch": float(best_epoch), "best_eval_loss": float(best_loss)}
            if best != self._logged_summary:  # a rerun of a finished run logs nothing new
                self._log(best, 0)
        self._client.set_terminated(self.run_id, status="FINISHED")

    def fail(self) -> None:
        if self._client is not None and self.run_id:
            self._client.set_terminated(self.run_id, status="FAILED")

    def _log(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in metrics.items()])

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:6000]) for key, value in sorted(params.items())]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start:start + 100])

    def _run_exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            self._client.get_run(run_id)
            return True
        except Exception:  # mlflow raises MlflowException for an unknown id
            return False

    def _load_logged(self) -> None:
        run = self._client.get_run(self.run_id)
        self._logged_summary = {k: v for k, v in run.data.metrics.items() if k in ("best_epoch", "best_eval_loss")}
        for name in ("train_loss", "eval_loss"):
            if name in run.data.metrics:
                self._logged_epochs[name] = {m.step for m in self._client.get_metric_history(self.run_id, name)}
        if "loss" in run.data.metrics:
            self._last_logged_step = max(m.step for m in self._client.get_metric_history(self.run_id, "loss"))

    def _artifact_location(self) -> str | None:
        if self.tracking_uri.startswith("sqlite:///"):
            return (Path(self.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        return None
