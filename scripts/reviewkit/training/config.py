"""An experiment's settings: the project's own (`ExperimentConfig`) beside transformers' `Seq2SeqTrainingArguments`.

Both are parsed by one `HfArgumentParser`, so every Trainer flag works under its usual name
(`--gradient_accumulation_steps`, `--lr_scheduler_type`, `--torch_compile`, ...) and `--help`
lists it. The defaults are layered: transformers' own, then the project's (`TRAINING_DEFAULTS`,
chosen for this model and data), then the experiment script's `DEFAULTS`, then its demo
defaults when the parsed --demo is true (`--demo`, `--demo=true`, `--demo true`), then the command line. All checks live here.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import HfArgumentParser, Seq2SeqTrainingArguments

from ..common.cli import TRACKING_URI_HELP
from ..data.cleaning import parse_ratings_filter
from ..tracking.conventions import run_name
from .balance import BALANCE_MODES


@dataclass
class ExperimentConfig:
    """What to train on and how, beyond the Trainer's own arguments."""

    demo: bool = field(default=False, metadata={"help": "offline demo: the committed demo reviews and a tiny model "
                                                        "the project builds itself, both kept under --output_dir"})
    data_dir: str | None = field(default=None, metadata={
        "help": "output directory of prepare_data.py (train/validation parquet); required without --demo"})
    model_name_or_path: str = field(default="cointegrated/rut5-small", metadata={
        "help": "hub id or local directory of the base model (safetensors weights only)"})
    max_source_length: int = field(default=64, metadata={"help": "prompt tokens kept (longer prompts are truncated)"})
    max_target_length: int = field(default=256, metadata={"help": "review tokens kept (longer reviews are truncated)"})
    max_train_samples: int | None = field(default=None, metadata={
        "help": "train on this many random rows of the training split (quick runs, searches)"})
    ratings: str | None = field(default=None, metadata={
        "help": "train only on these ratings, e.g. 1,2 (with --demo: applied when preparing the demo data)"})
    keep_best: bool = field(default=False, metadata={
        "help": "keep and save the epoch with the lowest validation loss instead of the last one"})
    balance: Literal[BALANCE_MODES] = field(default="none", metadata={
        "help": "rating balance of the training split: none (as is), oversample (equal expected count per rating, "
                "redrawn each epoch), weighted (loss weighted by inverse rating frequency), downsample (at most "
                "--balance_max_per_rating rows per rating); validation stays natural"})
    balance_weight_cap: float = field(default=10.0, metadata={
        "help": "weighted: the largest loss weight, as a multiple of the most frequent rating's"})
    balance_max_per_rating: int | None = field(default=None, metadata={
        "help": "downsample: rows kept per rating (default: the count of the rarest rating)"})
    lora: bool = field(default=False, metadata={"help": "train a LoRA adapter on the frozen base model "
                                                        "instead of all weights"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (with --lora)"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling alpha (with --lora)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (with --lora)"})
    lora_target_modules: str = field(default="q,v", metadata={
        "help": "comma-separated T5 modules to adapt: q,k,v,o,wi_0,wi_1,wo (with --lora)"})
    merge: bool = field(default=False, metadata={
        "help": "with --lora: also write a merged standalone model to OUTPUT_DIR/merged for generation"})
    tracking_uri: str | None = field(default=None, metadata={"help": TRACKING_URI_HELP})
    log_model: bool = field(default=True, metadata={
        "help": "log the kept model (OUTPUT_DIR/final; for LoRA the adapter, with its base if that is a local "
                "directory) to the MLflow run as a model MLflow can serve; this copies the weights into the "
                "artifact store (~260 MB for ruT5-small, 0.7-4 MB for this project's LoRA adapters). --log_model false "
                "skips it"})
    register_model: str | None = field(default=None, metadata={
        "help": "also register the logged model as a new version of this MLflow registered model "
                "(serve it with: mlflow models serve -m models:/NAME/VERSION --env-manager local)"})
    verbose: bool = field(default=False, metadata={
        "help": "print transformers' full log dicts and warnings instead of one line per epoch"})

    def __post_init__(self):
        for name in ("max_source_length", "max_target_length", "max_train_samples", "balance_max_per_rating",
                     "lora_r"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1")
        if not self.balance_weight_cap >= 1:
            raise ValueError("--balance_weight_cap must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("--lora_dropout must be in [0, 1)")
        if self.merge and not self.lora:
            raise ValueError("--merge needs --lora: a full fine-tune already saves a standalone model")
        if self.register_model is not None and not (self.log_model and self.register_model.strip()):
            raise ValueError("--register_model NAME needs a name and --log_model (on by default)")
        if not self.demo and not self.data_dir:
            raise ValueError("pass --data_dir DIR (the output of prepare_data.py) or --demo")
        if self.ratings:
            try:
                parse_ratings_filter(self.ratings)
            except ValueError as exc:
                raise ValueError(f"--ratings: {exc}") from None

    @property
    def rating_filter(self) -> tuple[int, ...] | None:
        return parse_ratings_filter(self.ratings) if self.ratings else None

    @property
    def target_modules(self) -> list[str]:
        return [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]


def bf16_supported() -> bool:
    """bfloat16 runs fast here: a GPU that supports it, or a CPU with avx512_bf16 or AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def training_defaults() -> dict:
    """The project's choices for Seq2SeqTrainingArguments where they differ from transformers' defaults."""
    cuda = torch.cuda.is_available()
    return dict(
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_steps=50,
        save_total_limit=2,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        optim="adamw_torch_fused",
        bf16=bf16_supported(),
        # Ampere and newer run float32 matmuls on tensor cores; T5's attention and head stay accurate enough.
        tf32=True if cuda and torch.cuda.get_device_capability()[0] >= 8 else None,
        # transformers' NaN filter reads the loss on the host every step; ReviewTrainer checks it on the device.
        logging_nan_inf_filter=False,
        # Collation in worker processes where a GPU would wait for it; on a CPU they steal its cores.
        dataloader_num_workers=4 if cuda else 0,
        dataloader_persistent_workers=cuda,
        # Without it transformers 5 runs CPU processes under torchrun as independent, not as DDP.
        use_cpu=not cuda,
        # The rating and length columns travel with each batch; ReviewCollator and ReviewTrainer consume them.
        remove_unused_columns=False,
        report_to="none",  # MlflowLogger logs the run; --report_to adds other integrations
        seed=42,
    )


class ConfigParser(HfArgumentParser):
    """HfArgumentParser whose errors are one line: `prog: error: message (see --help)`, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_config(description: str, defaults: dict, demo_defaults: dict, argv: list[str] | None = None,
                 extra: tuple = (), run_name_prefix: str | None = None) -> tuple:
    """(ExperimentConfig, Seq2SeqTrainingArguments, *instances of `extra` dataclasses) from the command line.

    With `run_name_prefix` and no --run_name, the run is named after the prefix and the settings that differ
    from the script's defaults (`train_t5 · lr 0.0001 · balance oversample`).
    """
    argv = sys.argv[1:] if argv is None else argv
    types = (ExperimentConfig, Seq2SeqTrainingArguments, *extra)
    parser = ConfigParser(types, description=description)
    known = {f.name for t in types for f in dataclasses.fields(t)}
    layered = {**training_defaults(), **defaults}
    unknown = sorted(set(layered) - known | set(demo_defaults) - known)
    if unknown:
        raise TypeError(f"unknown settings in DEFAULTS: {', '.join(unknown)}")
    parser.set_defaults(**layered)
    namespace = parser.parse_args(argv)
    if namespace.demo and demo_defaults:
        # The demo defaults follow the parsed --demo (`--demo`, `--demo=true`, `--demo true`; not `--demo false`).
        parser.set_defaults(**demo_defaults)
        namespace = parser.parse_args(argv)
    if namespace.fp16:
        parser.error("--fp16 is refused: T5 overflows in float16 (inf/NaN loss); use --bf16 or full precision")
    # The defaults as argparse converts them (a default string "no" parses to False), demo defaults included.
    baseline = vars(parser.parse_args(["--demo"] if namespace.demo else []))
    changed = {name: value for name, value in vars(namespace).items() if value != baseline[name]}
    if namespace.demo:
        changed = {"demo": True, **changed}
    if namespace.keep_best:
        namespace.load_best_model_at_end = True
    if run_name_prefix and namespace.run_name is None:
        namespace.run_name = run_name(run_name_prefix, changed)
    values = vars(namespace)
    try:
        parsed = tuple(t(**{f.name: values[f.name] for f in dataclasses.fields(t) if f.init}) for t in types)
        check_training_args(parsed[1])
    except ValueError as exc:
        parser.error(str(exc).strip().splitlines()[0])
    return parsed


def check_training_args(args: Seq2SeqTrainingArguments) -> None:
    """The Trainer settings this project's runs depend on; transformers accepts more."""
    if not args.num_train_epochs > 0:
        raise ValueError("--num_train_epochs must be positive")
    if not args.learning_rate > 0:
        raise ValueError("--learning_rate must be positive")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if not args.logging_steps > 0:
        raise ValueError("--logging_steps must be positive")
    if args.eval_strategy.value == "no":
        raise ValueError("--eval_strategy no: every run reports its validation loss; use epoch or steps")
