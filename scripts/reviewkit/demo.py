"""The offline demo: the committed demo reviews, prepared, and a tiny model built from them.

Both are kept under the run's output directory (OUTPUT_DIR/demo_data, OUTPUT_DIR/demo_model) and
reused by a rerun; the only file read from the checkout is the shipped data/demo_reviews.tskv.
"""

from __future__ import annotations

from pathlib import Path

DEMO_REVIEWS = Path(__file__).resolve().parents[2] / "data" / "demo_reviews.tskv"
DATA_DIR_NAME = "demo_data"
MODEL_DIR_NAME = "demo_model"


def prepare_demo_data(output_dir: Path, ratings: tuple[int, ...] | None) -> tuple[Path, dict]:
    """(prepared data directory, its report) under `output_dir`."""
    from .pipeline import PrepareConfig, prepare_dataset

    data_dir = output_dir / DATA_DIR_NAME
    report = prepare_dataset(str(DEMO_REVIEWS), data_dir, PrepareConfig(ratings=ratings), progress=False)
    return data_dir, report


def build_demo_base_model(output_dir: Path, data_dir: Path) -> Path:
    """A tokenizer trained on the demo training split and a small random T5, saved under `output_dir`."""
    import pyarrow.parquet as pq

    from .modeling import build_demo_model

    train = pq.read_table(data_dir / "train.parquet", columns=["text", "prompt"])
    texts = train.column("text").to_pylist() + train.column("prompt").to_pylist()
    return build_demo_model(texts, output_dir / MODEL_DIR_NAME, seed=0)
