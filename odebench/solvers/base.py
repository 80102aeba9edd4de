"""What every solver declares, and the Solution it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..schedules import Schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Divergence:
    """Where a run stopped being finite: the step that produced the first non-finite state."""

    step: int  # 1-based: the state after `step` steps was the first non-finite one
    t_from: float
    t_to: float

    def __str__(self) -> str:
        return f"diverged at step {self.step} (t {self.t_from:g} -> {self.t_to:g})"


@dataclass
class Solution:
    """The result of ``odebench.solve``.

    ``x`` is the state at ts[-1] (NaN where the run diverged), ``nfe`` the model evaluations
    actually made, ``trajectory`` the states at every grid time (shape (len(ts), *x.shape)) when
    requested, and ``diverged`` where the run left the finite numbers, or None.
    """

    x: torch.Tensor
    nfe: int
    ts: torch.Tensor
    solver: str
    trajectory: torch.Tensor | None = None
    diverged: Divergence | None = None


class Solver(ABC):
    """A sampler seen as an ODE solver.

    Declared (and read by tests and studies, never copied): ``name``, ``order`` (theoretical
    global order, cited in the docstring), ``gradient_order`` (the order of the gradient part
    alone: the global order when the transfer is exact in the grid's variable, e.g. on a
    pure-quadrature problem on the "edm" schedule), ``nfe(steps)``, ``min_steps`` and
    ``warmup`` (a description of the start-up steps).
    """

    name: str = "solver"
    order: int | None = None
    gradient_order: int | None = None
    warmup: str = "none"
    citation: str = ""
    adaptive: bool = False
    #: True for methods that carry evaluations from earlier steps (multistep methods): one
    #: step from an exact state then needs an exact history too.
    takes_history: bool = False

    @abstractmethod
    def nfe(self, steps: int) -> int | None:
        """Model evaluations for ``steps`` steps (None for adaptive solvers)."""

    @property
    def min_steps(self) -> int:
        return 1

    def steps_for_nfe(self, nfe: int) -> int:
        """The most steps whose model evaluations fit in ``nfe`` (for equal-NFE comparisons)."""
        if self.adaptive:
            raise ValueError(f"{self.name} is adaptive: its NFE is not set by a step count")
        if self.nfe(self.min_steps) > nfe:
            raise ValueError(
                f"{self.name} needs {self.nfe(self.min_steps)} evaluations for its minimum of "
                f"{self.min_steps} steps; {nfe} is too few"
            )
        n = self.min_steps
        while self.nfe(n + 1) <= nfe:
            n += 1
        return n

    @abstractmethod
    def iterate(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        """Yield the state after each step: at ts[1], ts[2], ..., ts[-1]."""

    @property
    def summary(self) -> str:
        """One line for ``odebench list``."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return doc[0] if doc else self.name

    def __repr__(self) -> str:
        return f"<Solver {self.name!r} order={self.order}>"
