"""Training samples/s on the ruT5-small-shaped model: the stock setup against the project's, in one run.

    python benchmarks/bench_train.py                   # CPU: ~7 min
    python benchmarks/bench_train.py --steps 50 --batch_size 32   # on a GPU

(a) stock: every batch padded to the maximum lengths (64 prompt, 256 review tokens), random
    order, plain (for-each) AdamW, fp32;
(b) project (what reviewkit.training configures): dynamic padding to a multiple of 8,
    length-grouped batches, fused AdamW, bf16 where the GPU or CPU has it (avx512_bf16/AMX), 2 data-loader
    workers where there is a GPU;
    tokenisation done once before training.
The model is random-init with the real ruT5-small shape (untied head, 64.6M parameters); the
token ids are random, with lengths drawn like real reviews: log-normal characters (median 220,
mean ~300, as in the dataset) at an assumed 4 characters per ruT5 token (not measured: the
real tokenizer cannot be downloaded here), prompts 20-45 tokens.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from reviewkit.modeling import random_rut5_small  # noqa: E402
from reviewkit.training import bf16_supported  # noqa: E402

MAX_SOURCE, MAX_TARGET = 64, 256
CHARS_PER_TOKEN = 4.0


def _round_up(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def collate(features, pad_to_max: bool) -> dict:
    """Pad prompts and reviews to the batch's longest, rounded up to a multiple of 8 (project), or to
    the maximum lengths (stock). Multiples of 8 suit tensor cores and limit the distinct shapes.

    T5 builds decoder inputs from `labels` itself, as DataCollatorForSeq2Seq would.
    """
    source = MAX_SOURCE if pad_to_max else _round_up(max(len(f["input_ids"]) for f in features), 8)
    target = MAX_TARGET if pad_to_max else _round_up(max(len(f["labels"]) for f in features), 8)
    ids = torch.zeros(len(features), source, dtype=torch.long)
    labels = torch.full((len(features), target), -100, dtype=torch.long)
    for row, feature in enumerate(features):
        ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
        labels[row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


def synthetic_examples(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    prompt_lengths = rng.integers(20, 46, size=n)
    review_chars = rng.lognormal(np.log(220), 0.8, size=n)
    review_lengths = np.clip((review_chars / CHARS_PER_TOKEN).astype(int), 4, MAX_TARGET - 1)
    rows = {"input_ids": [], "labels": [], "length": []}
    for p, r in zip(prompt_lengths.tolist(), review_lengths.tolist()):
        rows["input_ids"].append(rng.integers(3, 20100, size=p - 1).tolist() + [1])
        rows["labels"].append(rng.integers(3, 20100, size=r).tolist() + [1])
        rows["length"].append(p + r + 1)
    return Dataset.from_dict(rows)


class _StepClock(TrainerCallback):
    def __init__(self, warmup_steps: int):
        self.warmup_steps = warmup_steps
        self.started = None
        self.ended = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup_steps:
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def samples_per_second(project: bool, dataset: Dataset, args) -> float:
    bf16 = project and bf16_supported()
    with tempfile.TemporaryDirectory() as tmp:
        training_args = Seq2SeqTrainingArguments(
            output_dir=tmp,
            max_steps=args.warmup_steps + args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=3e-4,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=args.seed,
            bf16=bf16,
            optim="adamw_torch_fused" if project else "adamw_torch",
            train_sampling_strategy="group_by_length" if project else "random",
            length_column_name="length",
            use_cpu=not torch.cuda.is_available(),
            # Collation in worker processes, off the training loop (only where a GPU waits for it).
            dataloader_num_workers=2 if project and torch.cuda.is_available() else 0,
        )
        model = random_rut5_small(seed=args.seed)
        clock = _StepClock(args.warmup_steps)
        trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=dataset,
                                 data_collator=functools.partial(collate, pad_to_max=not project),
                                 callbacks=[clock])
        trainer.train()
    return args.steps * args.batch_size / (clock.ended - clock.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per setup")
    parser.add_argument("--warmup_steps", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch_size", type=int, default=32,
                        help="examples per step (32: the experiment scripts' default)")
    parser.add_argument("--examples", type=int, default=4096, help="synthetic examples to draw batches from")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, order and initialisation")
    args = parser.parse_args()
    dataset = synthetic_examples(args.examples, args.seed)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device}; batch {args.batch_size}, {args.steps} timed steps after {args.warmup_steps}")
    stock = samples_per_second(False, dataset, args)
    print(f"(a) stock (max-length padding, random order, adamw_torch, fp32): {stock:,.1f} samples/s")
    ours = samples_per_second(True, dataset, args)
    print(f"(b) project (dynamic padding, length-grouped, fused AdamW, bf16={bf16_supported()}"
          f"{', loader workers' if torch.cuda.is_available() else ''}): {ours:,.1f} samples/s")
    print(f"ratio: {ours / stock:.2f}x")
    kept = sum(dataset["length"]) / len(dataset)
    print(f"mean tokens per example {kept:.0f} (stock pads to {MAX_SOURCE + MAX_TARGET}); "
          f"epoch of 450,000 examples at (b): {450_000 / ours / 3600:.1f} h")


if __name__ == "__main__":
    main()
