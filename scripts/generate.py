"""Generate reviews with a trained model for prompts given on the command line or in a CSV/parquet file.

    python scripts/generate.py --model outputs/demo/train_t5/final --rating 4 --rubrics "Кафе" --keywords "кофе, десерт"
    python scripts/generate.py --model outputs/demo/train_lora/final --prompts_file prompts.csv --output reviews.csv

A prompts file has the columns rating, rubrics (separated by ;) and keywords (separated by ,);
an empty or null rubrics or keywords is empty. Its rows are counted from 1, after the CSV header.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from reviewkit.common.cli import ArgumentParser, check_output, int_in
from reviewkit.common.errors import InputError, UserError
from reviewkit.common.files import atomic_path
from reviewkit.model.device import resolve_device
from reviewkit.model.generation import (add_device_flag, add_model_flags, add_sampling_flags, generate_reviews,
                                        load_for_generation, prompt_of, settings_from, trained_lengths)


def read_prompt_rows(path: str) -> list[dict]:
    """Rows of rating, rubrics, keywords; InputError with a one-line reason that names the file."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"prompts file not found: {path}")
    try:
        if file.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                rows = pq.read_table(file).to_pylist()
            except pa.ArrowException as exc:
                raise InputError(f"cannot read prompts file {path}: {str(exc).splitlines()[0]}") from None
        else:
            with open(file, encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f))
    except UnicodeDecodeError as exc:
        raise InputError(f"prompts file {path} is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"prompts file {path} is not a readable CSV: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read prompts file {path}: {exc.strerror or exc}") from None
    if not rows:
        raise InputError(f"prompts file {path} has no rows")
    missing = {"rating", "rubrics", "keywords"} - set(rows[0])
    if missing:
        raise InputError(f"prompts file {path} lacks column(s) {', '.join(sorted(missing))}")
    return rows


def write_reviews(path: str, prompts: list[str], reviews: list[list[str]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "review"])
        writer.writerows((p, review) for p, texts in zip(prompts, reviews) for review in texts)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_flags(parser)
    parser.add_argument("--rating", help="rating 1-5 of one prompt")
    parser.add_argument("--rubrics", default="", help='rubrics of one prompt, e.g. "Кафе; Кофейня"')
    parser.add_argument("--keywords", default="", help='keywords of one prompt, e.g. "кофе, десерт"')
    parser.add_argument("--prompts_file", help="CSV or parquet with columns rating, rubrics, keywords")
    parser.add_argument("--output", help="write prompt,review rows to this CSV instead of printing")
    parser.add_argument("--num_return_sequences", type=int_in(1), default=1, help="reviews per prompt")
    add_sampling_flags(parser)
    add_device_flag(parser)
    args = parser.parse_args(argv)
    if (args.rating is None) == (args.prompts_file is None):
        parser.error("give either --rating (with --rubrics and --keywords) or --prompts_file")
    if args.output:
        check_output(parser, "--output", args.output)
    try:
        device = resolve_device(args.device)
        if args.prompts_file:
            rows = read_prompt_rows(args.prompts_file)
            prompts = [prompt_of(row, f"prompts file {args.prompts_file}, row {number}")
                       for number, row in enumerate(rows, start=1)]
        else:
            prompts = [prompt_of({"rating": args.rating, "rubrics": args.rubrics, "keywords": args.keywords},
                                 "--rating")]
        lengths = trained_lengths(args.model, args.max_new_tokens)
        model, tokenizer = load_for_generation(args.model, args.base_model, device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"generating on {device.description}", file=sys.stderr)  # stdout carries the reviews
    reviews = generate_reviews(model, tokenizer, prompts, settings_from(args, args.num_return_sequences),
                               args.batch_size, max_source_length=lengths.max_source_length)
    if args.output:
        try:
            write_reviews(args.output, prompts, reviews)
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {sum(map(len, reviews))} reviews to {args.output}")
    else:
        for prompt, texts in zip(prompts, reviews):
            print(prompt)
            for review in texts:
                print(f"  → {review}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
