"""A real `mlflow server` on loopback for the tests, started through this interpreter."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class TrackingServer:
    """`mlflow server` on 127.0.0.1 with a backend store (sqlite in ROOT unless given) and an artifact root in ROOT."""

    def __init__(self, root: Path, backend_store_uri: str | None = None):
        self.root = root
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root / 'backend.db'}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                   "--backend-store-uri", self.backend_store_uri,
                   "--artifacts-destination", str(self.root / "artifacts")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "ab"),
                                        start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "server.log").read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer on {self.uri}")

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)  # the server and its uvicorn worker
        self.process.wait()
