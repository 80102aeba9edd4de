"""The single-step engine: one tableau (gradient part) x one transfer part."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

from ..schedules import Schedule
from .base import EpsModel, Solver
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
    """sum_j weights[j] values[j], skipping zero weights."""
    total = None
    for w, v in zip(weights, values, strict=True):
        if w == 0.0:
            continue
        total = w * v if total is None else total + w * v
    if total is None:
        raise ValueError("all combination weights are zero")
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
        slopes.append(transfer.slope(sched, x_i, t_i, model(x_i, t_i)))
    return transfer.step(sched, x, combine(tableau.b, slopes), t, s), slopes[0]


class RungeKuttaSolver(Solver):
    """A (pseudo) Runge-Kutta method: every step runs all stages of the tableau."""

    def __init__(
        self,
        name: str,
        tableau: Tableau,
        transfer: Transfer,
        order: int,
        citation: str,
        summary: str,
    ):
        self.name, self.tableau, self.transfer = name, tableau, transfer
        self.order, self.gradient_order = order, tableau.order
        self.citation, self._summary = citation, summary

    @property
    def summary(self) -> str:
        return self._summary

    def nfe(self, steps: int) -> int:
        return self.tableau.stages * steps

    def iterate(self, model, sched, x, ts) -> Iterator[torch.Tensor]:
        for t, s in itertools.pairwise(ts):
            x, _ = rk_step(self.tableau, self.transfer, model, sched, x, t, s)
            yield x
