"""What one cell of a study kind costs, from its sizes (``StudyKind(estimate=cell_cost)``).

The runner refuses a run whose estimate exceeds its limits (:mod:`odebench.study.limits`), so
the estimate must see every size a cell grows with: start points and the problem's dimension,
the step counts of every rung (``steps``, ``nfe``, ``budget``) times the solvers and variants
that walk them, the single long grids (``match_steps``, ``path_steps``, ``probe_steps``, the
strong reference's ``refine`` times the largest rung), the adaptive reference, the n x n
kernel matrices of the quality metrics with their bootstrap and floor draws and sliced
projections, and the Jacobians of the stiffness estimate. A network model costs more per
evaluation than the closed-form eps of an embedded problem.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from ... import problems
from ...study.limits import EVAL_NUMBER_S, FLOAT, Estimate, estimate

__all__ = ["cell_cost"]

#: Ladder axes whose values are step counts (or NFE, about one step each).
RUNGS = ("steps", "nfe", "budget")
#: Options that are one more grid of that many steps.
SINGLE = ("match_steps", "path_steps", "probe_steps")
#: Axes that multiply the solvers' work (each value walks the whole ladder again).
VARIANTS = ("prediction", "shift", "eta", "guidance")
#: Model evaluations per step, a generous mean over the solvers (Heun 2, RK4 4, most 1).
EVALS_PER_STEP = 2.0
#: Evaluations of the adaptive reference per node of the union of the ladder's grids.
REFERENCE_EVALS_PER_NODE = 6.0
#: How much dearer per number a network is than a closed-form eps.
NETWORK_FACTOR = 100.0


@functools.lru_cache(maxsize=64)
def _dim(problem: str) -> int:
    try:
        return int(getattr(problems.get(problem), "dim", 64))
    except Exception:  # an unknown or unloadable problem is refused elsewhere
        return 64


def _ints(value: Any) -> list[int]:
    items: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
    return [int(v) for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (list, tuple)) else 1


def cell_cost(config: dict[str, Any]) -> Estimate:
    """Peak memory and time of one cell ``config`` (any built-in kind)."""
    n = max(1, int(_first(config, "n_samples")))
    dim = _dim(str(config.get("problem", "gaussian-lowrank")))
    rungs = [s for key in RUNGS for s in _ints(config.get(key, []))]
    longest = max(rungs, default=0)
    singles = [s for key in SINGLE for s in _ints(config.get(key, []))]
    singles += [r * longest for r in _ints(config.get("refine", []))]
    nodes = float(sum(rungs) + sum(singles))
    walkers = _count(config.get("solver", ["one"]))
    for key in VARIANTS:
        walkers *= _count(config.get(key, [None]))
    evals = EVALS_PER_STEP * (walkers * sum(rungs) + sum(singles))
    evals += REFERENCE_EVALS_PER_NODE * nodes
    network = str(config.get("model", "exact")) != "exact"
    per_number = EVAL_NUMBER_S * (NETWORK_FACTOR if network else 1.0)
    pairwise = 4.0 if "metrics" in config else 0.0
    evals += _first(config, "lipschitz_times") * dim  # one Jacobian column per evaluation
    longest = max([longest, *singles])
    cell = estimate(
        n, dim, evals, nodes, pairwise=pairwise, per_number_s=per_number, longest=longest
    )
    # The metrics: every bootstrap and floor draw touches the n x n kernel and the projections.
    draws = _first(config, "n_boot") + _first(config, "n_floor")
    projections = _first(config, "n_projections")
    numbers = draws * (pairwise * n * n + float(n) * projections * dim)
    memory = cell.memory + FLOAT * float(projections) * (dim + n)
    return Estimate(memory, cell.seconds + numbers * EVAL_NUMBER_S, cell.steps)


def _first(config: dict[str, Any], key: str) -> float:
    """The option ``key`` as a number (0 where the kind has none)."""
    values = _ints(config.get(key, 0))
    return float(values[0]) if values else 0.0
