"""Where the checkout is: the package directory and the project root, found from this file's place in it."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # scripts/reviewkit
PROJECT_ROOT = PACKAGE_DIR.parents[1]
