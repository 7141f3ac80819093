"""What MLflow's UI shows of a run by its own conventions: source, user, description, run name and dataset inputs.

The runs table and the run page read the standard tags `mlflow.source.name`, `mlflow.source.type`,
`mlflow.source.git.commit`, `mlflow.user` and `mlflow.note.content` (the description), and the
dataset inputs logged with a context (`training`, `validation`). Every run of the project's
scripts gets them here.
"""

from __future__ import annotations

import getpass
import re
import sys
import warnings
from pathlib import Path

from ..common.files import file_digest
from ..common.paths import PROJECT_ROOT
from .store import git_commit

NOTE_TAG = "mlflow.note.content"
MAX_TAG_LENGTH = 8000  # MLflow's limit for a tag value
# Short names of the settings a run name mentions; a setting not listed here appears under its own name.
SHORT_NAMES = {"learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch",
               "gradient_accumulation_steps": "accumulation", "max_train_samples": "samples",
               "lora_target_modules": "target", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
               "model_name_or_path": "model"}
# Settings that say where a run goes or how it prints, not what it trains: never in a run name.
NOT_IN_RUN_NAME = {"output_dir", "logging_dir", "tracking_uri", "data_dir", "run_name", "resume_from_checkpoint",
                   "verbose", "disable_tqdm", "log_model", "register_model", "report_to", "logging_steps",
                   "overwrite_output_dir"}


def source_tags(script: str | None = None) -> dict[str, str]:
    """The standard source tags: the script as a path inside the project, git commit, local source, user."""
    path = Path(script or sys.argv[0]).resolve()
    try:
        name = str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        name = str(path)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        user = "unknown"
    return {"mlflow.source.name": name, "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": git_commit(),
            "mlflow.user": user}


def card_description(card: str) -> str:
    """A model card as a run's description: without its YAML front matter (the Hub's metadata) and its
    hyper-parameter table, which the run's Parameters show."""
    card = re.sub(r"\A---\n.*?\n---\n+", "", card, flags=re.S)
    return re.sub(r"^## Training hyper-parameters\n.*?(?=^## |\Z)",
                  "## Training hyper-parameters\n\nSee this run's Parameters.\n\n", card, flags=re.S | re.M)


def note_tag(text: str) -> dict[str, str]:
    """The run's description (`mlflow.note.content`), cut to MLflow's tag limit with a pointer to the full text."""
    if len(text) > MAX_TAG_LENGTH:
        ending = "\n\n… (cut to MLflow's tag limit; the full model card is the README.md beside the model)"
        text = text[:MAX_TAG_LENGTH - len(ending)] + ending
    return {NOTE_TAG: text}


def run_name(script: str, changed: dict) -> str:
    """`train_t5 · lr 0.0001 · balance oversample`: the script and the settings that differ from its defaults."""
    parts = [script]
    for name, value in changed.items():
        if name in NOT_IN_RUN_NAME:
            continue
        if name == "demo":
            parts.append("demo" if value else "no demo")
            continue
        shown = f"{value:g}" if isinstance(value, float) else getattr(value, "value", value)
        parts.append(f"{SHORT_NAMES.get(name, name)} {shown}")
    return " · ".join(parts)


def dataset_inputs(data_dir: Path) -> list:
    """The prepared train and validation splits as MLflow dataset inputs, named after the data directory.

    The digest is the parquet file's content hash: two runs on the same data show the same dataset.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for split, context in (("train", "training"), ("validation", "validation")):
        path = (Path(data_dir) / f"{split}.parquet").resolve()
        with warnings.catch_warnings():  # a local path matches two equal local sources; MLflow picks either
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(path.as_uri())
        dataset = MetaDataset(source, name=Path(data_dir).name, digest=file_digest(path)[:16])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs
