"""Search the LoRA hyper-parameters of train_lora.py with Optuna; every trial is a nested MLflow run.

    python scripts/tune_lora.py --demo --trials 3 --num_train_epochs 1 --max_train_samples 300
    python scripts/tune_lora.py --data_dir data/prepared/full --output_dir outputs/tune_lora \
        --trials 40 --timeout 36000 --max_train_samples 50000 --num_train_epochs 3

Searched: rank, alpha, dropout, target modules (q,v / k,q,v / q,k,v,o / q,k,v,o plus the
feed-forward wi_0,wi_1,wo) and learning rate; everything else is train_lora.py's flags. The
objective is the trial's lowest validation loss over its epochs; Optuna's median pruner stops a
trial whose validation loss after an epoch is worse than the median of earlier trials there.
`--grid` searches a small grid instead of TPE.

The study is stored in OUTPUT_DIR/study.db: rerunning the same command resumes it (finished
trials are kept; a trial a kill interrupted is retried from its own checkpoints once its heartbeat
is older than a minute). Processes started with the same --output_dir share the study and run
trials in parallel, e.g. one per GPU with CUDA_VISIBLE_DEVICES=0 / 1 / ... in front of the same
command (start one first: it creates the study and the parent MLflow run). The parent run, in the
experiment `tune_lora`, gets the best configuration and a table of all trials.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from dataclasses import dataclass, field

from transformers import TrainerCallback

from reviewkit.config import parse_config
from reviewkit.files import atomic_write_text
from reviewkit.trainer import NonFiniteLossError
from reviewkit.training import TrainingError, run

EXPERIMENT = "tune_lora"
# What every trial shares: train_lora.py's experiment, minus what the search draws.
DEFAULTS = dict(
    model_name_or_path="cointegrated/rut5-small",
    output_dir="outputs/tune_lora",
    num_train_epochs=15,
    learning_rate=1e-3,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    max_source_length=64,
    max_target_length=256,
    lora=True,
    lora_dropout=0.01,
    seed=42,
)
DEMO_DEFAULTS = dict(num_train_epochs=4, learning_rate=2e-2, logging_steps=10, output_dir="outputs/demo/tune_lora")
TARGET_CHOICES = ("q,v", "k,q,v", "q,k,v,o", "q,k,v,o,wi_0,wi_1,wo")
RANKS = (2, 4, 8, 16, 32)
ALPHAS = (1, 4, 8, 16, 32)
GRID = {"lora_r": [4, 16], "lora_alpha": [1, 16], "lora_target_modules": ["q,v", "k,q,v"]}


class PruneOnValidation(TrainerCallback):
    """Reports each epoch's validation loss to the trial and stops training when Optuna prunes it."""

    def __init__(self, trial):
        self.trial = trial
        self.pruned_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            epoch = round(state.epoch)
            self.trial.report(float(metrics["eval_loss"]), step=epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch
                control.should_training_stop = True


@dataclass
class SearchSettings:
    trials: int = field(default=20, metadata={"help": "finished (complete or pruned) trials to reach"})
    timeout: float | None = field(default=None, metadata={"help": "stop starting new trials after this many seconds"})
    grid: bool = field(default=False, metadata={"help": f"search the grid {GRID} (with --learning_rate) instead of TPE"})
    learning_rate_min: float | None = field(default=None, metadata={
        "help": "lowest learning rate searched (default: --learning_rate / 10)"})
    learning_rate_max: float | None = field(default=None, metadata={
        "help": "highest learning rate searched (default: --learning_rate x 3)"})

    def __post_init__(self):
        if self.trials < 1:
            raise ValueError("--trials must be at least 1")


def suggest(trial, search: SearchSettings, config, training_args) -> dict:
    if search.grid:
        return {"lora_r": trial.suggest_categorical("lora_r", GRID["lora_r"]),
                "lora_alpha": trial.suggest_categorical("lora_alpha", GRID["lora_alpha"]),
                "lora_target_modules": trial.suggest_categorical("lora_target_modules",
                                                                 GRID["lora_target_modules"]),
                "lora_dropout": config.lora_dropout, "learning_rate": training_args.learning_rate}
    low = search.learning_rate_min or training_args.learning_rate / 10
    high = search.learning_rate_max or training_args.learning_rate * 3
    return {"lora_r": trial.suggest_categorical("lora_r", RANKS),
            "lora_alpha": trial.suggest_categorical("lora_alpha", ALPHAS),
            "lora_dropout": trial.suggest_float("lora_dropout", 0.0, 0.2),
            "lora_target_modules": trial.suggest_categorical("lora_target_modules", TARGET_CHOICES),
            "learning_rate": trial.suggest_float("learning_rate", low, high, log=True)}


def short_value(value) -> str:
    """A searched value as a table cell or command-line flag shows it: floats to three significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def train_command(config, chosen: dict) -> str:
    data = "--demo" if config.demo else f"--data_dir {config.data_dir}"
    flags = " ".join(f"--{name} {short_value(value)}" for name, value in chosen.items())
    return f"python scripts/train_lora.py {data} {flags}"


def parent_run(client, study, tracking_uri: str) -> str:
    """The search's MLflow run, created by the first process and found by the others through the study."""
    stored = study.user_attrs.get("mlflow_parent")
    if stored and stored["tracking_uri"] == tracking_uri:
        client.update_run(stored["run_id"], status="RUNNING")
        return stored["run_id"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    run_id = client.create_run(experiment_id, run_name=f"search {study.study_name}",
                               tags={"script": EXPERIMENT}).info.run_id
    study.set_user_attr("mlflow_parent", {"tracking_uri": tracking_uri, "run_id": run_id})
    return run_id


def trials_table(study) -> str:
    names = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate")
    lines = ["| trial | state | objective (best eval_loss) | " + " | ".join(names) + " |",
             "|---" * (len(names) + 3) + "|"]
    for trial in study.trials:
        value = f"{trial.value:.4f}" if trial.value is not None else "—"
        cells = [short_value(trial.params[n]) if n in trial.params else "—" for n in names]
        lines.append(f"| {trial.number} | {trial.state.name} | {value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    config, training_args, search = parse_config(__doc__.split("\n\n")[0], DEFAULTS, DEMO_DEFAULTS, argv,
                                                 extra=(SearchSettings,))
    import mlflow
    import optuna
    from mlflow.entities import Metric, RunTag
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from reviewkit.files import OutputDirError, ensure_output_dir
    from reviewkit.tracking_store import TrackingError, check_tracking_uri, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(config.tracking_uri)
    try:
        check_tracking_uri(tracking_uri)
        output_dir = ensure_output_dir(training_args.output_dir)
    except (TrackingError, OutputDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    storage = RDBStorage(f"sqlite:///{output_dir / 'study.db'}", heartbeat_interval=20, grace_period=60,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    sampler = (optuna.samplers.GridSampler({**GRID}, seed=training_args.seed) if search.grid
               else optuna.samplers.TPESampler(seed=training_args.seed))
    study = optuna.create_study(study_name=EXPERIMENT, storage=storage, direction="minimize", sampler=sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                                load_if_exists=True)
    client = mlflow.MlflowClient(tracking_uri)
    parent_id = parent_run(client, study, tracking_uri)

    def objective(trial):
        chosen = suggest(trial, search, config, training_args)
        # A retried trial continues in the directory (checkpoints, MLflow run) of the one a kill interrupted.
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        number = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if number is None else number
        trial_config = dataclasses.replace(config, **{k: v for k, v in chosen.items() if k != "learning_rate"})
        trial_args = copy.deepcopy(training_args)
        trial_args.learning_rate = chosen["learning_rate"]
        trial_args.output_dir, trial_args.run_name = str(output_dir / f"trial-{number}"), f"trial {number}"
        pruning = PruneOnValidation(trial)
        try:
            summary = run(trial_config, trial_args, EXPERIMENT, callbacks=(pruning,), parent_run_id=parent_id)
        except NonFiniteLossError as exc:
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        client.set_tag(summary["run_id"], "trial", str(trial.number))
        if pruning.pruned_at is not None:
            client.set_tag(summary["run_id"], "pruned_at_epoch", str(pruning.pruned_at))
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        return summary["best_eval_loss"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study.optimize(objective, timeout=search.timeout, catch=(),
                       callbacks=[MaxTrialsCallback(search.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))])
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        client.set_terminated(parent_id, status="FAILED")
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command to resume the study in {output_dir / 'study.db'}",
              file=sys.stderr)
        return 130
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    table = trials_table(study)
    atomic_write_text(output_dir / "trials.md", table)
    client.log_artifact(parent_id, str(output_dir / "trials.md"))
    if not complete:
        print("error: no trial completed (all pruned, failed or diverged); see trials.md", file=sys.stderr)
        client.set_terminated(parent_id, status="FAILED")
        return 1
    best = study.best_trial
    chosen = suggest(optuna.trial.FixedTrial(best.params), search, config, training_args)
    now = int(time.time() * 1000)
    # Tags, not params: a resumed search may find a better trial, and MLflow params cannot change.
    client.log_batch(parent_id, tags=[RunTag(f"best_{k}", str(v)) for k, v in chosen.items()],
                     metrics=[Metric("best_eval_loss", best.value, now, 0), Metric("best_trial", best.number, now, 0),
                              Metric("trials_complete", len(complete), now, 0)])
    client.set_terminated(parent_id, status="FINISHED")
    print(table)
    print(f"best trial {best.number}: eval_loss {best.value:.4f}; "
          + ", ".join(f"{k}={short_value(v)}" for k, v in chosen.items()))
    print(f"train it with the regular script:\n  {train_command(config, chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
