"""Atomic file output: a reader sees the old file or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputDirError


def ensure_output_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and check that it is a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"output directory {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create output directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise OutputDirError(f"output directory {path} is not writable")
    return path


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; the result should look like any file the user writes
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()[:32]


def remove_stale_temporaries(directory: str | os.PathLike, of: str = "*") -> None:
    """Delete temporaries a killed run left behind (they are never read); `of`: only those of this file name."""
    for leftover in Path(directory).glob(f".{of}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
