"""The single-step engine: one tableau (gradient part) x one transfer part."""

from __future__ import annotations

import torch

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
        x_i = x if not row else transfer.step_sum(sched, x, row, slopes, t, t_i)
        slopes.append(transfer.evaluate(sched, model, x_i, t_i))
    return transfer.step_sum(sched, x, tableau.b, slopes, t, s), slopes[0]


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
