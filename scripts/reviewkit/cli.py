"""The scripts' argument parser: argparse whose errors are one line."""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser printing `prog: error: message (see --help)` instead of usage + error; exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
