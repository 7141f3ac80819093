"""Wall time of scripts/evaluate.py end to end on the ruT5-small-shaped model, without the network.

    python benchmarks/bench_evaluate.py                                   # 500 prompts, --device auto
    python benchmarks/bench_evaluate.py --num_prompts 20 --max_new_tokens 8 --device cpu

Prepares the shipped demo data (data/demo_reviews.tskv, a fifth of the organisations in the test
split: ~800 rows) and saves a random ruT5-small (64.6M parameters, safetensors) with the demo
tokenizer, whose ids are a subset of its vocabulary, into outputs/bench_evaluate/. Then times one
`python scripts/evaluate.py` process from start to exit: imports, loading, the rating classifier,
generation, realism and the MLflow logging (into a store created beforehand, untimed). The random
model almost never emits </s>, so every review runs to --max_new_tokens (evaluate.py's default
200): the generation part is an upper bound for a trained model, whose reviews end earlier.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from project_path import PROJECT_ROOT
from reference import random_rut5_small

from reviewkit.data.pipeline import PrepareConfig, prepare_dataset
from reviewkit.model.device import CHOICES_HELP, device_choice
from reviewkit.training.demo import build_demo_model

WORK_DIR = PROJECT_ROOT / "outputs" / "bench_evaluate"
TEST_FRACTION = 0.2  # enough test rows for 500 prompts; the default 0.05 leaves ~200


def prepared_data() -> Path:
    data_dir = WORK_DIR / "data"
    prepare_dataset(str(PROJECT_ROOT / "data" / "demo_reviews.tskv"), data_dir, PrepareConfig(test_fraction=TEST_FRACTION),
                    progress=False)
    return data_dir


def saved_model(data_dir: Path) -> Path:
    """A random ruT5-small with the demo tokenizer, saved as a model directory evaluate.py loads."""
    from transformers import AutoTokenizer

    table = pq.read_table(data_dir / "train.parquet", columns=["prompt", "text"])
    tokenizer_dir = build_demo_model(table.column("text").to_pylist() + table.column("prompt").to_pylist(),
                                     WORK_DIR / "tokenizer")
    model_dir = WORK_DIR / "model"
    random_rut5_small().save_pretrained(model_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(model_dir)
    return model_dir


def tracking_store() -> str:
    import mlflow

    uri = f"sqlite:///{WORK_DIR / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments(max_results=1)  # creates the tables
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_prompts", type=int, default=500, help="evaluate.py --num_prompts")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="evaluate.py --max_new_tokens (default: its own)")
    parser.add_argument("--batch_size", type=int, default=None, help="evaluate.py --batch_size (default: its own)")
    parser.add_argument("--device", type=device_choice, default="auto", help=f"evaluate.py --device: {CHOICES_HELP}")
    args = parser.parse_args()

    data_dir = prepared_data()
    test_rows = pq.read_metadata(data_dir / "test.parquet").num_rows
    model_dir = saved_model(data_dir)
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "evaluate.py"), "--model", str(model_dir),
               "--data_dir", str(data_dir), "--num_prompts", str(args.num_prompts), "--device", args.device,
               "--tracking_uri", tracking_store()]
    for flag in ("max_new_tokens", "batch_size"):
        if getattr(args, flag) is not None:
            command += [f"--{flag}", str(getattr(args, flag))]
    print(f"test split: {test_rows} rows; running: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"evaluate.py exited {done.returncode} after {seconds:.1f} s")
    print(f"evaluate.py end to end: {seconds:.1f} s for {min(args.num_prompts, test_rows)} prompts "
          f"(--device {args.device})")


if __name__ == "__main__":
    main()
