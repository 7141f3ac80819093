"""Token-length percentiles of prompts and reviews: the measurement behind --max_source_length/--max_target_length.

    python benchmarks/token_lengths.py --model outputs/demo/train_t5/demo_model --data_dir outputs/demo/train_t5/demo_data
    python benchmarks/token_lengths.py --model PATH/TO/rut5-small --data_dir data/prepared/full
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import project_path  # noqa: F401  (scripts/ on sys.path)
import pyarrow.parquet as pq

from reviewkit.common.errors import ModelSourceError
from reviewkit.model.modeling import load_model_and_tokenizer

PERCENTILES = (50, 90, 95, 99, 99.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory or hub id whose tokenizer to use")
    parser.add_argument("--data_dir", required=True, help="output directory of prepare_data.py")
    parser.add_argument("--rows", type=int, default=50_000, help="rows of train.parquet to measure")
    args = parser.parse_args()
    try:
        _, tokenizer = load_model_and_tokenizer(args.model)
    except ModelSourceError as exc:
        sys.exit(f"error: {exc}")
    table = pq.read_table(Path(args.data_dir) / "train.parquet", columns=["prompt", "text"]).slice(0, args.rows)
    print(f"{len(table)} rows of {args.data_dir}, tokenizer of {args.model}")
    print(f"{'':<8}{'mean':>8}" + "".join(f"{'p' + str(p):>8}" for p in PERCENTILES) + f"{'chars/token':>13}")
    for column in ("prompt", "text"):
        texts = table.column(column).to_pylist()
        lengths = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])
        chars = sum(map(len, texts)) / lengths.sum()
        print(f"{column:<8}{lengths.mean():>8.1f}" + "".join(f"{np.percentile(lengths, p):>8.0f}" for p in PERCENTILES)
              + f"{chars:>13.2f}")


if __name__ == "__main__":
    main()
