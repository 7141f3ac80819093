"""One CLI: every script's bad flag is one line and exit 2, its --help shows the defaults; renamed flags still work."""

import re

import pytest
from command_help import SCRIPTS as ALL_SCRIPTS
from command_help import UNKNOWN_FLAG

NO_DEFAULTED_FLAGS = {"scripts/score_sample.py"}  # FILE, --key KEY (none: the usual name) and the switch --mark


def test_every_script_is_covered():
    assert len(ALL_SCRIPTS) == 13, ALL_SCRIPTS


@pytest.mark.parametrize("script", ALL_SCRIPTS)
def test_a_bad_flag_is_one_line_and_exit_2(command_outputs, script):
    result = command_outputs[UNKNOWN_FLAG][script]
    lines = [line for line in result["output"].splitlines() if line.strip()]
    assert result["returncode"] == 2, result["output"][-2000:]
    assert len(lines) == 1 and re.match(rf"{re.escape(script.split('/')[1])}: error: ", lines[0]), \
        result["output"][-2000:]


@pytest.mark.parametrize("script", ALL_SCRIPTS)
def test_help_shows_the_defaults(command_outputs, script):
    result = command_outputs["--help"][script]
    assert result["returncode"] == 0, result["output"][-2000:]
    assert ("(default:" in result["output"]) is (script not in NO_DEFAULTED_FLAGS), result["output"]


def test_the_old_count_flag_names_are_hidden_aliases():
    import sample

    new = sample.parse_args(["--model", "m", "--data_dir", "d", "--num_prompts", "7"])
    old = sample.parse_args(["--model", "m", "--data_dir", "d", "--n", "7"])
    assert new.num_prompts == old.num_prompts == 7 and not hasattr(old, "n")
    assert sample.parse_args(["--model", "m", "--data_dir", "d"]).num_prompts == 100


def test_tune_lora_takes_train_lora_defaults():
    import train_lora
    import tune_lora

    searched = {"lora_r", "lora_alpha", "lora_target_modules"}
    assert {k: v for k, v in tune_lora.DEFAULTS.items() if k != "output_dir"} == {
        k: v for k, v in train_lora.DEFAULTS.items() if k not in searched | {"output_dir"}}
    assert {k: v for k, v in tune_lora.DEMO_DEFAULTS.items() if k != "output_dir"} == {
        k: v for k, v in train_lora.DEMO_DEFAULTS.items() if k != "output_dir"}
