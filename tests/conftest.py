"""Shared test pieces: the one harness that runs the scripts, demo trainings shared by the session, small helpers.

Every tool starts through the running interpreter (`sys.executable`), so the suite passes when it
is run by a virtual environment's python that is not activated. The subprocesses get
tests/plugins on PYTHONPATH: its sitecustomize.py injects faults when a test asks for them.
Runs that nothing interrupts can go through `script_here` instead: the same command line in this process.
"""

import atexit
import contextlib
import functools
import io
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reviewkit.common.paths import PROJECT_ROOT as ROOT

SCRIPTS = ROOT / "scripts"

DEMO_INPUT = ROOT / "data" / "demo_reviews.tskv"
PLUGINS = ROOT / "tests" / "plugins"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # for the scripts run in this process, as tool_env does for the others
# A shell script that starts the suite in the background (`pytest ... &`) hands it SIGINT ignored, and every tool
# the tests start would inherit that; the tests that press Ctrl-C on a tool need it delivered, as a terminal does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Under pytest-xdist each worker, and every tool it starts, gets its share of the cores: torch's default of
# one thread per core in every worker would oversubscribe them and slow each run down several times.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


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


def console_lines(text: str) -> list[str]:
    """What a terminal shows of TEXT, line by line: progress bars redraw with \\r and move the cursor with escapes."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    return [part for line in plain.split("\n") for part in line.split("\r")]


def script(name: str, *args, **kwargs):
    """Run scripts/NAME with ARGS; see run_python for the keywords."""
    return run_python(SCRIPTS / name, *args, **kwargs)


def script_here(name: str, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    """scripts/NAME with ARGS run as `__main__` in this process, its output captured, for runs no test interrupts.

    The same command line without a new interpreter: a subprocess spends ~15 s importing torch,
    transformers, peft and mlflow before it starts. Fault injection and kills need `script`.
    """
    argv = [str(SCRIPTS / name), *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdin
    sys.argv, sys.stdin = argv, io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            stderr.write(exc.code + "\n")
    finally:
        sys.argv, sys.stdin = saved
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


@functools.cache
def empty_mlflow_store() -> Path:
    """An MLflow sqlite store with its tables already created, once per test process."""
    import mlflow

    directory = tempfile.mkdtemp(prefix="reviewkit-tests-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = Path(directory) / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    return path


def seed_mlflow_store(path: Path) -> None:
    """Put an initialised store at PATH unless one is there: MLflow's table creation costs each new store ~4 s.

    Creating a store from nothing stays covered by the README's quick start and the quick end-to-end test.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty_mlflow_store(), path)


def train_args(workdir: Path, *extra, new_store: bool = False) -> list:
    """--demo arguments for a run into WORKDIR/run logging to WORKDIR/mlflow.db, an initialised copy unless new_store."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not new_store:
        seed_mlflow_store(workdir / "mlflow.db")
    return ["--demo", "--output_dir", workdir / "run", "--tracking_uri", f"sqlite:///{workdir / 'mlflow.db'}", *extra]


def train(name: str, workdir: Path, *extra, new_store: bool = False, **kwargs):
    """A --demo training run of scripts/NAME in a subprocess; see train_args and run_python."""
    return script(name, *train_args(workdir, *extra, new_store=new_store), **kwargs)


def train_here(name: str, workdir: Path, *extra):
    """The same run in this process (script_here): for runs that no test kills or breaks."""
    return script_here(name, *train_args(workdir, *extra))


def tskv_line(text="Очень уютное кафе, вкусный кофе и свежие десерты.", rating="5.", name="Кафе Ромашка",
              address="Москва, улица Ленина, 1", rubrics="Кафе;Кофейня") -> str:
    return f"address={address}\tname_ru={name}\trating={rating}\trubrics={rubrics}\ttext={text}"


def read_reviews(source: str):
    """Every review of a TSKV/CSV/parquet file or hub id, one record at a time (the pipeline reads batches)."""
    from reviewkit.data.loading import read_batches

    for batch in read_batches(source):
        yield from batch.records()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server with a password (tests/postgres_server.py), for the whole session."""
    from postgres_server import start_postgres

    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def command_outputs():
    """Every command's --help and every script's unknown-flag answer (tests/command_help.py), run once."""
    from command_help import help_and_unknown_flag_outputs

    return help_and_unknown_flag_outputs()


@pytest.fixture(scope="session")
def lemmatizer():
    from reviewkit.data.keywords import Lemmatizer

    return Lemmatizer()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a minute or more of real training or a fresh-copy run; "
                                       "CI runs them, `-m 'not slow'` skips them locally")


# Costly fixtures that several tests share; pytest.ini's `--dist loadgroup` sends each one's tests to one worker.
SHARED_FIXTURES = ("fresh_clone", "demo_runs", "server", "search", "command_outputs", "postgres")


def dispatch_order(item) -> int:
    """xdist hands work out in collection order (pytest.ini: --no-loadscope-reorder): the longest chain, the
    README in a fresh copy, first; then the session's demo runs on the other worker; then the other slow
    tests; the quick ones last, to fill the gaps."""
    group = item.get_closest_marker("xdist_group")
    if group and group.args[0] in ("fresh_clone", "demo_runs"):
        return ("fresh_clone", "demo_runs").index(group.args[0])
    return 2 if item.get_closest_marker("slow") else 3


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    items.sort(key=dispatch_order)  # stable: each module's tests stay together within a rank


class DemoRuns:
    """The three experiment scripts trained once per test session on the demo, into one MLflow store.

    Tests that use them are in the xdist group "demo_runs", so that one worker trains them.
    """

    # 1280 of the demo's ~3,500 training rows: three epochs of falling loss at about a third of the time.
    PLAN = {"train_t5": ["--num_train_epochs", 3, "--max_train_samples", 1280],
            "train_lora": ["--num_train_epochs", 1, "--max_train_samples", 1280, "--merge"],
            "train_lora_r1": ["--num_train_epochs", 3]}

    def __init__(self, root: Path):
        self.root = root
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        seed_mlflow_store(root / "mlflow.db")
        self.results = {name: script_here(f"{name}.py", "--demo", "--output_dir", self.output_dir(name),
                                          "--tracking_uri", self.tracking_uri, *extra)
                        for name, extra in self.PLAN.items()}

    def output_dir(self, name: str) -> Path:
        return self.root / name

    def result(self, name: str):
        result = self.results[name]
        assert result.returncode == 0, result.stderr[-3000:]
        return result


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory) -> DemoRuns:
    return DemoRuns(tmp_path_factory.mktemp("demo_runs"))
