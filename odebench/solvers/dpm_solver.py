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
decomposition the transfer is ``ddim`` (eps form, singlestep) or ``data`` (x0 form,
multistep), both in ``odebench.solvers.transfer``, and the methods differ in their gradient
part: stages at fractions of h in lambda with phi-function weights (singlestep), or divided
differences of the x0 history in lambda (multistep). Because the transfer is exact for
constant eps, all of them are exact on Dirac data (Property 3.1 of Liu et al.), on any grid.

A step into a point with sigma = 0 (t = 0, lambda = +inf, e.g. the last point of the "pndm"
grid) has h = inf: no stage can be placed inside it and no divided difference formed. It is
taken with the first-order update, x_s = alpha_s x0(x_t, t) (the x0-prediction; alpha_s = 1),
as diffusers' DPM-Solver schedulers do (``final_sigmas_type="zero"`` forces order 1 there).
A singlestep solver therefore spends one evaluation, not k, on that step (``nfe_on``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch

from ..schedules import Schedule
from .base import Node, Solver, State
from .ramp import OrderRule
from .transfer import DataTransfer, DDIMTransfer

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

EPS_FORM, X0_FORM = DDIMTransfer(), DataTransfer()


def x0_prediction(x: torch.Tensor, eps: torch.Tensor, here) -> torch.Tensor:
    """The data prediction x0 = (x - sigma eps) / alpha at the scalars ``here``."""
    return (x - here.sigma * eps) / here.alpha


def _at(t: float) -> torch.Tensor:
    return torch.tensor(t, dtype=torch.float64)


# -- singlestep DPM-Solver-k (noise prediction) -----------------------------------------------
class SinglestepDPMSolver(Solver):
    """Singlestep DPM-Solver-k with noise prediction (Lu 2022a); k stages per step in lambda.

    For a step t -> s, h = lambda_s - lambda_t, e0 = eps(x, t), stage times
    s_j = t_lambda(lambda_t + r_j h), phi_1(z) = expm1(z) and phi the DDIM map
    (``DDIMTransfer``; DPM-Solver-1), each update is phi of e0 plus the gradient part's
    corrections by differences of eps:

    - k = 1 (DPM-Solver-1, = DDIM): x_s = phi(x, e0, t, s).
    - k = 2 (Algorithm 1, r1 = 1/2): u = phi(x, e0, t, s1), D1 = eps(u, s1) - e0,
      x_s = phi(x, e0, t, s) - sigma_s phi_1(h) / (2 r1) D1
      (= phi(x, e0 + D1 / (2 r1), t, s): the DDIM map with an assembled eps').
    - k = 3 (Algorithm 2, r1 = 1/3, r2 = 2/3): u1 = phi(x, e0, t, s1), D1 = eps(u1, s1) - e0;
      u2 = phi(x, e0, t, s2) - sigma_s2 (r2 / r1) (phi_1(r2 h) / (r2 h) - 1) D1,
      D2 = eps(u2, s2) - e0; x_s = phi(x, e0, t, s) - (sigma_s / r2) (phi_1(h) / h - 1) D2.

    Written as Lu 2022a's algorithms are, term by term, so that the arithmetic is theirs.
    Global order k (Lu 2022a, Theorem 3.2), on any grid. The stage times are placed in lambda
    and inverted with ``sched.t_from_lambda`` once per grid (one vectorised call, the plan);
    the r_j used in the weights are the realised ones, (lambda(s_j) - lambda_t) / h, so the
    stages and the weights agree to round-off whatever the inversion's accuracy. NFE = k N
    (k (N - 1) + 1 on a grid ending at sigma = 0, whose last step is DPM-Solver-1).
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
        self.transfer = EPS_FORM
        self.gradient = f"{k} stage(s) in lambda, phi-function weights"
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

    def plan(self, sched: Schedule, ts: torch.Tensor) -> list[tuple[float, ...]]:
        return self.stage_times(sched, ts)

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

    def step(self, state: State) -> State:
        run = state.run
        e0 = run.model(state.x, state.t)
        return state.advanced(self.advance(run, state.x, e0, state.t, state.s, run.plan[state.n]))

    def advance(
        self,
        run,
        x: torch.Tensor,
        e0: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor,
        stages: Sequence[float],
    ) -> torch.Tensor:
        """One step from t to s with e0 = eps(x, t) already evaluated and the given stage
        times (also the first step of DPM-Solver++ with ``start="dpm-solver-2"``)."""
        sched, model, phi = run.sched, run.model, self.transfer.step
        if not stages:  # DPM-Solver-1, or any step into sigma = 0
            return phi(sched, x, e0, t, s)
        here, there = sched.scalars(float(t)), sched.scalars(float(s))
        h = there.lam - here.lam
        phi1 = math.expm1(h)
        s1, stage1 = _at(stages[0]), sched.scalars(stages[0])
        r1 = (stage1.lam - here.lam) / h
        d1 = model(phi(sched, x, e0, t, s1), s1) - e0
        if self.k == 2:
            return phi(sched, x, e0, t, s) - (there.sigma * phi1 / (2.0 * r1)) * d1
        s2, stage2 = _at(stages[1]), sched.scalars(stages[1])
        r2 = (stage2.lam - here.lam) / h
        phi22 = math.expm1(r2 * h) / (r2 * h) - 1.0
        u2 = phi(sched, x, e0, t, s2) - (stage2.sigma * (r2 / r1) * phi22) * d1
        d2 = model(u2, s2) - e0
        phi2 = phi1 / h - 1.0
        return phi(sched, x, e0, t, s) - (there.sigma / r2 * phi2) * d2


# -- multistep DPM-Solver++ (data prediction) -------------------------------------------------
class MultistepDPMSolverPP(Solver):
    """Multistep DPM-Solver++(kM) with data prediction x0 = (x - sigma eps) / alpha (Lu 2022b).

    One evaluation per step, at the grid point t_n; the history keeps the last k data
    predictions m_n, m_{n-1}, m_{n-2} and their lambdas. With h = lambda_{n+1} - lambda_n,
    r0 = (lambda_n - lambda_{n-1}) / h, r1 = (lambda_{n-1} - lambda_{n-2}) / h:

    With the x0 form of the DDIM map (``DataTransfer``), phi(x, g) = (sigma_{n+1} / sigma_n) x
    - alpha_{n+1} expm1(-h) g, every update is phi of the divided-difference combination of
    the history (the gradient part):

    - order 1: x_{n+1} = phi(x_n, m_n) (= DDIM);
    - order 2 (Algorithm 2, DPM-Solver++(2M)): the same map with
      x0' = m_n + (m_n - m_{n-1}) / (2 r0);
    - order 3 (3M, the third-order multistep update of Lu et al.'s dpm_solver_pytorch.py and
      of diffusers; 2211.01095 itself states only 2M): D1_0 = (m_n - m_{n-1}) / r0,
      D1_1 = (m_{n-1} - m_{n-2}) / r1, D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),
      D2 = c (D1_0 - D1_1) / (r0 + r1),
      x_{n+1} = (sigma_{n+1} / sigma_n) x_n - alpha_{n+1} phi_1 m_n + alpha_{n+1} phi_2 D1
      - alpha_{n+1} phi_3 D2 = phi(x_n, m_n) + alpha_{n+1} (phi_2 D1 - phi_3 D2),
      phi_1 = expm1(-h), phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 1/2,
      with c = 1 as the implementations have it (default) or c = 2 (``taylor_d2=True``).

    Order of step n (0-based, N steps) with ``start="ramp"`` (the implementations' start), by
    ``odebench.solvers.ramp.OrderRule``: min(k, n + 1), i.e. DPM-Solver++1, then 2M, then 3M
    as the history fills; with ``lower_order_final`` and N < ``lower_order_final_below`` (15,
    diffusers' rule; Lu et al.'s code uses 10) also at most N - n (the last step order 1, the
    one before at most 2); and 1 for a step into sigma = 0. NFE = N.

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
        if start not in self.STARTS:
            raise ValueError(f"start must be one of {self.STARTS}, got {start!r}")
        self.rule = OrderRule(k, bool(lower_order_final), lower_order_final_below)
        self.k, self.start, self.taylor_d2 = k, start, bool(taylor_d2)
        self.history_depth = k - 1  # the data predictions at the k - 1 nodes before n
        self.starts_at_noise_end = start == "ramp"  # lambda = -inf: the differences vanish
        self.d2_factor = 2.0 if self.taylor_d2 else 1.0
        self.lower_order_final = bool(lower_order_final)
        self.lower_order_final_below = lower_order_final_below
        self.name = f"dpm-solver++-{k}m"
        third = k == 3 and start == "dpm-solver-2" and self.taylor_d2
        self.order = self.gradient_order = 3 if third else min(k, 2)
        self.interior_order = 3 if k == 3 and self.taylor_d2 else min(k, 2)
        self.transfer = X0_FORM
        self.gradient = f"divided differences of {k} x0 values in lambda"
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
        return self.rule.order_at(n, steps, into_clean)

    def describe_step(self, n: int, steps: int) -> str:
        if self._starter is not None and n == 0:
            return "DPM-Solver-2"
        return f"{self.step_order(n, steps)}M"

    def plan(self, sched: Schedule, ts: torch.Tensor) -> tuple[list, list]:
        """The schedule's scalars at every node, and the starter's stage times for the first
        step."""
        scal = [sched.scalars(float(t)) for t in ts]
        return scal, (self._starter.stage_times(sched, ts[:2]) if self._starter else [])

    def step(self, state: State) -> State:
        run, n, x = state.run, state.n, state.x
        sched, t, s = run.sched, state.t, state.s
        scal, starter = run.plan
        if starter and n == 0:
            eps = run.model(x, t)
            history = (*state.history, Node(n, self.transfer.slope(sched, x, t, eps)))
            x_new = self._starter.advance(run, x, eps, t, s, starter[0])
        else:
            history = (*state.history, Node(n, self.transfer.evaluate(sched, run.model, x, t)))
            order = self.step_order(n, run.steps, scal[n + 1].sigma == 0.0)
            lams = [scal[node.node].lam for node in history[-order:]]
            values = [node.value for node in history[-order:]]
            x_new = self.update(x, lams, values, sched, t, s)
        return state.advanced(x_new, self.kept(history))

    def update(
        self,
        x: torch.Tensor,
        lams: Sequence[float],
        values: Sequence[torch.Tensor],
        sched: Schedule,
        t: torch.Tensor,
        s: torch.Tensor,
    ) -> torch.Tensor:
        """The step t -> s from x with the data predictions ``values`` (oldest first, the last
        at t) at the log-SNRs ``lams``; its order is len(values) (class docstring)."""
        phi, m0, order = self.transfer.step, values[-1], len(values)
        there = sched.scalars(float(s))
        if order == 1 or there.sigma == 0.0:
            return phi(sched, x, m0, t, s)
        h = there.lam - lams[-1]
        r0 = (lams[-1] - lams[-2]) / h
        if order == 2:  # x0' = m0 + D1_0 / 2 = (1 + 1 / (2 r0)) m0 - m_{n-1} / (2 r0)
            c = 0.5 / r0  # (Lu 2022b, Algorithm 2), handed to the map term by term
            return self.transfer.step_sum(sched, x, (1.0 + c, -c), (m0, values[-2]), t, s)
        d1_0 = (m0 - values[-2]).div_(r0)
        r1 = (lams[-2] - lams[-3]) / h
        d1_1 = (values[-2] - values[-3]) / r1
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (self.d2_factor / (r0 + r1)) * (d1_0 - d1_1)
        phi1 = math.expm1(-h)
        phi2 = phi1 / h + 1.0
        phi3 = phi2 / h - 0.5
        a = there.alpha
        return phi(sched, x, m0, t, s) + (a * phi2) * d1 - (a * phi3) * d2


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
