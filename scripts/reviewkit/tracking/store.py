"""Where MLflow runs are stored: resolving and checking the tracking URI before a run starts.

A tracking URI may carry a password (`postgresql://user:password@host/db`): every message here
shows it masked (`reviewkit.common.redact`), and a database is tried with a short connection timeout
before MLflow opens it (MLflow itself retries a dead database for about 100 s).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..common.errors import DatabaseError, TrackingError, first_line
from ..common.files import atomic_write_text
from ..common.redact import mask_uri, redact, remember_secrets

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default: mlflow.db in the current directory
RUN_ID_FILE = "mlflow_run.json"
# SQLAlchemy's database schemes that talk to a server (sqlite opens a file); `postgresql+psycopg://` too.
SERVER_DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "mssql")
STORE_OPEN_ATTEMPTS = 3


def resolve_tracking_uri(flag: str | None) -> str:
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    remember_secrets(uri)
    if mask_uri(uri) != uri:
        # MLflow prints "View run ... at URL" and model URLs with the URI as given, credentials and all.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        os.environ.setdefault("MLFLOW_PRINT_MODEL_URLS_ON_CREATION", "false")
    return uri


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail at once, before data or model are loaded, if the tracking URI cannot be used.

    An HTTP server must answer /health within `timeout`; a database server must accept a
    connection within `timeout`; any URI (sqlite, a database, a directory) must then open as an
    MLflow store.
    """
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(health_request(uri), timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"MLflow tracking server {mask_uri(uri)} is unreachable ({redact(reason)})") from None
        return
    try:
        check_database(uri, timeout)
    except DatabaseError as exc:
        raise TrackingError(f"MLflow tracking {exc}") from None
    import mlflow

    # A new store announces its table creation at INFO and logs a failure with its traceback at ERROR;
    # the one-line TrackingError below says it instead.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.CRITICAL)
    # Processes opening a new database store at once (the workers of a search) race MLflow's table
    # creation; the loser succeeds once the winner's tables are in place.
    attempts = STORE_OPEN_ATTEMPTS if is_server_database(uri) or uri.startswith("sqlite:") else 1
    try:
        for attempt in range(1, attempts + 1):
            try:
                mlflow.MlflowClient(uri).search_experiments(max_results=1)
                return
            except Exception as exc:  # noqa: BLE001 - unknown scheme, unreadable database, bad path: all one answer
                if attempt == attempts:
                    raise TrackingError(f"MLflow tracking URI {mask_uri(uri)} cannot be used ({first_line(exc)})"
                                        ) from None
                time.sleep(2.0 * attempt)
    finally:
        mlflow_logger.setLevel(level)


def health_request(uri: str) -> urllib.request.Request:
    """GET URI/health; credentials in the URI (`http://user:password@host`) go in a basic-auth header, as MLflow
    sends them, since urllib cannot read them from the host part."""
    parts = urllib.parse.urlsplit(uri.rstrip("/"))
    headers = {}
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urllib.request.Request(urllib.parse.urlunsplit(parts) + "/health", headers=headers)


def is_server_database(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0].lower() in SERVER_DATABASE_SCHEMES


def check_database(url: str, timeout: float = 5.0) -> None:
    """Connect once to a database server URL within `timeout` seconds; other URLs pass unchecked."""
    if "://" not in url or not is_server_database(url):
        return
    remember_secrets(url)
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.ArgumentError and ValueError for a malformed URL
        raise DatabaseError(f"database URL {mask_uri(url)} is malformed ({first_line(exc)})") from None
    # SQLAlchemy ends the password at its first raw `@`: the rest of it is then taken for the host.
    where = redact(f"database {parsed.database or '(none)'} at {parsed.host or 'localhost'}:"
                   f"{parsed.port or 'default port'}")
    connect_args = {"connect_timeout": max(1, round(timeout))} if parsed.get_backend_name() in (
        "postgresql", "mysql", "mariadb") else {}
    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
        with engine.connect():
            pass
    except ModuleNotFoundError as exc:
        raise DatabaseError(f"{where}: its driver is not installed ({exc}); "
                            f"pip install -r requirements.txt installs the PostgreSQL one") from None
    except Exception as exc:  # noqa: BLE001 - refused, timed out, authentication, unknown database: one answer
        raise DatabaseError(f"{where} cannot be used ({first_line(getattr(exc, 'orig', None) or exc)})") from None


def stored_run(output_dir: str | os.PathLike) -> dict:
    """OUTPUT_DIR/mlflow_run.json of a training run: its MLflow `run_id` and masked `tracking_uri`; {} if none."""
    path = Path(output_dir) / RUN_ID_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def store_run(output_dir: str | os.PathLike, tracking_uri: str, run_id: str) -> None:
    """Write OUTPUT_DIR/mlflow_run.json, which `stored_run` reads: the run id and the tracking URI masked."""
    atomic_write_text(Path(output_dir) / RUN_ID_FILE,
                      json.dumps({"tracking_uri": mask_uri(tracking_uri), "run_id": run_id}) + "\n")


def limit_http_retries() -> None:
    """MLflow retries a dead server with back-off for minutes per call; training should not wait that long.

    A user's own MLFLOW_HTTP_REQUEST_* settings win.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
