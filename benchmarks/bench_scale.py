"""train_t5.py's code path at the real dataset's size: 500,000 synthetic rows on a ruT5-small-shaped model.

    python benchmarks/bench_scale.py                   # CPU: ~10 min on 2 cores (first run; data cached after)
    python benchmarks/bench_scale.py --full_epoch      # a GPU: also one whole training epoch

Steps, each timed, with the process's peak memory (RSS) after it:
1. 500,000 rows from synthetic_reviews.py (the real file's shape) written as TSKV and prepared by
   prepare_data.py's pipeline (~447k training rows); both kept in outputs/bench_scale/ for reruns;
2. a model of ruT5-small's shape (random weights, untied head, 64.6M parameters) saved with a
   unigram tokenizer trained on the training texts (at most ruT5's 20,100 pieces), loaded through
   the product's loader;
3. tokenising with train_t5.py's `tokenize` (datasets' cache for it is cleared first);
4. build_trainer with train_t5.py's defaults, then training: the time from the end of tokenising
   to the end of the first optimizer step (the MLflow store is created beforehand, as a user's
   exists), then --train_steps more steps (or the whole epoch with --full_epoch);
5. the training sampler of one epoch at the full size, three epochs: seconds and Python-heap peak
   (tracemalloc); baseline: transformers' own Seq2SeqTrainer._get_train_sampler (the lazy length
   column) on the first --baseline_rows rows, since at the full size it takes minutes per epoch;
6. the validation pass with per-rating losses over 1,000 validation rows.
Targets at ~447k training rows: sampler < 2 s and < 200 MB per epoch; first step within 30 s of
the end of tokenising.
"""

from __future__ import annotations

import os
from pathlib import Path

from project_path import PROJECT_ROOT

WORK_DIR = PROJECT_ROOT / "outputs" / "bench_scale"
# Tokenising is measured, so it must not come from an earlier run's cache: this benchmark has its own.
os.environ["HF_DATASETS_CACHE"] = str(WORK_DIR / "datasets_cache")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import psutil  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import synthetic_reviews  # noqa: E402
import torch  # noqa: E402
from reference import random_rut5_small  # noqa: E402
from train_t5 import DEFAULTS as TRAIN_T5_DEFAULTS  # noqa: E402
from transformers import Seq2SeqTrainer, TrainerCallback  # noqa: E402

from reviewkit.data.pipeline import PrepareConfig, prepare_dataset  # noqa: E402
from reviewkit.training.config import parse_config  # noqa: E402
from reviewkit.training.demo import train_unigram_tokenizer  # noqa: E402
from reviewkit.training.recipe import build_trainer, load_model, tokenize  # noqa: E402

RUT5_VOCAB = 20_100
TOKENIZER_TEXTS = 50_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(what: str, seconds: float, extra: str = "") -> None:
    print(f"{what}: {seconds:.1f} s{extra}; process peak RSS so far {peak_rss_mib():,.0f} MiB", flush=True)


def prepared_data(rows: int, seed: int) -> Path:
    """WORK_DIR/data/prepared: `rows` synthetic rows prepared, made once per (rows, seed)."""
    source = WORK_DIR / "data" / f"synthetic_{rows}_{seed}.tskv"
    if not source.is_file():
        started = time.perf_counter()
        source.parent.mkdir(parents=True, exist_ok=True)
        partial = source.with_suffix(".partial")
        partial.write_text("\n".join(synthetic_reviews.tskv_lines(rows, seed)) + "\n", encoding="utf-8")
        partial.rename(source)
        report(f"synthesised {rows:,} rows ({source.stat().st_size / 2**20:,.0f} MiB)", time.perf_counter() - started)
    data_dir = WORK_DIR / "data" / f"prepared_{rows}_{seed}"
    started = time.perf_counter()
    prepared = prepare_dataset(str(source), data_dir, PrepareConfig(), progress=False)
    splits = ", ".join(f"{split} {info['rows']:,}" for split, info in prepared["splits"].items())
    report(f"prepare_data pipeline (cached when unchanged): {splits}", time.perf_counter() - started)
    return data_dir


def shaped_model(data_dir: Path) -> Path:
    """WORK_DIR/model: random ruT5-small weights and a tokenizer trained on the training texts, made once."""
    model_dir = WORK_DIR / "model"
    marker = model_dir / "bench_scale.json"
    wanted = {"data": str(data_dir), "vocab": RUT5_VOCAB, "texts": TOKENIZER_TEXTS}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return model_dir
    started = time.perf_counter()
    texts = pq.read_table(data_dir / "train.parquet", columns=["text"]).column("text").slice(0, TOKENIZER_TEXTS)
    tokenizer = train_unigram_tokenizer([" ".join(t.split()) for t in texts.to_pylist()], RUT5_VOCAB)
    shutil.rmtree(model_dir, ignore_errors=True)
    random_rut5_small().save_pretrained(model_dir)  # safetensors
    tokenizer.save_pretrained(model_dir)
    marker.write_text(json.dumps(wanted))
    report(f"ruT5-small-shaped model saved, tokenizer of {len(tokenizer):,} pieces", time.perf_counter() - started)
    return model_dir


class FirstSteps(TrainerCallback):
    """Times the start of training and the first optimizer step; stops after 1 + `steps` steps (None: the epoch),
    without the epoch-end validation and checkpoint of a stopped run."""

    def __init__(self, steps: int | None):
        self.steps = steps
        self.first_step_begin = self.first_step_end = self.last_step_end = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step_begin is None:
            self.first_step_begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self.first_step_end is None:
            self.first_step_end = now
        self.last_step_end = now
        if self.steps is not None and state.global_step >= 1 + self.steps:
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.steps is not None:
            control.should_evaluate = control.should_save = False


