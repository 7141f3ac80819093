"""Wall time, rows/s and peak memory of prepare_data.py on N synthetic rows, and the cached rerun.

    python benchmarks/bench_prepare.py                 # 500,000 rows (~360 MB, like the real file)
    python benchmarks/bench_prepare.py --rows 50000

Targets on a 2-core machine: <= 60 s for 500,000 rows, <= 2 GiB peak, cached rerun <= 5 s.
Peak memory is sampled every 0.1 s over the whole process tree (the parent and its worker
processes); forked workers share pages with the parent, so the sum of their RSS overstates
the truth, and the proportional set size (PSS) is reported beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import synthetic_reviews
from project_path import PROJECT_ROOT

PREPARE = PROJECT_ROOT / "scripts" / "prepare_data.py"


def run_measured(command: list[str], env: dict | None = None) -> tuple[float, float, float, int]:
    """Run a command; return (seconds, peak summed RSS MiB, peak summed PSS MiB, exit code).

    `env`: the command's environment; by default this process's.
    """
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak_rss = peak_pss = 0.0
    done = threading.Event()

    def sample():
        nonlocal peak_rss, peak_pss
        while not done.is_set():
            rss = pss = 0
            try:
                for proc in [process, *process.children(recursive=True)]:
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += info.pss
            except psutil.Error:
                pass
            peak_rss, peak_pss = max(peak_rss, rss / 2**20), max(peak_pss, pss / 2**20)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return elapsed, peak_rss, peak_pss, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="synthetic rows to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--workers", type=int, default=0, help="passed to prepare_data.py (0 = one per core)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "synthetic.tskv"
        started = time.perf_counter()
        source.write_text("\n".join(synthetic_reviews.tskv_lines(args.rows, args.seed)) + "\n", encoding="utf-8")
        print(f"synthesised {args.rows} rows, {source.stat().st_size / 2**20:.0f} MiB "
              f"in {time.perf_counter() - started:.1f} s")
        command = [sys.executable, str(PREPARE), "--input", str(source), "--output_dir", str(Path(tmp) / "out"),
                   "--workers", str(args.workers), "--no_progress"]
        seconds, rss, pss, code = run_measured(command)
        if code:
            sys.exit(f"prepare_data.py failed with exit code {code}")
        cached_seconds, _, _, code = run_measured(command)
        if code:
            sys.exit(f"cached rerun failed with exit code {code}")
    print(f"prepare_data.py: {seconds:.1f} s, {args.rows / seconds:,.0f} rows/s, "
          f"peak memory {rss:,.0f} MiB RSS summed over processes ({pss:,.0f} MiB PSS)")
    print(f"cached rerun: {cached_seconds:.1f} s")
    scale = args.rows / 500_000
    print(f"against the targets (scaled to {args.rows} rows): time {seconds / (60 * scale):.2f} of 60 s, "
          f"memory {rss / 2048:.2f} of 2 GiB, cached rerun {cached_seconds / 5:.2f} of 5 s")
    print(f"machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")


if __name__ == "__main__":
    main()
