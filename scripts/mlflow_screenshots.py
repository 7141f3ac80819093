"""Screenshots of MLflow's own UI for docs/mlflow.md: a runs table and one run's page, as a user opens them.

    python scripts/mlflow_screenshots.py                 # the demo's runs in ./mlflow.db -> docs/images/
    python scripts/mlflow_screenshots.py --tracking_uri sqlite:///mlflow.db --experiment train_t5

Starts `mlflow server` on a free loopback port over the given store, then Debian's chromium
headless (`--headless --no-sandbox --disable-gpu`, no background networking: this machine has no
internet) on the experiment's runs table and on its latest finished run's page, where the UI
shows source, dataset inputs, description and logged model. The server is stopped at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from reviewkit.common.cli import ArgumentParser, add_tracking_uri_flag
from reviewkit.common.paths import PROJECT_ROOT
from reviewkit.common.redact import mask_uri
from reviewkit.tracking.store import resolve_tracking_uri

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(backend_store_uri: str, port: int, log: Path) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:PORT; returns once /health answers (RuntimeError if it never does)."""
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1", "--backend-store-uri", backend_store_uri],
                               stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text(errors='replace').strip()[-500:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"mlflow server did not answer on port {port} within 120 s")


def screenshot(chromium: str, url: str, path: Path, width: int, height: int, wait_ms: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                 f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
                                 f"--screenshot={path}", url], capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium could not take {path.name}: {result.stderr.strip()[-300:]}")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_tracking_uri_flag(parser, "--backend_store_uri")  # the store to show; its old name stays as an alias
    parser.add_argument("--experiment", default="train_t5", help="experiment whose runs table and latest run are shown")
    parser.add_argument("--output_dir", default=str(PROJECT_ROOT / "docs" / "images"),
                        help="where mlflow_runs_table.png and mlflow_run_page.png are written")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the chromium binary (Debian: apt-get install chromium)")
    parser.add_argument("--wait_ms", type=int, default=20000, help="time the page gets to render before the shot")
    args = parser.parse_args(argv)
    args.tracking_uri = resolve_tracking_uri(args.tracking_uri)
    if not Path(args.chromium).is_file():
        print(f"error: chromium not found at {args.chromium} (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    import mlflow

    client = mlflow.MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    # The training run itself, not an evaluate.py run nested under it.
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED' and "
                              f"tags.`mlflow.source.name` LIKE '%{args.experiment}.py'",
                              order_by=["attributes.start_time DESC"], max_results=1) if experiment else []
    if not runs:
        print(f"error: no finished run of {args.experiment} in {mask_uri(args.tracking_uri)}; train one first "
              f"(python scripts/train_t5.py --demo)", file=sys.stderr)
        return 1
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server = start_server(args.tracking_uri, port, Path(tmp) / "server.log")
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
            shots = {"mlflow_runs_table.png": (f"{base}/runs", 2400, 600),
                     "mlflow_run_page.png": (f"{base}/runs/{runs[0].info.run_id}", 2400, 1400)}
            for name, (url, width, height) in shots.items():
                screenshot(args.chromium, url, output_dir / name, width, height, args.wait_ms)
                print(f"{output_dir / name}: {url}")
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
