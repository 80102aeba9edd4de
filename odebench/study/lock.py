"""One run per output folder: an exclusive ``fcntl`` lock held while a run writes there.

Two runs writing one folder at once would each write their own table over the other's, the
last one silently winning. The lock is a file in the folder's cache (``.cache/lock``, holding
the owner's process id); the kernel drops it when the owner exits, killed or not, so a crashed
run never leaves the folder locked. Where ``fcntl`` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .kinds import StudyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["locked"]


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the output folder ``folder`` (which must exist) for this process, or raise
    :class:`StudyError` (one line) if another run holds it."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(
                f"output folder {folder} is in use by another run: wait for it to finish or "
                "give another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
