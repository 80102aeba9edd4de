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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ode import time_variable
from .base import Node, Solver, State
from .ramp import OrderRule
from .runge_kutta import rk_step
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
        kind = self.tableau.describe(pseudo)
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
        self.starts_at_noise_end = transfer.noise_end
        self.weights = weights
        self.order = order
        self.gradient_order = (
            gradient_order if gradient_order is not None else min(k, warmup.global_order)
        )
        self.citation, self._summary = citation, summary
        self.warmup = warmup.describe(pseudo=transfer.name == "ddim")
        self.gradient = f"AB{k} ({weights} weights) after {self.warmup}"
        #: The ramp: step n combines min(k, n + 1) slopes (a full history after an RK warm-up).
        self.rule = OrderRule(k, clean_end_first_order=False)
        self.history_depth = k - 1  # the slopes at the k - 1 nodes before n
        # AB-k is exact for polynomials of degree k - 1 in the transfer's variable when its
        # weights are computed there; equal-step weights are that only on grids uniform in it
        # (in t for the linear transfer on uniform grids; seldom in sigma_tilde), else 2.
        exact_weights = weights == "variable" or transfer.variable == "t"
        self.interior_order = k if exact_weights else min(k, 2)

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

    def _in_warmup(self, n: int) -> bool:
        return isinstance(self._warmup, RungeKuttaWarmup) and n < self._warmup.steps

    def describe_step(self, n: int, steps: int) -> str:
        if self._in_warmup(n):
            return f"warm-up ({self.warmup})"
        return f"AB{self.rule.order_at(n, steps)}"

    def step(self, state: State) -> State:
        run, n, x = state.run, state.n, state.x
        sched, t, s = run.sched, state.t, state.s
        if self._in_warmup(n):  # a full (pseudo) RK step; keep its first-stage slope
            warm = self._warmup
            take = warm.step if warm.step is not None else _tableau_step(warm.tableau)
            x_new, first = take(self.transfer, run.model, sched, x, t, s)
            history = (*state.history, Node(n, first))
        else:  # AB-m on the slopes at nodes n - m + 1 .. n
            history = (*state.history, Node(n, self.node_value(run, x, n)))
            m = self.rule.order_at(n, run.steps)
            w = self._ab_weights(sched, run.ts, n, m)
            g_terms = [node.value for node in history[::-1][:m]]  # g = sum_j w_j g_terms[j]
            x_new = self.transfer.step_sum(sched, x, w, g_terms, t, s)
        return state.advanced(x_new, self.kept(history))


def _tableau_step(tableau: Tableau) -> Callable:
    def take(transfer, model, sched, x, t, s):
        return rk_step(tableau, transfer, model, sched, x, t, s)

    return take
