"""Shared test pieces: the one subprocess harness, demo trainings shared by the session, small helpers.

Every tool starts through the running interpreter (`sys.executable`), so the suite passes when it
is run by a virtual environment's python that is not activated. The subprocesses get
tests/plugins on PYTHONPATH: its sitecustomize.py injects faults when a test asks for them.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(ROOT / "benchmarks"))  # reference.py: ruT5-small's shape, one-call keyword extraction

DEMO_INPUT = ROOT / "data" / "demo_reviews.tskv"
PLUGINS = ROOT / "tests" / "plugins"


def tool_env(extra: dict | None = None) -> dict:
    """The environment of a tool under test: offline hub, the fault-injection plugin importable."""
    path = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, **(extra or {})}


def run_python(*args, env: dict | None = None, timeout: float = 600, wait: bool = True, stdin: str | None = None,
               cwd=None):
    """`python ARGS` with this interpreter: a CompletedProcess (text), or with wait=False a Popen with stderr piped."""
    command = [sys.executable, *map(str, args)]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=tool_env(env), cwd=cwd)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=tool_env(env), input=stdin,
                          cwd=cwd)


def script(name: str, *args, **kwargs):
    """Run scripts/NAME with ARGS; see run_python for the keywords."""
    return run_python(SCRIPTS / name, *args, **kwargs)


def train(name: str, workdir: Path, *extra, **kwargs):
    """A --demo training run of scripts/NAME into WORKDIR/run, logging to WORKDIR/mlflow.db."""
    workdir.mkdir(parents=True, exist_ok=True)
    return script(name, "--demo", "--output_dir", workdir / "run", "--tracking_uri",
                  f"sqlite:///{workdir / 'mlflow.db'}", *extra, **kwargs)


def tskv_line(text="Очень уютное кафе, вкусный кофе и свежие десерты.", rating="5.", name="Кафе Ромашка",
              address="Москва, улица Ленина, 1", rubrics="Кафе;Кофейня") -> str:
    return f"address={address}\tname_ru={name}\trating={rating}\trubrics={rubrics}\ttext={text}"


def read_reviews(source: str):
    """Every review of a TSKV/CSV/parquet file or hub id, one record at a time (the pipeline reads batches)."""
    from reviewkit.loading import read_batches

    for batch in read_batches(source):
        yield from batch.records()


@pytest.fixture(scope="session")
def lemmatizer():
    from reviewkit.keywords import Lemmatizer

    return Lemmatizer()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a minute or more of real training or a fresh-copy run; "
                                       "CI runs them, `-m 'not slow'` skips them locally")


class DemoRuns:
    """The three experiment scripts trained once per test session on the demo, into one MLflow store."""

    PLAN = {"train_t5": ["--num_train_epochs", 3], "train_lora": ["--num_train_epochs", 1, "--merge"],
            "train_lora_r1": ["--num_train_epochs", 3]}

    def __init__(self, root: Path):
        self.root = root
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.results = {name: script(f"{name}.py", "--demo", "--output_dir", self.output_dir(name), "--tracking_uri",
                                     self.tracking_uri, *extra) for name, extra in self.PLAN.items()}

    def output_dir(self, name: str) -> Path:
        return self.root / name

    def result(self, name: str):
        result = self.results[name]
        assert result.returncode == 0, result.stderr[-3000:]
        return result


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory) -> DemoRuns:
    return DemoRuns(tmp_path_factory.mktemp("demo_runs"))
