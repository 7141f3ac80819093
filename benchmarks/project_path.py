"""Makes the project's package importable: a benchmark imports this module before anything from `reviewkit`.

`python benchmarks/NAME.py` puts benchmarks/ on sys.path, not scripts/, where `reviewkit` and the
experiment scripts (`train_t5`) live.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from reviewkit.common.paths import PROJECT_ROOT  # noqa: E402

__all__ = ["PROJECT_ROOT"]
