"""README's commands, run as written in a fresh copy of the project: the quick start and the plots."""

import re
import shutil

import matplotlib.image
import numpy as np
import pytest
from conftest import ROOT, run_python

from reviewkit.marking.sample_file import parse_sample

README = (ROOT / "README.md").read_text(encoding="utf-8")
PLOTS = ("t5_val_loss", "t5_train_loss", "t5_epochs", "lora_val_loss", "lora_train_loss", "lora_epochs",
         "lora_r12_val_loss", "compare_val_loss", "auto_measures_by_rating")


def bash_blocks(section: str) -> list[list[str]]:
    """The command lines of each ```bash block under the README heading `section`, up to the next heading."""
    body = re.search(rf"^#+ {re.escape(section)}\n(.*?)(?=^#+ )", README, re.S | re.M)
    assert body, f"README has no section {section!r}"
    return [[line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```bash\n(.*?)```", body.group(1), re.S)]


def run(command: str, cwd, timeout=900):
    """A README line, `python scripts/...` only, run with this interpreter inside `cwd`."""
    words = command.split()
    assert words[0] == "python", command
    # A user's MLflow default, not the caller's: an empty value counts as unset.
    result = run_python(*words[1:], cwd=cwd, timeout=timeout, env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    """The files a fresh clone has that the demo needs; outputs/, images/ and mlflow.db start absent."""
    copy = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "scripts", copy / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "data").mkdir()
    shutil.copy(ROOT / "data" / "demo_reviews.tskv", copy / "data")
    return copy


@pytest.fixture(scope="module")
def quick_start(fresh_clone):
    """The quick start's training command; returns its output."""
    install_and_train = bash_blocks("Быстрый старт")[0]
    install, train = install_and_train[0].split(" && ")
    assert install == "pip install -r requirements.txt"
    return run(train, fresh_clone)


@pytest.fixture(scope="module")
def plot_recipe(fresh_clone, quick_start):
    """The README's recipe for the images and t5_sample.txt, run after the quick start as a reader would."""
    (commands,) = [block for block in bash_blocks("Как получены графики") if "python scripts/plot_runs.py" in block]
    for command in commands:
        run(command, fresh_clone)
    return fresh_clone


@pytest.mark.slow
def test_quick_start_trains_the_demo_model_and_the_test_command_is_ci(fresh_clone, quick_start):
    install_and_test = bash_blocks("Быстрый старт")[1]
    assert install_and_test == ["pip install -r requirements.txt -r requirements-dev.txt && python -m pytest -q tests"]
    assert install_and_test[0] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "best epoch 6" in quick_start.stdout
    assert (fresh_clone / "outputs" / "demo" / "train_t5" / "final" / "model.safetensors").is_file()
    assert (fresh_clone / "mlflow.db").is_file()


@pytest.mark.slow
def test_plot_recipe_regenerates_every_image_the_readme_embeds(plot_recipe):
    for name in PLOTS:
        path = plot_recipe / "images" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = matplotlib.image.imread(path)[..., :3]
        first_series = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=-1) < 0.05  # matplotlib's C0
        assert first_series.sum() > 500, f"{name}.png has no plotted data"
        assert f"(images/{name}.png)" in README, f"README does not embed {name}.png"
        assert (ROOT / "images" / f"{name}.png").is_file(), f"images/{name}.png is not committed"


@pytest.mark.slow
def test_committed_t5_sample_is_what_the_readme_command_writes(plot_recipe):
    """Same header and prompts (data and seed decide them); reviews may differ with the CPU's arithmetic."""
    committed = parse_sample((ROOT / "t5_sample.txt").read_text(encoding="utf-8"))
    regenerated_text = (plot_recipe / "t5_sample.txt").read_text(encoding="utf-8")
    regenerated = parse_sample(regenerated_text)
    assert len(committed) == len(regenerated) == 100
    assert [(e.rating, e.rubrics, e.keywords) for e in committed] == [(e.rating, e.rubrics, e.keywords)
                                                                      for e in regenerated]
    committed_header = [line for line in (ROOT / "t5_sample.txt").read_text(encoding="utf-8").splitlines()
                        if line.startswith("#")]
    regenerated_header = [line for line in regenerated_text.splitlines() if line.startswith("#")]
    def machine_free(lines):  # the loss, the run id and the device depend on the machine and the MLflow store
        return [re.sub(r"eval_loss [0-9.]+|MLflow run \w+|^# Device: .*", "", line) for line in lines]

    assert machine_free(committed_header) == machine_free(regenerated_header)
    assert "offline demo" in "\n".join(committed_header)
