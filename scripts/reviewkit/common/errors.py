"""The kit's errors whose message is one line for the user: whoever catches one shows that line, not a traceback.

Ordered by the layer that raises them. Two exceptions stay beside their code: marking.sample_file.SampleFormatError
(it carries every bad line of a file) and evaluation.cache.StaleError (a signal the cache handles itself).
"""


class OutputDirError(Exception):
    """The output directory cannot be used; the message is one line for the user."""


class DataSourceError(Exception):
    """The input as a whole cannot be read; the message is one line for the user."""


class PrepareError(Exception):
    """The step cannot produce a dataset; the message is one line for the user."""


class DeviceError(Exception):
    """The requested device is not on this machine; the message is one line for the user."""


class ModelSourceError(Exception):
    """The model cannot be loaded or built; the message is one line for the user."""


class TrackingError(Exception):
    """The tracking server cannot be used; the message is one line for the user."""


class DatabaseError(Exception):
    """A database URL that cannot be connected to; the message names host and database, never the password."""


class NonFiniteLossError(Exception):
    """The training loss became NaN or infinite; the message is one line for the user."""


class TrainingError(Exception):
    """The run cannot start or continue; the message is one line for the user."""


class KeyFileError(Exception):
    """A key file that cannot be used; the message is one line for the user."""
