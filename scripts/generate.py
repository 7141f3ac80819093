"""Generate reviews with a trained model for prompts given on the command line or in a CSV/parquet file.

    python scripts/generate.py --model outputs/demo/train_t5/final --rating 4 --rubrics "Кафе" --keywords "кофе, десерт"
    python scripts/generate.py --model outputs/demo/train_lora/final --prompts_file prompts.csv --output reviews.csv

A prompts file has the columns rating, rubrics (separated by ;) and keywords (separated by ,).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from reviewkit.cli import ArgumentParser
from reviewkit.cleaning import parse_rating
from reviewkit.files import atomic_path
from reviewkit.generation import add_model_flags, add_sampling_flags, generate_reviews, load_for_generation, settings_from
from reviewkit.modeling import ModelSourceError
from reviewkit.prompt import build_prompt


def read_prompt_rows(path: str) -> list[dict]:
    """Rows of rating, rubrics, keywords; ValueError with a one-line reason."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"prompts file not found: {path}")
    if file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(file).to_pylist()
    else:
        with open(file, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"prompts file {path} has no rows")
    missing = {"rating", "rubrics", "keywords"} - set(rows[0])
    if missing:
        raise ValueError(f"prompts file {path} lacks column(s) {', '.join(sorted(missing))}")
    return rows


def prompt_rating(value) -> int:
    rating, reason = parse_rating(value)  # the cleaning rule: an integer from 1 to 5
    if reason:
        raise ValueError(f"rating must be an integer from 1 to 5, got {value!r}")
    return rating


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_flags(parser)
    parser.add_argument("--rating", help="rating 1-5 of one prompt")
    parser.add_argument("--rubrics", default="", help='rubrics of one prompt, e.g. "Кафе; Кофейня"')
    parser.add_argument("--keywords", default="", help='keywords of one prompt, e.g. "кофе, десерт"')
    parser.add_argument("--prompts_file", help="CSV or parquet with columns rating, rubrics, keywords")
    parser.add_argument("--output", help="write prompt,review rows to this CSV instead of printing")
    parser.add_argument("--num_return_sequences", type=int, default=1, help="reviews per prompt")
    add_sampling_flags(parser)
    args = parser.parse_args(argv)
    if (args.rating is None) == (args.prompts_file is None):
        parser.error("give either --rating (with --rubrics and --keywords) or --prompts_file")
    if args.num_return_sequences < 1:
        parser.error("--num_return_sequences must be at least 1")
    try:
        rows = read_prompt_rows(args.prompts_file) if args.prompts_file else [
            {"rating": args.rating, "rubrics": args.rubrics, "keywords": args.keywords}]
        prompts = [build_prompt(prompt_rating(r["rating"]), r["rubrics"] or "", r["keywords"] or "") for r in rows]
        model, tokenizer = load_for_generation(args.model, args.base_model)
    except (ValueError, ModelSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reviews = generate_reviews(model, tokenizer, prompts, settings_from(args, args.num_return_sequences),
                               args.batch_size)
    if args.output:
        with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["prompt", "review"])
            writer.writerows((p, review) for p, texts in zip(prompts, reviews) for review in texts)
        print(f"wrote {sum(map(len, reviews))} reviews to {args.output}")
    else:
        for prompt, texts in zip(prompts, reviews):
            print(prompt)
            for review in texts:
                print(f"  → {review}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
