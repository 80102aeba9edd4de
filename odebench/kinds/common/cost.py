"""What one cell of a study kind costs, from its sizes (``StudyKind(estimate=cell_cost)``).

The runner refuses a run whose estimate exceeds its limits (:mod:`odebench.study.limits`), so
the estimate must see every size a cell grows with: start points and the problem's dimension,
the step counts of every rung (``steps``, ``nfe``, ``budget``) times the solvers and variants
that walk them, the single long grids (``match_steps``, ``path_steps``, ``probe_steps``, the
strong reference's ``refine`` times the largest rung), the adaptive reference, the n x n
kernel matrices of the quality metrics with their bootstrap and floor draws and sliced
projections, and the Jacobians of the stiffness estimate.

What one evaluation costs depends on the model. The closed-form eps of a Gaussian mixture
touches every sample, coordinate and component (``n dim K`` numbers: the digits data have
K = 1797). A network's evaluation is timed from its arithmetic: its floating-point operations
per sample, counted once on one sample (``torch.utils.flop_counter``, :func:`network_size`),
times the batch (plus one), at :data:`NET_FLOPS_PER_S`, plus a fixed cost per call; a guided
evaluation (w other than 0 and 1) is two passes. The adaptive reference (two DOP853 solves) takes
``R tol^-p`` evaluations (:func:`reference_evals`), R and p fitted to measured counts: a
network's right-hand side is rougher in t than a closed form, so its count grows faster as
the tolerance shrinks (16,081 evaluations for the digits UNet at 1e-10, 1,672 at 1e-4).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ... import problems
from ...study.limits import EVAL_NUMBER_S, FLOAT, Estimate, estimate

__all__ = [
    "cell_cost",
    "eval_seconds",
    "evals_per_step",
    "network_size",
    "reference_evals",
    "solver_evals",
]

#: Ladder axes whose values are step counts (or NFE, about one step each).
RUNGS = ("steps", "nfe", "budget")
#: Options that are one more grid of that many steps.
SINGLE = ("match_steps", "path_steps", "probe_steps")
#: Axes that multiply the solvers' work (each value walks the whole ladder again).
VARIANTS = ("prediction", "shift", "eta", "guidance")
#: Model evaluations per step of a solver whose count is unknown (adaptive, or another kind's
#: sampler) and of the single long grids: a generous mean (Heun 2, RK4 4, most 1).
EVALS_PER_STEP = 2.0
#: Evaluations of the adaptive reference per node of the union of the ladder's grids (a
#: floor under :func:`reference_evals`; the count of a local reference, one per step).
REFERENCE_EVALS_PER_NODE = 6.0
#: How much dearer per number a network is than a closed-form eps (a network whose
#: operations cannot be counted).
NETWORK_FACTOR = 100.0
#: Seconds of one network call beyond its arithmetic (module dispatch, the eps conversion).
NET_CALL_S = 4e-4
#: A network's floating-point operations per second on one CPU thread in float64 and in
#: float32 (a quality study's ``network_dtype``), and on a GPU (deliberately low: small
#: batches do not fill one). A call costs about one sample more than its batch (small
#: convolutions and matrices run below the peak rate). Fitted to CPU times (process time, one
#: thread) of the digits UNet (30.6 MFLOP per sample): float64 3.9 / 6.3 / 38.9 / 81 / 918 ms
#: per call at 1 / 2 / 16 / 32 / 256 samples, float32 11 / 121 / 442 ms at 16 / 256 / 1000;
#: and in float64 of gmm-2d-mlp (0.2 MFLOP) 0.52 / 1.12 ms and gmm-64d-mlp (0.4 MFLOP) 0.74 /
#: 1.51 ms at 16 / 64 samples. On a loaded machine the wall time is longer (twice these at
#: a load of 7 on 2 cores).
NET_FLOPS_PER_S = {"float64": 10e9, "float32": 60e9, "cuda": 1e12}
#: The adaptive reference's evaluations, both solves, ``R tol^-p`` from t = 1 to 0.1, (R, p)
#: fitted to measured counts: exact gmm-2d (64 samples) 694 / 1,195 / 2,359 at 1e-6 / 1e-9 /
#: 1e-12; the digits UNet (16 samples) 1,672 / 16,081 at 1e-4 / 1e-10.
REFERENCE_EVALS = {"exact": (150.0, 0.1), "network": (350.0, 1.0 / 6.0)}
#: Relative growth of the reference's evaluations per decade of t_min below 0.1 (measured
#: from t_min 0.1 to 0.001: exact gmm-2d at 1e-6 694 -> 823, the digits UNet (2 samples) at
#: 1e-4 1,645 -> 1,918), at most MAX_DECADES decades (t_min = 0 counts as that many).
PER_DECADE = 0.1
MAX_DECADES = 4.0


@functools.lru_cache(maxsize=64)
def _problem(problem: str) -> tuple[int, int, bool]:
    """(dimension, mixture components, whether an exact flow map serves the reference)."""
    try:
        prob = problems.get(problem)
    except Exception:  # an unknown or unloadable problem is refused elsewhere
        return 64, 1, False
    means = getattr(prob, "means", None)
    components = int(means.shape[0]) if isinstance(means, torch.Tensor) and means.ndim == 2 else 1
    return int(getattr(prob, "dim", 64)), components, getattr(prob, "flow", None) is not None


def _dim(problem: str) -> int:
    return _problem(problem)[0]


def network_size(name: str, dim: int) -> tuple[float, int] | None:
    """(floating-point operations of one evaluation per sample, parameters) of the shipped
    network ``name`` on ``dim``-dimensional states, counted on one float32 sample on the CPU;
    None where it does not load or run (the study refuses it elsewhere). Remembered per card
    file and its modification time, so a changed or different card is counted afresh."""
    from ...models import loading

    card = Path(loading.ASSETS) / f"{name}.json"
    try:
        stamp = card.stat().st_mtime_ns
    except OSError:
        return None
    return _network_size(name, str(card.resolve()), stamp, dim)


@functools.lru_cache(maxsize=16)
def _network_size(name: str, card: str, stamp: int, dim: int) -> tuple[float, int] | None:
    """network_size's count, for the card file ``card`` as it was at ``stamp``."""
    from torch.utils.flop_counter import FlopCounterMode

    from ...models import load

    try:
        net = load(name, dtype=torch.float32)
        x, t = torch.zeros(1, dim), torch.tensor(0.5, dtype=torch.float64)
        with FlopCounterMode(display=False) as counter:
            net(x, t)
    except Exception:  # any failure is reported by the run itself
        return None
    return float(counter.get_total_flops()), sum(p.numel() for p in net.net.parameters())


