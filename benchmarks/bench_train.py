"""Training throughput of the project's real training component against transformers' defaults, in one run.

    python benchmarks/bench_train.py                                      # CPU: ~10 min on 2 cores
    python benchmarks/bench_train.py --batch_size 64 --examples 20480     # a GPU

Setups, each training one epoch of the same synthetic examples and validating once at its end:
(a) transformers' defaults as examples/pytorch/summarization/run_summarization.py runs them:
    Seq2SeqTrainer, DataCollatorForSeq2Seq (dynamic padding to the batch's longest), random order,
    the default optimizer, full precision; `--eval_strategy epoch --save_strategy epoch` as a user
    who wants per-epoch validation adds;
(b) the same, every batch padded to the maximum lengths (64 prompt, 256 review tokens): a second,
    labelled reference;
(c) the project: reviewkit.training.recipe.build_trainer with train_t5.py's settings, i.e. the scripts' code
    path: ReviewTrainer (on-device epoch statistics, per-rating validation in the same pass),
    ReviewCollator, the callbacks, MLflow logging to a temporary sqlite store, a checkpoint per epoch.
Samples/s and tokens/s (non-padding prompt + review tokens) count the optimizer steps after the
warm-up; what each setup spends at the epoch end (validation, checkpoint, MLflow) is printed apart,
in seconds: a benchmark epoch is short, a real one (~14,000 steps) makes that part small. On a GPU,
model-FLOPs utilisation = 6 x parameters x tokens/s / the chip's dense bf16 peak.

The model is random-init with the real ruT5-small shape (untied head, 64.6M parameters); token ids
are random, with lengths drawn like real reviews: log-normal characters (median 220, as in the
dataset) at an assumed 4 characters per ruT5 token (not measured: the real tokenizer cannot be
downloaded here), prompts 20-45 tokens, ratings with the dataset's skew.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import numpy as np
import project_path  # noqa: F401  (scripts/ on sys.path)
import torch
from datasets import Dataset, DatasetDict
from reference import random_rut5_small
from train_t5 import DEFAULTS as TRAIN_T5_DEFAULTS
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Tokenizer, TrainerCallback

from reviewkit.model.modeling import count_parameters
from reviewkit.training.config import parse_config
from reviewkit.training.recipe import build_trainer

MAX_SOURCE, MAX_TARGET = 64, 256
CHARS_PER_TOKEN = 4.0
RATING_SHARES = {5: 0.65, 4: 0.13, 3: 0.07, 2: 0.05, 1: 0.10}
# Dense bf16 tensor-core peaks from the vendors' data sheets, FLOP/s.
BF16_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def synthetic_examples(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    prompt_lengths = rng.integers(20, 46, size=n)
    review_tokens = np.clip((rng.lognormal(np.log(220), 0.8, size=n) / CHARS_PER_TOKEN).astype(int), 4, MAX_TARGET - 1)
    ratings = rng.choice(list(RATING_SHARES), size=n, p=list(RATING_SHARES.values()))
    rows = {"input_ids": [], "labels": [], "length": [], "rating": ratings.tolist()}
    for p, r in zip(prompt_lengths.tolist(), review_tokens.tolist()):
        rows["input_ids"].append(rng.integers(3, 20100, size=p - 1).tolist() + [1])
        rows["labels"].append(rng.integers(3, 20100, size=r).tolist() + [1])
        rows["length"].append(p + r + 1)
    return Dataset.from_dict(rows)


def stub_tokenizer() -> T5Tokenizer:
    """Only its padding is used: pad id 0, as ruT5's."""
    return T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁a", -1.0)], extra_ids=0)


