"""Regenerate the README's plots from MLflow runs of train_t5, train_lora and train_lora_r1.

    python scripts/plot_runs.py                                   # latest finished run of each experiment
    python scripts/plot_runs.py --tracking_uri http://HOST:5000 --t5_run_id RUN_ID

Writes into --output_dir: t5_val_loss.png, t5_train_loss.png, t5_epochs.png, lora_val_loss.png,
lora_train_loss.png, lora_epochs.png, lora_r12_val_loss.png (best epoch marked),
compare_val_loss.png, and auto_measures_by_rating.png when evaluate.py has logged its per-rating
measures under the chosen training runs. An experiment without a finished run, or a run without a
metric, is named in a warning; the exit code is 1 when nothing could be plotted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from reviewkit.common.cli import ArgumentParser, add_tracking_uri_flag
from reviewkit.common.errors import UserError
from reviewkit.common.paths import PROJECT_ROOT
from reviewkit.common.redact import mask_uri
from reviewkit.evaluation.plotting import (describe_source, history, latest_evaluation, pick_run, plot_rating_measures,
                                           save)
from reviewkit.tracking.epochs import pick_best_epoch
from reviewkit.tracking.store import check_tracking_uri, resolve_tracking_uri

# File name prefixes as the original work named its plots (lora_r12: LoRA on ratings 1 and 2).
EXPERIMENTS = {"train_t5": "t5", "train_lora": "lora", "train_lora_r1": "lora_r12"}
TITLES = {"t5": "ruT5-small, full fine-tune", "lora": "LoRA r=4 on q,v, all data",
          "lora_r12": "LoRA r=16 on k,q,v, ratings 1-2"}


def plot_epoch_metric(points, prefix: str, metric: str, label: str, path: Path, source: str,
                      best: bool = False) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    epochs, values = zip(*points)
    axes.plot(epochs, values, marker="o")
    if best:
        best_epoch, best_value = pick_best_epoch(points)
        axes.plot([best_epoch], [best_value], marker="*", markersize=16, color="tab:red", linestyle="none",
                  label=f"best epoch {best_epoch}: {best_value:.3f}")
        axes.legend()
    axes.set(title=f"{TITLES[prefix]}: {label}", xlabel="epoch", ylabel=f"{metric} (cross-entropy, nats/token)")
    axes.set_xticks(list(epochs))
    axes.grid(alpha=0.3)
    save(figure, path, source)


def plot_epochs(points, prefix: str, path: Path, source: str) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    steps, epochs = zip(*points)
    axes.plot(steps, epochs, marker=".")
    axes.set(title=f"{TITLES[prefix]}: epochs over training", xlabel="optimizer step", ylabel="epoch")
    axes.grid(alpha=0.3)
    save(figure, path, source)


def plot_experiment(client, run, experiment: str, output: Path) -> tuple[list[str], list[tuple[int, float]]]:
    """The plots of one training run: (file names written, its validation loss per epoch)."""
    prefix = EXPERIMENTS[experiment]
    run_id, source = run.info.run_id, describe_source([run], PROJECT_ROOT)
    wanted = {"eval_loss": history(client, run_id, "eval_loss")}
    if prefix != "lora_r12":
        wanted["train_loss"] = history(client, run_id, "train_loss")
        wanted["epoch"] = history(client, run_id, "epoch")
    missing = [name for name, points in wanted.items() if not points]
    if missing:
        print(f"warning: {experiment} run {run_id} lacks metric(s) {', '.join(missing)}", file=sys.stderr)
    written = []
    if wanted["eval_loss"]:
        written.append(f"{prefix}_val_loss.png")
        plot_epoch_metric(wanted["eval_loss"], prefix, "eval_loss", "validation loss per epoch", output / written[-1],
                          source, best=prefix == "lora_r12")
    if wanted.get("train_loss"):
        written.append(f"{prefix}_train_loss.png")
        plot_epoch_metric(wanted["train_loss"], prefix, "train_loss", "mean training loss per epoch",
                          output / written[-1], source)
    if wanted.get("epoch"):
        written.append(f"{prefix}_epochs.png")
        plot_epochs(wanted["epoch"], prefix, output / written[-1], source)
    return written, wanted["eval_loss"]


def plot_validation_comparison(validation: dict[str, list[tuple[int, float]]], path: Path, source: str) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for prefix, points in validation.items():
        epochs, values = zip(*points)
        axes.plot(epochs, values, marker="o", label=TITLES[prefix])
    axes.set(title="Validation loss of the experiments", xlabel="epoch", ylabel="eval_loss (cross-entropy, nats/token)")
    axes.legend()
    axes.grid(alpha=0.3)
    save(figure, path, source)


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_tracking_uri_flag(parser)
    parser.add_argument("--output_dir", default=str(PROJECT_ROOT / "images"), help="where the PNG files go")
    parser.add_argument("--t5_run_id", default=None, help="run of train_t5 (default: its latest finished run)")
    parser.add_argument("--lora_run_id", default=None, help="run of train_lora (default: its latest finished run)")
    parser.add_argument("--lora_r1_run_id", default=None, help="run of train_lora_r1 (default: latest finished)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        check_tracking_uri(tracking_uri)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    chosen = {"train_t5": args.t5_run_id, "train_lora": args.lora_run_id, "train_lora_r1": args.lora_r1_run_id}
    written, validation, evaluations, runs = [], {}, {}, {}
    for experiment, prefix in EXPERIMENTS.items():
        try:
            run = pick_run(client, experiment, chosen[experiment])
        except mlflow.exceptions.MlflowException as exc:
            print(f"warning: {experiment}: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        if run is None:
            print(f"warning: {experiment}: no finished run in {mask_uri(tracking_uri)}; its plots are skipped", file=sys.stderr)
            continue
        names, eval_loss = plot_experiment(client, run, experiment, output)
        written += names
        if eval_loss:
            validation[prefix], runs[prefix] = eval_loss, run
        evaluation = latest_evaluation(client, run)
        if evaluation:
            evaluations[prefix], runs[prefix] = evaluation, run
    if validation:
        plot_validation_comparison(validation, output / "compare_val_loss.png",
                                   describe_source([runs[p] for p in validation], PROJECT_ROOT))
        written.append("compare_val_loss.png")
    if evaluations:
        plot_rating_measures(evaluations, TITLES, output / "auto_measures_by_rating.png",
                             describe_source([runs[p] for p in evaluations], PROJECT_ROOT))
        written.append("auto_measures_by_rating.png")
    elif written:
        print("note: no evaluate.py run under the chosen training runs; auto_measures_by_rating.png is skipped",
              file=sys.stderr)
    if not written:
        print(f"error: nothing to plot: no finished training run in {mask_uri(tracking_uri)}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(written)} to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
