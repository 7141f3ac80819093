"""Draw N random prompts from the held-out test split, generate a review for each, and write a file to mark by hand.

    python scripts/sample.py --model outputs/demo/train_t5/final --data_dir outputs/demo/train_t5/demo_data --output t5_sample.txt
    python scripts/score_sample.py t5_sample.txt          # after marking

Several models (`--model A --model B`) answer the same N prompts. With --blind their entries are
shuffled together into one file that does not say which model wrote which, numbered 1..(models x N);
the key (entry number -> model and prompt) goes beside it to `<output stem>.key.json`:

    python scripts/sample.py --model outputs/train_t5/final --model outputs/train_lora/final --blind \\
        --data_dir data/prepared/full --n 100 --output t5_vs_lora.txt
    python scripts/score_sample.py --mark t5_vs_lora.txt                        # mark without seeing the key
    python scripts/score_sample.py t5_vs_lora.txt --key t5_vs_lora.key.json     # per model, and compared

Without --blind the entries of several models are grouped by prompt and name their model; the key is
written too. Files are written atomically: an interrupted run leaves the old file or none, never half of one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reviewkit.common.cli import ArgumentParser, add_hidden_alias, check_output, int_in
from reviewkit.common.errors import UserError
from reviewkit.common.files import atomic_write_text, remove_stale_temporaries
from reviewkit.common.paths import PROJECT_ROOT
from reviewkit.marking.key import format_key, key_path_for
from reviewkit.marking.sample_file import Entry, compute_sample_id, entry_fingerprint, format_sample
from reviewkit.model.device import GenerationDevice, resolve_device
from reviewkit.model.generation import (SamplingSettings, add_device_flag, add_sampling_flags, generate_reviews,
                                        load_for_generation, prompt_of, settings_from, trained_lengths,
                                        with_empty_nulls)



class SampleError(UserError):
    """The sample cannot be made; the message is one line for the user."""


def path_for_header(path: str) -> str:
    """A path as the header shows it: relative to the project when inside it, so the file reads the same anywhere."""
    return path.removeprefix(f"{PROJECT_ROOT}/")


def read_summary(model_dir: Path) -> dict:
    """The summary.json a training run wrote beside its model directory; {} for other models."""
    try:
        summary = json.loads((model_dir.parent / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def training_lines(model_dir: Path) -> list[str]:
    """What made the model, from the summary.json its training run wrote beside it (none for other models)."""
    summary = read_summary(model_dir)
    try:
        epoch = summary["kept_epoch"]
        lines = [f"Trained by scripts/{summary['experiment']}.py from {path_for_header(summary['model_name_or_path'])} "
                 f"({summary['total_parameters']:,} parameters, {summary['trainable_parameters']:,} trained) "
                 f"on {path_for_header(summary['data_dir'])}; epoch {epoch} kept, "
                 f"eval_loss {summary['eval_loss'][str(epoch)]:.4f}; MLflow run {summary['run_id']}"]
    except (ValueError, KeyError, TypeError):
        return []
    if summary.get("demo"):
        lines.append("This is the offline demo: a tiny randomly initialised T5 and the project's generated demo "
                     "reviews, not ruT5-small on the real dataset; it shows the format, not the quality.")
    return lines


def directory_label(model_dir: str) -> str:
    """`outputs/train_lora/final` → `train_lora`; `outputs/train_t5/checkpoint-500` → `train_t5/checkpoint-500`."""
    path = Path(model_dir).resolve()
    if path.name == "final":
        return path.parent.name
    return f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint-") else path.name


def experiment_label(model_dir: str) -> str | None:
    """The experiment from summary.json beside the model (`train_t5`), with the directory unless it is `final`."""
    experiment = read_summary(Path(model_dir)).get("experiment")
    if not isinstance(experiment, str) or not experiment:
        return None
    name = Path(model_dir).resolve().name
    return experiment if name == "final" else f"{experiment}/{name}"


def model_labels(models: list[str], given: list[str] | None) -> list[str]:
    """--label as given, else experiment names, else directory names: the first of these that tells the models apart."""
    candidates = [given] if given else [[experiment_label(m) or directory_label(m) for m in models],
                                        [directory_label(m) for m in models]]
    for labels in candidates:
        if len(set(labels)) == len(labels):
            bad = [label for label in labels if not label or label != label.strip() or "\n" in label]
            if bad:
                raise SampleError(f"label {bad[0]!r} cannot be used: a label is one line without outer spaces")
            return labels
    repeated = sorted({label for label in candidates[-1] if candidates[-1].count(label) > 1})
    flag = "--label values must be unique" if given else "the models get the same label"
    raise SampleError(f"{flag} ({', '.join(repeated)}): pass one distinct --label per --model, in the same order")


def draw_prompts(data_dir: str, n: int, rng: np.random.Generator) -> tuple[Path, list[int], list[dict]]:
    """(test split path, the drawn row numbers, their rows): N rows of the test split at random."""
    test_path = Path(data_dir) / "test.parquet"
    if not test_path.is_file():
        raise SampleError(f"{test_path} not found: pass the output directory of prepare_data.py")
    try:
        test = pq.read_table(test_path, columns=["rating", "rubrics", "keywords"]).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise SampleError(f"cannot read {test_path}: {str(exc).splitlines()[0]}") from None
    if not test:
        raise SampleError(f"the test split in {data_dir} is empty")
    if n > len(test):
        print(f"note: --num_prompts {n} is more than the {len(test)} rows of {test_path}: the sample has all {len(test)}",
              file=sys.stderr)
    drawn = [int(i) for i in rng.choice(len(test), size=min(n, len(test)), replace=False)]
    return test_path, drawn, with_empty_nulls([test[i] for i in drawn])


def prompts_of(test_path: Path, drawn: list[int], rows: list[dict]) -> list[str]:
    try:
        return [prompt_of(row, f"{test_path} row {i + 1}") for i, row in zip(drawn, rows)]
    except UserError as exc:
        raise SampleError(str(exc)) from None


def generate_with(model_dir: str, args, prompts: list[str], settings: SamplingSettings,
                  device: GenerationDevice) -> list[str]:
    try:
        lengths = trained_lengths(model_dir, settings.max_new_tokens)
        model, tokenizer = load_for_generation(model_dir, args.base_model, device)
    except UserError as exc:
        raise SampleError(str(exc)) from None
    return [texts[0] for texts in generate_reviews(model, tokenizer, prompts, settings, args.batch_size,
                                                   max_source_length=lengths.max_source_length)]


def one_line(text: str) -> str:
    """A field's value as the sample file's reader reads it back: one line, single spaces."""
    return " ".join(text.split())


def prompt_entry(number: int, row: dict, review: str, model: str = "") -> Entry:
    return Entry(number, str(row["rating"]), one_line("; ".join(row["rubrics"].split(";"))),
                 one_line(", ".join(row["keywords"])), review, model=model)


def settings_lines(settings: SamplingSettings, device: GenerationDevice) -> list[str]:
    """The header's lines of what decides the reviews besides the model and prompts."""
    return ["Settings: " + ", ".join(f"{k}={v}" for k, v in settings.as_dict().items()),
            f"Device: {device.label}"]


