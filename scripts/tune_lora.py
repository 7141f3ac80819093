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
import sys
import time

from train_lora import DEFAULTS, DEMO_OVERRIDES
from transformers import TrainerCallback

from reviewkit.files import atomic_write_text
from reviewkit.training import NonFiniteLossError, TrainingError, build_parser, parse_args, run

EXPERIMENT = "tune_lora"
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


def build_search_parser():
    parser = build_parser(__doc__.split("\n\n")[0], {**DEFAULTS, "output_dir": "outputs/tune_lora"}, lora=True)
    parser.add_argument("--trials", type=int, default=20, help="finished (complete or pruned) trials to reach")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting new trials after this many seconds")
    parser.add_argument("--grid", action="store_true",
                        help=f"search the grid {GRID} (with --learning_rate) instead of TPE")
    parser.add_argument("--learning_rate_min", type=float, default=None,
                        help="lowest learning rate searched (default: --learning_rate / 10)")
    parser.add_argument("--learning_rate_max", type=float, default=None,
                        help="highest learning rate searched (default: --learning_rate x 3)")
    return parser


def suggest(trial, args) -> dict:
    if args.grid:
        return {"lora_r": trial.suggest_categorical("lora_r", GRID["lora_r"]),
                "lora_alpha": trial.suggest_categorical("lora_alpha", GRID["lora_alpha"]),
                "lora_target_modules": trial.suggest_categorical("lora_target_modules",
                                                                 GRID["lora_target_modules"]),
                "lora_dropout": args.lora_dropout, "learning_rate": args.learning_rate}
    low = args.learning_rate_min or args.learning_rate / 10
    high = args.learning_rate_max or args.learning_rate * 3
    return {"lora_r": trial.suggest_categorical("lora_r", RANKS),
            "lora_alpha": trial.suggest_categorical("lora_alpha", ALPHAS),
            "lora_dropout": trial.suggest_float("lora_dropout", 0.0, 0.2),
            "lora_target_modules": trial.suggest_categorical("lora_target_modules", TARGET_CHOICES),
            "learning_rate": trial.suggest_float("learning_rate", low, high, log=True)}


def shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def train_command(args, config: dict) -> str:
    data = "--demo" if args.demo else f"--data_dir {args.data_dir}"
    flags = " ".join(f"--{name} {shown(value)}" for name, value in config.items())
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
        cells = [shown(trial.params[n]) if n in trial.params else "—" for n in names]
        lines.append(f"| {trial.number} | {trial.state.name} | {value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_search_parser()
    if "--demo" in argv:
        parser.set_defaults(**{**DEMO_OVERRIDES, "output_dir": "outputs/demo/tune_lora"})
    args = parse_args(parser, argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    import mlflow
    import optuna
    from mlflow.entities import Metric, RunTag
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from reviewkit.files import OutputDirError, ensure_output_dir
    from reviewkit.tracking import TrackingError, check_tracking_uri, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        check_tracking_uri(tracking_uri)
        output_dir = ensure_output_dir(args.output_dir)
    except (TrackingError, OutputDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    storage = RDBStorage(f"sqlite:///{output_dir / 'study.db'}", heartbeat_interval=20, grace_period=60,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    sampler = (optuna.samplers.GridSampler({**GRID}, seed=args.seed) if args.grid
               else optuna.samplers.TPESampler(seed=args.seed))
    study = optuna.create_study(study_name=EXPERIMENT, storage=storage, direction="minimize", sampler=sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                                load_if_exists=True)
    client = mlflow.MlflowClient(tracking_uri)
    parent_id = parent_run(client, study, tracking_uri)

    def objective(trial):
        config = suggest(trial, args)
        # A retried trial continues in the directory (checkpoints, MLflow run) of the one a kill interrupted.
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        number = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if number is None else number
        trial_args = copy.copy(args)
        vars(trial_args).update(config, output_dir=str(output_dir / f"trial-{number}"), run_name=f"trial {number}")
        pruning = PruneOnValidation(trial)
        try:
            summary = run(trial_args, EXPERIMENT, callbacks=(pruning,), parent_run_id=parent_id)
        except NonFiniteLossError as exc:
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        client.set_tag(summary["run_id"], "trial", str(trial.number))
        if pruning.pruned_at is not None:
            client.set_tag(summary["run_id"], "pruned_at_epoch", str(pruning.pruned_at))
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        return summary["best_eval_loss"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study.optimize(objective, timeout=args.timeout, catch=(),
                       callbacks=[MaxTrialsCallback(args.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))])
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
    config = suggest(optuna.trial.FixedTrial(best.params), args)
    now = int(time.time() * 1000)
    # Tags, not params: a resumed search may find a better trial, and MLflow params cannot change.
    client.log_batch(parent_id, tags=[RunTag(f"best_{k}", str(v)) for k, v in config.items()],
                     metrics=[Metric("best_eval_loss", best.value, now, 0), Metric("best_trial", best.number, now, 0),
                              Metric("trials_complete", len(complete), now, 0)])
    client.set_terminated(parent_id, status="FINISHED")
    print(table)
    print(f"best trial {best.number}: eval_loss {best.value:.4f}; "
          + ", ".join(f"{k}={shown(v)}" for k, v in config.items()))
    print(f"train it with the regular script:\n  {train_command(args, config)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
