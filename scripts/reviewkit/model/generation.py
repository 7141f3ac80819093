"""Generate reviews from a trained model: a full model directory or a base model plus a LoRA adapter.

Prompts are built by `prompt.build_prompt`, the function used for training. Generation is
batched, with batches of similar prompt length (less padding); the same seed gives the same
reviews on the same device and precision (torch.manual_seed seeds the CPU and every GPU).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..common.cli import float_above, int_in
from ..common.errors import InputError, ModelSourceError
from ..data.cleaning import parse_rating
from ..data.prompt import build_prompt
from .device import CHOICES_HELP, GenerationDevice, device_choice
from .modeling import load_model_and_tokenizer

SEED_MAX = 2**32 - 1  # what numpy's generators and scikit-learn's random_state accept
LENGTHS_FILE = "training_lengths.json"  # written beside the weights by training


@dataclass(frozen=True)
class TrainedLengths:
    """The token lengths a model was trained with: prompts are cut to max_source_length as in training, and no
    review is asked to run past max_target_length. The defaults are the training scripts' (for models saved
    before the lengths were recorded)."""

    max_source_length: int = 64
    max_target_length: int = 256

    def write(self, model_dir: str | Path) -> None:
        (Path(model_dir) / LENGTHS_FILE).write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")

    @classmethod
    def of(cls, model_dir: str | Path) -> "TrainedLengths":
        try:
            recorded = json.loads((Path(model_dir) / LENGTHS_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        return cls(int(recorded["max_source_length"]), int(recorded["max_target_length"]))


@dataclass(frozen=True)
class SamplingSettings:
    num_return_sequences: int = 1
    temperature: float = 0.9
    top_p: float = 0.95
    top_k: int = 50
    no_repeat_ngram_size: int = 3
    max_new_tokens: int = 200
    seed: int = 42

    def as_dict(self) -> dict:
        return asdict(self)


def trained_lengths(model_dir: str, max_new_tokens: int) -> TrainedLengths:
    """The model's trained lengths; ValueError when --max_new_tokens asks for reviews longer than it learned."""
    lengths = TrainedLengths.of(model_dir)
    if max_new_tokens > lengths.max_target_length:
        raise InputError(f"--max_new_tokens {max_new_tokens} is above the max_target_length "
                         f"{lengths.max_target_length} that {model_dir} was trained with")
    return lengths


