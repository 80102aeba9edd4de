"""DPM-Solver (singlestep, noise prediction) and DPM-Solver++ (multistep, data prediction).

- Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
  Model Sampling in Around 10 Steps", NeurIPS 2022 (arXiv 2206.00927), "Lu 2022a" below.
- Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
  Probabilistic Models", arXiv 2211.01095, "Lu 2022b" below.

Both are exponential integrators in the log-SNR lambda = log(alpha / sigma), which increases
along sampling. For a step from t to s (t > s) with h = lambda_s - lambda_t > 0 the exact
solution of the probability-flow ODE is (Lu 2022a, Eq. 3.4, and its data-prediction form in
Lu 2022b, with x0 = (x - sigma eps) / alpha)

    x_s = (alpha_s / alpha_t) x_t - alpha_s int_{lambda_t}^{lambda_s} e^{-lambda} eps dlambda
        = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^{lambda} x0 dlambda.

Freezing eps (or x0) at the start of the step gives the first-order update, which is the
DDIM map phi of Liu et al. (2022, Eq. 9) in either form:

    x_s = (alpha_s / alpha_t) x - sigma_s expm1(h) eps
        = (sigma_s / sigma_t) x - alpha_s expm1(-h) x0.

Every method here is that map applied to an assembled eps' (or x0'), so in odebench's
decomposition (DESIGN.md) the transfer is ``ddim`` and the methods differ in their gradient
part: stages at fractions of h in lambda (singlestep) or divided differences of the x0
history in lambda (multistep). Because the transfer is exact for constant eps, all of them
are exact on Dirac data (Property 3.1 of Liu et al.), on any grid.

A step into a point with sigma = 0 (t = 0, lambda = +inf, e.g. the last point of the "pndm"
grid) has h = inf: no stage can be placed inside it and no divided difference formed. It is
taken with the first-order update, x_s = alpha_s x0(x_t, t) (the x0-prediction; alpha_s = 1),
as diffusers' DPM-Solver schedulers do (``final_sigmas_type="zero"`` forces order 1 there).
A singlestep solver therefore spends one evaluation, not k, on that step (``nfe_on``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import torch

from ..schedules import Schedule
from ..schedules.base import ScheduleScalars
from .base import EpsModel, Solver
from .transfer import DDIMTransfer

LU_2022A = (
    "Lu et al. 2022, DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model "
    "Sampling in Around 10 Steps (NeurIPS 2022)"
)
LU_2022B = (
    "Lu et al. 2022, DPM-Solver++: Fast Solver for Guided Sampling of Diffusion "
    "Probabilistic Models (arXiv 2211.01095)"
)

#: diffusers' DPMSolverMultistepScheduler lowers the order of the last steps below this many
#: steps (``lower_order_final``); Lu et al.'s dpm_solver_pytorch.py uses 10.
LOWER_ORDER_FINAL_BELOW = 15


# -- the first-order update (= DDIM) in its two forms -----------------------------------------
def noise_step(
    x: torch.Tensor, eps: torch.Tensor, here: ScheduleScalars, there: ScheduleScalars
) -> torch.Tensor:
    """DPM-Solver-1 from ``here`` (t) to ``there`` (s): x_s = (alpha_s / alpha_t) x - sigma_s
    expm1(h) eps, h = lambda_s - lambda_t (Lu 2022a, Sec. 3.3; = DDIM). Into sigma_s = 0 it
    is alpha_s x0 = alpha_s (x - sigma_t eps) / alpha_t."""
    ratio = math.exp(0.5 * (there.log_alpha_bar - here.log_alpha_bar))  # alpha_s / alpha_t
    if there.sigma == 0.0:
        coef = -there.alpha * here.sigma / here.alpha
    else:
        coef = -there.sigma * math.expm1(there.lam - here.lam)
    return ratio * x + coef * eps


def data_step(
    x: torch.Tensor, x0: torch.Tensor, here: ScheduleScalars, there: ScheduleScalars
) -> torch.Tensor:
    """DPM-Solver++1 from ``here`` (t) to ``there`` (s): x_s = (sigma_s / sigma_t) x - alpha_s
    expm1(-h) x0 (Lu 2022b; = DDIM). Into sigma_s = 0 (h = inf) it is alpha_s x0."""
    if there.sigma == 0.0:
        return there.alpha * x0
    return (there.sigma / here.sigma) * x - there.alpha * math.expm1(here.lam - there.lam) * x0


def x0_prediction(x: torch.Tensor, eps: torch.Tensor, here: ScheduleScalars) -> torch.Tensor:
    """The data prediction x0 = (x - sigma eps) / alpha."""
    return (x - here.sigma * eps) / here.alpha


def _at(t: float) -> torch.Tensor:
    return torch.tensor(t, dtype=torch.float64)


# -- singlestep DPM-Solver-k (noise prediction) -----------------------------------------------
class SinglestepDPMSolver(Solver):
    """Singlestep DPM-Solver-k with noise prediction (Lu 2022a); k stages per step in lambda.

    For a step t -> s, h = lambda_s - lambda_t, e0 = eps(x, t), stage times
    s_j = t_lambda(lambda_t + r_j h) and phi_1(z) = expm1(z):

    - k = 1 (DPM-Solver-1, = DDIM): x_s = (alpha_s / alpha_t) x - sigma_s phi_1(h) e0.
    - k = 2 (Algorithm 1, r1 = 1/2): u = (alpha_s1 / alpha_t) x - sigma_s1 phi_1(r1 h) e0,
      x_s = (alpha_s / alpha_t) x - sigma_s phi_1(h) e0
            - sigma_s phi_1(h) / (2 r1) (eps(u, s1) - e0),
      i.e. for r1 = 1/2 the DDIM map with the lambda-midpoint slope eps(u, s1).
    - k = 3 (Algorithm 2, r1 = 1/3, r2 = 2/3): u1 = (alpha_s1 / alpha_t) x - sigma_s1
      phi_1(r1 h) e0, D1 = eps(u1, s1) - e0;
      u2 = (alpha_s2 / alpha_t) x - sigma_s2 phi_1(r2 h) e0 - sigma_s2 (r2 / r1)
      (phi_1(r2 h) / (r2 h) - 1) D1, D2 = eps(u2, s2) - e0;
      x_s = (alpha_s / alpha_t) x - sigma_s phi_1(h) e0 - (sigma_s / r2) (phi_1(h) / h - 1) D2.

    Global order k (Lu 2022a, Theorem 3.2), on any grid. The stage times are placed in lambda
    and inverted with ``sched.t_from_lambda`` once per grid (one vectorised call); the r_j used
    in the weights are the realised ones, (lambda(s_j) - lambda_t) / h, so the stages and the
    weights agree to round-off whatever the inversion's accuracy. NFE = k N (k (N - 1) + 1 on a
    grid ending at sigma = 0, whose last step is DPM-Solver-1).
    """

    #: stage fractions r_j of h, by order (Lu 2022a, Algorithms 1 and 2)
    FRACTIONS: ClassVar[dict[int, tuple[float, ...]]] = {
        1: (),
        2: (1.0 / 2.0,),
        3: (1.0 / 3.0, 2.0 / 3.0),
    }

    def __init__(self, k: int):
        if k not in self.FRACTIONS:
            raise ValueError(f"singlestep DPM-Solver order must be 1, 2 or 3, got {k}")
        self.k = k
        self.name = f"dpm-solver-{k}"
        self.order = self.gradient_order = k
        self.transfer = DDIMTransfer()  # every update is the DDIM map with an assembled eps'
        self.citation = LU_2022A
        self.warmup = "none"

    @property
    def summary(self) -> str:
        what = {1: "= DDIM", 2: "r1 = 1/2", 3: "r1, r2 = 1/3, 2/3"}[self.k]
        return f"singlestep DPM-Solver-{self.k} ({what}), eps prediction; order {self.k}"

    def nfe(self, steps: int) -> int:
        """k evaluations per step (on a grid whose last point has sigma > 0; see ``nfe_on``)."""
        return self.k * steps

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        """Evaluations on this grid: a last step into sigma = 0 costs one, not k."""
        steps = len(ts) - 1
        into_clean = sched.scalars(float(ts[-1])).sigma == 0.0
        return self.k * steps - (self.k - 1) * int(into_clean)

    def stage_times(self, sched: Schedule, ts: torch.Tensor) -> list[tuple[float, ...]]:
        """The stage times s_j = t_lambda(lambda_t + r_j h) of every step (empty for a step
        into sigma = 0), from one vectorised inversion of lambda."""
        fr = self.FRACTIONS[self.k]
        scal = [sched.scalars(float(t)) for t in ts]
        lams = []
        for here, there in itertools.pairwise(scal):
            if there.sigma > 0.0:
                lams.extend(here.lam + r * (there.lam - here.lam) for r in fr)
        flat = sched.t_from_lambda(torch.tensor(lams, dtype=torch.float64)).tolist() if lams else []
        out, i = [], 0
        for there in scal[1:]:
            n = len(fr) if there.sigma > 0.0 else 0
            out.append(tuple(flat[i : i + n]))
            i += n
        return out

    def step(
        self,
        model: EpsModel,
        sched: Schedule,
        x: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        stages: Sequence[float],
    ) -> torch.Tensor:
        """One step from t to s with the given stage times (see ``stage_times``)."""
        return self.advance(model, sched, x, model(x, t), t, s, stages)

    def advance(
        self,
        model: EpsModel,
        sched: Schedule,
        x: torch.Tensor,
        e0: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        stages: Sequence[float],
    ) -> torch.Tensor:
        """``step`` with e0 = eps(x, t) already evaluated (for multistep warm-ups)."""
        here, there = sched.scalars(float(t)), sched.scalars(float(s))
        if not stages:  # DPM-Solver-1, or any step into sigma = 0
            return noise_step(x, e0, here, there)
        h = there.lam - here.lam
        ratio = math.exp(0.5 * (there.log_alpha_bar - here.log_alpha_bar))  # alpha_s / alpha_t
        phi1 = math.expm1(h)
        s1 = sched.scalars(stages[0])
        r1 = (s1.lam - here.lam) / h
        u1 = noise_step(x, e0, here, s1)
        d1 = model(u1, _at(stages[0])) - e0
        if self.k == 2:
            return ratio * x - there.sigma * phi1 * e0 - (there.sigma * phi1 / (2.0 * r1)) * d1
        s2 = sched.scalars(stages[1])
        r2 = (s2.lam - here.lam) / h
        phi22 = math.expm1(r2 * h) / (r2 * h) - 1.0
        u2 = noise_step(x, e0, here, s2) - (s2.sigma * (r2 / r1) * phi22) * d1
        d2 = model(u2, _at(stages[1])) - e0
        phi2 = phi1 / h - 1.0
        return ratio * x - there.sigma * phi1 * e0 - (there.sigma / r2 * phi2) * d2

    def iterate(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        stages = self.stage_times(sched, ts)
        for n in range(len(ts) - 1):
            x = self.step(model, sched, x, ts[n], ts[n + 1], stages[n])
            yield x


# -- multistep DPM-Solver++ (data prediction) -------------------------------------------------
class MultistepDPMSolverPP(Solver):
    """Multistep DPM-Solver++(kM) with data prediction x0 = (x - sigma eps) / alpha (Lu 2022b).

    One evaluation per step, at the grid point t_n; the history keeps the last k data
    predictions m_n, m_{n-1}, m_{n-2} and their lambdas. With h = lambda_{n+1} - lambda_n,
    r0 = (lambda_n - lambda_{n-1}) / h, r1 = (lambda_{n-1} - lambda_{n-2}) / h:

    - order 1: x_{n+1} = (sigma_{n+1} / sigma_n) x_n - alpha_{n+1} expm1(-h) m_n (= DDIM);
    - order 2 (Algorithm 2, DPM-Solver++(2M)): the same map with
      x0' = m_n + (m_n - m_{n-1}) / (2 r0);
    - order 3 (3M, the third-order multistep update of Lu et al.'s dpm_solver_pytorch.py and
      of diffusers; 2211.01095 itself states only 2M): D1_0 = (m_n - m_{n-1}) / r0,
      D1_1 = (m_{n-1} - m_{n-2}) / r1, D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),
      D2 = c (D1_0 - D1_1) / (r0 + r1),
      x_{n+1} = (sigma_{n+1} / sigma_n) x_n - alpha_{n+1} phi_1 m_n + alpha_{n+1} phi_2 D1
      - alpha_{n+1} phi_3 D2, phi_1 = expm1(-h), phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 1/2,
      with c = 1 as the implementations have it (default) or c = 2 (``taylor_d2=True``).

    Order of step n (0-based, N steps) with ``start="ramp"`` (the implementations' start):
    min(k, n + 1), i.e. DPM-Solver++1, then 2M, then 3M as the history fills; with
    ``lower_order_final`` and N < ``lower_order_final_below`` (15, diffusers' rule; Lu et
    al.'s code uses 10) also at most N - n (the last step order 1, the one before at most 2);
    and 1 for a step into sigma = 0. NFE = N.

    Declared global order: 2 for 2M, and 2 for 3M as implemented, for two separate reasons,
    each measured in tests/test_dpm_solver.py:

    - D2. Writing the exact step as x_{n+1} = (sigma_{n+1} / sigma_n) x_n + alpha_{n+1}
      int_0^h e^{-(h - tau)} m(lambda_n + tau) dtau and expanding m to second order gives the
      weights -phi_1, h phi_2 and -h^2 phi_3 for m, m' and m''. The divided differences above
      give D1 = h m' + O(h^3) but D2 = h^2 m'' / 2 + O(h^3), so with c = 1 the m'' term is half
      what it should be: the local error is O(h^3), not O(h^4), and the method is second order
      whatever its start. ``taylor_d2=True`` (c = 2, the value the singlestep 'taylor' update of
      the same codes uses) makes the step third order.
    - The start. The ramp's first step is first order; its O(h^2) local error is never damped,
      and a method of order 3 needs starting values accurate to O(h^3) (Hairer, Norsett &
      Wanner I, Sec. III.4), so the ramp caps 3M at 2 as the Euler start caps ``pndm-ramp``
      (2M needs only O(h^2): its ramp is enough). The error of that first step is about
      -sigma_s (d eps / d lambda) h^2 / 2 (x0' = -e^{-lambda} eps' along the flow):
      negligible where eps barely moves at high noise (data distributions), not for the
      quadrature field. ``start="dpm-solver-2"`` takes the first step with singlestep
      DPM-Solver-2 instead (its first-stage x0 enters the history; the ramp then goes on with
      2M), at NFE = N + 1.

    With both ``taylor_d2=True`` and ``start="dpm-solver-2"`` 3M is third order (declared 3).
    """

    STARTS: ClassVar[tuple[str, ...]] = ("ramp", "dpm-solver-2")

    takes_history = True

    def __init__(
        self,
        k: int,
        lower_order_final: bool = True,
        lower_order_final_below: int = LOWER_ORDER_FINAL_BELOW,
        start: str = "ramp",
        taylor_d2: bool = False,
    ):
        if k not in (1, 2, 3):
            raise ValueError(f"multistep DPM-Solver++ order must be 1, 2 or 3, got {k}")
        if isinstance(lower_order_final_below, bool) or not isinstance(
            lower_order_final_below, int
        ):
            raise ValueError("lower_order_final_below must be an integer number of steps")
        if start not in self.STARTS:
            raise ValueError(f"start must be one of {self.STARTS}, got {start!r}")
        self.k, self.start, self.taylor_d2 = k, start, bool(taylor_d2)
        self.d2_factor = 2.0 if self.taylor_d2 else 1.0
        self.lower_order_final = bool(lower_order_final)
        self.lower_order_final_below = lower_order_final_below
        self.name = f"dpm-solver++-{k}m"
        third = k == 3 and start == "dpm-solver-2" and self.taylor_d2
        self.order = self.gradient_order = 3 if third else min(k, 2)
        self.transfer = DDIMTransfer()  # the data-form update is the DDIM map with x0'
        self.citation = LU_2022B
        self._starter = SinglestepDPMSolver(2) if start == "dpm-solver-2" else None
        ramp = ["DPM-Solver-2" if self._starter else "1M"] + [f"{j}M" for j in range(2, k + 1)]
        begin = "ramp " + ", ".join(ramp) if k > 1 or self._starter else "none"
        final = f"; lower order final if N < {lower_order_final_below}"
        self.warmup = begin + (final if self.lower_order_final else "")

    @property
    def summary(self) -> str:
        why = " (D2 and ramp as implemented)" if self.k == 3 and self.order == 2 else ""
        return f"multistep DPM-Solver++({self.k}M), x0 prediction; order {self.order}{why}"

    def nfe(self, steps: int) -> int:
        """N, plus one for a DPM-Solver-2 first step (grids whose last sigma > 0)."""
        return steps + int(self._starter is not None)

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        """Evaluations on this grid (a DPM-Solver-2 first step into sigma = 0 costs one)."""
        steps = len(ts) - 1
        single_into_clean = steps == 1 and sched.scalars(float(ts[-1])).sigma == 0.0
        return steps + int(self._starter is not None and not single_into_clean)

    def step_order(self, n: int, steps: int, into_clean: bool = False) -> int:
        """The multistep order used for step n (0-based) of ``steps`` (class docstring)."""
        if into_clean:
            return 1
        order = min(self.k, n + 1)
        if self.lower_order_final and steps < self.lower_order_final_below:
            order = min(order, steps - n)
        return order

    @staticmethod
    def update(
        x: torch.Tensor,
        history: Sequence[tuple[float, torch.Tensor]],
        here: ScheduleScalars,
        there: ScheduleScalars,
        order: int,
        d2_factor: float = 1.0,
    ) -> torch.Tensor:
        """The order-``order`` update from ``here`` (t_n, where the state is x) to ``there``
        with ``history`` = [(lambda_j, m_j)] oldest first, its last entry at t_n."""
        lam0, m0 = history[-1]
        if order == 1 or there.sigma == 0.0:
            return data_step(x, m0, here, there)
        h = there.lam - lam0
        lam1, m1 = history[-2]
        r0 = (lam0 - lam1) / h
        d1_0 = (m0 - m1) / r0
        if order == 2:
            return data_step(x, m0 + 0.5 * d1_0, here, there)
        lam2, m2 = history[-3]
        r1 = (lam1 - lam2) / h
        d1_1 = (m1 - m2) / r1
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (d2_factor / (r0 + r1)) * (d1_0 - d1_1)
        phi1 = math.expm1(-h)
        phi2 = phi1 / h + 1.0
        phi3 = phi2 / h - 0.5
        a = there.alpha
        return (there.sigma / here.sigma) * x - (a * phi1) * m0 + (a * phi2) * d1 - (a * phi3) * d2

    def iterate(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        steps = len(ts) - 1
        stages = self._starter.stage_times(sched, ts[:2]) if self._starter else []
        history: list[tuple[float, torch.Tensor]] = []  # (lambda_j, x0_j), oldest first
        for n in range(steps):
            here, there = sched.scalars(float(ts[n])), sched.scalars(float(ts[n + 1]))
            eps = model(x, ts[n])
            history.append((here.lam, x0_prediction(x, eps, here)))
            del history[: -self.k]
            if stages and n == 0:
                x = self._starter.advance(model, sched, x, eps, ts[0], ts[1], stages[0])
            else:
                order = self.step_order(n, steps, there.sigma == 0.0)
                x = self.update(x, history, here, there, order, self.d2_factor)
            yield x


# -- named solvers ----------------------------------------------------------------------------
def dpm_solver_1() -> SinglestepDPMSolver:
    """DPM-Solver-1 (Lu 2022a) = DDIM: x_s = (alpha_s / alpha_t) x - sigma_s expm1(h) eps.
    Order 1; NFE = N."""
    return SinglestepDPMSolver(1)


def dpm_solver_2() -> SinglestepDPMSolver:
    """Singlestep DPM-Solver-2 (Lu 2022a, Algorithm 1, r1 = 1/2): one stage at the lambda
    midpoint. Order 2 (Theorem 3.2); NFE = 2N."""
    return SinglestepDPMSolver(2)


def dpm_solver_3() -> SinglestepDPMSolver:
    """Singlestep DPM-Solver-3 (Lu 2022a, Algorithm 2, r1 = 1/3, r2 = 2/3). Order 3
    (Theorem 3.2); NFE = 3N."""
    return SinglestepDPMSolver(3)


def dpm_solver_pp_2m(
    lower_order_final: bool = True,
    lower_order_final_below: int = LOWER_ORDER_FINAL_BELOW,
    start: str = "ramp",
) -> MultistepDPMSolverPP:
    """Multistep DPM-Solver++(2M) (Lu 2022b, Algorithm 2): data prediction, first step
    DPM-Solver++1 (``start="ramp"``, NFE = N) or DPM-Solver-2 (``"dpm-solver-2"``, N + 1).
    Order 2."""
    return MultistepDPMSolverPP(2, lower_order_final, lower_order_final_below, start)


def dpm_solver_pp_3m(
    lower_order_final: bool = True,
    lower_order_final_below: int = LOWER_ORDER_FINAL_BELOW,
    start: str = "ramp",
    taylor_d2: bool = False,
) -> MultistepDPMSolverPP:
    """Multistep DPM-Solver++(3M) as Lu et al.'s and diffusers' implementations of Lu 2022b
    run it (ramp 1, 2M, then 3M; NFE = N): second order (see ``MultistepDPMSolverPP``).
    ``taylor_d2=True`` doubles D2 (third-order steps); with ``start="dpm-solver-2"`` too (the
    first step by DPM-Solver-2, NFE = N + 1) it is third order."""
    return MultistepDPMSolverPP(3, lower_order_final, lower_order_final_below, start, taylor_d2)


#: Factories by name, for ``odebench.solvers`` to register.
FACTORIES: dict[str, Callable[..., Solver]] = {
    "dpm-solver-1": dpm_solver_1,
    "dpm-solver-2": dpm_solver_2,
    "dpm-solver-3": dpm_solver_3,
    "dpm-solver++-2m": dpm_solver_pp_2m,
    "dpm-solver++-3m": dpm_solver_pp_3m,
}
