"""`mlflow models serve` of a review model on a free loopback port, for bench_serve.py and the serving tests.

The server runs in its own process group: the MLflow CLI, and the uvicorn process it starts (the one that
loads the model and answers). Memory and CPU time are the uvicorn process's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


class ModelServer:
    def __init__(self, model_uri: str, log: Path, env: dict[str, str] | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port)]
        environment = {**os.environ, **(env or {})}
        # The CLI starts uvicorn by name: the interpreter's bin directory must be on PATH.
        environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
        self.log = log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment,
                                            start_new_session=True)

    def wait_until_up(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited {self.process.returncode}:\n{self.log_tail()}")
            if self.ping() == 200:
                return
            time.sleep(0.5)
        raise TimeoutError(self.log_tail())

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def ping(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def post(self, body: dict, timeout: float = 120) -> tuple[int, dict | str]:
        """(status, the JSON answer, or its text when it is not JSON)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text.decode(errors="replace")

    def worker(self) -> psutil.Process:
        """The uvicorn process: the model and every request's work are in it."""
        (worker,) = psutil.Process(self.process.pid).children(recursive=True)
        return worker

    def rss(self) -> int:
        return self.worker().memory_info().rss

    def cpu_seconds(self) -> float:
        times = self.worker().cpu_times()
        return times.user + times.system

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM to the CLI, as a service manager sends it; seconds until every process of the server is gone."""
        processes = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=timeout)
        if alive:
            self.kill()
            raise TimeoutError(f"{len(alive)} server processes still running {timeout:g} s after SIGTERM")
        self.process.wait()
        return time.monotonic() - started

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
