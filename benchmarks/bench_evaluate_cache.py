"""Wall time and peak memory of evaluate.py's rating classifier and copy index: made once, then loaded.

    python benchmarks/bench_evaluate_cache.py --data_dir data/prepared/full   # an output of prepare_data.py
    python benchmarks/bench_evaluate_cache.py --rows 500000                   # synthetic rows, prepared first

Each measured run is a fresh process that reads the splits as evaluate.py does and calls
reviewkit.evaluation.cache.evaluation_reference. The first finds no store: it fits the
classifier, scores it on the test split, indexes the training reviews and stores both; the
second loads them. Both times include starting Python and importing scikit-learn (~2 s). The
splits are linked into a temporary directory, so the store of --data_dir is neither used nor
changed. Peak memory is sampled as in bench_prepare.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import synthetic_reviews
from bench_prepare import run_measured
from project_path import PROJECT_ROOT

from reviewkit.evaluation.cache import CACHE_DIR

SCRIPTS = PROJECT_ROOT / "scripts"
# One measured process: a fresh interpreter with scripts/ on its PYTHONPATH (main), as a script imports reviewkit.
MEASURED = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
from reviewkit.evaluation.cache import evaluation_reference
data_dir = Path(sys.argv[1])
test = pq.read_table(data_dir / "test.parquet", columns=["text", "rating"]).to_pydict()
evaluation_reference(data_dir, pq.read_table(data_dir / "train.parquet", columns=["text", "rating"]), test["text"],
                     test["rating"])
"""


def prepared_synthetic(rows: int, seed: int, directory: Path) -> Path:
    """prepare_data.py's output for ROWS synthetic reviews, in DIRECTORY/prepared."""
    source = directory / "synthetic.tskv"
    source.write_text("\n".join(synthetic_reviews.tskv_lines(rows, seed)) + "\n", encoding="utf-8")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPTS / "prepare_data.py"), "--input", str(source), "--output_dir",
                    str(directory / "prepared"), "--no_progress"], check=True, stdout=subprocess.DEVNULL)
    print(f"prepared {rows} synthetic rows in {time.perf_counter() - started:.1f} s")
    source.unlink()
    return directory / "prepared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data_dir", type=Path, help="an output directory of prepare_data.py")
    source.add_argument("--rows", type=int, default=500_000,
                        help="without --data_dir: synthetic rows to prepare first (90%% of them become train)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or prepared_synthetic(args.rows, args.seed, Path(tmp))
        linked = Path(tmp) / "linked"
        linked.mkdir()
        for split in ("train.parquet", "test.parquet"):
            os.symlink((data_dir / split).resolve(), linked / split)
        counts = {split: pq.read_metadata(linked / split).num_rows for split in ("train.parquet", "test.parquet")}
        print(f"data: {counts['train.parquet']} training and {counts['test.parquet']} test reviews from {data_dir}")
        command = [sys.executable, "-c", MEASURED, str(linked)]
        python_path = os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))
        environment = {**os.environ, "PYTHONPATH": python_path}
        for label in ("first run (fit, score the test split, index, store)", "rerun (load the store)"):
            seconds, rss, _, code = run_measured(command, environment)
            if code:
                sys.exit(f"{label} failed with exit code {code}")
            print(f"{label}: {seconds:.1f} s, peak memory {rss:,.0f} MiB RSS")
        for stored in sorted((linked / CACHE_DIR).iterdir()):
            print(f"stored {stored.name}: {stored.stat().st_size / 2**20:.1f} MiB")
    print(f"machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")


if __name__ == "__main__":
    main()
