"""The single-step engine: one tableau (gradient part) x one transfer part."""

from __future__ import annotations

import torch

from .._tensor import add_into
from ..schedules import Schedule
from .base import EpsModel, Solver, State
from .tableau import Tableau
from .transfer import Transfer


def stage_time(t: torch.Tensor, s: torch.Tensor, c: float) -> torch.Tensor:
    """t + c (s - t), returning t and s themselves at c = 0 and c = 1 (no round-off)."""
    if c == 0.0:
        return t
    if c == 1.0:
        return s
    return t + c * (s - t)


def combine(weights, values: list[torch.Tensor]) -> torch.Tensor:
    """sum_j weights[j] values[j], skipping zero weights; a lone weight 1 returns its value
    itself (1 v is v, bit for bit). One pass per term: each further term is added into the
    first product with its weight fused (``add_into``)."""
    terms = [(w, v) for w, v in zip(weights, values, strict=True) if w != 0.0]
    if not terms:
        raise ValueError("all combination weights are zero")
    if len(terms) == 1 and terms[0][0] == 1.0:
        return terms[0][1]
    total = terms[0][0] * terms[0][1]
    for w, v in terms[1:]:
        total = add_into(total, v, w)
    return total


def rk_step(
    tableau: Tableau,
    transfer: Transfer,
    model: EpsModel,
    sched: Schedule,
    x: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ``tableau`` with ``transfer`` from t to s: (new x, slope of stage 1)."""
    slopes: list[torch.Tensor] = []
    for c, row in zip(tableau.c, tableau.a, strict=True):
        t_i = stage_time(t, s, c)
        x_i = x if not row else transfer.step(sched, x, combine(row, slopes), t, t_i)
        slopes.append(transfer.evaluate(sched, model, x_i, t_i))
    return transfer.step(sched, x, combine(tableau.b, slopes), t, s), slopes[0]


class RungeKuttaSolver(Solver):
    """A (pseudo) Runge-Kutta method: every step runs all stages of the tableau.

    ``into_clean``: the tableau of a step into sigma = 0 (t = 0), where a stage at the end
    point would evaluate the model on clean data (None: the same tableau). EDM's sampler takes
    that step with Euler (Karras et al. 2022, Algorithm 1).
    """

    def __init__(
        self,
        name: str,
        tableau: Tableau,
        transfer: Transfer,
        order: int,
        citation: str,
        summary: str,
        into_clean: Tableau | None = None,
    ):
        self.name, self.tableau, self.transfer = name, tableau, transfer
        self.starts_at_noise_end = transfer.noise_end
        self.into_clean = into_clean
        self.gradient = f"{tableau.label or tableau.name} tableau" + (
            f" ({into_clean.label or into_clean.name} into sigma = 0)" if into_clean else ""
        )
        self.order, self.gradient_order = order, tableau.order
        self.citation, self._summary = citation, summary

    @property
    def summary(self) -> str:
        return self._summary

    def nfe(self, steps: int) -> int:
        return self.tableau.stages * steps

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        steps = len(ts) - 1
        if self.into_clean is None or sched.scalars(float(ts[-1])).sigma != 0.0:
            return self.nfe(steps)
        return self.tableau.stages * (steps - 1) + self.into_clean.stages

    def plan(self, sched: Schedule, ts: torch.Tensor) -> bool:
        """Whether the grid ends at sigma = 0 (only its last step can go there)."""
        return self.into_clean is not None and sched.scalars(float(ts[-1])).sigma == 0.0

    def step(self, state: State) -> State:
        run = state.run
        tableau = self.into_clean if run.plan and state.is_last_step else self.tableau
        x, _ = rk_step(tableau, self.transfer, run.model, run.sched, state.x, state.t, state.s)
        return state.advanced(x)
