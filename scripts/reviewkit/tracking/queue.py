"""Metric values that outlive a tracking server that does not answer: a durable queue in front of log_batch.

Each value goes into the queue with its step and time, and the queue sends what it holds, oldest
first, in calls of at most MAX_METRICS_PER_BATCH metrics that never split one record (one step's
values) unless the record alone is over the limit. A call the server refuses leaves the unsent
records in the queue, written to its file (OUTPUT_DIR/mlflow_pending.jsonl, one JSON record a
line), says so once in a one-line warning and is tried again after RETRY_INTERVAL_S seconds; a
sent record leaves the file, so a later process (`load`) sends each record exactly once.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..common.files import atomic_write_text
from .client import MAX_METRICS_PER_BATCH
from .store import first_line

PENDING_FILE = "mlflow_pending.jsonl"
RETRY_INTERVAL_S = 30.0


class PendingQueue:
    """The values of run RUN_ID not yet acknowledged by the server, kept in PATH while there are any."""

    def __init__(self, client, run_id: str, path: Path, shown_uri: str):
        self.client = client
        self.run_id = run_id
        self.path = Path(path)
        self.shown_uri = shown_uri  # the tracking URI with its credentials masked, for messages
        self.records: list[dict] = []  # oldest first
        self.offline = False
        self._next_attempt = 0.0

    def __len__(self) -> int:
        return len(self.records)

    def load(self) -> None:
        """Take up the values an earlier process could not send, for this run; a torn or foreign line is skipped."""
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("run_id") == self.run_id:
                self.records.append(record)

    def add(self, metrics: dict, step: int) -> None:
        """Queue METRICS ({name: value}) at STEP, now, and send the queue unless a retry is not due yet."""
        self.records.append({"run_id": self.run_id, "step": step, "timestamp": int(time.time() * 1000),
                             "metrics": metrics})
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Send the queued values in order (FORCE: even before the next retry is due); on failure keep them on
        disk. True when nothing is left."""
        from mlflow.entities import Metric

        if self.records and (force or time.monotonic() >= self._next_attempt):
            try:
                while self.records:
                    count = records_in_batch(self.records)
                    batch = [Metric(key, value, record["timestamp"], record["step"])
                             for record in self.records[:count] for key, value in record["metrics"].items()]
                    for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
                        self.client.log_batch(self.run_id, metrics=batch[start:start + MAX_METRICS_PER_BATCH])
                    del self.records[:count]
            except Exception as exc:  # noqa: BLE001 - MlflowException, requests' connection errors, timeouts
                self.go_offline(exc)
            else:
                if self.offline:
                    tqdm.write(f"MLflow {self.shown_uri} answers again; the kept values are sent")
                self.offline = False
        if self.records:
            atomic_write_text(self.path, "".join(json.dumps(record) + "\n" for record in self.records))
        else:
            self.path.unlink(missing_ok=True)
        return not self.records

    def go_offline(self, exc: BaseException) -> None:
        """The server failed (EXC): warn once until it answers again, and wait RETRY_INTERVAL_S before a retry."""
        if not self.offline:
            tqdm.write(f"warning: MLflow {self.shown_uri} failed ({first_line(exc)}); training goes on and "
                       f"keeps the values in {self.path}, retrying every {RETRY_INTERVAL_S:.0f} s", file=sys.stderr)
        self.offline = True
        self._next_attempt = time.monotonic() + RETRY_INTERVAL_S


def records_in_batch(records: list[dict]) -> int:
    """How many of the first RECORDS one call sends: as many whole records as fit in MAX_METRICS_PER_BATCH
    metrics, at least one (a record over the limit is sent alone, in several calls)."""
    count, size = 0, 0
    while count < len(records) and (count == 0 or size + len(records[count]["metrics"]) <= MAX_METRICS_PER_BATCH):
        size += len(records[count]["metrics"])
        count += 1
    return count