def load_for_generation(model_dir: str, base_model: str | None, device: GenerationDevice):
    """(model, tokenizer) from a full model directory or a LoRA adapter directory, the model on `device`.

    For an adapter, the base model is `base_model` or the one recorded in adapter_config.json.
    """
    path = Path(model_dir)
    adapter_config = path / "adapter_config.json"
    if not adapter_config.is_file():
        model, tokenizer = load_model_and_tokenizer(model_dir)
        return model.to(device.device, device.dtype).eval(), tokenizer
    from peft import PeftModel

    base = base_model or json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelSourceError(f"{model_dir} is a LoRA adapter without a base model: pass --base_model")
    model, tokenizer = load_model_and_tokenizer(base)
    if (path / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    try:
        model = PeftModel.from_pretrained(model, str(path))
    except (RuntimeError, ValueError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if line.startswith("size mismatch")), lines[0])
        raise ModelSourceError(f"the adapter in {model_dir} does not fit base model {base}: {reason}") from None
    # Cast as a whole after attaching the adapter: PEFT keeps adapter weights in fp32 on a bf16 base.
    return model.to(device.device, device.dtype).eval(), tokenizer


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="trained model directory (full model or LoRA adapter)")
    parser.add_argument("--base_model", default=None, help="base model of a LoRA adapter (default: from the adapter)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """--device; argparse checks the spelling, resolve_device (before the model loads) that the machine has it."""
    parser.add_argument("--device", type=device_choice, default="auto",
                        help=f"where the model generates: {CHOICES_HELP}")


def add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    """The sampling flags, each checked by argparse: a value out of range is a one-line usage error."""
    defaults = SamplingSettings()
    parser.add_argument("--temperature", type=float_above(0), default=defaults.temperature,
                        help="sampling temperature, > 0")
    parser.add_argument("--top_p", type=float_above(0, 1), default=defaults.top_p,
                        help="nucleus sampling probability mass, in (0, 1]")
    parser.add_argument("--top_k", type=int_in(0), default=defaults.top_k,
                        help="sample from the k most likely tokens (0: no limit)")
    parser.add_argument("--no_repeat_ngram_size", type=int_in(0), default=defaults.no_repeat_ngram_size,
                        help="never repeat an n-gram of this size (0: off)")
    parser.add_argument("--max_new_tokens", type=int_in(1), default=defaults.max_new_tokens,
                        help="review length limit, >= 1")
    parser.add_argument("--seed", type=int_in(0, SEED_MAX), default=defaults.seed,
                        help=f"seed of the draw and of sampling, 0 to {SEED_MAX}")
    parser.add_argument("--batch_size", type=int_in(1), default=64,
                        help="prompts generated together, >= 1 (64: the fastest measured by bench_generate.py on CPU)")


def settings_from(args, num_return_sequences: int = 1) -> SamplingSettings:
    return SamplingSettings(num_return_sequences, args.temperature, args.top_p, args.top_k,
                            args.no_repeat_ngram_size, args.max_new_tokens, args.seed)


def with_empty_nulls(rows: list[dict]) -> list[dict]:
    """Rows whose null rubrics or keywords read as empty, as an empty value does."""
    return [{**row, "rubrics": row.get("rubrics") or "", "keywords": row.get("keywords") or []} for row in rows]


def prompt_of(row: dict, where: str) -> str:
    """The prompt of a row with rating, rubrics and keywords; ValueError naming `where` when its rating is not 1-5."""
    rating, reason = parse_rating(row["rating"])  # the cleaning rule: an integer from 1 to 5
    if reason:
        raise InputError(f"{where}: rating must be an integer from 1 to 5, got {row['rating']!r}")
    return build_prompt(rating, row["rubrics"] or "", row["keywords"] or "")


class GenerationCutoff(StoppingCriteria):
    """Ends the generation of the whole batch once `deadline` (a time.monotonic() value) has passed or `stop` is set.

    The served model's bound on one request, and its way out when the server is told to stop. Reviews cut by it
    end where generation was.
    """

    def __init__(self, deadline: float | None = None, stop: threading.Event | None = None):
        self.deadline, self.stop = deadline, stop

    def reached(self) -> bool:
        return ((self.stop is not None and self.stop.is_set())
                or (self.deadline is not None and time.monotonic() >= self.deadline))

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.reached(), dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def generate_reviews(model, tokenizer, prompts: Sequence[str], settings: SamplingSettings, batch_size: int = 64,
                     max_source_length: int | None = None,
                     cutoff: GenerationCutoff | None = None) -> list[list[str]]:
    """`settings.num_return_sequences` reviews per prompt, in the order of `prompts`.

    `max_source_length`: prompts are cut to that many tokens, as training cut them. `cutoff`: checked after
    every generated token; once it is reached, the batch in progress ends there and the batches left are not
    generated (their reviews are empty).
    """
    torch.manual_seed(settings.seed)
    cut = {"truncation": True, "max_length": max_source_length} if max_source_length else {}
    lengths = [len(ids) for ids in tokenizer(list(prompts), **cut)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    results = [[""] * settings.num_return_sequences for _ in prompts]
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        if cutoff and cutoff.reached():
            break
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, **cut).to(device)
        outputs = model.generate(
            **inputs,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            max_new_tokens=settings.max_new_tokens,
            num_return_sequences=settings.num_return_sequences,
            stopping_criteria=StoppingCriteriaList([cutoff]) if cutoff else None,
        )
        texts = tokenizer.batch_decode(outputs, skip_special_tokens=True)
        for position, index in enumerate(batch):
            per_prompt = settings.num_return_sequences
            results[index] = [t.strip() for t in texts[position * per_prompt:(position + 1) * per_prompt]]
    return results
