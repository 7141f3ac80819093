"""One training run, top to bottom: data → model → trainer → train → save → summary.

Behind train_t5.py, train_lora.py and train_lora_r1.py: an experiment script states its defaults
and calls `main`. Built on transformers' Seq2SeqTrainer (optimizer, checkpoints, DDP/torchrun,
resume), peft for LoRA and datasets for tokenisation.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..common.errors import NonFiniteLossError, OutputDirError, TrackingError, TrainingError, UserError
from ..common.files import atomic_write_text, ensure_output_dir
from ..common.redact import mask_uri, redact
from ..model.modeling import count_parameters
from ..tracking.epochs import eval_losses, pick_best_epoch
from ..tracking.logger import MlflowLogger
from ..tracking.store import check_tracking_uri, resolve_tracking_uri
from .checkpoints import last_complete_checkpoint
from .config import ExperimentConfig, parse_config
from .console import make_quiet
from .stops import RaiseRecordedStop, stop_signals
from .trainer import EpochStats, EpochStatsCallback, ReviewCollator, ReviewTrainer, balanced


def main(experiment: str, description: str, defaults: dict, demo_defaults: dict, argv: list[str] | None = None) -> int:
    """The whole command line of an experiment script; returns the exit code."""
    config, training_args = parse_config(description, defaults, demo_defaults, argv, run_name_prefix=experiment)
    try:
        with stop_signals(signal.SIGINT):
            summary = run(config, training_args, experiment)
    except UserError as exc:
        tqdm.write(f"error: {exc}", file=sys.stderr)  # on its own line even below a progress bar
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: checkpoints stay in {training_args.output_dir}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    if training_args.process_index != 0:
        return 0
    kept = "best" if config.keep_best else "last"
    print(f"best epoch {summary['best_epoch']} (eval_loss {summary['best_eval_loss']:.4f}); {kept} epoch "
          f"{summary['kept_epoch']} saved to {summary['final_dir']}; MLflow run {summary['run_id']}"
          + ("" if summary["mlflow_finished"] else " (left RUNNING, see the warning above)"))
    return 0


def run(config: ExperimentConfig, training_args, experiment: str, callbacks: tuple = (),
        parent_run_id: str | None = None) -> dict:
    """Train one experiment; returns its summary (epoch losses, best epoch, paths, MLflow run).

    `callbacks` are extra transformers callbacks (the search's pruning); `parent_run_id` nests the
    MLflow run under that run.
    """
    tracking_uri = checked_tracking_uri(config, training_args)
    output_dir = checked_output_dir(training_args.output_dir)
    # Under torchrun, rank 0 prepares data, builds the demo model and tokenises; the others then
    # read its caches instead of racing it.
    with training_args.main_process_first(desc="data and model"):
        data_dir, report = load_data(config, output_dir)
        model_source = demo_base_model(output_dir, data_dir) if config.demo else config.model_name_or_path
        model, tokenizer = load_model(model_source)
        dataset = tokenize(data_dir, tokenizer, config)
    params = {"tracking_uri": mask_uri(tracking_uri), "model_id": model_source, **data_params(data_dir, report)}
    trainer, logger = build_trainer(config, training_args, experiment, model, tokenizer, dataset, params,
                                    tracking_uri, callbacks, parent_run_id)
    try:
        train(trainer, logger, training_args, output_dir)
        final_dir, merged_dir = save_model(trainer, tokenizer, config, output_dir)
        summary = summarize(trainer, config, experiment, logger, data_dir)
        summary.update(final_dir=str(final_dir), **({"merged_dir": str(merged_dir)} if merged_dir else {}))
        if trainer.is_world_process_zero():
            summary_text = json.dumps(summary, ensure_ascii=False, indent=2)
            atomic_write_text(output_dir / "summary.json", redact(summary_text) + "\n")
            card = write_card(final_dir, summary, logger.params, report)
            log_model(config, logger, summary, final_dir, model_source)
            summary["mlflow_finished"] = logger.finish([output_dir / "summary.json", data_dir / "report.json"],
                                                       note=card.read_text(encoding="utf-8"))
    except KeyboardInterrupt:  # Ctrl-C or tune_lora's SIGTERM, in training or while saving and logging after it
        logger.fail(status="KILLED")
        raise
    return summary


def checked_tracking_uri(config: ExperimentConfig, training_args) -> str:
    tracking_uri = resolve_tracking_uri(config.tracking_uri)
    # Only rank 0 talks to MLflow; two processes opening a new sqlite store at once race its migration.
    if training_args.process_index == 0:
        try:
            check_tracking_uri(tracking_uri)
        except TrackingError as exc:
            raise TrainingError(str(exc)) from None
    return tracking_uri


def checked_output_dir(path: str) -> Path:
    try:
        return ensure_output_dir(path)
    except OutputDirError as exc:
        raise TrainingError(str(exc)) from None


def load_data(config: ExperimentConfig, output_dir: Path) -> tuple[Path, dict]:
    """(prepared data directory, its report.json); the demo prepares its data under the output directory."""
    if config.demo:
        from .demo import prepare_demo_data

        return prepare_demo_data(output_dir, config.rating_filter)
    data_dir = Path(config.data_dir)
    report_path = data_dir / "report.json"
    if not report_path.is_file() or not (data_dir / "train.parquet").is_file():
        raise TrainingError(f"{data_dir} is not an output of prepare_data.py (no report.json/train.parquet)")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    if config.ratings and tuple(report["settings"].get("ratings") or ()) != config.rating_filter:
        raise TrainingError(f"{data_dir} was not prepared with --ratings {config.ratings}; "
                            f"run prepare_data.py --ratings {config.ratings}")
    return data_dir, report


def demo_base_model(output_dir: Path, data_dir: Path) -> str:
    from ..common.errors import ModelSourceError
    from .demo import build_demo_base_model

    try:
        return str(build_demo_base_model(output_dir, data_dir))
    except ModelSourceError as exc:
        raise TrainingError(str(exc)) from None


def load_model(model_source: str):
    """The base model and its tokenizer: a hub id or a local directory."""
    from ..common.errors import ModelSourceError
    from ..model.modeling import load_model_and_tokenizer

    try:
        return load_model_and_tokenizer(model_source)
    except ModelSourceError as exc:
        raise TrainingError(str(exc)) from None


def tokenize(data_dir: Path, tokenizer, config: ExperimentConfig):
    """Train and validation splits as token ids, with each row's rating and total length (for the sampler)."""
    import datasets

    files = {split: str(data_dir / f"{split}.parquet") for split in ("train", "validation")}
    raw = datasets.load_dataset("parquet", data_files=files)

    def encode(batch):
        features = tokenizer(batch["prompt"], max_length=config.max_source_length, truncation=True)
        features["labels"] = tokenizer(text_target=batch["text"], max_length=config.max_target_length,
                                       truncation=True)["input_ids"]
        features["length"] = [len(ids) + len(labels) for ids, labels in zip(features["input_ids"], features["labels"])]
        features["rating"] = batch["rating"]
        return features

    # datasets caches the result by fingerprint: a rerun with the same data and tokenizer skips this.
    return raw.map(encode, batched=True, remove_columns=raw["train"].column_names, desc="tokenising")


def with_lora(model, config: ExperimentConfig):
    if not config.lora:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    lora_config = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                             lora_dropout=config.lora_dropout, target_modules=config.target_modules)
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        raise TrainingError(f"LoRA cannot be applied: {str(exc).splitlines()[0]}") from None


