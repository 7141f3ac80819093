"""Fault injection for the tests' subprocesses, loaded only there: the tests put this directory on PYTHONPATH.

Python imports `sitecustomize` at start-up; without the variables below it does nothing.
- REVIEWKIT_TEST_NAN_AT_STEP=N: the training loss of optimizer step N reads as NaN.
- REVIEWKIT_TEST_KILL_AT=STAGE:N: the process SIGKILLs itself at `train:N` (the training step
  that becomes optimizer step N), `evaluate:N` (the first validation batch after epoch N) or
  `save:N` (after the model weights of epoch N's checkpoint, before its optimizer and trainer state).
- REVIEWKIT_TEST_SIGINT_IN_FINALIZER_AT=N: at the training step that becomes optimizer step N, an object's
  `__del__` sends the process SIGINT, so that the KeyboardInterrupt is raised inside the finalizer, where Python
  drops it (as a Ctrl-C that lands while a connection or tensor is freed).
- REVIEWKIT_TEST_RECORD_BATCHES=DIR: each process appends, per training step, its epoch and the label ids of
  every example of its batch to DIR/rank-N.jsonl (which examples each torchrun rank trained on).
The patches sit on transformers' Trainer, below the project's ReviewTrainer, so the project's code runs unchanged.
"""

import json
import os
import signal

_NAN_AT_STEP = int(os.environ.get("REVIEWKIT_TEST_NAN_AT_STEP", "0"))
_KILL_AT = os.environ.get("REVIEWKIT_TEST_KILL_AT", "")
_SIGINT_IN_FINALIZER_AT = int(os.environ.get("REVIEWKIT_TEST_SIGINT_IN_FINALIZER_AT", "0"))
_RECORD_BATCHES = os.environ.get("REVIEWKIT_TEST_RECORD_BATCHES", "")


class _SigintInFinalizer:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler runs here and its exception goes to sys.unraisablehook


def _kill_if(stage, where):
    if where is not None and _KILL_AT == f"{stage}:{where:g}":
        os.kill(os.getpid(), signal.SIGKILL)


def _record(trainer, inputs):
    examples = [[token for token in row if token != -100] for row in inputs["labels"].tolist()]
    line = json.dumps({"epoch": int(trainer.state.epoch), "examples": examples})
    with open(os.path.join(_RECORD_BATCHES, f"rank-{trainer.args.process_index}.jsonl"), "a") as f:
        f.write(line + "\n")


def _install():
    from transformers import Trainer

    training_step, prediction_step = Trainer.training_step, Trainer.prediction_step
    save_optimizer = Trainer._save_optimizer_and_scheduler

    def patched_training_step(self, model, inputs, *args, **kwargs):
        step = self.state.global_step + 1
        if _RECORD_BATCHES:
            _record(self, inputs)
        _kill_if("train", step)
        if step == _SIGINT_IN_FINALIZER_AT:
            _SigintInFinalizer()  # freed at once
        loss = training_step(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if step == _NAN_AT_STEP else loss

    def patched_prediction_step(self, *args, **kwargs):
        _kill_if("evaluate", self.state.epoch)
        return prediction_step(self, *args, **kwargs)

    def patched_save_optimizer(self, *args, **kwargs):
        _kill_if("save", self.state.epoch)
        return save_optimizer(self, *args, **kwargs)

    Trainer.training_step = patched_training_step
    Trainer.prediction_step = patched_prediction_step
    Trainer._save_optimizer_and_scheduler = patched_save_optimizer


if _NAN_AT_STEP or _KILL_AT or _SIGINT_IN_FINALIZER_AT or _RECORD_BATCHES:
    _install()
