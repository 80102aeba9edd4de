"""Solvers by name: ``odebench.solvers.get("f-pndm")``.

Each is a composition of a gradient part (a tableau, Adams-Bashforth weights with a warm-up,
DPM-Solver's stages or divided differences, UniPC's B(h), DEIS' interpolation) and a transfer
part (``odebench.solvers.transfer``); ``solver.composition`` says which, ``odebench list``
shows them all. ``register`` adds a solver of your own under a name.
"""

from __future__ import annotations

from .base import Divergence, Solution, Solver
from .multistep import MultistepSolver
from .noise import BrownianNoise, BrownianPath, GaussianNoise
from .pf import AdaptiveReference
from .registry import ALIASES, PAPER_FAMILY, get, names, register, sde_names, unregister
from .runge_kutta import RungeKuttaSolver
from .solve import solve

__all__ = [
    "ALIASES",
    "PAPER_FAMILY",
    "AdaptiveReference",
    "BrownianNoise",
    "BrownianPath",
    "Divergence",
    "GaussianNoise",
    "MultistepSolver",
    "RungeKuttaSolver",
    "Solution",
    "Solver",
    "get",
    "names",
    "register",
    "sde_names",
    "solve",
    "unregister",
]