def _guidance(config: dict[str, Any]) -> list[float]:
    """The cell's guidance scales ([0]: none); each one is a model, a reference and a ladder."""
    values = config.get("guidance", [0.0])
    values = values if isinstance(values, (list, tuple)) else [values]
    return [float(w) for w in values if isinstance(w, (int, float))] or [0.0]


def _passes(w: float) -> int:
    """Model passes per guided evaluation: eps_null + w (eps_c - eps_null) needs both unless
    w is 0 (the unconditional model) or 1 (the conditional one)."""
    return 1 if w in (0.0, 1.0) else 2


def _networks(config: dict[str, Any]) -> list[tuple[str, int]] | None:
    """(network name, passes per evaluation) per guidance scale of a network cell; None for
    the problem's exact eps."""
    model = str(config.get("model", "exact"))
    if model == "exact":
        return None
    from ...models import shipped
    from .networks import trained_network

    out = []
    for w in _guidance(config):
        name = model
        if model == "trained":
            try:
                name = trained_network(
                    str(config.get("problem")), str(config.get("schedule")), shipped(), w != 0.0
                )
            except (ValueError, OSError, KeyError):
                name = ""
        out.append((name, _passes(w)))
    return out


def eval_seconds(config: dict[str, Any], n: int, dim: int) -> float | None:
    """Seconds of one evaluation of a network cell's model on ``n`` samples (the mean over
    its guidance scales); None for an exact model or a network whose size is unknown."""
    nets = _networks(config)
    if not nets:
        return None
    if str(config.get("device", "cpu")).startswith("cuda"):
        rate = NET_FLOPS_PER_S["cuda"]
    else:
        rate = NET_FLOPS_PER_S.get(str(config.get("network_dtype")), NET_FLOPS_PER_S["float64"])
    total = 0.0
    for name, passes in nets:
        size = network_size(name, dim) if name else None
        if size is None:
            return None
        total += passes * (NET_CALL_S + size[0] * (n + 1) / rate)
    return total / len(nets)


