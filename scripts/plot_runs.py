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

import argparse
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reviewkit.cli import ArgumentParser
from reviewkit.tracking import TrackingError, check_tracking_uri, resolve_tracking_uri  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = {"train_t5": "t5", "train_lora": "lora", "train_lora_r1": "lora_r12"}
TITLES = {"t5": "ruT5-small, full fine-tune", "lora": "LoRA r=4 on q,v, all data",
          "lora_r12": "LoRA r=16 on k,q,v, ratings 1-2"}
# evaluate.py logs auto_<measure>_<rating>; these are the measures on the bar chart, as (name, axis label).
RATING_MEASURES = (("consistency", "rating consistency"), ("keyword_coverage", "keyword coverage"),
                   ("distinct_2", "distinct-2"), ("copied", "copied share"))
RATING_GROUPS = ("1", "2", "3", "4", "5", "all")


def history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))


def pick_run(client, experiment: str, run_id: str | None):
    if run_id:
        return client.get_run(run_id)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=20)
    return next((r for r in runs if "mlflow.parentRunId" not in r.data.tags), None)


def latest_evaluation(client, run) -> dict[str, dict[str, float]]:
    """{rating: {measure: value}} of the latest evaluate.py run nested under a training run, or {}."""
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.script = 'evaluate'",
        order_by=["attributes.start_time DESC"], max_results=1)
    table: dict[str, dict[str, float]] = {}
    for name, value in (children[0].data.metrics.items() if children else ()):
        measure, _, rating = name.removeprefix("auto_").rpartition("_")
        if name.startswith("auto_") and rating in RATING_GROUPS:
            table.setdefault(rating, {})[measure] = value
    return table


def describe_source(runs) -> str:
    """A footer naming the model(s), data and MLflow run(s) a figure was drawn from."""
    def short(path: str) -> str:
        return path.removeprefix(f"{PROJECT_ROOT}/")

    params = [r.data.params for r in runs]
    models = ", ".join(sorted({short(p.get("model_id", "?")) for p in params}))
    if len(runs) == 1:
        models += f" ({int(params[0].get('total_parameters', 0)) / 1e6:.2f}M params)"
    demo = " (demo model and data)" if all(p.get("demo") == "True" for p in params) else ""
    data = ", ".join(sorted({short(p.get("data_dir", "?")) for p in params}))
    return f"model {models} | data {data}{demo} | MLflow run {', '.join(r.info.run_id[:8] for r in runs)}"


def plot_rating_measures(evaluations: dict[str, dict[str, dict[str, float]]], path: Path, source: str) -> None:
    figure, grid = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    width = 0.8 / len(evaluations)
    for axes, (measure, label) in zip(grid.flat, RATING_MEASURES):
        for index, (prefix, table) in enumerate(evaluations.items()):
            positions = [i + (index - (len(evaluations) - 1) / 2) * width for i, rating in enumerate(RATING_GROUPS)
                         if measure in table.get(rating, {})]
            values = [table[rating][measure] for rating in RATING_GROUPS if measure in table.get(rating, {})]
            bars = axes.bar(positions, values, width=width, label=TITLES[prefix], color=f"C{index}")
            axes.bar_label(bars, fmt="%.2f", fontsize=6, padding=2, rotation=90)  # a zero bar still shows it was measured
        axes.set(title=label, ylabel="share (0-1)", ylim=(0, 1.2))
        axes.set_xticks(range(len(RATING_GROUPS)), [f"★{r}" if r != "all" else "all" for r in RATING_GROUPS])
        axes.grid(axis="y", alpha=0.3)
    for axes in grid[1]:
        axes.set_xlabel("requested rating")
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(labels), fontsize=8)
    figure.suptitle("Automatic measures of generated reviews per requested rating (evaluate.py)")
    save(figure, path, source, top=0.93)


