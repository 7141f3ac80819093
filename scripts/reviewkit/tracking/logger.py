"""MLflow logging of a training run as a transformers callback.

One MLflow run per training run: its id is stored in the output directory, so a resumed run
continues the same MLflow run instead of opening a new one. Metrics: per-step `loss`,
`learning_rate` and `epoch` (step = global step); once per epoch `train_loss` (mean over the
epoch's optimizer steps), `train_samples_per_second`, `train_tokens_per_second`, `train_seconds`,
`eval_loss`, `eval_rating_<r>_loss` (token-mean validation loss of the reviews of rating r, from
the same evaluation pass) and `peak_rss_mib` (step = epoch number); at the end `best_epoch` and
`best_eval_loss`; artifacts `summary.json` and the data's `report.json`. Only the main process
(rank 0) talks to MLflow.

A tracking server that stops answering in the middle of training does not stop the training:
values that cannot be sent are kept in OUTPUT_DIR/mlflow_pending.jsonl (`reviewkit.tracking.queue`),
retried every 30 s and on a rerun of the same command, which also finishes the run.
The experiment, the run and its params go through `reviewkit.tracking.client`; this callback turns
the Trainer's events into metrics and skips the epochs a resumed run has already logged.

The tracking URI is used as given, but shown, stored and logged with its credentials masked
(`reviewkit.common.redact`): params, messages and OUTPUT_DIR/mlflow_run.json never hold a password.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

from tqdm import tqdm
from transformers import TrainerCallback

from ..common.redact import mask_uri, redact
from .client import (artifact_location, experiment_id, log_dataset_inputs, log_params, open_client, resume_run,
                     run_in_store, start_run)
from .conventions import card_description, dataset_inputs, note_tag
from .epochs import eval_losses, pick_best_epoch
from .queue import PENDING_FILE, PendingQueue
from .store import limit_http_retries, store_run

STEP_METRICS = ("loss", "learning_rate", "grad_norm")


class MlflowLogger(TrainerCallback):
    """Logs a training run to MLflow; see the module docstring for what is logged."""

    def __init__(self, tracking_uri: str, experiment: str, params: dict, epoch_stats,
                 run_name: str | None = None, parent_run_id: str | None = None, data_dir: Path | None = None):
        self.tracking_uri = tracking_uri
        self.shown_uri = mask_uri(tracking_uri)
        self.epoch_stats = epoch_stats  # reviewkit.training.trainer.EpochStats, closed by EpochStatsCallback just before
        self.experiment = experiment
        self.params = {key: redact(value) if isinstance(value, str) else value for key, value in params.items()}
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.data_dir = data_dir
        self.run_id: str | None = None
        self._client = None
        self._logged_epochs: dict[str, set[int]] = {}
        self._last_logged_step = -1
        self._logged_summary: dict[str, float] = {}
        self._queue: PendingQueue | None = None  # values the server has not acknowledged yet
        limit_http_retries()

    def on_train_begin(self, args, state, control, **kwargs):
        # args.process_index, not state.is_world_process_zero: transformers 5 resets the state in
        # train() and leaves that flag True on every rank.
        if args.process_index != 0:
            return
        self._client = open_client(self.tracking_uri)
        pending_file = Path(args.output_dir) / PENDING_FILE
        stored = run_in_store(self._client, args.output_dir, self.tracking_uri)
        if resume_run(self._client, stored):
            self.run_id = stored
            self._queue = PendingQueue(self._client, self.run_id, pending_file, self.shown_uri)
            self._queue.load()
            if len(self._queue) and self._queue.flush(force=True):
                tqdm.write(f"sent the MLflow values kept in {pending_file} while the server was away")
            self._load_logged()
        else:
            experiment = experiment_id(self._client, self.experiment, artifact_location(self.tracking_uri))
            # MLflow's random default name would repeat: the Trainer has seeded `random` by now.
            run_name = self.run_name or f"{self.experiment} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            self.run_id = start_run(self._client, experiment, run_name, parent_run_id=self.parent_run_id)
            self._queue = PendingQueue(self._client, self.run_id, pending_file, self.shown_uri)
            store_run(args.output_dir, self.tracking_uri, self.run_id)
            log_params(self._client, self.run_id, self.params)
            if self.data_dir is not None:
                log_dataset_inputs(self._client, self.run_id, dataset_inputs(self.data_dir))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._client is None or not logs or state.global_step <= self._last_logged_step:
            return
        metrics = {k: float(v) for k, v in logs.items() if k in STEP_METRICS and math.isfinite(float(v))}
        if metrics:
            metrics["epoch"] = float(state.epoch or 0.0)
            self._queue.add(metrics, state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._client is not None:
            self._queue.add({"epoch": float(state.epoch)}, state.global_step)
        for name, value in self.epoch_stats.last.items():
            self._log_epoch_metric(name, value, round(state.epoch))
        # Peak resident memory of this process so far: flat across epochs unless something leaks.
        self._log_epoch_metric("peak_rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                               round(state.epoch))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        for name, value in (metrics or {}).items():
            if name == "eval_loss" or (name.startswith("eval_rating_") and name.endswith("_loss")):
                self._log_epoch_metric(name, float(value), round(state.epoch))

    def _log_epoch_metric(self, name: str, value: float, epoch: int) -> None:
        """Once per epoch and name: a resumed run does not log an epoch twice."""
        logged = self._logged_epochs.setdefault(name, set())
        if self._client is None or epoch in logged:
            return
        logged.add(epoch)
        self._queue.add({name: value}, epoch)

    def on_train_end(self, args, state, control, **kwargs):
        if self._client is None:
            return
        evals = eval_losses(state.log_history)
        if evals:
            epoch, loss = pick_best_epoch(evals)
            best = {"best_epoch": float(epoch), "best_eval_loss": float(loss)}
            if best != self._logged_summary:  # a rerun of a finished run logs nothing new
                self._queue.add(best, 0)

    def finish(self, artifacts: list[Path], note: str | None = None) -> bool:
        """Send what is pending, attach the artifacts and the description (`note`, the model card) and mark the
        run FINISHED; False if the server refused."""
        if self._client is None:
            return True
        if self._queue.flush(force=True):
            try:
                for path in artifacts:
                    self._client.log_artifact(self.run_id, str(path))
                for key, value in (note_tag(redact(card_description(note))) if note else {}).items():
                    self._client.set_tag(self.run_id, key, value)
                self._client.set_terminated(self.run_id, status="FINISHED")
                return True
            except Exception as exc:  # noqa: BLE001 - any transport or server error means the same here
                self._queue.go_offline(exc)
        tqdm.write(f"warning: MLflow run {self.run_id} is left RUNNING ({self.shown_uri} does not answer); "
                   f"{len(self._queue)} values wait in {self._queue.path}. The model is saved. Rerun the same "
                   f"command once the server answers: it sends them, attaches the artifacts and finishes the run",
                   file=sys.stderr)
        return False

    def fail(self, status: str = "FAILED") -> None:
        """End the run as FAILED (an error) or KILLED (stopped by the user or a signal)."""
        if self._client is None or not self.run_id:
            return
        try:
            self._client.set_terminated(self.run_id, status=status)
        except Exception as exc:  # noqa: BLE001 - the run stays RUNNING; the next rerun resumes it anyway
            self._queue.go_offline(exc)

    def _load_logged(self) -> None:
        run = self._client.get_run(self.run_id)
        self._logged_summary = {k: v for k, v in run.data.metrics.items() if k in ("best_epoch", "best_eval_loss")}
        for name in run.data.metrics:
            if name.startswith(("train_", "eval_")) or name == "peak_rss_mib":
                self._logged_epochs[name] = {m.step for m in self._client.get_metric_history(self.run_id, name)}
        if "loss" in run.data.metrics:
            self._last_logged_step = max(m.step for m in self._client.get_metric_history(self.run_id, "loss"))
