"""Search the LoRA hyper-parameters of train_lora.py with Optuna; every trial is a nested MLflow run.

    python scripts/tune_lora.py --demo --trials 3 --num_train_epochs 1 --max_train_samples 300
    python scripts/tune_lora.py --data_dir data/prepared/full --output_dir outputs/tune_lora \
        --trials 40 --timeout 36000 --max_train_samples 50000 --num_train_epochs 3

Searched: rank, alpha, dropout, target modules (q,v / k,q,v / q,k,v,o / q,k,v,o plus the
feed-forward wi_0,wi_1,wo) and learning rate; everything else is train_lora.py's flags. The
objective is the trial's lowest validation loss over its epochs; Optuna's median pruner stops a
trial whose validation loss after an epoch is worse than the median of earlier trials there.
`--grid` searches a small grid instead of TPE.

The study is stored in OUTPUT_DIR/study.db unless --storage names a shared one: any Optuna
database URL (postgresql://USER@HOST/DB, mysql+pymysql://..., sqlite:///PATH) or the path of a
journal file on a shared disk. Rerunning the same command resumes the study: finished trials are
kept, and a trial whose worker died (its heartbeat silent for three --heartbeat_interval) is
retried, from its own checkpoints when they are on this machine. Workers started with the same
--storage and --study_name join one study, from any machine, each with its own --output_dir
(e.g. one per GPU with CUDA_VISIBLE_DEVICES=0 / 1 / ... in front of the same command): no trial
runs twice, and --trials counts the finished (complete or pruned) trials of all of them. The
search's parent MLflow run, in the experiment `tune_lora`, is found through the study: every
worker nests its trials under it, and it gets the best configuration and a table of all trials.

Every trial draws its own configuration: TPE is seeded from (--seed, trial number), so workers
and reruns never repeat one another's draws, and --grid hands each grid point to one trial. The
study records, when it is created, what makes its trials comparable (the data's digest, epochs,
max_train_samples, base model, balance, batch size, the search space and mode); a worker whose
settings differ refuses to join and names the differences. The parent run is finished by the
worker that sees the last trial finish, never while a trial runs. Ctrl-C and SIGTERM fail the
running trial (its MLflow run KILLED) and print one line; the same command resumes.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from transformers import TrainerCallback

from reviewkit.common.errors import InputError, NonFiniteLossError, TrainingError
from reviewkit.common.files import atomic_write_text, file_digest
from reviewkit.common.markdown import markdown_table
from reviewkit.common.redact import mask_uri, redact, remember_secrets
from reviewkit.tracking.client import experiment_id, open_client, resume_run, start_run
from reviewkit.tracking.store import stored_run
from reviewkit.training.config import parse_config
from reviewkit.training.recipe import load_data, run
from reviewkit.training.search import TrialSeededTPE, check_study_name, enqueue_grid, settings_differences
from reviewkit.training.stops import Terminated, raise_recorded_stop, stop_signals
from train_lora import DEFAULTS as TRAIN_LORA_DEFAULTS, DEMO_DEFAULTS as TRAIN_LORA_DEMO_DEFAULTS

EXPERIMENT = "tune_lora"
# What every trial shares: train_lora.py's experiment (its own DEFAULTS, so the two cannot drift), minus what the
# search draws, in a directory of its own.
SEARCHED = ("lora_r", "lora_alpha", "lora_target_modules")
DEFAULTS = {**{name: value for name, value in TRAIN_LORA_DEFAULTS.items() if name not in SEARCHED},
            "output_dir": "outputs/tune_lora"}
DEMO_DEFAULTS = {**TRAIN_LORA_DEMO_DEFAULTS, "output_dir": "outputs/demo/tune_lora"}
TARGET_CHOICES = ("q,v", "k,q,v", "q,k,v,o", "q,k,v,o,wi_0,wi_1,wo")
RANKS = (2, 4, 8, 16, 32)
ALPHAS = (1, 4, 8, 16, 32)
GRID = {"lora_r": [4, 16], "lora_alpha": [1, 16], "lora_target_modules": ["q,v", "k,q,v"]}
GRID_POINTS = math.prod(len(values) for values in GRID.values())
PARENT_WAIT_S = 30.0  # how long a joining worker waits for the study's creator to name the parent run
STORAGE_OPEN_ATTEMPTS = 3
POLL_S = 2.0  # how often a worker with nothing left to start looks at the other workers' trials


class SurplusTrial(Exception):
    """Another worker started the search's last trial at the same moment; this one is dropped unrun."""


