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
values that cannot be sent are kept in OUTPUT_DIR/mlflow_pending.jsonl, retried every
RETRY_INTERVAL_S seconds and on a rerun of the same command, which also finishes the run.

The tracking URI is used as given, but shown, stored and logged with its credentials masked
(`reviewkit.common.redact`): params, messages and OUTPUT_DIR/mlflow_run.json never hold a password.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

from tqdm import tqdm
from transformers import TrainerCallback

from ..common.files import atomic_write_text
from ..common.redact import mask_uri, redact
from .conventions import card_description, dataset_inputs, note_tag, source_tags
from .store import RUN_ID_FILE, first_line, limit_http_retries, stored_run

PENDING_FILE = "mlflow_pending.jsonl"
STEP_METRICS = ("loss", "learning_rate", "grad_norm")
RETRY_INTERVAL_S = 30.0
MAX_METRICS_PER_BATCH = 1000  # the MLflow REST API's limit for one log_batch


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
        self._pending: list[dict] = []  # logged values the server has not acknowledged yet, oldest first
        self._pending_file: Path | None = None
        self._offline = False
        self._next_attempt = 0.0
        limit_http_retries()

    def on_train_begin(self, args, state, control, **kwargs):
        # args.process_index, not state.is_world_process_zero: transformers 5 resets the state in
        # train() and leaves that flag True on every rank.
        if args.process_index != 0:
            return
        import mlflow

        self._client = mlflow.MlflowClient(self.tracking_uri)
        run_file = Path(args.output_dir) / RUN_ID_FILE
        self._pending_file = Path(args.output_dir) / PENDING_FILE
        stored = stored_run(args.output_dir)
        if mask_uri(stored.get("tracking_uri")) == self.shown_uri and self._run_exists(stored.get("run_id")):
            self.run_id = stored["run_id"]
            self._client.update_run(self.run_id, status="RUNNING")
            self._pending = self._read_pending()
            if self._pending and self._flush(force=True):
                tqdm.write(f"sent the MLflow values kept in {self._pending_file} while the server was away")
            self._load_logged()
        else:
            experiment = self._client.get_experiment_by_name(self.experiment)
            experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(
                self.experiment, artifact_location=self._artifact_location())
            # MLflow's random default name would repeat: the Trainer has seeded `random` by now.
            run_name = self.run_name or f"{self.experiment} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            run = self._client.create_run(experiment_id, run_name=run_name,
                                          tags={**source_tags(), **({"mlflow.parentRunId": self.parent_run_id}
                                                                    if self.parent_run_id else {})})
            self.run_id = run.info.run_id
            atomic_write_text(run_file, json.dumps({"tracking_uri": self.shown_uri, "run_id": self.run_id}) + "\n")
            self._log_params(self.params)
            if self.data_dir is not None:
                self._client.log_inputs(self.run_id, datasets=dataset_inputs(self.data_dir))

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

    def finish(self, artifacts: list[Path], note: str | None = None) -> bool:
        """Send what is pending, attach the artifacts and the description (`note`, the model card) and mark the
        run FINISHED; False if the server refused."""
        if self._client is None:
            return True
        if self._flush(force=True):
            try:
                for path in artifacts:
                    self._client.log_artifact(self.run_id, str(path))
                for key, value in (note_tag(redact(card_description(note))) if note else {}).items():
                    self._client.set_tag(self.run_id, key, value)
                self._client.set_terminated(self.run_id, status="FINISHED")
                return True
            except Exception as exc:  # noqa: BLE001 - any transport or server error means the same here
                self._go_offline(exc)
        tqdm.write(f"warning: MLflow run {self.run_id} is left RUNNING ({self.shown_uri} does not answer); "
                   f"{len(self._pending)} values wait in {self._pending_file}. The model is saved. Rerun the same "
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
            self._go_offline(exc)

    def _log(self, metrics: dict, step: int) -> None:
        self._pending.append({"run_id": self.run_id, "step": step, "timestamp": int(time.time() * 1000),
                              "metrics": metrics})
        self._flush()

    def _flush(self, force: bool = False) -> bool:
        """Send the pending values in order; on failure keep them on disk. True when nothing is left."""
        from mlflow.entities import Metric

        if self._pending and (force or time.monotonic() >= self._next_attempt):
            try:
                while self._pending:
                    count, size = 0, 0
                    while count < len(self._pending) and size + len(self._pending[count]["metrics"]) <= \
                            MAX_METRICS_PER_BATCH:
                        size += len(self._pending[count]["metrics"])
                        count += 1
                    batch = [Metric(key, value, record["timestamp"], record["step"])
                             for record in self._pending[:count] for key, value in record["metrics"].items()]
                    self._client.log_batch(self.run_id, metrics=batch)
                    del self._pending[:count]
            except Exception as exc:  # noqa: BLE001 - MlflowException, requests' connection errors, timeouts
                self._go_offline(exc)
            else:
                if self._offline:
                    tqdm.write(f"MLflow {self.shown_uri} answers again; the kept values are sent")
                self._offline = False
        if self._pending_file is not None:
            if self._pending:
                atomic_write_text(self._pending_file, "".join(json.dumps(r) + "\n" for r in self._pending))
            else:
                self._pending_file.unlink(missing_ok=True)
        return not self._pending

    def _go_offline(self, exc: BaseException) -> None:
        if not self._offline:
            tqdm.write(f"warning: MLflow {self.shown_uri} failed ({first_line(exc)}); training goes on and "
                       f"keeps the values in {self._pending_file}, retrying every {RETRY_INTERVAL_S:.0f} s",
                       file=sys.stderr)
        self._offline = True
        self._next_attempt = time.monotonic() + RETRY_INTERVAL_S

    def _read_pending(self) -> list[dict]:
        """The values an earlier process could not send, for this run; a torn or foreign line is skipped."""
        if not self._pending_file.is_file():
            return []
        records = []
        for line in self._pending_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("run_id") == self.run_id:
                records.append(record)
        return records

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key, redact(value)[:6000]) for key, value in sorted(params.items())]
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
        for name in run.data.metrics:
            if name.startswith(("train_", "eval_")) or name == "peak_rss_mib":
                self._logged_epochs[name] = {m.step for m in self._client.get_metric_history(self.run_id, name)}
        if "loss" in run.data.metrics:
            self._last_logged_step = max(m.step for m in self._client.get_metric_history(self.run_id, "loss"))

    def _artifact_location(self) -> str | None:
        if self.tracking_uri.startswith("sqlite:///"):
            return (Path(self.tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
        return None
