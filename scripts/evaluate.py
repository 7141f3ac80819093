"""Automatic quality of a trained model per requested rating, printed, logged to MLflow and put on its model card.

    python scripts/evaluate.py --model outputs/demo/train_t5/final --data_dir outputs/demo/train_t5/demo_data
    python scripts/evaluate.py --model outputs/train_lora_r1/final --data_dir data/prepared/ratings_1_2 --num_prompts 500

Generates a review for M random test prompts and measures, per requested rating and overall:
rating consistency (a TF-IDF + logistic regression classifier trained on the train split
predicts the rating of each generated review; its own accuracy on real test reviews is printed
beside it and bounds what consistency can show), keyword coverage, distinct-1/2, the share of
reviews copying a training review, mean length against real reviews of that rating, and realism
(reviewkit.evaluation.realism: the cross-validated ROC AUC of a classifier telling the generated reviews from
the real reviews of the same prompts, with a real-against-real control; a rating with too few
prompts is reported as not measured).
The table goes to a nested MLflow run under the model's training run (found through
OUTPUT_DIR/mlflow_run.json), or to a run in the experiment `evaluate` when there is none, and to
the "Evaluation" section of the model directory's README.md (replacing an earlier one)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reviewkit.common.cli import ArgumentParser, add_tracking_uri_flag, int_in
from reviewkit.common.errors import InputError, UserError
from reviewkit.common.markdown import markdown_table as table_markdown
from reviewkit.common.redact import mask_uri
from reviewkit.data.keywords import Lemmatizer
from reviewkit.evaluation.cache import evaluation_reference
from reviewkit.evaluation.mlflow_run import CHART, REVIEWS_TABLE, describe_training_run, log_evaluation, review_rows
from reviewkit.evaluation.quality import distinct_n, keyword_coverage, rating_consistency
from reviewkit.evaluation.realism import FOLDS, realism_by_rating
from reviewkit.model.card import CARD_NAME, add_evaluation_to_card
from reviewkit.model.device import GenerationDevice, resolve_device
from reviewkit.model.generation import (add_device_flag, add_model_flags, add_sampling_flags, generate_reviews,
                                        load_for_generation, prompt_of, settings_from, trained_lengths,
                                        with_empty_nulls)
from reviewkit.tracking.store import check_tracking_uri, resolve_tracking_uri

SHARE_COLUMNS = ("consistency", "within_1", "keyword_coverage", "distinct_1", "distinct_2", "copied", "length",
                 "real_length")
HEADERS = ("n", *SHARE_COLUMNS, "realism_auc", "realism_95%", "control_auc", "control_95%", "control_n")
UNMEASURED = "—"


def measure(requested, predicted, keywords, texts, copies, real_length, lemmatizer) -> dict:
    exact, within = rating_consistency(requested, predicted)
    return {"n": len(texts), "consistency": exact, "within_1": within,
            "keyword_coverage": keyword_coverage(keywords, texts, lemmatizer),
            "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "copied": float(np.mean(copies)) if len(copies) else 0.0,
            "length": float(np.mean([len(t) for t in texts])) if texts else 0.0,
            "real_length": real_length}


def quality_table(rows: list[dict], reviews: list[str], train: pa.Table, predicted: np.ndarray,
                  copies: np.ndarray) -> dict[str, dict]:
    """Measures per requested rating and for all; `predicted` ratings and `copies` flags are per review."""
    requested = np.array([r["rating"] for r in rows])
    keywords = [r["keywords"] for r in rows]
    train_ratings = train.column("rating").to_numpy()
    train_lengths = pc.utf8_length(train.column("text")).to_numpy()  # characters, as len(); no Python strings
    lemmatizer = Lemmatizer()
    table = {}
    for rating in sorted(set(requested.tolist())):
        mask = requested == rating
        table[str(rating)] = measure(requested[mask], predicted[mask], [k for k, m in zip(keywords, mask) if m],
                                     [t for t, m in zip(reviews, mask) if m], copies[mask],
                                     float(train_lengths[train_ratings == rating].mean())
                                     if (train_ratings == rating).any() else 0.0, lemmatizer)
    table["all"] = measure(requested, predicted, keywords, reviews, copies, float(train_lengths.mean()), lemmatizer)
    return table


def cells(values: dict) -> list[str]:
    """One table row's cells in HEADERS order; a realism measure that was not taken shows UNMEASURED."""
    def auc(prefix: str) -> list[str]:
        if f"{prefix}_auc" not in values:
            return [UNMEASURED, UNMEASURED]
        low, high = values[f"{prefix}_auc_low"], values[f"{prefix}_auc_high"]
        return [f"{values[f'{prefix}_auc']:.3f}", f"{low:.2f}-{high:.2f}"]

    control_n = values.get("realism_control_n")
    return [str(values["n"]), *(f"{values[c]:.3f}" for c in SHARE_COLUMNS), *auc("realism"), *auc("realism_control"),
            UNMEASURED if control_n is None else str(int(control_n))]


