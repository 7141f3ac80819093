"""The scripts' argument parser: argparse whose errors are one line."""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser printing `prog: error: message (see --help)` instead of usage + error; exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_renamed_flag(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """A dropped flag name that fails with a one-line hint to its new name (hidden from --help)."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{old} was renamed to {new}")

    parser.add_argument(old, nargs="?", action=Renamed, help=argparse.SUPPRESS)
