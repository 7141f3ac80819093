"""Distinct LoRA configurations per hour of tune_lora.py with 1 and with 2 workers on one study, in one run.

    python benchmarks/bench_search.py                       # CPU: ~5 min on 2 cores
    python benchmarks/bench_search.py --trials 8 --workers 1,2,4

Each setting starts a fresh study (sqlite storage, heartbeats on) and that many `tune_lora.py`
processes at once, each with one thread (OMP_NUM_THREADS=1) and its own --output_dir, all asking
for --trials finished trials of the demo (--num_train_epochs 1 --max_train_samples 200 by default).
It prints the wall time from the start of the first process to the exit of the last, the trials
finished, how many distinct configurations they trained (a repeated configuration is work that
taught nothing new) and distinct configurations per hour. The baseline is the first worker count (default 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
from project_path import PROJECT_ROOT

TUNE_LORA = PROJECT_ROOT / "scripts" / "tune_lora.py"
WORK_DIR = PROJECT_ROOT / "outputs" / "bench_search"  # kept after the run: the workers' consoles and the studies


def run_search(workers: int, args, work: Path) -> tuple[float, int, int]:
    """(seconds, finished trials, distinct configurations) of `workers` processes on one fresh study."""
    storage = f"sqlite:///{work / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    common = [sys.executable, str(TUNE_LORA), "--demo", "--num_train_epochs", str(args.num_train_epochs),
              "--max_train_samples", str(args.max_train_samples), "--trials", str(args.trials), "--storage", storage,
              "--tracking_uri", f"sqlite:///{work / 'mlflow.db'}"]
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_experiments()  # tables made before the race
    started = time.perf_counter()
    processes = [subprocess.Popen([*common, "--output_dir", str(work / f"worker{i}")], stdout=subprocess.DEVNULL,
                                  stderr=open(work / f"worker{i}.err", "w"), env=env) for i in range(workers)]
    codes = [process.wait() for process in processes]
    seconds = time.perf_counter() - started
    if any(codes):
        sys.exit(f"a worker failed (exit codes {codes}); see {work}/worker*.err")
    trials = [t for t in optuna.load_study(study_name="tune_lora", storage=storage).trials
              if t.state.name in ("COMPLETE", "PRUNED")]
    return seconds, len(trials), len({tuple(sorted(t.params.items())) for t in trials})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="finished trials each search asks for")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--num_train_epochs", type=float, default=1, help="epochs of each trial")
    parser.add_argument("--max_train_samples", type=int, default=200, help="training examples of each trial")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; each worker one thread; demo trials of {args.num_train_epochs:g} epoch(s) "
          f"on {args.max_train_samples} examples; {args.trials} trials per search", flush=True)
    baseline = baseline_name = None
    for workers in (int(w) for w in args.workers.split(",")):
        work = WORK_DIR / f"{workers}_workers"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        seconds, finished, distinct = run_search(workers, args, work)
        per_hour = distinct * 3600 / seconds
        baseline, baseline_name = baseline or per_hour, baseline_name or f"{workers}-worker"
        print(f"{workers} worker(s): {seconds:.1f} s, {finished} trials finished, {distinct} distinct configurations, "
              f"{per_hour:,.0f} distinct configurations/hour ({per_hour / baseline:.2f}x the {baseline_name} baseline)",
              flush=True)


if __name__ == "__main__":
    main()