def pad_to_max(features) -> dict:
    ids = torch.zeros(len(features), MAX_SOURCE, dtype=torch.long)
    labels = torch.full((len(features), MAX_TARGET), -100, dtype=torch.long)
    for row, feature in enumerate(features):
        ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
        labels[row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


class Clock(TrainerCallback):
    """Times the steps after the warm-up, then the epoch end (validation, checkpoint, logging) up to train end."""

    def __init__(self, warmup_steps: int):
        self.warmup_steps, self.started, self.last_step, self.ended = warmup_steps, None, None, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step not in (self.warmup_steps, state.max_steps):
            return  # a sync per step would take away the CPU/GPU overlap being measured
        self._sync()
        if state.global_step == self.warmup_steps:
            self.started = time.perf_counter()
        else:
            self.last_step = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self._sync()
        self.ended = time.perf_counter()

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def stock_trainer(data: DatasetDict, args, output_dir: str, max_padding: bool) -> Seq2SeqTrainer:
    model = random_rut5_small(seed=args.seed)
    training_args = Seq2SeqTrainingArguments(
        output_dir=output_dir, num_train_epochs=1, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=3e-4, eval_strategy="epoch",
        save_strategy="epoch", report_to="none", disable_tqdm=True, seed=args.seed,
        use_cpu=not torch.cuda.is_available())
    collator = pad_to_max if max_padding else DataCollatorForSeq2Seq(stub_tokenizer(), model=model)
    columns = ["input_ids", "labels"]
    return Seq2SeqTrainer(model=model, args=training_args, data_collator=collator,
                          train_dataset=data["train"].select_columns(columns),
                          eval_dataset=data["validation"].select_columns(columns))


def project_trainer(data: DatasetDict, args, output_dir: str):
    argv = ["--data_dir", "unused", "--output_dir", output_dir, "--num_train_epochs", "1", "--seed", str(args.seed),
            "--per_device_train_batch_size", str(args.batch_size), "--per_device_eval_batch_size",
            str(args.batch_size), "--disable_tqdm", "true", *args.project_flags]
    config, training_args = parse_config("bench", TRAIN_T5_DEFAULTS, {}, argv)
    tracking_uri = f"sqlite:///{output_dir}/mlflow.db"
    params = {"tracking_uri": tracking_uri, "model_id": "random ruT5-small shape"}
    trainer, _ = build_trainer(config, training_args, "bench_train", random_rut5_small(seed=args.seed),
                               stub_tokenizer(), data, params, tracking_uri)
    return trainer


def measure(name: str, make_trainer, data: DatasetDict, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(data, args, tmp)
        clock = Clock(args.warmup_steps)
        trainer.add_callback(clock)
        trainer.train()
    batch = args.batch_size
    timed = data["train"].select(range(args.warmup_steps * batch, len(data["train"])))  # order differs; sizes match
    tokens = sum(len(ids) + len(labels) for ids, labels in zip(timed["input_ids"], timed["labels"]))
    seconds = clock.last_step - clock.started
    result = {"name": name, "samples": len(timed) / seconds, "tokens": tokens / seconds,
              "epoch_end": clock.ended - clock.last_step, "bf16": trainer.args.bf16,
              "optim": str(trainer.args.optim.value)}
    print(f"\n{name}: {result['samples']:,.2f} samples/s, {result['tokens']:,.0f} tokens/s; epoch end "
          f"{result['epoch_end']:.1f} s (optimizer {result['optim']}, bf16={result['bf16']})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32, help="examples per step (32: the scripts' default)")
    parser.add_argument("--examples", type=int, default=320, help="synthetic training examples: one epoch")
    parser.add_argument("--warmup_steps", type=int, default=2, help="untimed steps first (allocation, compilation)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, order and initialisation")
    parser.add_argument("--skip_max_padding", action="store_true", help="leave out reference (b)")
    parser.add_argument("--project_flags", nargs=argparse.REMAINDER, default=[],
                        help="extra flags for the project's setup, e.g. --torch_compile true (must come last)")
    args = parser.parse_args()
    data = DatasetDict(train=synthetic_examples(args.examples, args.seed),
                       validation=synthetic_examples(max(args.examples // 20, args.batch_size), args.seed + 1))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device}; batch {args.batch_size}; {args.examples} examples, {len(data['validation'])} validation; "
          f"{args.warmup_steps} warm-up steps untimed; project flags: {' '.join(args.project_flags) or 'none'}")
    stock = measure("(a) transformers defaults (run_summarization.py: dynamic padding, random order, fp32)",
                    functools.partial(stock_trainer, max_padding=False), data, args)
    if not args.skip_max_padding:
        measure("(b) reference: padded to 64/256 tokens, otherwise (a)",
                functools.partial(stock_trainer, max_padding=True), data, args)
    ours = measure("(c) project (train_t5.py's component and settings)", project_trainer, data, args)
    print(f"project / transformers defaults: {ours['samples'] / stock['samples']:.2f}x")
    parameters = count_parameters(random_rut5_small())[1]
    peak = next((value for chip, value in BF16_PEAKS.items() if chip in device), None)
    if torch.cuda.is_available():
        for result in (stock, ours):
            mfu = f"{6 * parameters * result['tokens'] / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16 peak" if peak \
                else "unknown (no bf16 peak on record for this chip)"
            print(f"model-FLOPs utilisation {result['name'][:3]}: {mfu}")
    validation_share = 22_500 / len(data["validation"])  # the real validation split: ~5 % of 450,000
    print(f"projected 10 epochs of train_t5 on 450,000 examples at (c): "
          f"{10 * (450_000 / ours['samples'] + validation_share * ours['epoch_end']) / 60:,.0f} min "
          f"(epoch end scaled to a 22,500-example validation split; an upper bound: the checkpoint does not grow)")


if __name__ == "__main__":
    main()
