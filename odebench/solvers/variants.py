"""Faithful variants of the PNDM family: what published implementations actually compute.

The paper's methods (``f-pndm``, ``s-pndm``) are defined on the ODE; the code people run
differs in details that change what is measured (docs/design/paper.md, "What published
implementations do"). Each variant here is the paper's method with exactly those details, on a
discrete T-step table, on the integer grid ``odebench.timesteps(S, "pndm", schedule=...)``
(training index i at t = (i + 1) / T, then t = 0):

- ``pndm-authors`` (Liu et al.'s code, runner/method.py): the network is called at index i
  while the transfer reads abar at index i + 1 (one step noisier), and the last step, to
  index -1, therefore lands on abar_0 = 1 - beta_0 instead of 1. PRK midpoints at
  half-integer indices read abar at floor(index) + 1.
- ``pndm-diffusers`` (diffusers' PNDMScheduler, default): F-PNDM whose PRK half steps are
  integer timesteps ((T // S) // 2 indices; when T // S is odd the first stage is transferred
  one index above where the network is then called), and whose last step targets abar_0
  (``set_alpha_to_one=False``, the scheduler's default): the final step is then a no-op that
  still calls the network.
- ``plms-diffusers`` (PNDMScheduler with ``skip_prk_steps=True``, the PLMS of CompVis'
  latent-diffusion): one PIE step, then pseudo AB2, AB3, AB4 on the history; N + 1 NFE;
  last step to abar_0 by default.

A variant reads the schedule through ``TransferTimes``, which maps the times at which the
transfer reads abar, while the model is called at the grid's own times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..schedules import Schedule
from .base import EpsModel, Solver, State
from .multistep import MultistepSolver, RungeKuttaWarmup
from .tableau import HEUN, RK4
from .transfer import DDIMTransfer

LIU_CODE = "Liu et al. 2022, github.com/luping-liu/PNDM runner/method.py"
DIFFUSERS = "diffusers PNDMScheduler (huggingface/diffusers)"


class TransferTimes:
    """A schedule whose ``scalars`` (what the DDIM transfer reads) are taken at ``tau(t)``."""

    def __init__(self, sched, tau: Callable[[float], float]):
        self._sched, self._tau = sched, tau

    def scalars(self, t: float):
        return self._sched.scalars(self._tau(t))

    def __getattr__(self, name: str):
        return getattr(self._sched, name)


def _index(t: float, T: int) -> float:
    """The training index of time t: t T - 1 (odebench's discrete convention)."""
    return t * T - 1.0


def _check_integer_grid(name: str, sched, ts: torch.Tensor) -> int:
    T = getattr(sched, "T", None)
    if T is None:
        raise ValueError(f"{name} runs on a discrete schedule table (e.g. 'ddpm-linear-1000')")
    idx = ts * T
    if bool(((idx - idx.round()).abs() > 1e-6).any()):
        raise ValueError(
            f"{name} needs a grid on the table's integer steps t = (i + 1) / T, "
            "e.g. odebench.timesteps(S, 'pndm', schedule=...)"
        )
    return T


class VariantSolver(Solver):
    """A base solver run with the transfer reading abar at mapped times."""

    def __init__(
        self,
        name: str,
        base: Solver,
        tau: Callable[[float, int], float],
        summary: str,
        citation: str,
    ):
        self.name, self.base, self._tau = name, base, tau
        self.transfer, self.takes_history = base.transfer, base.takes_history
        self.history_depth, self.keeps_current = base.history_depth, base.keeps_current
        self.gradient = base.gradient + " (transfer reads abar at shifted indices)"
        self.order, self.gradient_order = base.order, base.gradient_order
        self.warmup, self.citation, self._summary = base.warmup, citation, summary

    @property
    def summary(self) -> str:
        return self._summary

    @property
    def min_steps(self) -> int:
        return self.base.min_steps

    def nfe(self, steps: int) -> int | None:
        return self.base.nfe(steps)

    def describe_step(self, n: int, steps: int) -> str:
        return self.base.describe_step(n, steps)

    def _view(self, sched: Schedule, ts: torch.Tensor) -> TransferTimes:
        T = _check_integer_grid(self.name, sched, ts)
        rule = getattr(getattr(self.base, "_warmup", None), "step", None)
        if isinstance(rule, DiffusersPRKStep) and rule.T != T:
            raise ValueError(
                f"{self.name} was built for a {rule.T}-step table, the schedule has {T}"
            )
        return TransferTimes(sched, lambda t: self._tau(t, T))

    def init(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor, noise=None
    ) -> State:
        return self.base.init(model, self._view(sched, ts), x, ts, noise)

    def exact_state(
        self,
        model: EpsModel,
        sched: Schedule,
        ts: torch.Tensor,
        n: int,
        states: Sequence[torch.Tensor] | torch.Tensor,
    ) -> State:
        return self.base.exact_state(model, self._view(sched, ts), ts, n, states)

    def step(self, state: State) -> State:
        return self.base.step(state)


def _authors_tau(t: float, T: int) -> float:
    """abar at index floor(i) + 1 for the network's index i (``alphas_cump[t.long() + 1]``)."""
    return (math.floor(_index(t, T) + 1e-9) + 2.0) / T


def _final_abar0(set_alpha_to_one: bool):
    def tau(t: float, T: int) -> float:
        return 1.0 / T if (t == 0.0 and not set_alpha_to_one) else t

    return tau


def pndm_authors() -> VariantSolver:
    """F-PNDM as the PNDM authors' code computes it: network at index i, abar read at i + 1,
    last step to abar_0. Declared order 2 (the method); the index shift adds an O(1 / T)
    bias and the last step stops at sigma_0 = sqrt(beta_0)."""
    base = MultistepSolver(
        "f-pndm",
        DDIMTransfer(),
        4,
        RungeKuttaWarmup(RK4, 3),
        order=2,
        citation=LIU_CODE,
        summary="",
    )
    return VariantSolver(
        "pndm-authors",
        base,
        _authors_tau,
        "F-PNDM as in the authors' code: abar read one index later, last step to abar_0",
        LIU_CODE,
    )


def pndm_diffusers(set_alpha_to_one: bool = False, T: int = 1000) -> VariantSolver:
    """F-PNDM as diffusers' PNDMScheduler computes it (PRK half steps rounded down to integer
    timesteps of a T-step table; last step to abar_0 unless ``set_alpha_to_one``)."""
    warm = RungeKuttaWarmup(RK4, 3, step=DiffusersPRKStep(T))
    base = MultistepSolver(
        "f-pndm", DDIMTransfer(), 4, warm, order=2, citation=DIFFUSERS, summary=""
    )
    return VariantSolver(
        "pndm-diffusers",
        base,
        _final_abar0(set_alpha_to_one),
        "diffusers PNDMScheduler: integer PRK half steps, last step to abar_0",
        DIFFUSERS,
    )


def plms_diffusers(set_alpha_to_one: bool = False) -> VariantSolver:
    """PLMS as diffusers' PNDMScheduler(skip_prk_steps=True) / CompVis computes it: one PIE
    step, then pseudo AB2, AB3, AB4; N + 1 NFE; last step to abar_0 unless
    ``set_alpha_to_one``. Declared order 2."""
    base = MultistepSolver(
        "plms",
        DDIMTransfer(),
        4,
        RungeKuttaWarmup(HEUN, 1),
        order=2,
        citation=DIFFUSERS,
        summary="",
    )
    return VariantSolver(
        "plms-diffusers",
        base,
        _final_abar0(set_alpha_to_one),
        "CompVis / diffusers PLMS: PIE, then AB2, AB3, AB4 ramp; last step to abar_0",
        DIFFUSERS,
    )


class DiffusersPRKStep:
    """One PRK step exactly as PNDMScheduler.step_prk takes it on a T-step table.

    With S sampling steps the half step is h2 = (T // S) // 2 indices. The scheduler
    transfers the first stage to index i - h2 but evaluates the network for stages 2 and 3
    at the next entry of its timestep list, i_next + h2: the same index when T // S is even,
    one index lower when it is odd (e.g. S = 40: transfer to 963, network at 962)."""

    def __init__(self, T: int):
        self.T = int(T)

    def __call__(self, transfer, model, sched, x, t, s):
        half = (round(float(t - s) * self.T) // 2) / self.T
        below, above = t - half, s + half
        e1 = model(x, t)
        e2 = model(transfer.step(sched, x, e1, t, below), above)
        e3 = model(transfer.step(sched, x, e2, t, above), above)
        e4 = model(transfer.step(sched, x, e3, t, s), s)
        e = (e1 + 2.0 * e2 + 2.0 * e3 + e4) / 6.0
        return transfer.step(sched, x, e, t, s), e1


FACTORIES = {
    "pndm-authors": pndm_authors,
    "pndm-diffusers": pndm_diffusers,
    "plms-diffusers": plms_diffusers,
}