def format_table(table: dict[str, dict]) -> str:
    rows = [cells(values) for values in table.values()]
    widths = [max(len(header), *(len(row[i]) for row in rows)) + 2 for i, header in enumerate(HEADERS)]
    lines = [f"{'rating':<8}" + "".join(f"{h:>{w}}" for h, w in zip(HEADERS, widths))]
    lines += [f"{rating:<8}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths)) for rating, row in zip(table, rows)]
    return "\n".join(lines)


def markdown_table(table: dict[str, dict]) -> str:
    return table_markdown(("rating", *HEADERS), ([rating, *cells(values)] for rating, values in table.items()))


def add_realism(table: dict[str, dict], rows: list[dict], reviews: list[str], test: list[dict],
                seed: int) -> dict[str, str]:
    """Adds the realism measures to `table`; returns {rating: why its realism or control was not measured}."""
    realism = realism_by_rating([r["rating"] for r in rows], reviews, [r["text"] for r in rows],
                                [r["rating"] for r in test], [r["text"] for r in test], seed=seed)
    for group, result in realism.items():
        table[group].update(result.as_measures())
    return {group: result.reason for group, result in realism.items() if result.reason}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_flags(parser)
    parser.add_argument("--data_dir", required=True, help="output directory of prepare_data.py")
    parser.add_argument("--num_prompts", type=int_in(1), default=200,
                        help="test prompts to generate for; at most the rows of the test split")
    add_tracking_uri_flag(parser)
    add_sampling_flags(parser)
    add_device_flag(parser)
    return parser.parse_args(argv)


def read_split(path: Path, columns: list[str]) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def load_inputs(args: argparse.Namespace, tracking_uri: str, device: GenerationDevice):
    """(train split, test rows, model, tokenizer); a UserError with a reason."""
    data_dir = Path(args.data_dir)
    check_tracking_uri(tracking_uri)
    if not (data_dir / "train.parquet").is_file() or not (data_dir / "test.parquet").is_file():
        raise InputError(f"{data_dir} is not an output of prepare_data.py (train/test parquet missing)")
    print(f"loading the train and test splits of {data_dir}", file=sys.stderr)
    train = read_split(data_dir / "train.parquet", ["text", "rating"])
    test = with_empty_nulls(read_split(data_dir / "test.parquet", ["text", "rating", "rubrics", "keywords"]).to_pylist())
    if not test:
        raise InputError(f"the test split in {data_dir} is empty")
    model, tokenizer = load_for_generation(args.model, args.base_model, device)
    return train, test, model, tokenizer


def update_model_card(model_dir: Path, markdown: str, settings: dict) -> Path | None:
    """The updated card's path; None when there is no local card to update (said on stderr)."""
    if not model_dir.is_dir():
        print(f"note: {model_dir} is not a local directory; no model card to update", file=sys.stderr)
        return None
    try:
        add_evaluation_to_card(model_dir, markdown, settings)
    except OSError as exc:
        print(f"warning: the model card in {model_dir} was not updated ({exc})", file=sys.stderr)
        return None
    print(f"evaluation written to the model card {model_dir / CARD_NAME}")
    return model_dir / CARD_NAME


def draw_rows(args: argparse.Namespace, test: list[dict]) -> tuple[list[dict], list[str]]:
    """(rows, prompts) of --num_prompts test rows at random; ValueError naming the row whose prompt cannot be built."""
    if args.num_prompts > len(test):
        print(f"note: --num_prompts {args.num_prompts} is more than the {len(test)} rows of the test split in "
              f"{args.data_dir}: all {len(test)} are used", file=sys.stderr)
    drawn = np.random.default_rng(args.seed).choice(len(test), size=min(args.num_prompts, len(test)), replace=False)
    rows = [test[i] for i in drawn]
    test_path = Path(args.data_dir) / "test.parquet"
    return rows, [prompt_of(row, f"{test_path} row {i + 1}") for i, row in zip(drawn, rows)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        device = resolve_device(args.device)
        lengths = trained_lengths(args.model, args.max_new_tokens)
        train, test, model, tokenizer = load_inputs(args, tracking_uri, device)
        rows, prompts = draw_rows(args, test)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reference = evaluation_reference(Path(args.data_dir), train, [r["text"] for r in test],
                                     [r["rating"] for r in test])
    test_exact, test_within = reference.test_accuracy, reference.test_within_1
    print(f"generating {len(prompts)} reviews on {device.description}", file=sys.stderr)
    reviews = [texts[0] for texts in generate_reviews(model, tokenizer, prompts, settings_from(args), args.batch_size,
                                                      max_source_length=lengths.max_source_length)]
    predicted, copies = reference.classifier.predict(reviews), reference.copy_index.copied(reviews)
    table = quality_table(rows, reviews, train, predicted, copies)
    print(f"measuring realism: {FOLDS}-fold cross-validation per rating, generated against real reviews and the "
          f"control", file=sys.stderr)
    unmeasured = add_realism(table, rows, reviews, test, args.seed)
    print(f"rating classifier on real test reviews: accuracy {test_exact:.3f}, within ±1 {test_within:.3f} "
          f"(consistency below cannot be read more finely than this)")
    print(f"realism: ROC AUC of a classifier telling generated from real reviews of the same prompts "
          f"({FOLDS}-fold CV, bootstrap 95% interval; 1.0 = always told apart); control: the same on two halves "
          f"of real test reviews (control_n each), what indistinguishable texts give at this size")
    notes = [f"realism of {'all prompts' if group == 'all' else f'rating {group}'}: {reason}"
             for group, reason in unmeasured.items()]
    print("\n".join([format_table(table), *notes]))
    params = {"model": args.model, "data_dir": args.data_dir, "num_prompts": len(rows),
              "device": device.description,
              "classifier_test_accuracy": round(test_exact, 4), "classifier_test_within_1": round(test_within, 4),
              **{f"realism_unmeasured_{group}": reason[:500] for group, reason in unmeasured.items()},
              **settings_from(args).as_dict()}
    evaluation = markdown_table(table) + "".join(f"\n\n{note}." for note in notes)
    per_review = review_rows(rows, prompts, reviews, predicted, copies)
    run_id, training_run_id = log_evaluation(tracking_uri, Path(args.model), table, params, per_review, evaluation)
    print(f"logged to MLflow run {run_id} ({mask_uri(tracking_uri)}): measures, {len(reviews)} reviews "
          f"in {REVIEWS_TABLE}, the chart {CHART}")
    card_settings = {k: v for k, v in params.items() if not k.startswith("realism_unmeasured_")}
    card = update_model_card(Path(args.model), evaluation,
                             {**card_settings, "mlflow_run": run_id, "tracking_uri": mask_uri(tracking_uri)})
    if card is not None and training_run_id:
        describe_training_run(tracking_uri, training_run_id, card.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
