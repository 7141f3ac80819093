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


from ..common.redact import redact
from ..data.keywords import Lemmatizer
from ..tracking.client import experiment_id, masked_params, open_client, run_in_store, start_run
from ..tracking.conventions import card_description, note_tag
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
    return run_in_store(client, Path(model_dir).parent, tracking_uri)


def log_evaluation(tracking_uri: str, model_dir: Path, table: dict, params: dict, reviews: dict,
                   summary_markdown: str) -> tuple[str, str | None]:
    """(evaluate run id, training run id or None): measures, per-review table and chart in one finished run."""
    from mlflow.entities import Metric

    client = open_client(tracking_uri)
    parent = training_run(client, model_dir, tracking_uri)
    if parent:
        parent_run = client.get_run(parent)
        experiment = parent_run.info.experiment_id
        name = f"evaluate · {parent_run.info.run_name}"
    else:
        experiment = experiment_id(client, "evaluate")
        name = f"evaluate · {Path(model_dir).name}"
    run_id = start_run(client, experiment, name, tags=note_tag(summary_markdown), parent_run_id=parent)
    now = int(time.time() * 1000)
    metrics = [Metric(f"auto_{measure}_{rating}", float(value), now, 0)
               for rating, values in table.items() for measure, value in values.items()]
    client.log_batch(run_id, metrics=metrics, params=masked_params(params))
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
    client = open_client(tracking_uri)
    for key, value in note_tag(redact(card_description(card_text))).items():
        client.set_tag(run_id, key, value)
