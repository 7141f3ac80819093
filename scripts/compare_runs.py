"""Put chosen training runs side by side: validation loss, per-rating measures, parameters, wall time.

    python scripts/compare_runs.py --experiments train_t5 train_lora train_lora_r1
    python scripts/compare_runs.py --runs outputs/demo/train_t5 outputs/demo/train_t5_weighted --name balance
    python scripts/compare_runs.py --runs 0ef2cdb97679465ba6f731050ff567d7 990a4c5dcf5746d58d44c0d3e78851da

Writes OUTPUT_DIR/NAME.md (a markdown table for a README) and OUTPUT_DIR/NAME.png (validation loss
per epoch, and the rating consistency per requested rating from each run's latest nested
evaluate.py run). The table also gives that run's realism AUC per rating (0.5: a classifier cannot
tell the generated reviews from real ones) and its real-against-real control. --runs takes run ids or training output directories (their mlflow_run.json);
--experiments takes the latest finished run of each experiment. Wall time is
the run's end minus its start in MLflow: a resumed run's includes the time it was stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from reviewkit.common.cli import ArgumentParser, add_tracking_uri_flag
from reviewkit.common.errors import UserError
from reviewkit.common.files import atomic_write_text
from reviewkit.common.markdown import markdown_table
from reviewkit.common.paths import PROJECT_ROOT
from reviewkit.common.redact import mask_uri
from reviewkit.evaluation.plotting import (RATING_GROUPS, bar_offset, describe_source, history, latest_evaluation,
                                           pick_run, rating_ticks, save)
from reviewkit.tracking.store import check_tracking_uri, resolve_tracking_uri, stored_run



def label(run) -> str:
    name, balance = run.info.run_name or run.info.run_id[:8], run.data.params.get("balance", "none")
    return name if balance == "none" or balance in name else f"{name} ({balance})"


def row(client, run) -> dict:
    metrics, params = run.data.metrics, run.data.params
    evaluation = latest_evaluation(client, run)
    seconds = (run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None
    best = metrics.get("best_epoch")
    per_rating_loss = {r: dict(history(client, run.info.run_id, f"eval_rating_{r}_loss")).get(best)
                       for r in RATING_GROUPS[:-1]}
    return {
        "run": label(run),
        "trainable": int(params.get("trainable_parameters", 0)),
        "total": int(params.get("total_parameters", 0)),
        "epochs": len(history(client, run.info.run_id, "eval_loss")),
        "best_epoch": int(best) if best is not None else None,
        "best_eval_loss": metrics.get("best_eval_loss"),
        "eval_loss_by_rating": per_rating_loss,
        "wall_minutes": seconds / 60 if seconds is not None else None,
        "consistency": {r: evaluation.get(r, {}).get("consistency") for r in RATING_GROUPS},
        "realism": {r: evaluation.get(r, {}).get("realism_auc") for r in RATING_GROUPS},
        "realism_control": evaluation.get("all", {}).get("realism_control_auc"),
    }


def fmt(value, pattern="{:.3f}") -> str:
    return "—" if value is None else pattern.format(value)


def markdown(rows: list[dict]) -> str:
    head = ("run", "trainable / total params", "epochs", "best epoch", "best eval_loss", "eval_loss at best, ★1…★5",
            "consistency ★1…★5, all", "realism AUC ★1…★5, all", "real-vs-real control AUC, all", "wall time, min")
    cells = []
    for r in rows:
        losses = " / ".join(fmt(r["eval_loss_by_rating"][k], "{:.2f}") for k in RATING_GROUPS[:-1])
        consistency = " / ".join(fmt(r["consistency"][k], "{:.2f}") for k in RATING_GROUPS)
        realism = " / ".join(fmt(r["realism"][k], "{:.2f}") for k in RATING_GROUPS)
        cells.append([r["run"], f"{r['trainable']:,} / {r['total']:,}", r["epochs"], fmt(r["best_epoch"], "{}"),
                      fmt(r["best_eval_loss"], "{:.4f}"), losses, consistency, realism,
                      fmt(r["realism_control"], "{:.2f}"), fmt(r["wall_minutes"], "{:.1f}")])
    return markdown_table(head, cells) + "\n"


def plot(client, runs: list, rows: list[dict], path: Path) -> None:
    figure = Figure(figsize=(12, 4.5))
    loss_axes, bar_axes = figure.subplots(1, 2)
    for index, run in enumerate(runs):
        points = history(client, run.info.run_id, "eval_loss")
        if points:
            epochs, values = zip(*points)
            loss_axes.plot(epochs, values, marker="o", color=f"C{index}", label=rows[index]["run"])
    loss_axes.set(title="Validation loss per epoch", xlabel="epoch", ylabel="eval_loss (cross-entropy, nats/token)")
    loss_axes.grid(alpha=0.3)
    loss_axes.legend(fontsize=7)
    width = 0.8 / len(runs)
    for index, r in enumerate(rows):
        shown = [(i, r["consistency"][k]) for i, k in enumerate(RATING_GROUPS) if r["consistency"][k] is not None]
        if shown:
            positions, values = zip(*shown)
            bars = bar_axes.bar([p + bar_offset(index, len(runs), width) for p in positions], values, width=width,
                                color=f"C{index}", label=r["run"])
            bar_axes.bar_label(bars, fmt="%.2f", fontsize=6, padding=2, rotation=90)
    bar_axes.set(title="Rating consistency of generated reviews (evaluate.py)", xlabel="requested rating",
                 ylabel="share (0-1)", ylim=(0, 1.2))
    rating_ticks(bar_axes)
    bar_axes.grid(axis="y", alpha=0.3)
    save(figure, path, describe_source(runs, PROJECT_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--runs", nargs="+", help="MLflow run ids, or training output directories, to compare")
    chosen.add_argument("--experiments", nargs="+", help="experiment names: the latest finished run of each")
    add_tracking_uri_flag(parser)
    parser.add_argument("--output_dir", default=str(PROJECT_ROOT / "images"), help="where NAME.md and NAME.png go")
    parser.add_argument("--name", default="compare_runs", help="file name (without extension) of the outputs")
    args = parser.parse_args(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        check_tracking_uri(tracking_uri)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    runs = []
    for wanted in args.runs or args.experiments:
        if args.runs:
            wanted = stored_run(wanted).get("run_id", wanted)
        try:
            run = pick_run(client, wanted, None) if args.experiments else client.get_run(wanted)
        except mlflow.exceptions.MlflowException as exc:
            print(f"error: run {wanted}: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        if run is None:
            print(f"error: experiment {wanted} has no finished run in {mask_uri(tracking_uri)}", file=sys.stderr)
            return 1
        runs.append(run)
    rows = [row(client, run) for run in runs]
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    atomic_write_text(output / f"{args.name}.md", table)
    plot(client, runs, rows, output / f"{args.name}.png")
    print(table)
    print(f"wrote {output / args.name}.md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
