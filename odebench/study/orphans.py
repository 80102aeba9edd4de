"""Worker processes that die with their parent.

A process pool shuts its workers down when the parent exits normally or is interrupted, but a
parent killed outright (``kill -9``, the out-of-memory killer) runs no code at all: its workers
would wait for work forever, each holding hundreds of megabytes, and keep the pool's
resource tracker alive with them. Two mechanisms make a worker follow its parent:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment the
  thread that created it exits;
- everywhere, a daemon thread that polls ``os.getppid()`` and exits the worker once it is no
  longer the original parent's child (reparented to init or a subreaper).

Once the workers are gone, the resource tracker sees its last pipe closed and exits too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["POLL_S", "die_with_parent"]

#: Seconds between two checks of the watchdog thread.
POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:
    """Ask the Linux kernel to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
        pass


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # no cleanup: the parent, who would collect the work, is gone
        time.sleep(POLL_S)


def die_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` (its parent now) dies.

    Called first thing in a worker (a pool initializer); if the parent already died before
    the call, the worker exits at once.
    """
    _pdeathsig()
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(
        target=_watch, args=(parent,), name="odebench-parent-watch", daemon=True
    ).start()