def sampler_epoch(sampler, epoch: int) -> tuple[float, float]:
    """(seconds, Python-heap peak MiB) of drawing one epoch's order."""
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    tracemalloc.start()
    started = time.perf_counter()
    order = list(sampler)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert len(order) == len(sampler)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="synthetic rows before cleaning and splitting")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--train_steps", type=int, default=2, help="optimizer steps timed after the first one")
    parser.add_argument("--full_epoch", action="store_true", help="train one whole epoch instead (a GPU's job)")
    parser.add_argument("--baseline_rows", default="20000,40000",
                        help="sizes at which transformers' own sampler is timed, comma-separated")
    parser.add_argument("--validation_rows", type=int, default=1000, help="rows of the timed validation pass")
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device}; machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
          flush=True)

    data_dir = prepared_data(args.rows, args.seed)
    model_dir = shaped_model(data_dir)
    output_dir = WORK_DIR / "run"
    shutil.rmtree(output_dir, ignore_errors=True)
    shutil.rmtree(os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
    argv = ["--data_dir", str(data_dir), "--output_dir", str(output_dir), "--model_name_or_path", str(model_dir),
            "--num_train_epochs", "1", "--disable_tqdm", "true", "--log_model", "false"]
    config, training_args = parse_config("bench_scale", TRAIN_T5_DEFAULTS, {}, argv)
    tracking_uri = f"sqlite:///{WORK_DIR / 'mlflow.db'}"
    import mlflow

    mlflow.MlflowClient(tracking_uri).search_experiments()  # creates the store's tables, as a user's store has them

    started = time.perf_counter()
    model, tokenizer = load_model(str(model_dir))
    report(f"model loaded ({sum(p.numel() for p in model.parameters()):,} parameters)", time.perf_counter() - started)
    started = time.perf_counter()
    dataset = tokenize(data_dir, tokenizer, config)
    tokenised = time.perf_counter()
    rows = len(dataset["train"]) + len(dataset["validation"])
    report(f"tokenising {rows:,} rows", tokenised - started, f" ({rows / (tokenised - started):,.0f} rows/s)")

    params = {"tracking_uri": tracking_uri, "model_id": str(model_dir), "data_dir": str(data_dir)}
    trainer, _ = build_trainer(config, training_args, "bench_scale", model, tokenizer, dataset, params, tracking_uri)
    built = time.perf_counter()
    steps = FirstSteps(None if args.full_epoch else args.train_steps)
    trainer.add_callback(steps)
    trainer.train()
    ended = time.perf_counter()
    report("time from the end of tokenising to the end of the first optimizer step", steps.first_step_end - tokenised,
           f" (build_trainer {built - tokenised:.1f} s, train() up to the first step "
           f"{steps.first_step_begin - built:.1f} s, the first step {steps.first_step_end - steps.first_step_begin:.1f} s)"
           f"; target 30 s")
    done = trainer.state.global_step
    if done > 1:
        per_step = (steps.last_step_end - steps.first_step_end) / (done - 1)
        steps_per_epoch = len(trainer.get_train_dataloader()) // training_args.gradient_accumulation_steps
        projected = "" if args.full_epoch else \
            f", projected epoch {steps_per_epoch * per_step / 60:,.0f} min without its validation"
        report(f"{'the epoch' if args.full_epoch else f'{done - 1} more steps'}: {per_step:.2f} s per step",
               ended - built, f" ({len(dataset['train']):,} training rows, batch "
                              f"{training_args.per_device_train_batch_size}, {steps_per_epoch:,} steps{projected})")

    train_set = trainer.train_dataset
    started = time.perf_counter()
    sampler = trainer._get_train_sampler()
    print(f"project sampler ({type(sampler).__name__}) built over {len(sampler):,} rows in "
          f"{time.perf_counter() - started:.2f} s", flush=True)
    for epoch in range(3):
        seconds, peak = sampler_epoch(sampler, epoch)
        print(f"  epoch {epoch}: {seconds:.2f} s, heap peak {peak:,.0f} MiB (target < 2 s, < 200 MB)", flush=True)
    for baseline_rows in (int(n) for n in args.baseline_rows.split(",") if n):
        subset = train_set.select(range(min(baseline_rows, len(train_set))))
        started = time.perf_counter()
        stock = Seq2SeqTrainer._get_train_sampler(trainer, subset)
        seconds, peak = sampler_epoch(stock, 0)
        print(f"baseline, transformers' own sampler ({type(stock).__name__} over the lazy column), {len(subset):,} "
              f"rows: {time.perf_counter() - started:.2f} s an epoch, heap peak {peak:,.0f} MiB", flush=True)

    validation = dataset["validation"].select(range(min(args.validation_rows, len(dataset["validation"]))))
    started = time.perf_counter()
    metrics = trainer.evaluate(eval_dataset=validation)
    seconds = time.perf_counter() - started
    ratings = sorted(k for k in metrics if k.startswith("eval_rating_"))
    report(f"validation with per-rating losses, {len(validation):,} rows", seconds,
           f" ({seconds * 1000 / len(validation):.1f} s per 1,000 rows; {', '.join(ratings)})")


if __name__ == "__main__":
    main()
