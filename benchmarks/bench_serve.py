"""Load on `mlflow models serve`: latency, reviews/s, errors and memory with 1, 4 and 16 concurrent clients.

    python benchmarks/bench_serve.py                          # CPU, both models: ~10 min
    python benchmarks/bench_serve.py --models demo --requests 2
    python benchmarks/bench_serve.py --device cuda            # the served model on the GPU (REVIEWKIT_DEVICE)

Each model is saved as the pyfunc that training logs (reviewkit.model.mlflow_model) and served on
loopback by `mlflow models serve --env-manager local`, as a user serves a registered version:
- demo: train_t5.py --demo (the committed demo reviews, the tiny model the project builds), trained once;
- rut5_small_shape: random weights in ruT5-small's shape (64.6M parameters) with the demo tokenizer. It
  almost never ends a review early: every review runs to --max_new_tokens.
Every client sends --requests requests one after another (closed loop) of 1 or 16 records taken from
the demo data, each with its own seed. The served model generates one request at a time (a request's
seed alone decides its reviews), so the baseline is the single client: 16 clients cannot do better
than 16 x its p50 latency. Targets: no 5xx, the server's memory after the load within 10 % of before
(after one warm-up request), p95 latency at 16 clients <= 16 x the single-client p50.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from model_server import ModelServer
from project_path import PROJECT_ROOT
from reference import random_rut5_small

from reviewkit.data.pipeline import PrepareConfig, prepare_dataset
from reviewkit.model.device import CHOICES_HELP, device_choice
from reviewkit.model.generation import TrainedLengths
from reviewkit.model.mlflow_model import save_review_model
from reviewkit.model.modeling import load_model_and_tokenizer
from reviewkit.training.demo import build_demo_model

WORK_DIR = PROJECT_ROOT / "outputs" / "bench_serve"
MODELS = ("demo", "rut5_small_shape")
MIB = 2**20


def demo_rows() -> list[dict]:
    data_dir = WORK_DIR / "data"
    prepare_dataset(str(PROJECT_ROOT / "data" / "demo_reviews.tskv"), data_dir, PrepareConfig(), progress=False)
    table = pq.read_table(data_dir / "train.parquet", columns=["rating", "rubrics", "keywords"])
    return [{"rating": int(row["rating"]), "rubrics": row["rubrics"] or "", "keywords": row["keywords"] or ""}
            for row in table.to_pylist()]


def demo_model() -> Path:
    """train_t5.py --demo's kept model, trained once into WORK_DIR/demo_train."""
    output_dir = WORK_DIR / "demo_train"
    if not (output_dir / "final" / "training_lengths.json").is_file():
        subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "train_t5.py"), "--demo",
                        "--output_dir", str(output_dir), "--log_model", "false",
                        "--tracking_uri", f"sqlite:///{WORK_DIR / 'mlflow.db'}"], check=True)
    return output_dir / "final"


def rut5_small_shape_model(rows: list[dict]) -> Path:
    model_dir = WORK_DIR / "rut5_small_shape"
    if not (model_dir / "training_lengths.json").is_file():
        texts = [f"{row['rubrics']} {row['keywords']}" for row in rows]
        _, tokenizer = load_model_and_tokenizer(str(build_demo_model(texts, WORK_DIR / "tokenizer")))
        random_rut5_small().save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        TrainedLengths().write(model_dir)  # train_t5.py's 64 / 256
    return model_dir


def served(name: str, model_dir: Path, device: str) -> ModelServer:
    pyfunc_dir = WORK_DIR / "served" / name
    shutil.rmtree(pyfunc_dir, ignore_errors=True)
    save_review_model(pyfunc_dir, model_dir, None)
    return ModelServer(str(pyfunc_dir), WORK_DIR / f"serve_{name}.log",
                       {"REVIEWKIT_DEVICE": device, "HF_HUB_OFFLINE": "1"})


