"""Every command's `--help`, and every script's answer to an unknown flag, run once per test session.

test_docs checks the flags that README.md and docs/*.md quote against the `--help` outputs, and
test_cli checks every script's `--help` and bad-flag line. Importing torch and transformers costs
5-15 s per script, so one helper process (this interpreter, sys.executable) imports the heavy
libraries and the package once and forks a child per command: the child runs the script as `__main__` with its own
sys.argv and its own stdout, so one script's state cannot leak into another's output. Where
os.fork does not exist, each command runs as its own subprocess instead.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

import reviewkit
from reviewkit.common.paths import PROJECT_ROOT as ROOT

# The commands: every Python file at the top of scripts/ and benchmarks/, as the docs quote them.
COMMANDS = sorted(f"{folder}/{path.name}" for folder in ("scripts", "benchmarks")
                  for path in (ROOT / folder).glob("*.py"))
SCRIPTS = [command for command in COMMANDS if command.startswith("scripts/")]
UNKNOWN_FLAG = "--no_such_flag"
# What the scripts import at start-up, imported once before the helper forks: the libraries and the package.
PRELOAD = ("torch", "transformers", "transformers.training_args", "transformers.trainer", "peft", "datasets",
           "sklearn.feature_extraction.text", "sklearn.linear_model", "scipy.stats", "pyarrow.parquet",
           "matplotlib.figure", "pymorphy3", "mlflow", "optuna",
           *(module.name for module in pkgutil.walk_packages(reviewkit.__path__, "reviewkit.")))

HELPER = r"""
import importlib, json, os, runpy, sys, tempfile

out_path, preload, jobs = sys.argv[1], sys.argv[2].split(","), json.loads(sys.argv[3])
for name in preload:
    try:
        importlib.import_module(name)
    except Exception:
        pass
results = []
for argv in jobs:
    with tempfile.TemporaryFile() as capture:
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(capture.fileno(), 1); os.dup2(capture.fileno(), 2)
                sys.argv = argv
                runpy.run_path(argv[0], run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        capture.seek(0)
        results.append({"returncode": os.waitstatus_to_exitcode(status),
                        "output": capture.read().decode("utf-8", "replace")})
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(results, f)
"""


def run_commands(jobs: list[list[str]]) -> list[dict]:
    """[{"returncode", "output"}] of `python *ARGV` for each ARGV of JOBS (paths from the project root), in order."""
    # `python SCRIPT` puts the script's directory on sys.path, runpy.run_path does not: the helper gets both
    # directories the commands live in.
    python_path = os.pathsep.join(filter(None, [str(ROOT / "scripts"), str(ROOT / "benchmarks"),
                                                os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore", "PYTHONPATH": python_path}
    if not hasattr(os, "fork"):
        results = []
        for argv in jobs:
            done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300, check=False)
            results.append({"returncode": done.returncode, "output": done.stdout + done.stderr})
        return results
    handle, name = tempfile.mkstemp(suffix=".json", prefix="command_help_")
    os.close(handle)
    out = Path(name)
    try:
        done = subprocess.run([sys.executable, "-c", HELPER, str(out), ",".join(PRELOAD), json.dumps(jobs)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0 and out.stat().st_size, f"the --help helper failed:\n{done.stderr[-3000:]}"
        return json.loads(out.read_text(encoding="utf-8"))
    finally:
        out.unlink(missing_ok=True)


def help_and_unknown_flag_outputs() -> dict[str, dict[str, dict]]:
    """{"--help": {command: result}, UNKNOWN_FLAG: {script: result}} for every command and every script."""
    jobs = [("--help", command) for command in COMMANDS] + [(UNKNOWN_FLAG, script) for script in SCRIPTS]
    outputs: dict[str, dict[str, dict]] = {"--help": {}, UNKNOWN_FLAG: {}}
    for (flag, command), result in zip(jobs, run_commands([[command, flag] for flag, command in jobs])):
        outputs[flag][command] = result
    return outputs