def subset(train_set, max_samples: int | None, seed: int):
    if max_samples is None or max_samples >= len(train_set):
        return train_set
    return train_set.select(np.sort(np.random.default_rng(seed).choice(len(train_set), max_samples, replace=False)))


def data_params(data_dir: Path, report: dict) -> dict:
    return {"data_dir": str(data_dir), "data_read": report["read"], "data_kept": report["kept"],
            **{f"data_dropped_{k}": v for k, v in report["dropped"].items()},
            **{f"data_{split}_rows": info["rows"] for split, info in report["splits"].items()}}


def build_trainer(config: ExperimentConfig, training_args, experiment: str, model, tokenizer, dataset,
                  params: dict, tracking_uri: str, callbacks: tuple = (), parent_run_id: str | None = None):
    """(ReviewTrainer, MlflowLogger) for tokenised train/validation splits: LoRA, subset and balance applied.

    `params` go to MLflow beside every setting of both configs: the data, the model id, the masked tracking URI.
    """
    model = with_lora(model, config)
    train_set = subset(dataset["train"], config.max_train_samples, training_args.seed)
    train_set, sample_weights, rating_loss_weights, balance_params = balanced(train_set, config, training_args.seed)
    stats = EpochStats()
    settings = {k: v for k, v in training_args.to_dict().items() if k not in ("fp16", "run_name")}
    lora_only = {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge"}
    experiment_settings = {k: v for k, v in vars(config).items() if config.lora or k not in lora_only}
    trainable, total = count_parameters(model)
    if training_args.process_index == 0:
        print(f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.3%})")
    logger = MlflowLogger(tracking_uri, experiment, {
        **settings, **experiment_settings, **params, **balance_params, "trainable_parameters": trainable,
        "total_parameters": total, "world_size": training_args.world_size, "train_rows_used": len(train_set)},
        stats, run_name=training_args.run_name, parent_run_id=parent_run_id,
        data_dir=Path(params["data_dir"]) if "data_dir" in params else None)
    trainer = ReviewTrainer(
        model=model, args=training_args, train_dataset=train_set, eval_dataset=dataset["validation"],
        data_collator=ReviewCollator(tokenizer, model), processing_class=tokenizer,
        callbacks=[EpochStatsCallback(stats), logger, RaiseRecordedStop(), *callbacks],
        stats=stats, sample_weights=sample_weights, rating_loss_weights=rating_loss_weights,
    )
    if not config.verbose:
        make_quiet(trainer, stats)
    return trainer, logger