def save(figure, path: Path, source: str, top: float = 1.0) -> None:
    footer = textwrap.wrap(source, width=int(figure.get_figwidth() * 20))
    figure.text(0.5, 0.005, "\n".join(footer), ha="center", va="bottom", fontsize=6, color="0.4")
    figure.tight_layout(rect=(0, 0.01 + 0.1 * len(footer) / figure.get_figheight(), 1, top))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_epoch_metric(points, prefix: str, metric: str, label: str, path: Path, source: str,
                      best: bool = False) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    epochs, values = zip(*points)
    axes.plot(epochs, values, marker="o")
    if best:
        best_epoch, best_value = min(points, key=lambda p: p[1])
        axes.plot([best_epoch], [best_value], marker="*", markersize=16, color="tab:red", linestyle="none",
                  label=f"best epoch {best_epoch}: {best_value:.3f}")
        axes.legend()
    axes.set(title=f"{TITLES[prefix]}: {label}", xlabel="epoch", ylabel=f"{metric} (cross-entropy, nats/token)")
    axes.set_xticks(list(epochs))
    axes.grid(alpha=0.3)
    save(figure, path, source)


def plot_epochs(points, prefix: str, path: Path, source: str) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    steps, epochs = zip(*points)
    axes.plot(steps, epochs, marker=".")
    axes.set(title=f"{TITLES[prefix]}: epochs over training", xlabel="optimizer step", ylabel="epoch")
    axes.grid(alpha=0.3)
    save(figure, path, source)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tracking_uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project)")
    parser.add_argument("--output_dir", default=str(PROJECT_ROOT / "images"), help="where the PNG files go")
    parser.add_argument("--t5_run_id", default=None, help="run of train_t5 (default: its latest finished run)")
    parser.add_argument("--lora_run_id", default=None, help="run of train_lora (default: its latest finished run)")
    parser.add_argument("--lora_r1_run_id", default=None, help="run of train_lora_r1 (default: latest finished)")
    args = parser.parse_args(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        check_tracking_uri(tracking_uri)
    except TrackingError as exc:
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
            print(f"warning: {experiment}: no finished run in {tracking_uri}; its plots are skipped", file=sys.stderr)
            continue
        run_id, source = run.info.run_id, describe_source([run])
        wanted = {"eval_loss": history(client, run_id, "eval_loss")}
        if prefix != "lora_r12":
            wanted["train_loss"] = history(client, run_id, "train_loss")
            wanted["epoch"] = history(client, run_id, "epoch")
        missing = [name for name, points in wanted.items() if not points]
        if missing:
            print(f"warning: {experiment} run {run_id} lacks metric(s) {', '.join(missing)}", file=sys.stderr)
        if wanted["eval_loss"]:
            name = f"{prefix}_val_loss.png"
            plot_epoch_metric(wanted["eval_loss"], prefix, "eval_loss", "validation loss per epoch", output / name,
                              source, best=prefix == "lora_r12")
            written.append(name)
            validation[prefix], runs[prefix] = wanted["eval_loss"], run
        if wanted.get("train_loss"):
            name = f"{prefix}_train_loss.png"
            plot_epoch_metric(wanted["train_loss"], prefix, "train_loss", "mean training loss per epoch",
                              output / name, source)
            written.append(name)
        if wanted.get("epoch"):
            name = f"{prefix}_epochs.png"
            plot_epochs(wanted["epoch"], prefix, output / name, source)
            written.append(name)
        evaluation = latest_evaluation(client, run)
        if evaluation:
            evaluations[prefix], runs[prefix] = evaluation, run
    if validation:
        figure, axes = plt.subplots(figsize=(6, 4))
        for prefix, points in validation.items():
            epochs, values = zip(*points)
            axes.plot(epochs, values, marker="o", label=TITLES[prefix])
        axes.set(title="Validation loss of the experiments", xlabel="epoch",
                 ylabel="eval_loss (cross-entropy, nats/token)")
        axes.legend()
        axes.grid(alpha=0.3)
        save(figure, output / "compare_val_loss.png", describe_source([runs[p] for p in validation]))
        written.append("compare_val_loss.png")
    if evaluations:
        plot_rating_measures(evaluations, output / "auto_measures_by_rating.png",
                             describe_source([runs[p] for p in evaluations]))
        written.append("auto_measures_by_rating.png")
    elif written:
        print("note: no evaluate.py run under the chosen training runs; auto_measures_by_rating.png is skipped",
              file=sys.stderr)
    if not written:
        print(f"error: nothing to plot: no finished training run in {tracking_uri}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(written)} to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
