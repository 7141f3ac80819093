"""Ctrl-C and SIGTERM as exceptions that stop a training run even when Python drops the first one.

Python runs a signal handler in the main thread between any two bytecodes, also inside a `__del__`
or a weakref callback (a database connection, a tokenizer or a tensor being freed); an exception
raised there is printed as "Exception ignored" and lost, and the run would go on as if no key was
pressed. The handler here also records the stop, and `RaiseRecordedStop` raises it again at the
next training step, evaluation or checkpoint; the dropped one prints no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from transformers import TrainerCallback


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `docker stop`), handled as Ctrl-C is."""


_recorded: type[KeyboardInterrupt] | None = None


def raise_stop(signum, frame):
    global _recorded
    _recorded = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    raise _recorded()


def raise_recorded_stop() -> None:
    """Raise the stop a signal asked for, if any: again, in case a finalizer swallowed the first one."""
    if _recorded is not None:
        raise _recorded()


@contextlib.contextmanager
def stop_signals(*signums: int):
    """SIGNUMS (SIGINT, SIGTERM) raise KeyboardInterrupt / Terminated and are recorded, within the block."""
    global _recorded
    _recorded = None
    previous = {signum: signal.signal(signum, raise_stop) for signum in signums}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = quiet_stops(previous_hook)
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _recorded = None


def quiet_stops(hook):
    """sys.unraisablehook that leaves out a stop raised inside a finalizer: it is recorded and raised again."""

    def unraisablehook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    return unraisablehook


class RaiseRecordedStop(TrainerCallback):
    """Stops training at the next step, evaluation or save after a stop signal that something swallowed."""

    def on_step_end(self, args, state, control, **kwargs):
        raise_recorded_stop()

    on_evaluate = on_save = on_epoch_end = on_step_end