def default_sigterm() -> None:
    """In a forked child (a multiprocessing.Pool worker, which its pool stops with SIGTERM; a DataLoader worker),
    SIGTERM ends the process as usual instead of raising Terminated there."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def lost_database(exc: BaseException | None) -> BaseException | None:
    """The lost database connection that EXC was raised from or while handling, if any."""
    import optuna
    import sqlalchemy.exc

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                            optuna.exceptions.StorageInternalError)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


# Loggers that print a traceback of their own when the worker is stopped or its database goes away: Optuna's
# "Trial N failed", MLflow's database session, SQLAlchemy's connection pool.
NOISY_ON_STOPS = ("optuna.study._optimize", "mlflow.store.db.utils", "sqlalchemy.pool.impl.QueuePool")


class QuietStops(logging.Filter):
    """Drops a logged traceback when the worker was stopped or lost its database: the worker says so in one line
    (and MLflow's logger its own warning). Other failures keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, KeyboardInterrupt) or lost_database(error))


def quiet_lost_database_in_threads(hook):
    """threading.excepthook that leaves a lost database to the main thread's one line (Optuna's heartbeat thread
    would print a traceback of its own); other errors go to HOOK."""

    def excepthook(args):
        if not lost_database(args.exc_value):
            hook(args)

    return excepthook


def database_line(exc: BaseException) -> str:
    cause = lost_database(exc)
    while cause.__cause__ is not None:  # the driver's own words: "connection to server at ... failed: ..."
        cause = cause.__cause__
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return redact(f"error: the database went away ({type(cause).__name__}: {reason[:300]}); finished trials are kept: "
                  "rerun the same command once it is back")


class RecordTrialRun(TrainerCallback):
    """Stores the trial's MLflow run id in the study (user attribute `mlflow_run_id`) once training starts, so that
    the study names the run of each trial."""

    def __init__(self, trial):
        self.trial = trial

    def on_train_begin(self, args, state, control, **kwargs):
        run_id = stored_run(args.output_dir).get("run_id")
        if args.process_index == 0 and run_id:
            self.trial.set_user_attr("mlflow_run_id", run_id)


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
    storage: str | None = field(default=None, metadata={
        "help": "Optuna storage shared by the search's workers: a database URL (postgresql://USER:PASSWORD@HOST/DB, "
                "mysql+pymysql://..., sqlite:///PATH) or the path of a journal file on a shared disk "
                "(default: sqlite OUTPUT_DIR/study.db)"})
    study_name: str = field(default=EXPERIMENT, metadata={"help": "the study's name in --storage: workers with the "
                                                                  "same storage and name form one search"})
    heartbeat_interval: int = field(default=20, metadata={
        "help": "seconds between a running trial's heartbeats in a database storage; a trial silent for three "
                "intervals is taken as dead and retried (a journal file has no heartbeat)"})

    def __post_init__(self):
        remember_secrets(self.storage)
        if self.trials < 1:
            raise ValueError("--trials must be at least 1")
        if self.grid and self.trials > GRID_POINTS:
            raise ValueError(f"--grid has {GRID_POINTS} points; --trials {self.trials} asks for more")
        if self.heartbeat_interval < 1:
            raise ValueError("--heartbeat_interval must be at least 1 (seconds)")
        check_study_name(self.study_name)


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


def search_space(search: SearchSettings, training_args) -> dict:
    if search.grid:
        return {**GRID, "learning_rate": training_args.learning_rate}
    return {"lora_r": list(RANKS), "lora_alpha": list(ALPHAS), "lora_dropout": [0.0, 0.2],
            "lora_target_modules": list(TARGET_CHOICES),
            "learning_rate": [search.learning_rate_min or training_args.learning_rate / 10,
                              search.learning_rate_max or training_args.learning_rate * 3]}


def study_settings(config, training_args, search: SearchSettings, data_dir: Path) -> dict:
    """What makes the study's trials comparable; recorded by the study's creator, checked by every joining worker.

    JSON values as Optuna stores them (search_space gives lists, not tuples), so that a recorded copy compares
    equal."""
    return {"data (train.parquet digest)": file_digest(data_dir / "train.parquet")[:16],
            "num_train_epochs": training_args.num_train_epochs, "max_train_samples": config.max_train_samples,
            "base model": "demo (built from the data)" if config.demo else config.model_name_or_path,
            "balance": config.balance, "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "search": "grid" if search.grid else "tpe",
            "search space": search_space(search, training_args)}


def short_value(value) -> str:
    """A searched value as a table cell or command-line flag shows it: floats to three significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def train_command(config, chosen: dict) -> str:
    data = "--demo" if config.demo else f"--data_dir {config.data_dir}"
    flags = " ".join(f"--{name} {short_value(value)}" for name, value in chosen.items())
    return f"python scripts/train_lora.py {data} {flags}"


def open_storage(search: SearchSettings, output_dir: Path):
    """(Optuna storage, whether it has heartbeats): --storage as a database URL or a journal file path."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from reviewkit.tracking.store import check_database

    url = search.storage or f"sqlite:///{output_dir / 'study.db'}"
    if "://" not in url:
        return journal_storage(url), False
    check_database(url)  # DatabaseError: host and database named, password masked
    # Workers opening a new storage at once race Optuna's table creation (seen: "UNIQUE constraint failed:
    # alembic_version"); the loser succeeds once the winner's tables are in place.
    for attempt in range(1, STORAGE_OPEN_ATTEMPTS + 1):
        try:
            return RDBStorage(url, heartbeat_interval=search.heartbeat_interval,
                              grace_period=3 * search.heartbeat_interval,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2)), True
        except Exception as exc:  # noqa: BLE001 - unknown scheme, missing driver, unreadable file: one answer
            if attempt == STORAGE_OPEN_ATTEMPTS:
                raise InputError(f"--storage {mask_uri(url)} cannot be used ({redact(str(exc).splitlines()[0])})"
                                 ) from None
            time.sleep(1.0 * attempt)


