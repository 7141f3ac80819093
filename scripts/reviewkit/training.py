"""The shared seq2seq training component behind train_t5.py, train_lora.py and train_lora_r1.py.

Built on transformers' Seq2SeqTrainer (optimizer, checkpoints, DDP/torchrun, resume), peft
for LoRA and datasets for tokenisation. An experiment script only states its defaults and
calls `run(parse_args(...))`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from .balance import (BALANCE_MODES, EpochWeightedSampler, downsample_indices, loss_weights, oversample_weights,
                      rating_counts)
from .cli import ArgumentParser
from .files import OutputDirError, atomic_write_text, ensure_output_dir
from .keywords import DEFAULT_TOP_K
from .tracking import EpochLoss, MlflowLogger, TrackingError, check_tracking_uri, resolve_tracking_uri

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_INPUT = PROJECT_ROOT / "data" / "demo_reviews.tskv"
DEMO_WORK_DIR = PROJECT_ROOT / "outputs" / "demo"


# Fault injection for the tests: the training loss reads as NaN at this optimizer step, and the
# process SIGKILLs itself at STAGE:N (`train`: computing the loss of optimizer step N; `evaluate`:
# the first validation batch after epoch N; `save`: after the model's weights of epoch N's
# checkpoint, before its optimizer and trainer state).
_NAN_TEST_STEP = int(os.environ.get("REVIEWKIT_TEST_NAN_AT_STEP", "0"))
_KILL_TEST_POINT = os.environ.get("REVIEWKIT_TEST_KILL_AT", "")


def _test_kill_point(stage: str, where: float | None) -> None:
    if _KILL_TEST_POINT and where is not None and _KILL_TEST_POINT == f"{stage}:{where:g}":
        os.kill(os.getpid(), signal.SIGKILL)


class TrainingError(Exception):
    """The run cannot start or continue; the message is one line for the user."""


class NonFiniteLossError(TrainingError):
    pass


def build_parser(description: str, defaults: dict, lora: bool) -> argparse.ArgumentParser:
    """The common flags (transformers example-script names); `defaults` are the experiment's."""
    p = ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="offline demo: the committed demo data and a tiny model the project builds itself")
    p.add_argument("--model_name_or_path", default=defaults["model_name_or_path"],
                   help="hub id or local directory of the base model (safetensors weights)")
    p.add_argument("--data_dir", default=None,
                   help="output directory of prepare_data.py (train/validation parquet); required without --demo")
    p.add_argument("--output_dir", default=defaults["output_dir"], help="checkpoints, final model and logs")
    p.add_argument("--num_train_epochs", type=int, default=defaults["num_train_epochs"], help="training epochs")
    p.add_argument("--learning_rate", type=float, default=defaults["learning_rate"], help="peak learning rate (AdamW)")
    p.add_argument("--per_device_train_batch_size", type=int, default=defaults["per_device_train_batch_size"],
                   help="training batch size per device")
    p.add_argument("--per_device_eval_batch_size", type=int, default=defaults["per_device_eval_batch_size"],
                   help="evaluation batch size per device")
    p.add_argument("--weight_decay", type=float, default=defaults.get("weight_decay", 0.0), help="AdamW weight decay")
    p.add_argument("--warmup_ratio", type=float, default=defaults.get("warmup_ratio", 0.0),
                   help="share of steps with linear warm-up")
    p.add_argument("--max_source_length", type=int, default=defaults["max_source_length"],
                   help="prompt tokens kept (longer prompts are truncated)")
    p.add_argument("--max_target_length", type=int, default=defaults["max_target_length"],
                   help="review tokens kept (longer reviews are truncated)")
    p.add_argument("--max_train_samples", type=int, default=None,
                   help="train on this many random rows of the training split (quick runs, searches)")
    p.add_argument("--logging_steps", type=int, default=defaults.get("logging_steps", 50),
                   help="log the training loss every N optimizer steps")
    p.add_argument("--seed", type=int, default=42, help="seed of initialisation, data order and dropout")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 mixed precision (default: on where the GPU or CPU supports it fast)")
    p.add_argument("--fp16", action="store_true", help="refused: T5 overflows in float16; use --bf16")
    p.add_argument("--resume_from_checkpoint", default=None,
                   help="checkpoint directory to resume from (default: the last one in --output_dir, if any)")
    p.add_argument("--tracking_uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project)")
    p.add_argument("--run_name", default=None, help="MLflow run name")
    p.add_argument("--ratings", default=defaults.get("ratings"),
                   help="train only on these ratings, e.g. 1,2 (with --demo: applied when preparing the demo data)")
    if lora:
        p.add_argument("--lora_r", type=int, default=defaults["lora_r"], help="LoRA rank")
        p.add_argument("--lora_alpha", type=float, default=defaults["lora_alpha"], help="LoRA scaling alpha")
        p.add_argument("--lora_dropout", type=float, default=defaults["lora_dropout"], help="LoRA dropout")
        p.add_argument("--lora_target_modules", default=defaults["lora_target_modules"],
                       help="comma-separated T5 module names to adapt (q,k,v,o,wi_0,wi_1,wo)")
        p.add_argument("--merge", action="store_true",
                       help="also write a merged standalone model to OUTPUT_DIR/merged for generation")
    p.add_argument("--keep_best", action=argparse.BooleanOptionalAction, default=defaults.get("keep_best", False),
                   help="keep and save the epoch with the lowest validation loss instead of the last one")
    p.add_argument("--balance", choices=BALANCE_MODES, default="none",
                   help="rating balance of the training split: none (as is), oversample (equal expected count per "
                        "rating, redrawn each epoch), weighted (loss weighted by inverse rating frequency), "
                        "downsample (at most --balance_max_per_rating rows per rating); validation stays natural")
    p.add_argument("--balance_weight_cap", type=float, default=10.0,
                   help="weighted: the largest loss weight, as a multiple of the most frequent rating's")
    p.add_argument("--balance_max_per_rating", type=int, default=None,
                   help="downsample: rows kept per rating (default: the count of the rarest rating)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.fp16:
        parser.error("--fp16 is refused: T5 overflows in float16 (inf/NaN loss); use --bf16 or full precision")
    for name in ("num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
                 "max_source_length", "max_target_length", "logging_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.max_train_samples is not None and args.max_train_samples < 1:
        parser.error("--max_train_samples must be at least 1")
    if not 0 <= args.warmup_ratio < 1:
        parser.error("--warmup_ratio must be in [0, 1)")
    if not args.learning_rate > 0:
        parser.error("--learning_rate must be positive")
    if getattr(args, "lora_r", 1) < 1:
        parser.error("--lora_r must be at least 1")
    if not args.balance_weight_cap >= 1:
        parser.error("--balance_weight_cap must be at least 1")
    if args.balance_max_per_rating is not None and args.balance_max_per_rating < 1:
        parser.error("--balance_max_per_rating must be at least 1")
    if not args.demo and not args.data_dir:
        parser.error("pass --data_dir DIR (the output of prepare_data.py) or --demo")
    try:
        _ratings(args)
    except TrainingError as exc:
        parser.error(str(exc))
    return args


def main(experiment: str, description: str, defaults: dict, demo_overrides: dict, argv: list[str] | None = None) -> int:
    """The whole command line of an experiment script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    lora = "lora_r" in defaults
    if "--demo" in argv:
        defaults = {**defaults, **demo_overrides}
    args = parse_args(build_parser(description, defaults, lora=lora), argv)
    try:
        summary = run(args, experiment)
    except TrainingError as exc:
        tqdm.write(f"error: {exc}", file=sys.stderr)  # on its own line even below a progress bar
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: checkpoints stay in {args.output_dir}; rerun the same command to resume", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    kept = "best" if args.keep_best else "last"
    print(f"best epoch {summary['best_epoch']} (eval_loss {summary['best_eval_loss']:.4f}); {kept} epoch "
          f"{summary['kept_epoch']} saved to {summary['final_dir']}; MLflow run {summary['run_id']}"
          + ("" if summary["mlflow_finished"] else " (left RUNNING, see the warning above)"))
    return 0


def run(args: argparse.Namespace, experiment: str, callbacks: tuple = (), parent_run_id: str | None = None) -> dict:
    """Train one experiment; returns a summary (best epoch, eval losses, output paths).

    `callbacks` are extra transformers callbacks (the search's pruning); `parent_run_id` nests the
    MLflow run under that run.
    """
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    # Only rank 0 talks to MLflow; two processes opening a new sqlite store at once race its migration.
    if int(os.environ.get("RANK", "0")) == 0:
        try:
            check_tracking_uri(tracking_uri)
        except TrackingError as exc:
            raise TrainingError(str(exc)) from None
    output_dir = _output_dir(args)
    training_args = _training_args(args, output_dir)
    # Under torchrun, rank 0 prepares data, builds the demo model and tokenises; the others then
    # read its caches instead of racing it.
    with training_args.main_process_first(desc="data and model"):
        data_dir, report = _data(args)
        model, tokenizer = _model(args, data_dir)
        dataset = _tokenized(data_dir, tokenizer, args)
    return _train(args, experiment, tracking_uri, training_args, data_dir, report, model, tokenizer, dataset,
                  callbacks, parent_run_id)


def _output_dir(args) -> Path:
    try:
        return ensure_output_dir(args.output_dir)
    except OutputDirError as exc:
        raise TrainingError(str(exc)) from None


def last_complete_checkpoint(output_dir: Path, remove_incomplete: bool = True) -> str | None:
    """The newest checkpoint that was saved to the end; newer ones a kill cut short are removed.

    Trainer writes trainer_state.json last, so a checkpoint without a readable one is incomplete.
    Under torchrun only rank 0 removes; the other ranks skip the same directories.
    """
    numbered = sorted((int(d.name.split("-")[1]), d) for d in output_dir.glob("checkpoint-*")
                      if d.is_dir() and d.name.split("-")[1].isdigit())
    for _, directory in reversed(numbered):
        try:
            json.loads((directory / "trainer_state.json").read_text(encoding="utf-8"))
            return str(directory)
        except (OSError, ValueError):
            if remove_incomplete:
                print(f"removing {directory}: its save was interrupted (no complete trainer_state.json)")
                shutil.rmtree(directory, ignore_errors=True)
    return None


def bf16_supported() -> bool:
    """bfloat16 runs fast here: a GPU that supports it, or a CPU with avx512_bf16 or AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _training_args(args, output_dir: Path) -> Seq2SeqTrainingArguments:
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,  # a float in [0, 1) is a ratio of all steps in transformers 5
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        save_total_limit=2,
        load_best_model_at_end=args.keep_best,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        bf16=bf16_supported() if args.bf16 is None else args.bf16,
        seed=args.seed,
        report_to="none",
        optim="adamw_torch_fused",
        # Collation in worker processes where a GPU would wait for it; on a CPU they steal its cores.
        dataloader_num_workers=2 if torch.cuda.is_available() else 0,
        # Without it transformers 5 runs CPU processes under torchrun as independent, not as DDP.
        use_cpu=not torch.cuda.is_available(),
        # ReviewCollator drops the sampler's length column and turns loss_weight into a tensor.
        remove_unused_columns=False,
    )


def _ratings(args) -> tuple[int, ...] | None:
    from .cleaning import parse_ratings_filter

    if not args.ratings:
        return None
    try:
        return parse_ratings_filter(args.ratings)
    except ValueError as exc:
        raise TrainingError(f"--ratings: {exc}") from None


def _data(args) -> tuple[Path, dict]:
    from .pipeline import PrepareConfig, prepare_dataset

    ratings = _ratings(args)
    if args.demo:
        suffix = "all" if not ratings else "r" + "".join(map(str, ratings))
        data_dir = DEMO_WORK_DIR / f"data-{suffix}"
        report = prepare_dataset(str(DEMO_INPUT), data_dir, PrepareConfig(ratings=ratings, top_k=DEFAULT_TOP_K),
                                 progress=False)
        return data_dir, report
    data_dir = Path(args.data_dir)
    report_path = data_dir / "report.json"
    if not report_path.is_file() or not (data_dir / "train.parquet").is_file():
        raise TrainingError(f"{data_dir} is not an output of prepare_data.py (no report.json/train.parquet)")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    if ratings and tuple(report["settings"].get("ratings") or ()) != ratings:
        raise TrainingError(f"{data_dir} was not prepared with --ratings {args.ratings}; "
                            f"run prepare_data.py --ratings {args.ratings}")
    return data_dir, report


def _model(args, data_dir: Path):
    from .modeling import ModelSourceError, build_demo_model, load_model_and_tokenizer

    try:
        if args.demo:
            import pyarrow.parquet as pq

            train = pq.read_table(data_dir / "train.parquet", columns=["text", "prompt"])
            texts = train.column("text").to_pylist() + train.column("prompt").to_pylist()
            model_dir = build_demo_model(texts, DEMO_WORK_DIR / f"model-{data_dir.name}", seed=0)
            args.model_name_or_path = str(model_dir)
        return load_model_and_tokenizer(args.model_name_or_path)
    except ModelSourceError as exc:
        raise TrainingError(str(exc)) from None


def _split_ratings(data_dir: Path, split: str) -> np.ndarray:
    """The rating of each row of a split, in the order the tokenised dataset keeps."""
    import pyarrow.parquet as pq

    return pq.read_table(data_dir / f"{split}.parquet", columns=["rating"]).column("rating").to_numpy()


def _balanced(train_set, ratings: np.ndarray, args):
    """(training set, sampler weights or None, MLflow params) for --balance; see reviewkit.balance."""
    params = {"balance_counts_before": json.dumps(rating_counts(ratings))}
    if args.balance == "oversample":
        weights = oversample_weights(ratings)
        expected = {r: round(len(ratings) * float(weights[ratings == r].sum() / weights.sum()), 1)
                    for r in rating_counts(ratings)}
        params["balance_expected_counts_per_epoch"] = json.dumps(expected)
        return train_set, weights, params
    if args.balance == "weighted":
        per_rating = loss_weights(ratings, args.balance_weight_cap)
        params["balance_loss_weights"] = json.dumps({r: round(w, 4) for r, w in per_rating.items()})
        return train_set.add_column("loss_weight", [per_rating[int(r)] for r in ratings]), None, params
    if args.balance == "downsample":
        kept = downsample_indices(ratings, args.balance_max_per_rating, args.seed)
        params["balance_counts_after"] = json.dumps(rating_counts(ratings[kept]))
        return train_set.select(kept), None, params
    return train_set, None, params


def _tokenized(data_dir: Path, tokenizer, args):
    import datasets

    files = {split: str(data_dir / f"{split}.parquet") for split in ("train", "validation")}
    raw = datasets.load_dataset("parquet", data_files=files)

    def tokenize(batch):
        features = tokenizer(batch["prompt"], max_length=args.max_source_length, truncation=True)
        features["labels"] = tokenizer(text_target=batch["text"], max_length=args.max_target_length,
                                       truncation=True)["input_ids"]
        features["length"] = [len(ids) + len(labels) for ids, labels in zip(features["input_ids"], features["labels"])]
        return features

    # datasets caches the result by fingerprint: a rerun with the same data and tokenizer skips this.
    return raw.map(tokenize, batched=True, remove_columns=raw["train"].column_names, desc="tokenising")


def _train(args, experiment, tracking_uri, training_args, data_dir, report, model, tokenizer, dataset,
           callbacks, parent_run_id) -> dict:
    from .modeling import count_parameters

    lora_config = None
    if hasattr(args, "lora_r"):
        from peft import LoraConfig, TaskType, get_peft_model

        modules = [m.strip() for m in args.lora_target_modules.split(",") if m.strip()]
        lora_config = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=args.lora_r, lora_alpha=args.lora_alpha,
                                 lora_dropout=args.lora_dropout, target_modules=modules)
        try:
            model = get_peft_model(model, lora_config)
        except ValueError as exc:
            raise TrainingError(f"LoRA cannot be applied: {str(exc).splitlines()[0]}") from None
    trainable, total = count_parameters(model)
    if training_args.process_index == 0:
        print(f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.3%})")
    output_dir = Path(training_args.output_dir)
    params = {
        **{k: v for k, v in vars(args).items() if k not in ("fp16", "tracking_uri")},
        "tracking_uri": tracking_uri,
        "model_id": args.model_name_or_path,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "bf16": training_args.bf16,
        "world_size": training_args.world_size,
        "data_dir": str(data_dir),
        "output_dir": str(output_dir),
        "data_read": report["read"],
        "data_kept": report["kept"],
        **{f"data_dropped_{k}": v for k, v in report["dropped"].items()},
        **{f"data_{split}_rows": info["rows"] for split, info in report["splits"].items()},
    }
    if lora_config is not None:
        params.update({f"lora_{k}": v for k, v in {
            "r": lora_config.r, "alpha": lora_config.lora_alpha, "dropout": lora_config.lora_dropout,
            "target_modules": ",".join(sorted(lora_config.target_modules)), "task_type": "SEQ_2_SEQ_LM"}.items()})
    train_set, train_ratings = dataset["train"], _split_ratings(data_dir, "train")
    if args.max_train_samples is not None and args.max_train_samples < len(train_set):
        subset = np.sort(np.random.default_rng(args.seed).choice(len(train_set), args.max_train_samples, replace=False))
        train_set, train_ratings = train_set.select(subset), train_ratings[subset]
    train_set, sample_weights, balance_params = _balanced(train_set, train_ratings, args)
    params.update(balance_params)
    validation_ratings = _split_ratings(data_dir, "validation")
    rating_eval_sets = {r: dataset["validation"].select(np.flatnonzero(validation_ratings == r))
                        for r in np.unique(validation_ratings).tolist()}
    epoch_loss = EpochLoss()
    logger = MlflowLogger(tracking_uri, experiment, params, epoch_loss, run_name=args.run_name,
                          parent_run_id=parent_run_id)
    trainer = ReviewTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=dataset["validation"],
        data_collator=ReviewCollator(tokenizer, model),
        processing_class=tokenizer,
        callbacks=[logger, *callbacks],
        epoch_loss=epoch_loss,
        sample_weights=sample_weights,
        rating_eval_sets=rating_eval_sets if len(rating_eval_sets) > 1 else {},
    )

    resume = args.resume_from_checkpoint or last_complete_checkpoint(
        output_dir, remove_incomplete=training_args.process_index == 0)
    if resume:
        print(f"resuming from {resume}")
    try:
        trainer.train(resume_from_checkpoint=resume)
    except (NonFiniteLossError, KeyboardInterrupt):
        logger.fail()
        raise
    final_dir = output_dir / "final"
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(str(final_dir))  # safetensors; a LoRA model saves its adapter
        tokenizer.save_pretrained(str(final_dir))
    evals = [(round(e["epoch"]), e["eval_loss"]) for e in trainer.state.log_history if "eval_loss" in e]
    best_epoch, best_loss = min(evals, key=lambda pair: pair[1])
    summary = {"experiment": experiment, "run_id": logger.run_id, "tracking_uri": tracking_uri,
               "model_name_or_path": args.model_name_or_path, "demo": args.demo, "data_dir": str(data_dir),
               "eval_loss": {str(e): v for e, v in evals}, "best_epoch": best_epoch, "best_eval_loss": best_loss,
               "kept_epoch": best_epoch if args.keep_best else evals[-1][0], "final_dir": str(final_dir),
               "trainable_parameters": trainable, "total_parameters": total}
    if lora_config is not None and args.merge and trainer.is_world_process_zero():
        merged_dir = output_dir / "merged"
        trainer.model.merge_and_unload().save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
        summary["merged_dir"] = str(merged_dir)
    if trainer.is_world_process_zero():
        atomic_write_text(output_dir / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        summary["mlflow_finished"] = logger.finish([output_dir / "summary.json", Path(data_dir) / "report.json"])
    return summary


class ReviewCollator:
    """DataCollatorForSeq2Seq, minus the sampler's length column, plus the per-example loss weight if any."""

    def __init__(self, tokenizer, model):
        self.seq2seq = DataCollatorForSeq2Seq(tokenizer, model=model, padding=True, pad_to_multiple_of=8)

    def __call__(self, features):
        features = [dict(f) for f in features]
        weights = [f.pop("loss_weight") for f in features] if "loss_weight" in features[0] else None
        for feature in features:
            feature.pop("length", None)
        batch = self.seq2seq(features)
        if weights is not None:
            batch["loss_weight"] = torch.tensor(weights, dtype=torch.float32)
        return batch


class ReviewTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that sums each epoch's training loss, stops on a non-finite loss, balances ratings
    (a weighted sampler or per-example loss weights) and reports the validation loss per rating."""

    def __init__(self, *args, epoch_loss: EpochLoss, sample_weights: np.ndarray | None = None,
                 rating_eval_sets: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_loss = epoch_loss
        self.sample_weights = sample_weights
        self.rating_eval_sets = rating_eval_sets or {}

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is not None:
            return EpochWeightedSampler(self.sample_weights, self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval", **kwargs):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix, **kwargs)
        if eval_dataset is None and metric_key_prefix == "eval":
            for rating, subset in self.rating_eval_sets.items():
                metrics.update(super().evaluate(subset, ignore_keys, f"eval_rating_{rating}", **kwargs))
        return metrics

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "loss_weight" in inputs:
            outputs = self._weighted_loss(model, inputs, return_outputs)
        else:
            outputs = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            _test_kill_point("train", self.state.global_step + 1)
            value = float((outputs[0] if return_outputs else outputs).detach())
            if self.state.global_step + 1 == _NAN_TEST_STEP:
                value = float("nan")
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"training loss became {value} at step {self.state.global_step + 1}; stopped. The last good "
                    f"checkpoint stays in {self.args.output_dir}; lower --learning_rate and rerun to resume")
            self.epoch_loss.add(value)
        return outputs

    @staticmethod
    def _weighted_loss(model, inputs, return_outputs):
        """Mean over the batch of (example weight x the example's mean token cross-entropy)."""
        weights = inputs.pop("loss_weight")
        outputs = model(**inputs)
        labels = inputs["labels"]
        token_loss = torch.nn.functional.cross_entropy(outputs.logits.float().transpose(1, 2), labels,
                                                       ignore_index=-100, reduction="none")
        mask = (labels != -100).float()
        example_loss = (token_loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        loss = (weights.to(example_loss.device) * example_loss).mean()
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, *args, **kwargs):
        _test_kill_point("evaluate", self.state.epoch)
        return super().prediction_step(*args, **kwargs)

    def _save_optimizer_and_scheduler(self, output_dir):
        _test_kill_point("save", self.state.epoch)
        super()._save_optimizer_and_scheduler(output_dir)