def one_model_sample(args, test_path: Path, drawn: list[int], rows: list[dict], settings: SamplingSettings,
                     device: GenerationDevice) -> str:
    prompts = prompts_of(test_path, drawn, rows)
    reviews = generate_with(args.model[0], args, prompts, settings, device)
    entries = [prompt_entry(i, row, review) for i, (row, review) in enumerate(zip(rows, reviews), start=1)]
    header = [f"Generated by scripts/sample.py: model {args.model[0]}"
              + (f" (base {args.base_model})" if args.base_model else ""),
              *training_lines(Path(args.model[0])),
              f"Prompts: {len(rows)} drawn at random (seed {args.seed}) from {test_path}",
              *settings_lines(settings, device)]
    return format_sample(header, entries)


def several_models_header(args, labels: list[str], test_path: Path, count: int, settings: SamplingSettings,
                          device: GenerationDevice, key_name: str) -> list[str]:
    if args.blind:
        lines = [f"Generated by scripts/sample.py: a blind comparison of {len(labels)} models; which model wrote "
                 f"which entry is in {key_name} (open it only after marking)",
                 f"Prompts: {count} drawn at random (seed {args.seed}) from {test_path}; each appears once per model, "
                 f"the entries shuffled"]
    else:
        lines = [f"Generated by scripts/sample.py: {len(labels)} models, each entry names its model; key {key_name}"]
        for label, model in zip(labels, args.model):
            lines += [f"Model {label}: {model}" + (f" (base {args.base_model})" if args.base_model else ""),
                      *(f"{label}: {line}" for line in training_lines(Path(model)))]
        lines.append(f"Prompts: {count} drawn at random (seed {args.seed}) from {test_path}; "
                     f"one entry per model for each, grouped by prompt")
    return lines + settings_lines(settings, device)


