"""Checkpoints: which one a rerun resumes from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def last_complete_checkpoint(output_dir: Path, remove_incomplete: bool = True) -> str | None:
    """The newest checkpoint that was saved to the end; newer ones a kill cut short are removed.

    Trainer writes trainer_state.json last, so a checkpoint without a readable one is incomplete
    (transformers' own get_last_checkpoint would pick it and the resume would crash). Under torchrun
    only rank 0 removes; the other ranks skip the same directories.
    """
    numbered = sorted((int(d.name.split("-")[1]), d) for d in Path(output_dir).glob("checkpoint-*")
                      if d.is_dir() and d.name.split("-")[1].isdigit())
    for _, directory in reversed(numbered):
        try:
            json.loads((directory / "trainer_state.json").read_text(encoding="utf-8"))
            return str(directory)
        except (OSError, ValueError):
            if remove_incomplete:
                print(f"removing {directory}: its save was interrupted (no complete trainer_state.json)")
                shutil.rmtree(directory, ignore_errors=True)
    return None