def load(server: ModelServer, rows: list[dict], clients: int, records: int, requests: int,
         max_new_tokens: int) -> dict:
    """Latencies (s) of every request, statuses, reviews answered and wall time of one load phase."""

    def client(number: int) -> list[tuple[float, int | str]]:
        results = []
        for request in range(requests):
            first = (number * requests + request) * records
            body = {"dataframe_records": [rows[(first + i) % len(rows)] for i in range(records)],
                    "params": {"max_new_tokens": max_new_tokens, "seed": number * 1000 + request}}
            started = time.perf_counter()
            try:
                status = server.post(body, timeout=180)[0]
            except OSError as exc:  # the connection itself failed
                status = type(exc).__name__
            results.append((time.perf_counter() - started, status))
        return results

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [result for per_client in pool.map(client, range(clients)) for result in per_client]
    statuses = Counter(status for _, status in results)
    return {"latencies": [seconds for seconds, _ in results], "statuses": statuses,
            "reviews": statuses[200] * records, "wall": time.perf_counter() - started}


def errors_text(statuses: Counter) -> str:
    errors = {status: count for status, count in statuses.items() if status != 200}
    return ", ".join(f"{status} x{count}" for status, count in sorted(errors.items(), key=str)) or "none"


def bench_model(name: str, server: ModelServer, rows: list[dict], args) -> list[str]:
    """Prints one line per phase; returns the targets missed."""
    started = time.perf_counter()
    server.wait_until_up()
    print(f"\n{name}: server up in {time.perf_counter() - started:.1f} s, {server.rss() / MIB:.0f} MiB")
    warm = load(server, rows, 1, 1, 1, args.max_new_tokens)
    if warm["statuses"][200] != 1:
        raise RuntimeError(f"the warm-up request failed ({errors_text(warm['statuses'])}):\n{server.log_tail()}")
    before = server.rss()
    print(f"after one warm-up request: {before / MIB:.0f} MiB")
    missed, fivexx, single_p50 = [], 0, {}
    for records in args.records:
        for clients in args.clients:
            phase = load(server, rows, clients, records, args.requests, args.max_new_tokens)
            p50, p95 = np.percentile(phase["latencies"], [50, 95])
            if clients == 1:
                single_p50[records] = p50
            fivexx += sum(count for status, count in phase["statuses"].items()
                          if not isinstance(status, int) or status >= 500)
            print(f"{records:>2} records, {clients:>2} clients x {args.requests} requests: p50 {p50:6.2f} s  "
                  f"p95 {p95:6.2f} s  {phase['reviews'] / phase['wall']:6.1f} reviews/s  "
                  f"errors: {errors_text(phase['statuses'])}  memory {server.rss() / MIB:.0f} MiB")
            if clients == 16 and records in single_p50 and p95 > 16 * single_p50[records]:
                missed.append(f"{name}: p95 at 16 clients of {records} records {p95:.2f} s > 16 x single-client "
                              f"p50 {16 * single_p50[records]:.2f} s")
    after = server.rss()
    change = after / before - 1
    print(f"memory: {before / MIB:.0f} MiB before the load, {after / MIB:.0f} MiB after ({change:+.1%})")
    if fivexx:
        missed.append(f"{name}: {fivexx} answers 5xx or no answer under valid load")
    if abs(change) > 0.10:
        missed.append(f"{name}: memory after the load {change:+.1%} of before (target within 10 %)")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"models to serve, comma-separated: {MODELS}")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per phase, comma-separated")
    parser.add_argument("--records", default="1,16", help="records per request per phase, comma-separated")
    parser.add_argument("--requests", type=int, default=4, help="requests each client sends, one after another")
    parser.add_argument("--max_new_tokens", type=int, default=64,
                        help="the requests' max_new_tokens (the random model's reviews all run to it)")
    parser.add_argument("--device", type=device_choice, default="auto",
                        help=f"where the served model generates ($REVIEWKIT_DEVICE): {CHOICES_HELP}")
    args = parser.parse_args()
    names = args.models.split(",")
    if not set(names) <= set(MODELS):
        parser.error(f"--models: one or more of {', '.join(MODELS)}")
    args.clients = [int(c) for c in args.clients.split(",")]
    args.records = [int(r) for r in args.records.split(",")]

    rows = demo_rows()
    model_dirs = {"demo": demo_model, "rut5_small_shape": lambda: rut5_small_shape_model(rows)}
    print(f"bench_serve: mlflow models serve on loopback, device {args.device}, max_new_tokens "
          f"{args.max_new_tokens}; baseline: the single client (one generation at a time)")
    missed = []
    for name in names:
        server = served(name, model_dirs[name](), args.device)
        try:
            missed += bench_model(name, server, rows, args)
        finally:
            server.kill()
    print("\ntargets: " + ("all met" if not missed else "MISSED\n" + "\n".join(missed)))


if __name__ == "__main__":
    main()