def reference_evals(config: dict[str, Any], nodes: float = 0.0) -> float:
    """Evaluations of a cell's references (one per guidance scale): ``R tol^-p``
    (:data:`REFERENCE_EVALS`), more for a t_min below 0.1 (:data:`PER_DECADE`), at least
    :data:`REFERENCE_EVALS_PER_NODE` per node of the ladder's ``nodes`` (the only count where
    the cell has no ``ref_tol`` or an exact flow map serves); 0 with ``paired = false``."""
    if config.get("paired", True) is False:
        return 0.0
    floor = REFERENCE_EVALS_PER_NODE * nodes
    tol = config.get("ref_tol")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < 1:
        return floor
    nets = _networks(config)
    if nets is None and _problem(str(config.get("problem", "gaussian-lowrank")))[2]:
        return floor
    which = "exact" if nets is None else "network"
    scale, power = REFERENCE_EVALS[which]
    evals = scale * float(tol) ** -power
    t_min = config.get("t_min")
    if isinstance(t_min, (int, float)) and not isinstance(t_min, bool) and t_min < 0.1:
        decades = MAX_DECADES if t_min <= 0 else min(MAX_DECADES, math.log10(0.1 / t_min))
        evals *= 1.0 + PER_DECADE * decades
    return max(floor, evals * len(_guidance(config)))


def _ints(value: Any) -> list[int]:
    items: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
    return [int(v) for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (list, tuple)) else 1


@functools.lru_cache(maxsize=256)
def evals_per_step(name: str) -> float:
    """Model evaluations per step of the solver ``name`` (its NFE at 100 steps, over 100);
    :data:`EVALS_PER_STEP` for an adaptive or unknown one."""
    from ... import solvers

    try:
        nfe = solvers.get(name).nfe(100)
    except Exception:  # an unknown solver (or another kind's sampler) is refused elsewhere
        return EVALS_PER_STEP
    return EVALS_PER_STEP if nfe is None else nfe / 100.0


def solver_evals(config: dict[str, Any]) -> float:
    """Model evaluations of a cell's solvers over its ladder: each solver's evaluations per
    step times the ``steps`` rungs, plus the ``nfe`` / ``budget`` rungs (evaluations already),
    times every variant (prediction, shift, eta, guidance) that walks the ladder again."""
    names = config.get("solver", ["one"])
    names = names if isinstance(names, (list, tuple)) else [names]
    steps = float(sum(_ints(config.get("steps", []))))
    budgets = float(sum(s for key in ("nfe", "budget") for s in _ints(config.get(key, []))))
    variants = 1
    for key in VARIANTS:
        variants *= _count(config.get(key, [None]))
    return variants * sum(evals_per_step(str(name)) * steps + budgets for name in names)


def cell_cost(config: dict[str, Any]) -> Estimate:
    """Peak memory and time of one cell ``config`` (any built-in kind)."""
    n = max(1, int(_first(config, "n_samples")))
    dim = _dim(str(config.get("problem", "gaussian-lowrank")))
    rungs = [s for key in RUNGS for s in _ints(config.get(key, []))]
    longest = max(rungs, default=0)
    singles = [s for key in SINGLE for s in _ints(config.get(key, []))]
    singles += [r * longest for r in _ints(config.get("refine", []))]
    nodes = float(sum(rungs) + sum(singles))
    evals = solver_evals(config) + EVALS_PER_STEP * sum(singles)
    evals += reference_evals(config, nodes)
    network = str(config.get("model", "exact")) != "exact"
    components = _problem(str(config.get("problem", "gaussian-lowrank")))[1]
    passes = sum(map(_passes, _guidance(config))) / len(_guidance(config))
    per_number = EVAL_NUMBER_S * passes * (NETWORK_FACTOR if network else float(components))
    pairwise = 4.0 if "metrics" in config else 0.0
    evals += _first(config, "lipschitz_times") * dim  # one Jacobian column per evaluation
    longest = max([longest, *singles])
    cell = estimate(
        n,
        dim,
        evals,
        nodes,
        pairwise=pairwise,
        per_number_s=per_number,
        longest=longest,
        eval_s=eval_seconds(config, n, dim),
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
