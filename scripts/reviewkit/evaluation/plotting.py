"""Reading training and evaluation runs back from MLflow, and the figures drawn from them.

Figures are matplotlib `Figure` objects (no pyplot, so no global state or GUI backend); `save`
adds a footer naming the source runs and writes the PNG atomically.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..common.files import atomic_path

RATING_GROUPS = ("1", "2", "3", "4", "5", "all")
# evaluate.py logs auto_<measure>_<rating>; these are the share-like measures of the per-rating chart.
RATING_MEASURES = (("consistency", "rating consistency"), ("keyword_coverage", "keyword coverage"),
                   ("distinct_2", "distinct-2"), ("copied", "copied share"))


def history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    """(step, value) of a metric, by step."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))


def pick_run(client, experiment: str, run_id: str | None):
    """The run `run_id`, else the latest finished top-level run of `experiment`, else None."""
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
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.`mlflow.source.name` LIKE '%evaluate.py'",
        order_by=["attributes.start_time DESC"], max_results=1)
    table: dict[str, dict[str, float]] = {}
    for name, value in (children[0].data.metrics.items() if children else ()):
        measure, _, rating = name.removeprefix("auto_").rpartition("_")
        if name.startswith("auto_") and rating in RATING_GROUPS:
            table.setdefault(rating, {})[measure] = value
    return table


def describe_source(runs, root: Path | None = None) -> str:
    """A footer naming the model(s), data and MLflow run(s) a figure was drawn from; paths under `root` shortened."""
    def short(path: str) -> str:
        return path.removeprefix(f"{root}/") if root is not None else path

    params = [r.data.params for r in runs]
    models = ", ".join(sorted({short(p.get("model_id", "?")) for p in params}))
    if len(runs) == 1:
        models += f" ({int(params[0].get('total_parameters', 0)) / 1e6:.2f}M params)"
    demo = " (demo model and data)" if all(p.get("demo") == "True" for p in params) else ""
    data = ", ".join(sorted({short(p.get("data_dir", "?")) for p in params}))
    return f"model {models} | data {data}{demo} | MLflow run {', '.join(r.info.run_id[:8] for r in runs)}"


def save(figure: Figure, path: Path, source: str, top: float = 1.0) -> None:
    """Add the source footer, lay the figure out below `top` and write it as a PNG."""
    footer = textwrap.wrap(source, width=int(figure.get_figwidth() * 20))
    figure.text(0.5, 0.005, "\n".join(footer), ha="center", va="bottom", fontsize=6, color="0.4")
    figure.tight_layout(rect=(0, 0.01 + 0.1 * len(footer) / figure.get_figheight(), 1, top))
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")


def rating_ticks(axes) -> None:
    axes.set_xticks(range(len(RATING_GROUPS)), [f"★{r}" if r != "all" else "all" for r in RATING_GROUPS])


def bar_offset(index: int, count: int, width: float) -> float:
    """Where the index-th of `count` side-by-side bars sits relative to its group's tick."""
    return (index - (count - 1) / 2) * width


def plot_realism(axes, evaluations: dict[str, dict[str, dict[str, float]]]) -> None:
    """Realism AUC per rating with its 95% interval, each beside its real-against-real control (hatched)."""
    width = 0.8 / (2 * len(evaluations))
    for index, table in enumerate(evaluations.values()):
        for kind, offset, style in (("realism", 0, {}), ("realism_control", 1, {"hatch": "//", "alpha": 0.45})):
            shown = [(i, table[r]) for i, r in enumerate(RATING_GROUPS) if f"{kind}_auc" in table.get(r, {})]
            if not shown:
                continue
            positions = [i + bar_offset(2 * index + offset, 2 * len(evaluations), width) for i, _ in shown]
            values = [row[f"{kind}_auc"] for _, row in shown]
            # max(0, ...): a percentile interval need not contain the point estimate, and yerr must be >= 0
            errors = [[max(0.0, v - row.get(f"{kind}_auc_low", v)) for v, (_, row) in zip(values, shown)],
                      [max(0.0, row.get(f"{kind}_auc_high", v) - v) for v, (_, row) in zip(values, shown)]]
            bars = axes.bar(positions, values, width=width, yerr=errors, capsize=2, color=f"C{index}", **style)
            axes.bar_label(bars, fmt="%.2f", fontsize=6, label_type="center", rotation=90)  # clear of the error bars
    for i, rating in enumerate(RATING_GROUPS):
        if not any("realism_auc" in table.get(rating, {}) for table in evaluations.values()):
            axes.text(i, 0.03, "not\nmeasured", ha="center", va="bottom", fontsize=6, color="0.4")
    axes.axhline(0.5, color="0.3", linestyle="--", linewidth=0.8)
    axes.set(title="realism: ROC AUC of telling generated from real reviews, 95% interval\n"
                   "(read against the real-vs-real control; dashed: 0.5)", ylabel="ROC AUC", ylim=(0, 1.3))
    rating_ticks(axes)
    axes.grid(axis="y", alpha=0.3)
    # the runs' colours are in the figure's legend; this one tells the two kinds of bar apart
    axes.legend(handles=[Patch(color="0.5", label="generated vs real"),
                         Patch(facecolor="0.5", alpha=0.45, hatch="//", label="real vs real control")],
                fontsize=7, ncol=2, loc="upper center")


def plot_rating_measures(evaluations: dict[str, dict[str, dict[str, float]]], labels: dict[str, str], path: Path,
                         source: str) -> None:
    """auto_measures_by_rating.png: the share-like measures of each evaluated run per rating, and realism below."""
    figure = Figure(figsize=(10, 10))
    grid = figure.subplot_mosaic([["consistency", "keyword_coverage"], ["distinct_2", "copied"],
                                  ["realism", "realism"]])
    width = 0.8 / len(evaluations)
    for measure, title in RATING_MEASURES:
        axes = grid[measure]
        for index, (key, table) in enumerate(evaluations.items()):
            shown = [(i, table[r][measure]) for i, r in enumerate(RATING_GROUPS) if measure in table.get(r, {})]
            positions = [i + bar_offset(index, len(evaluations), width) for i, _ in shown]
            bars = axes.bar(positions, [value for _, value in shown], width=width, label=labels[key], color=f"C{index}")
            # the label shows a zero bar was measured
            axes.bar_label(bars, fmt="%.2f", fontsize=6, padding=2, rotation=90)
        axes.set(title=title, ylabel="share (0-1)", ylim=(0, 1.2))
        rating_ticks(axes)
        axes.grid(axis="y", alpha=0.3)
    plot_realism(grid["realism"], evaluations)
    grid["realism"].set_xlabel("requested rating")
    handles, legend_labels = grid["consistency"].get_legend_handles_labels()
    figure.legend(handles, legend_labels, loc="upper center", bbox_to_anchor=(0.5, 0.965), ncol=len(legend_labels),
                  fontsize=8)
    figure.suptitle("Automatic measures of generated reviews per requested rating (evaluate.py)")
    save(figure, path, source, top=0.94)