def journal_storage(location: str):
    """An Optuna journal file at LOCATION; InputError with one line when it cannot be one."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    head = location.split("@")[0]
    if "@" in location and (":/" in head or "//" in head):
        raise InputError(f"--storage {mask_uri(location)} looks like a database URL without '://' "
                         "(as in postgresql://USER@HOST/DB)")
    path = Path(location)
    if path.is_dir():
        raise InputError(f"--storage {location} is a directory; give the path of a journal file in it")
    if not path.parent.is_dir():
        raise InputError(f"--storage {location}: the directory {path.parent} does not exist")
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise InputError(f"--storage {location} cannot be used as a journal file ({exc.strerror or exc})") from None


def open_study(storage, name: str, sampler, pruner):
    """(study, True if this process created it): creation is atomic in the storage, so exactly one worker of
    those started at once learns that it is the creator."""
    import optuna

    try:
        return optuna.create_study(study_name=name, storage=storage, direction="minimize", sampler=sampler,
                                   pruner=pruner), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False


def wait_for_creator(study) -> None:
    """A joining worker waits (up to PARENT_WAIT_S, saying so) until the study's creator has recorded its settings
    and named the parent run, which it does right after creating the study."""
    deadline = time.monotonic() + PARENT_WAIT_S
    told = False
    while not (study.user_attrs.get("mlflow_parent") or {}).get("run_id") and time.monotonic() < deadline:
        if not told:
            print(f"waiting up to {PARENT_WAIT_S:.0f} s for the worker that created study '{study.study_name}' to "
                  "record its settings and MLflow run", file=sys.stderr)
            told = True
        time.sleep(0.5)


def parent_run(client, study) -> str:
    """The search's MLflow run, named in the study by its creator (or by the first worker after a creator that
    died before naming it)."""
    stored = study.user_attrs.get("mlflow_parent") or {}
    if resume_run(client, stored.get("run_id")):  # else in another tracking store or deleted: start a new one
        return stored["run_id"]
    run_id = start_run(client, experiment_id(client, EXPERIMENT), f"search {study.study_name}")
    study.set_user_attr("mlflow_parent", {"run_id": run_id})
    return run_id


def join_study(study, created: bool, settings: dict, search: SearchSettings, seed: int) -> None:
    """Record the study's settings (its creator) or check this worker's against them (InputError naming each
    difference); a different --trials is said and becomes the study's count; --grid queues its points."""
    if not created:
        wait_for_creator(study)
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
    else:
        differences = settings_differences(recorded, settings)
        if differences:
            raise InputError(f"this worker does not match study '{study.study_name}': {'; '.join(differences)}. "
                             "A new --study_name starts a new study")
    trials = study.user_attrs.get("trials")
    if trials is not None and trials != search.trials:
        print(f"note: study '{study.study_name}' was counting to {trials} trials; this worker counts to "
              f"{search.trials}, which is now the study's count", file=sys.stderr)
    study.set_user_attr("trials", search.trials)
    if search.grid:
        enqueue_grid(study, GRID, seed, search.trials)