def several_models_sample(args, labels: list[str], test_path: Path, drawn: list[int], rows: list[dict],
                          settings: SamplingSettings, device: GenerationDevice,
                          rng: np.random.Generator) -> tuple[str, str]:
    """(sample text, key text): each model's review of each drawn prompt, shuffled together with --blind."""
    prompts = prompts_of(test_path, drawn, rows)
    reviews = [generate_with(model, args, prompts, settings, device) for model in args.model]
    order = [(m, k) for k in range(len(rows)) for m in range(len(args.model))]  # (model, prompt), grouped by prompt
    if args.blind:
        order = [order[i] for i in rng.permutation(len(order))]
    entries = [prompt_entry(number, rows[k], reviews[m][k], model="" if args.blind else labels[m])
               for number, (m, k) in enumerate(order, start=1)]
    keyed = {entry.number: {"model": labels[m], "path": args.model[m], "prompt_index": k, "test_row": drawn[k],
                            "fingerprint": entry_fingerprint(entry)} for entry, (m, k) in zip(entries, order)}
    models = [{"label": label, "path": model, "base_model": args.base_model, "training": training_lines(Path(model))}
              for label, model in zip(labels, args.model)]
    sample_id = compute_sample_id(entries)
    key_name = key_path_for(args.output).name
    header = (several_models_header(args, labels, test_path, len(rows), settings, device, key_name)
              + [f"Sample id: {sample_id}"])
    key = format_key(models, keyed, sample_id, sample=Path(args.output).name, blind=args.blind, seed=args.seed,
                     test_split=path_for_header(str(test_path.resolve())), settings=settings.as_dict(),
                     device=device.label)
    return format_sample(header, entries), key


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="trained model directory (full model or LoRA adapter); repeat it to sample several "
                             "models on the same prompts")
    parser.add_argument("--base_model", default=None, help="base model of LoRA adapters; when not given, the one each adapter records")
    parser.add_argument("--label", action="append", default=None,
                        help="a short name per --model, in the same order, unique; when not given, the experiment "
                             "from summary.json beside each model, else its directory name")
    parser.add_argument("--blind", action="store_true",
                        help="with several --model: shuffle all entries into one file that does not name the "
                             "models; the key goes to <output stem>.key.json")
    parser.add_argument("--data_dir", required=True, help="output directory of prepare_data.py (its test split)")
    parser.add_argument("--num_prompts", type=int_in(1), default=100,
                        help="number of prompts (entries per model); at most the rows of the test split")
    add_hidden_alias(parser, "--n", "num_prompts", type=int_in(1))
    parser.add_argument("--output", default="t5_sample.txt", help="file to write (its directory must exist)")
    add_sampling_flags(parser)
    add_device_flag(parser)
    args = parser.parse_args(argv)
    check_output(parser, "--output", args.output)
    if len(args.model) > 1:
        check_output(parser, "the key", key_path_for(args.output))
    if args.blind and len(args.model) < 2:
        parser.error("--blind needs at least two --model")
    if args.label is not None and len(args.model) < 2:
        parser.error("--label names the models of a sample of several --model; with one it has no use")
    if args.label is not None and len(args.label) != len(args.model):
        parser.error(f"{len(args.label)} --label for {len(args.model)} --model: give one per model, in the same order")
    return args


def write_file(path: Path, text: str) -> None:
    """Atomically; an error (the directory removed while generating, a full disk) is one line."""
    try:
        remove_stale_temporaries(path.parent, of=path.name)
        atomic_write_text(path, text)
    except OSError as exc:
        raise SampleError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_outputs(output: Path, sample: str, key: str | None) -> None:
    if key is not None:  # the key first: a run killed in between leaves a key that does not fit the old file
        write_file(key_path_for(output), key)
    write_file(output, sample)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    rng = np.random.default_rng(args.seed)
    settings = settings_from(args)
    try:
        device = resolve_device(args.device)
        for model_dir in args.model:  # every model's bound before the first one generates
            trained_lengths(model_dir, settings.max_new_tokens)
        labels = model_labels(args.model, args.label) if len(args.model) > 1 else []
        test_path, drawn, rows = draw_prompts(args.data_dir, args.num_prompts, rng)
        print(f"generating on {device.description}")
        if len(args.model) == 1:
            write_outputs(output, one_model_sample(args, test_path, drawn, rows, settings, device), None)
        else:
            write_outputs(output, *several_models_sample(args, labels, test_path, drawn, rows, settings, device, rng))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if len(args.model) == 1:
        print(f"wrote {len(rows)} entries to {args.output}; mark them, then: python scripts/score_sample.py {args.output}")
    else:
        key = key_path_for(output)
        print(f"wrote {len(rows) * len(args.model)} entries ({len(rows)} prompts x {len(args.model)} models: "
              f"{', '.join(labels)}) to {args.output}{' shuffled, without model names' if args.blind else ''}, "
              f"and the key to {key}; mark them (python scripts/score_sample.py --mark {args.output}), then: "
              f"python scripts/score_sample.py {args.output} --key {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
