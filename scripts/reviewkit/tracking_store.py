"""Where MLflow runs are stored: resolving and checking the tracking URI before a run starts."""

from __future__ import annotations

import logging
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default: mlflow.db in the current directory
RUN_ID_FILE = "mlflow_run.json"


class TrackingError(Exception):
    """The tracking server cannot be used; the message is one line for the user."""


def resolve_tracking_uri(flag: str | None) -> str:
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail at once, before data or model are loaded, if the tracking URI cannot be used.

    An HTTP server must answer /health within `timeout`; any other URI (sqlite, a database, a
    directory) must open as an MLflow store.
    """
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason})") from None
        return
    import mlflow

    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.WARNING)  # a new sqlite store announces its table creation at INFO
    try:
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - unknown scheme, unreadable database, bad path: all one answer
        raise TrackingError(f"MLflow tracking URI {uri} cannot be used ({first_line(exc)})") from None
    finally:
        mlflow_logger.setLevel(level)


def limit_http_retries() -> None:
    """MLflow retries a dead server with back-off for minutes per call; training should not wait that long.

    A user's own MLFLOW_HTTP_REQUEST_* settings win.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
