"""Clean Yandex Geo Reviews 2023, add keywords and prompts, and write grouped train/validation/test splits.

    python scripts/prepare_data.py                                  # the committed demo data
    python scripts/prepare_data.py --input geo-reviews-dataset-2023.tskv --output_dir data/prepared/full
    python scripts/prepare_data.py --input geo-reviews-dataset-2023.tskv --ratings 1,2 --output_dir data/prepared/ratings_1_2

Writes OUTPUT_DIR/{train,validation,test}.parquet (address, name_ru, rating, rubrics, text,
keywords, prompt) and OUTPUT_DIR/report.json. A rerun with the same input and settings is
served from that directory.
"""

from __future__ import annotations

import argparse
import sys

from reviewkit.common.cli import ArgumentParser, add_renamed_flag
from reviewkit.common.errors import UserError
from reviewkit.common.paths import PROJECT_ROOT
from reviewkit.data.cleaning import CleaningConfig, parse_ratings_filter
from reviewkit.data.loading import DEFAULT_HUB_ID
from reviewkit.data.pipeline import PrepareConfig, format_report, prepare_dataset

DEMO_INPUT = PROJECT_ROOT / "data" / "demo_reviews.tskv"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "data" / "prepared" / "demo"


def parse_ratings(value: str) -> tuple[int, ...]:
    try:
        return parse_ratings_filter(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    defaults, cleaning = PrepareConfig(), CleaningConfig()
    parser = ArgumentParser(
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--input", default=str(DEMO_INPUT),
        help=f"official TSKV file, CSV export, parquet file, or a hub dataset id such as {DEFAULT_HUB_ID} "
        "(needs network); the default is the committed demo data",
    )
    parser.add_argument("--output_dir", default=str(DEFAULT_OUTPUT_DIR), help="where the splits and report.json go")
    parser.add_argument("--ratings", type=parse_ratings, default=None,
                        help="keep only these ratings, e.g. 1,2 for the ratings-1-2 experiment (default: all)")
    parser.add_argument("--num_keywords", type=int, default=defaults.num_keywords,
                        help="keywords per review (TF-IDF ranked content lemmas)")
    add_renamed_flag(parser, "--top_k", "--num_keywords")
    parser.add_argument("--min_chars", type=int, default=cleaning.min_chars,
                        help="drop reviews shorter than this many characters (after normalisation)")
    parser.add_argument("--max_chars", type=int, default=cleaning.max_chars,
                        help="drop reviews longer than this many characters (after normalisation)")
    parser.add_argument("--min_cyrillic_share", type=float, default=cleaning.min_cyrillic_share,
                        help="drop reviews whose letters are less than this share Cyrillic (not Russian)")
    parser.add_argument("--validation_fraction", type=float, default=defaults.validation_fraction,
                        help="share of rows in the validation split (whole organizations)")
    parser.add_argument("--test_fraction", type=float, default=defaults.test_fraction,
                        help="share of rows in the test split (whole organizations)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the organization shuffle")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes for cleaning and lemmatisation; 0 = one per CPU core")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_keywords < 1:
        parser.error("--num_keywords must be at least 1")
    if not 0 <= args.min_chars < args.max_chars:
        parser.error("need 0 <= --min_chars < --max_chars")
    if not 0 <= args.min_cyrillic_share <= 1:
        parser.error("--min_cyrillic_share must be between 0 and 1")
    if not (0 <= args.validation_fraction < 1 and 0 <= args.test_fraction < 1
            and args.validation_fraction + args.test_fraction < 1):
        parser.error("--validation_fraction and --test_fraction must be in [0, 1) and sum to less than 1")
    if args.workers < 0:
        parser.error("--workers must be 0 (auto) or positive")
    config = PrepareConfig(
        cleaning=CleaningConfig(args.min_chars, args.max_chars, args.min_cyrillic_share),
        num_keywords=args.num_keywords,
        ratings=args.ratings,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    try:
        report = prepare_dataset(args.input, args.output_dir, config, args.workers, progress=not args.no_progress)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was marked complete; rerun the same command to rebuild", file=sys.stderr)
        return 130
    print(format_report(report))
    source = "cache (same input and settings)" if report["cached"] else f"built in {report['seconds']} s"
    print(f"{args.output_dir}: {', '.join(report['files'])}, report.json — {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