def train(trainer, logger: MlflowLogger, training_args, output_dir: Path) -> None:
    """Train, resuming from the given checkpoint or the last complete one in the output directory."""
    resume = training_args.resume_from_checkpoint or last_complete_checkpoint(
        output_dir, remove_incomplete=training_args.process_index == 0)
    if resume and training_args.process_index == 0:
        print(f"resuming from {resume}")
    try:
        trainer.train(resume_from_checkpoint=resume)
    except NonFiniteLossError:
        logger.fail()
        raise


def save_model(trainer, tokenizer, config: ExperimentConfig, output_dir: Path) -> tuple[Path, Path | None]:
    """Save the kept model (a LoRA run: its adapter; with --merge also a merged standalone model)."""
    final_dir, merged_dir = output_dir / "final", None
    if trainer.is_world_process_zero():
        from ..model.generation import TrainedLengths

        lengths = TrainedLengths(config.max_source_length, config.max_target_length)
        trainer.model.save_pretrained(str(final_dir))  # safetensors
        tokenizer.save_pretrained(str(final_dir))
        lengths.write(final_dir)
        if config.lora and config.merge:
            merged_dir = output_dir / "merged"
            trainer.model.merge_and_unload().save_pretrained(str(merged_dir))
            tokenizer.save_pretrained(str(merged_dir))
            lengths.write(merged_dir)
    return final_dir, merged_dir


def summarize(trainer, config: ExperimentConfig, experiment: str, logger: MlflowLogger, data_dir: Path) -> dict:
    evals = eval_losses(trainer.state.log_history)
    best_epoch, best_loss = pick_best_epoch(evals)
    return {"experiment": experiment, "run_id": logger.run_id, "tracking_uri": logger.shown_uri,
            "model_name_or_path": logger.params["model_id"], "demo": config.demo, "data_dir": str(data_dir),
            "eval_loss": {str(e): v for e, v in evals}, "best_epoch": best_epoch, "best_eval_loss": best_loss,
            "kept_epoch": best_epoch if config.keep_best else evals[-1][0],
            "trainable_parameters": logger.params["trainable_parameters"],
            "total_parameters": logger.params["total_parameters"]}


def write_card(final_dir: Path, summary: dict, params: dict, report: dict) -> Path:
    from ..model.card import write_model_card

    return write_model_card(final_dir, summary, params, report)


def log_model(config: ExperimentConfig, logger: MlflowLogger, summary: dict, final_dir: Path, model_source: str) -> None:
    """The kept model into the MLflow run (--log_model, --register_model); a failure leaves it on disk with a warning."""
    if not config.log_model:
        return
    from ..model.mlflow_model import log_review_model
    from ..common.errors import first_line

    try:
        logged = log_review_model(logger.tracking_uri, logger.run_id, final_dir, summary["experiment"],
                                  summary["kept_epoch"], model_source if config.lora else None, config.register_model)
    except Exception as exc:  # noqa: BLE001 - a server or store error must not cost the trained model
        tqdm.write(f"warning: the model was not logged to MLflow ({first_line(exc)}); it stays in {final_dir}",
                   file=sys.stderr)
        return
    registered = f", registered as {config.register_model} version {logged.registered_version}" \
        if logged.registered_version else ""
    print(f"MLflow model {logged.model_uri} logged{registered}")
