"""The scripts' argument parser: argparse whose errors are one line, and checks of flag values before any work."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable


TRACKING_URI_HELP = ("MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current "
                     "directory, MLflow's own default)")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, unless it has none (None, a switch) or its help already tells it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.default is None or action.default is argparse.SUPPRESS
                or action.nargs == 0 or "default" in text):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser printing `prog: error: message (see --help)` instead of usage + error; exit code 2.

    Its --help shows the options' defaults (DefaultsHelpFormatter).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_tracking_uri_flag(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """--tracking_uri (and hidden `aliases`, old names of it), with the one help text every script shows."""
    parser.add_argument("--tracking_uri", default=None, help=TRACKING_URI_HELP)
    for alias in aliases:
        add_hidden_alias(parser, alias, "tracking_uri")


def add_hidden_alias(parser: argparse.ArgumentParser, alias: str, dest: str, **kwargs) -> None:
    """An old name of a renamed flag: it still works, --help shows only the new one."""
    parser.add_argument(alias, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_renamed_flag(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """A dropped flag name that fails with a one-line hint to its new name (hidden from --help)."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{old} was renamed to {new}")

    parser.add_argument(old, nargs="?", action=Renamed, help=argparse.SUPPRESS)


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type`: an integer from `low` (to `high`, when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text}")
        return value

    return parse


def float_above(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse `type`: a finite number greater than `low` (and at most `high`, when given)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value <= low or (high is not None and value > high):
            bounds = f"greater than {low:g}" if high is None else f"greater than {low:g} and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text}")
        return value

    return parse


def unwritable_reason(path: str | os.PathLike) -> str | None:
    """Why a file cannot be written at `path` through a temporary beside it (files.atomic_path), or None."""
    path = Path(path)
    if path.is_dir():
        return "it is a directory"
    directory = path.parent
    if not directory.exists():
        return f"directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    return None


def check_output(parser: argparse.ArgumentParser, what: str, path: str | os.PathLike) -> None:
    """A usage error unless `path` (`what`: its flag) can be written; checked before a model loads, not after the work."""
    reason = unwritable_reason(path)
    if reason:
        parser.error(f"{what} {path} cannot be written: {reason}")