def close_interrupted_run(client, parent_id: str, number: int, trial_dir: Path) -> None:
    """A retried trial: mark the MLflow runs of trial NUMBER left RUNNING by a worker that died KILLED, unless
    this worker resumes that run."""
    close_runs_left_running(client, parent_id, number, keep=stored_run(trial_dir).get("run_id"))


def close_runs_left_running(client, parent_id: str, number: int, keep: str | None = None) -> None:
    """Mark KILLED the RUNNING MLflow runs of trial NUMBER under the parent, but KEEP. Found by name: a worker
    killed before it could record the run's id in the study still leaves the run there."""
    experiment_id = client.get_run(parent_id).info.experiment_id
    for orphan in client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and "
                                     f"attributes.run_name = 'trial {number}' and attributes.status = 'RUNNING'"):
        if orphan.info.run_id != keep:
            client.set_terminated(orphan.info.run_id, status="KILLED")


def trial_counts(study) -> tuple[int, int, int]:
    """(finished, running, waiting) trials of the whole study, every worker's."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return (sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states), states.count(TrialState.RUNNING),
            states.count(TrialState.WAITING))


def check_not_surplus(study, trial, wanted: int) -> None:
    """SurplusTrial when the trials numbered before this one already fill --trials (two workers asked at once)."""
    from optuna.trial import TrialState

    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    earlier = sum(t.number < trial.number and t.state in counted for t in study.get_trials(deepcopy=False))
    if earlier >= wanted:
        trial.set_user_attr("surplus", True)
        raise SurplusTrial(f"the search's {wanted} trials were all started by other workers; trial {trial.number} "
                           "is dropped unrun")


def trials_table(study) -> str:
    names = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate")
    rows = []
    for trial in study.trials:
        if trial.user_attrs.get("surplus"):
            continue
        value = f"{trial.value:.4f}" if trial.value is not None else "—"
        cells = [short_value(trial.params[n]) if n in trial.params else "—" for n in names]
        rows.append([trial.number, trial.state.name, value, *cells])
    return markdown_table(("trial", "state", "objective (best eval_loss)", *names), rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    quiet = QuietStops()
    for name in NOISY_ON_STOPS:
        logging.getLogger(name).addFilter(quiet)
    previous_hook = threading.excepthook
    threading.excepthook = quiet_lost_database_in_threads(previous_hook)
    try:
        with stop_signals(signal.SIGINT, signal.SIGTERM):
            return search_main(argv)
    except Exception as exc:
        if lost_database(exc) is None:
            raise
        tqdm.write(database_line(exc), file=sys.stderr)  # on its own line even below a progress bar
        return 1
    finally:
        threading.excepthook = previous_hook
        for name in NOISY_ON_STOPS:
            logging.getLogger(name).removeFilter(quiet)


def search_main(argv: list[str] | None) -> int:
    config, training_args, search = parse_config(__doc__.split("\n\n")[0], DEFAULTS, DEMO_DEFAULTS, argv,
                                                 extra=(SearchSettings,))
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials

    from reviewkit.common.errors import DatabaseError, UserError
    from reviewkit.common.files import ensure_output_dir
    from reviewkit.tracking.store import check_tracking_uri, resolve_tracking_uri

    # Heartbeats and trial retries are experimental in Optuna; they are used knowingly.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    tracking_uri = resolve_tracking_uri(config.tracking_uri)
    shown_storage = mask_uri(search.storage) if search.storage else str(Path(training_args.output_dir) / "study.db")
    try:
        check_tracking_uri(tracking_uri)
        output_dir = ensure_output_dir(training_args.output_dir)
        storage, has_heartbeat = open_storage(search, output_dir)
        data_dir, _ = load_data(config, output_dir)
        sampler = (optuna.samplers.GridSampler({**GRID}, seed=training_args.seed) if search.grid
                   else TrialSeededTPE(training_args.seed))
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        study, created = open_study(storage, search.study_name, sampler, pruner)
        join_study(study, created, study_settings(config, training_args, search, data_dir), search, training_args.seed)
        client = open_client(tracking_uri)
        parent_id = parent_run(client, study)
    except DatabaseError as exc:
        print(f"error: Optuna storage {redact(exc)}", file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"error: {redact(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"{interrupted(exc)}: nothing was started; rerun the same command", file=sys.stderr)
        return exit_code(exc)

    def objective(trial):
        check_not_surplus(study, trial, search.trials)
        chosen = suggest(trial, search, config, training_args)
        # A retried trial continues in the directory (checkpoints, MLflow run) of the one a kill interrupted.
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        number = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        trial_dir = output_dir / f"trial-{trial.number if number is None else number}"
        if number is not None:
            close_interrupted_run(client, parent_id, number, trial_dir)
        number = trial.number if number is None else number
        trial_config = dataclasses.replace(config, **{k: v for k, v in chosen.items() if k != "learning_rate"})
        trial_args = copy.deepcopy(training_args)
        trial_args.learning_rate = chosen["learning_rate"]
        trial_args.output_dir, trial_args.run_name = str(trial_dir), f"trial {number}"
        pruning = PruneOnValidation(trial)
        try:
            summary = run(trial_config, trial_args, EXPERIMENT, callbacks=(RecordTrialRun(trial), pruning),
                          parent_run_id=parent_id)
        except NonFiniteLossError as exc:
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        client.set_tag(summary["run_id"], "trial", str(trial.number))
        if pruning.pruned_at is not None:
            client.set_tag(summary["run_id"], "pruned_at_epoch", str(pruning.pruned_at))
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        return summary["best_eval_loss"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    deadline = None if search.timeout is None else time.monotonic() + search.timeout
    told_waiting = False
    try:
        while deadline is None or time.monotonic() < deadline:
            if has_heartbeat:
                fail_stale_trials(study)  # a dead worker's trial goes back to the queue as a WAITING copy
            finished, running, waiting = trial_counts(study)
            if finished >= search.trials:
                break
            if not waiting and finished + running >= search.trials:
                if not has_heartbeat:
                    break  # a journal file cannot tell a dead worker's trial from a live one: nothing to wait for
                if not told_waiting:
                    print(f"waiting for {running} running trial(s) of other workers to finish", file=sys.stderr)
                    told_waiting = True
                time.sleep(POLL_S)
                continue
            raise_recorded_stop()  # a stop that arrived between trials and was swallowed
            study.optimize(objective, n_trials=1, catch=(SurplusTrial,))
    except TrainingError as exc:
        tqdm.write(f"error: {redact(exc)}", file=sys.stderr)
        client.set_terminated(parent_id, status="FAILED")
        return 1
    except KeyboardInterrupt as exc:
        stop_parent(client, parent_id, study)
        tqdm.write(f"{interrupted(exc)}: the running trial is marked failed; rerun the same command to resume the "
                   f"study in {shown_storage}", file=sys.stderr)
        return exit_code(exc)
    _, running, _ = trial_counts(study)
    if running:
        print(f"{running} trial(s) of other workers still running: the worker that finishes the last one completes "
              "the search (its MLflow run stays RUNNING until then)", file=sys.stderr)
        return 0
    return finish_search(client, parent_id, study, search, config, training_args, output_dir)


def interrupted(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130


def stop_parent(client, parent_id: str, study) -> None:
    """A stopped worker's parent run: KILLED unless trials of other workers still run (the last of them finishes it)."""
    if not trial_counts(study)[1]:
        client.set_terminated(parent_id, status="KILLED")


def finish_search(client, parent_id: str, study, search: SearchSettings, config, training_args,
                  output_dir: Path) -> int:
    """The parent run gets every finished trial (trials.md), the best configuration and its final status."""
    import optuna
    from mlflow.entities import Metric, RunTag
    from optuna.trial import TrialState

    for trial in study.trials:  # a worker killed before it could close its trial's run left it RUNNING
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus"):
            close_runs_left_running(client, parent_id, trial.number)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    table = trials_table(study)
    atomic_write_text(output_dir / "trials.md", redact(table))
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


os.register_at_fork(after_in_child=default_sigterm)

if __name__ == "__main__":
    sys.exit(main())
