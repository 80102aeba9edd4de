"""Resource limits: estimate a run's peak memory and time before it starts, refuse above a limit.

A step count of 10^9, a million start points or a 200,000-cell grid are typos far more often
than intentions, and each of them would fill the machine's memory or run for days before
failing. So every run is estimated first, from the sizes it was given (start points, problem
dimension, steps or NFE of every rung, cells, worker processes), and refused with one line
that gives the estimate and the option that lifts the limit:

- memory: above :func:`default_max_memory` (half the machine's physical memory, so that a
  run never takes the machine down with it); ``--max-memory GB`` (``max_memory=`` in bytes);
- time and size: above :data:`MAX_SECONDS` of estimated compute, :data:`MAX_CELLS` cells or
  a grid of more than :data:`MAX_STEPS` steps; ``--yes`` (``yes=True``).

The estimates are deliberately coarse (a factor of a few either way): they exist to catch
sizes that are off by orders of magnitude, not to predict a run to the minute. The cost model
(:func:`estimate`) charges, per model evaluation, a fixed Python/torch overhead plus a cost
per number touched; memory is the states of every stored grid node plus the grids themselves.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from .kinds import StudyError

__all__ = [
    "MAX_CELLS",
    "MAX_SECONDS",
    "MAX_STEPS",
    "Estimate",
    "add_limit_options",
    "check",
    "default_max_memory",
    "estimate",
    "format_bytes",
    "format_seconds",
]

#: Above this many cells a run needs ``--yes``.
MAX_CELLS = 10_000
#: Above this much estimated compute (seconds) a run needs ``--yes``.
MAX_SECONDS = 3600.0
#: Above this many steps in one grid a run needs ``--yes`` (the studies use at most a few
#: thousand; 10^5 and more is a typo more often than an intention).
MAX_STEPS = 100_000
#: Bytes of one float64 number.
FLOAT = 8
#: Seconds of fixed overhead per model evaluation (Python, torch dispatch) and per number.
EVAL_OVERHEAD_S = 2e-4
EVAL_NUMBER_S = 2e-8
#: Memory of a worker process before it computes anything (Python, torch, odebench).
PROCESS_BYTES = 400e6


@dataclass(frozen=True)
class Estimate:
    """Peak memory (bytes), compute time (seconds) and longest grid (steps) of a cell or run."""

    memory: float
    seconds: float
    steps: int = 0

    def describe(self, n_cells: int) -> str:
        """``about 2.1 GB of memory and 12 min for 3 cells (longest grid 1600 steps)``."""
        cells = f"{n_cells} cell" + ("" if n_cells == 1 else "s")
        return (
            f"about {format_bytes(self.memory)} of memory and {format_seconds(self.seconds)} "
            f"for {cells} (longest grid {self.steps} steps)"
        )


def estimate(
    n_samples: int,
    dim: int,
    evals: float,
    nodes: float,
    states: float = 16.0,
    pairwise: float = 0.0,
    per_number_s: float = EVAL_NUMBER_S,
    longest: int = 0,
    eval_s: float | None = None,
) -> Estimate:
    """The cost of ``evals`` model evaluations on ``n_samples`` points in ``dim`` dimensions.

    Memory: ``states`` working copies of the batch, the batch at each of ``nodes`` stored grid
    nodes (an adaptive reference keeps the state at every node of the union of the ladder's
    grids), the grids themselves, and ``pairwise`` n x n matrices (kernel metrics). Time:
    ``evals`` x (fixed overhead + ``n_samples * dim`` numbers), or ``evals`` x ``eval_s`` where
    the caller knows the seconds of one evaluation (a network's, from its FLOPs). ``longest``
    is the most steps of one grid.
    """
    batch = float(n_samples) * float(dim)
    memory = FLOAT * (batch * (states + nodes) + 4.0 * nodes + pairwise * float(n_samples) ** 2)
    per_eval = EVAL_OVERHEAD_S + batch * per_number_s if eval_s is None else float(eval_s)
    return Estimate(memory=memory, seconds=float(evals) * per_eval, steps=int(longest))


def _meminfo_total() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def physical_memory() -> float:
    """The machine's physical memory in bytes (sysconf, else /proc/meminfo, else 8 GB)."""
    try:
        total = float(os.sysconf("SC_PAGE_SIZE")) * float(os.sysconf("SC_PHYS_PAGES"))
        if total > 0:
            return total
    except (ValueError, OSError, AttributeError):
        pass
    return _meminfo_total() or 8e9


def default_max_memory() -> float:
    """Half the physical memory: the rest stays for the system and the user's other work."""
    return 0.5 * physical_memory()


def format_bytes(n: float) -> str:
    """``12.3 GB`` (decimal units, as ``--max-memory`` takes them)."""
    if not math.isfinite(n):
        return "an unbounded amount"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e6:.2g} MB"


def format_seconds(s: float) -> str:
    """``40 s``, ``12 min``, ``54 h``, ``3.2e+04 days``."""
    if not math.isfinite(s):
        return "forever"
    if s < 120:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400 * 3:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:.3g} days"


def check(
    run: Estimate,
    n_cells: int,
    *,
    max_memory: float | None = None,
    yes: bool = False,
    what: str = "this run",
) -> None:
    """Raise :class:`StudyError` (one line, the estimate and the option that lifts the limit)
    if ``run`` exceeds the memory limit, or, unless ``yes``, the time, cell or grid limit.
    ``max_memory`` in bytes (None: :func:`default_max_memory`)."""
    limit = default_max_memory() if max_memory is None else float(max_memory)
    if not limit > 0:
        raise StudyError(f"--max-memory must be a positive number of GB, got {limit / 1e9:g}")
    said = f"{what} needs {run.describe(n_cells)}"
    if not run.memory <= limit:
        raise StudyError(
            f"{said}: above the memory limit of {format_bytes(limit)}; lower the sizes (steps, "
            "NFE, n_samples, workers) or raise the limit with --max-memory GB"
        )
    if yes:
        return
    over = None
    if n_cells > MAX_CELLS:
        over = f"the limit of {MAX_CELLS} cells"
    elif run.steps > MAX_STEPS:
        over = f"the limit of {MAX_STEPS} steps per grid"
    elif not run.seconds <= MAX_SECONDS:
        over = f"the time limit of {format_seconds(MAX_SECONDS)}"
    if over is not None:
        raise StudyError(f"{said}: above {over}; shrink it or pass --yes to run it anyway")


def memory_gb(text: str) -> float:
    """An argparse type: ``--max-memory GB``, a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GB, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """``--max-memory GB`` and ``--yes``, the options that lift the limits of :func:`check`."""
    parser.add_argument(
        "--max-memory",
        type=memory_gb,
        default=None,
        metavar="GB",
        help="refuse a run estimated above this much memory (default: half the machine's)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"run even if estimated above {format_seconds(MAX_SECONDS)}, {MAX_CELLS} cells or "
        f"{MAX_STEPS} steps in one grid",
    )
