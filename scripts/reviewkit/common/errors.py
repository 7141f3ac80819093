"""The kit's user errors: one base, `UserError`, whose message is one line for the user, shown without a traceback.

The scripts catch `UserError` (and only it) at their top and print its line; any other exception is a bug and keeps
its traceback. The subclasses below, ordered by the layer that raises them, say what went wrong. Beside their code
are marking.sample_file.SampleFormatError (a UserError carrying every bad line of a file) and the scripts' own
(sample.SampleError, score_sample.ScoreError, make_demo_data.TemplateError); evaluation.cache.StaleError is no
user error but a signal the cache handles itself.
"""

from .redact import redact


class UserError(Exception):
    """A message for the user, no traceback: whoever catches one shows its line (`first_line`)."""


class InputError(UserError, ValueError):
    """A value, file or flag the user gave cannot be used; still a ValueError for the callers that check values."""


def first_line(exc: BaseException) -> str:
    """The exception's first line, credentials masked: what a one-line error message quotes."""
    return redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]


class OutputDirError(UserError):
    """The output directory cannot be used; the message is one line for the user."""


class DataSourceError(UserError):
    """The input as a whole cannot be read; the message is one line for the user."""


class PrepareError(UserError):
    """The step cannot produce a dataset; the message is one line for the user."""


class DeviceError(UserError):
    """The requested device is not on this machine; the message is one line for the user."""


class ModelSourceError(UserError):
    """The model cannot be loaded or built; the message is one line for the user."""


class TrackingError(UserError):
    """The tracking server cannot be used; the message is one line for the user."""


class DatabaseError(UserError):
    """A database URL that cannot be connected to; the message names host and database, never the password."""


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite; the message is one line for the user."""


class TrainingError(UserError):
    """The run cannot start or continue; the message is one line for the user."""


class KeyFileError(UserError):
    """A key file that cannot be used; the message is one line for the user."""
