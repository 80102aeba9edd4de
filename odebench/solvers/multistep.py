"""The multistep engine: Adams-Bashforth on the history of slopes, after a named warm-up.

Warm-ups (what fills the history before AB-k has k values):

- ``RungeKuttaWarmup(tableau, steps)``: the first ``steps`` steps are full (pseudo) RK steps;
  the history keeps only each step's first-stage slope g(x_n, t_n) (F-PNDM, Liu et al. 2022,
  Algorithm 2: "the history keeps e_1 of each warm-up step, not the averaged e'").
- ``RampWarmup(steps)``: AB-1, AB-2, ... on whatever history exists (the lower-order ramp of
  the CompVis PLMS and of DEIS' iPNDM). Its first step is Euler, whose O(h^2) local error caps
  the global order at 2 whatever k is.

A warm-up declares ``global_order``: the order it allows (its local errors are made a fixed
number of times, so a warm-up of local order p + 1 allows global order p + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..ode import time_variable
from .base import Solver
from .runge_kutta import combine, rk_step
from .tableau import AB_FIXED, Tableau, ab_variable_weights
from .transfer import Transfer

WEIGHTS = ("fixed", "variable")


@dataclass(frozen=True)
class RungeKuttaWarmup:
    tableau: Tableau
    steps: int
    #: Replaces the tableau's step where an implementation deviates from it (``step(transfer,
    #: model, sched, x, t, s) -> (x_new, first_slope)``); None: the tableau's own step.
    step: Callable | None = None

    @property
    def global_order(self) -> int:
        return self.tableau.order + 1

    def describe(self, pseudo: bool) -> str:
        kind = {
            "euler": "Euler",
            "heun": "PIE" if pseudo else "Heun",
            "rk4": "PRK" if pseudo else "RK4",
        }[self.tableau.name]
        return f"{self.steps} {kind} step{'s' if self.steps > 1 else ''}"


@dataclass(frozen=True)
class RampWarmup:
    steps: int

    @property
    def global_order(self) -> int:
        return 2

    def describe(self, pseudo: bool) -> str:
        return f"lower-order ramp AB1..AB{self.steps}"


class MultistepSolver(Solver):
    """AB-k on the slopes of ``transfer`` after a warm-up.

    ``weights="fixed"`` uses the equal-step AB coefficients whatever the grid (as the PNDM paper
    and its implementations do); ``"variable"`` integrates the Lagrange interpolant of the
    history in the transfer's own variable (t for the linear transfer, sigma_tilde for DDIM).
    """

    takes_history = True

    def __init__(
        self,
        name: str,
        transfer: Transfer,
        k: int,
        warmup: RungeKuttaWarmup | RampWarmup,
        order: int,
        citation: str,
        summary: str,
        weights: str = "fixed",
        gradient_order: int | None = None,
    ):
        if k not in AB_FIXED:
            raise ValueError(f"Adams-Bashforth order must be 1..4, got {k}")
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        self.name, self.transfer, self.k, self._warmup = name, transfer, k, warmup
        self.weights = weights
        self.order = order
        self.gradient_order = (
            gradient_order if gradient_order is not None else min(k, warmup.global_order)
        )
        self.citation, self._summary = citation, summary
        self.warmup = warmup.describe(pseudo=transfer.name == "ddim")

    @property
    def summary(self) -> str:
        return self._summary

    @property
    def min_steps(self) -> int:
        return self._warmup.steps + 1

    def nfe(self, steps: int) -> int:
        if isinstance(self._warmup, RungeKuttaWarmup):
            w = min(self._warmup.steps, steps)
            return w * self._warmup.tableau.stages + (steps - w)
        return steps

    def _ab_weights(self, sched, ts, n: int, m: int) -> tuple[float, ...]:
        if self.weights == "fixed":
            return AB_FIXED[m]
        var = time_variable(self.transfer.variable)
        nodes = var.of_t(sched, ts[n - m + 1 : n + 1].flip(0)).numpy()
        v_to = float(var.of_t(sched, ts[n + 1]))
        return tuple(ab_variable_weights(np.asarray(nodes), float(nodes[0]), v_to))

    def ab_step(self, model, sched, x, ts, n: int, history: list[torch.Tensor]) -> torch.Tensor:
        """The Adams-Bashforth step n (from ts[n] to ts[n+1]) with the earlier slopes
        ``history`` (oldest first, slopes at ts[n-len(history)] .. ts[n-1]); appends the new
        slope at (x, ts[n]) to ``history``. Also used to measure local errors from an exact
        history."""
        t, s = ts[n], ts[n + 1]
        history.append(self.transfer.slope(sched, x, t, model(x, t)))
        m = min(self.k, len(history))
        w = self._ab_weights(sched, ts, n, m)
        return self.transfer.step(sched, x, combine(w, history[::-1][:m]), t, s)

    def iterate(self, model, sched, x, ts) -> Iterator[torch.Tensor]:
        history: list[torch.Tensor] = []  # oldest first
        warm = self._warmup
        for n in range(len(ts) - 1):
            if isinstance(warm, RungeKuttaWarmup) and n < warm.steps:
                if warm.step is not None:
                    x, first_slope = warm.step(self.transfer, model, sched, x, ts[n], ts[n + 1])
                else:
                    x, first_slope = rk_step(
                        warm.tableau, self.transfer, model, sched, x, ts[n], ts[n + 1]
                    )
                history.append(first_slope)
            else:
                x = self.ab_step(model, sched, x, ts, n, history)
            del history[: -self.k]
            yield x
