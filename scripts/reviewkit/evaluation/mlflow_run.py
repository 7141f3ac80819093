"""evaluate.py's MLflow run: the measures, one table row per generated review, the per-rating chart.

The run is nested under the model's training run when that run is in the same tracking store
(OUTPUT_DIR/mlflow_run.json beside the model), else it goes to the experiment `evaluate`. Its
artifacts are `generated_reviews.json` (an MLflow table: prompt, requested rating, review and
that review's own measures, shown in the run's "Evaluation" / artifact view) and
`auto_measures_by_rating.png`. After the model card is updated, the training run's description
(`mlflow.note.content`) is set to the new card.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


from ..common.redact import mask_uri, redact
from ..data.keywords import Lemmatizer
from ..tracking.conventions import card_description, note_tag, source_tags
from ..tracking.store import stored_run
from .plotting import plot_rating_measures
from .quality import keyword_coverage

REVIEWS_TABLE = "generated_reviews.json"
CHART = "auto_measures_by_rating.png"


def review_rows(rows: list[dict], prompts: list[str], reviews: list[str], predicted, copies) -> dict:
    """Columns of the per-review table: what was asked, what came out, and how that one review measures
    (`predicted` ratings and `copies` flags as evaluate.py computed them for its table)."""
    lemmatizer = Lemmatizer()
    requested = [int(r["rating"]) for r in rows]
    return {
        "prompt": prompts,
        "requested_rating": requested,
        "review": reviews,
        "predicted_rating": [int(p) for p in predicted],
        "consistent": [bool(p == r) for p, r in zip(predicted, requested)],
        "keyword_coverage": [keyword_coverage([r["keywords"]], [text], lemmatizer) if len(r["keywords"]) else None
                             for r, text in zip(rows, reviews)],
        "copied": [bool(c) for c in copies],
        "length": [len(text) for text in reviews],
    }


def training_run(client, model_dir: Path, tracking_uri: str) -> str | None:
    """The id of the run that trained the model, if it is in this tracking store."""
    stored = stored_run(Path(model_dir).parent)
    if not stored.get("run_id") or mask_uri(stored.get("tracking_uri")) != mask_uri(tracking_uri):
        return None
    try:
        client.get_run(stored["run_id"])
    except Exception:  # noqa: BLE001 - MlflowException: deleted or unknown in this store
        return None
    return stored["run_id"]


def log_evaluation(tracking_uri: str, model_dir: Path, table: dict, params: dict, reviews: dict,
                   summary_markdown: str) -> tuple[str, str | None]:
    """(evaluate run id, training run id or None): measures, per-review table and chart in one finished run."""
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri)
    parent = training_run(client, model_dir, tracking_uri)
    tags = {**source_tags(), **note_tag(summary_markdown)}
    if parent:
        parent_run = client.get_run(parent)
        experiment_id = parent_run.info.experiment_id
        tags["mlflow.parentRunId"] = parent
        name = f"evaluate · {parent_run.info.run_name}"
    else:
        experiment = client.get_experiment_by_name("evaluate")
        experiment_id = experiment.experiment_id if experiment else client.create_experiment("evaluate")
        name = f"evaluate · {Path(model_dir).name}"
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(f"auto_{measure}_{rating}", float(value), now, 0)
               for rating, values in table.items() for measure, value in values.items()]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, redact(v)) for k, v in params.items()])
    client.log_table(run_id, data=reviews, artifact_file=REVIEWS_TABLE)
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART
        plot_rating_measures({run_id: table}, {run_id: name}, chart,
                             f"evaluate.py, model {model_dir}, data {params.get('data_dir')}, {len(reviews['review'])} "
                             f"reviews, MLflow run {run_id}")
        client.log_artifact(run_id, str(chart))
    client.set_terminated(run_id)
    return run_id, parent


def describe_training_run(tracking_uri: str, run_id: str, card_text: str) -> None:
    """The training run's description becomes the model card with its new evaluation section."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for key, value in note_tag(redact(card_description(card_text))).items():
        client.set_tag(run_id, key, value)
