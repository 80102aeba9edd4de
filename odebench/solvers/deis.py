"""DEIS (Zhang & Chen 2023) and iPNDM: multistep exponential integrators on eps.

Zhang, Chen, "Fast Sampling of Diffusion Models with Exponential Integrator", ICLR 2023
(arXiv 2204.13902), reference code qsh-zh/deis. In the VE variable the probability-flow ODE
is d(x/alpha)/dsigma_tilde = eps (see ``odebench.ode``), so over one step from t_n to t_{n+1}

    x_{n+1} / alpha_{n+1} = x_n / alpha_n + integral over [sigma_tilde_n, sigma_tilde_{n+1}] of eps

exactly (the exponential integrator: the linear part -beta/2 x is integrated exactly). DEIS
replaces eps by the polynomial P_n through the last k evaluations eps_n, ..., eps_{n-k+1},
interpolating in a chosen variable v (Lagrange basis L_j in v):

    x_{n+1} = alpha_{n+1} ( x_n / alpha_n + sum_j C_{n,j} eps_{n-j} ),
    C_{n,j} = integral_{sigma_tilde_n}^{sigma_tilde_{n+1}} L_j(v(sigma_tilde)) dsigma_tilde.

Written as x_{n+1} = phi(x_n, sum_j w_{n,j} eps_{n-j}, t_n, t_{n+1}) with the DDIM map phi
(``DDIMTransfer``) and the mean weights w_{n,j} = C_{n,j} / (sigma_tilde_{n+1} -
sigma_tilde_n), DEIS is a pseudo linear multistep method in the sense of Liu et al. (2022):
gradient part = the weights, transfer part = DDIM. The interpolation variable (``basis``):

- ``"t"``: the paper's tAB-DEIS (its default; a polynomial in forward time t);
- ``"rho"``: the paper's rhoAB-DEIS (rho = sigma_tilde); its weights are the variable-step
  Adams-Bashforth weights in sigma_tilde, i.e. iPNDM-v below (and ``pndm-ramp`` with
  ``weights="variable"``);
- ``"log_rho"``: a polynomial in log sigma_tilde = -lambda, the "logrho" DEIS of diffusers'
  ``DEISMultistepScheduler`` (which integrates it in closed form).

The integrals are computed here by Gauss-Legendre quadrature in u = log sigma_tilde (where
dsigma_tilde = e^u du and every integrand is smooth), once per grid: 32 nodes per step, and
for the "t" basis on a discrete table one 32-node panel per interval between the table's
knots, where t(u) is smooth (weights then agree with a 100-node rule to about 1e-13). The
mean weights are normalised by the same quadrature of 1, so sum_j w_{n,j} = 1 to round-off and
the method is exact for constant eps (Dirac data) whatever the quadrature error. (The
reference code uses a 10 000-point left Riemann sum in t, a first-order rule.)

Naming: ``deis-tab-k`` interpolates through k points (degree k - 1), the paper's "tAB" with
r = k - 1 and diffusers' ``solver_order = k``; ``deis-tab-1`` is DDIM. Warm-up: the
lower-order ramp (step n uses min(k, n + 1) points), as in the reference (option
``lower_order_final``: also min(k, N - n), as diffusers does below 15 steps); its first step is
DDIM, whose O(h^2) local error caps the global order at 2 for k >= 2 (the same argument as for
``pndm-ramp``: a starting error of O(h^q) caps a convergent multistep method at order q).
Final step: a step to sigma = 0 (t = 0, lambda = +inf) uses k = 1, i.e. DDIM to clean data
x_0 = (x - sigma eps) / alpha (needed for "log_rho", where log 0 is undefined, and kept for
every basis so that the rule is one). The history of evaluations is at t > 0 only: no method
here evaluates eps at t = 0.

iPNDM (the same paper; reference ``get_sampler_ipndm``): pseudo AB4 on eps with the
fixed equal-step weights and the lower-order ramp AB1, AB2, AB3 -- exactly odebench's
``pndm-ramp``, and built from the same engine so that results are bit-identical.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from ..schedules import Schedule
from .base import Node, Solver, State
from .multistep import MultistepSolver, RampWarmup
from .ramp import OrderRule
from .transfer import DDIMTransfer

PAPER = "Zhang & Chen 2023, Fast Sampling of Diffusion Models with Exponential Integrator (DEIS)"
ZHOU = "Zhou, Chen, Wang, Chen 2024, Fast ODE-based Sampling for Diffusion Models in Around 5 Steps"
BASES = ("t", "rho", "log_rho")
_BASIS_NAME = {"t": "tab", "rho": "rhoab", "log_rho": "logrhoab"}


@functools.lru_cache(maxsize=16)
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (exact for polynomials of degree 2n - 1)."""
    xi, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (xi + 1.0), 0.5 * w


def lagrange_basis(nodes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """L[j, q] = prod_{i != j} (at[q] - nodes[i]) / (nodes[j] - nodes[i])."""
    nodes, at = np.asarray(nodes, dtype=np.float64), np.asarray(at, dtype=np.float64)
    basis = np.ones((len(nodes), len(at)))
    for j, vj in enumerate(nodes):
        for i, vi in enumerate(nodes):
            if i != j:
                basis[j] *= (at - vi) / (vj - vi)
    return basis


class DEIS(Solver):
    """DEIS-k: eps interpolated through the last k evaluations, integrated exactly in sigma_tilde.

    x_{n+1} = phi(x_n, sum_j w_{n,j} eps_{n-j}, t_n, t_{n+1}), w_{n,j} = mean over the step (in
    sigma_tilde) of the Lagrange basis polynomial L_j in the variable ``basis``. NFE = N.
    ``lower_order_final=True`` also uses min(k, N - n) points at step n (diffusers applies this
    below 15 steps; the DEIS reference does not).
    """

    takes_history = True

    def __init__(
        self,
        k: int = 3,
        basis: str = "t",
        quadrature_nodes: int = 32,
        lower_order_final: bool = False,
    ):
        if k not in (1, 2, 3, 4):
            raise ValueError(f"DEIS interpolates through 1..4 points, got k={k}")
        if basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
        if quadrature_nodes < 2:
            raise ValueError("quadrature_nodes must be at least 2")
        self.k, self.basis, self.quadrature_nodes = k, basis, quadrature_nodes
        self.lower_order_final = bool(lower_order_final)
        self.rule = OrderRule(k, self.lower_order_final)
        self.history_depth = k - 1  # eps at the k - 1 nodes before n
        self.transfer = DDIMTransfer()
        self.gradient = f"Lagrange through {k} eps values in {basis}, integrated in sigma_tilde"
        self.name = f"deis-{_BASIS_NAME[basis]}-{k}" + ("[lof]" if self.lower_order_final else "")
        # Order k in the interior; the DDIM first step (local error O(h^2)) caps it at 2.
        self.order = self.gradient_order = min(k, 2)
        self.interior_order = k  # degree k - 1 interpolation, integrated exactly
        ramp = ", ".join(f"DEIS-{j}" for j in range(1, k))
        self.warmup = "none" if k == 1 else f"lower-order ramp {ramp}"
        self.citation = PAPER

    @property
    def summary(self) -> str:
        what = {"t": "tAB", "rho": "rhoAB", "log_rho": "log-rho AB"}[self.basis]
        points = "1 point (= DDIM)" if self.k == 1 else f"{self.k} points"
        return f"DEIS {what} through {points} (Zhang & Chen 2023); order {self.order}"

    def nfe(self, steps: int) -> int:
        return steps

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        return len(ts) - 1

    def step_orders(self, sched: Schedule, ts: torch.Tensor) -> list[int]:
        """Points used by each step: the ramp min(k, n + 1) (and min(., N - n) with
        ``lower_order_final``), and 1 for a step to sigma = 0."""
        steps = len(ts) - 1
        clean = [sched.scalars(float(ts[n + 1])).sigma == 0.0 for n in range(steps)]
        return [self.rule.order_at(n, steps, clean[n]) for n in range(steps)]

    def step_weights(self, sched: Schedule, ts: torch.Tensor) -> list[tuple[float, ...]]:
        """w_{n,j} (newest first) for every step of the grid ``ts``.

        w_{n,j} = Q[e^u L_j(v(u))] / Q[e^u] with Q a Gauss-Legendre rule in u = log sigma_tilde
        over the step: one panel for a smooth schedule; for a discrete table with the "t"
        basis, one panel between consecutive knots (where log abar, hence t(u), is smooth).
        """
        times = [float(t) for t in ts]
        log_st = [-sched.scalars(t).lam for t in times]  # log sigma_tilde, -inf at t = 0
        orders = self.step_orders(sched, ts)
        out: list[tuple[float, ...]] = [(1.0,) for _ in orders]
        steps = [n for n, k in enumerate(orders) if k > 1]
        if not steps:
            return out
        xi, gw = gauss_legendre(self.quadrature_nodes)
        knots = getattr(sched, "knots_t", None) if self.basis == "t" else None
        knots = np.asarray(knots.tolist() if knots is not None else [])
        u_parts, w_parts, spans, start = [], [], {}, 0
        for n in steps:  # panels of step n: breaks at the knots strictly inside (t_{n+1}, t_n)
            lo, hi = np.searchsorted(knots, [times[n + 1], times[n]], side="right")
            inner = [c for c in knots[lo:hi][::-1].tolist() if c != times[n]]
            breaks = [log_st[n]] + [-sched.scalars(c).lam for c in inner] + [log_st[n + 1]]
            for a, b in itertools.pairwise(breaks):
                u_parts.append(a + (b - a) * xi)
                w_parts.append((b - a) * gw)
            spans[n] = slice(start, start + (len(breaks) - 1) * len(xi))
            start = spans[n].stop
        u, w = np.concatenate(u_parts), np.concatenate(w_parts)
        if self.basis == "t":
            v = sched.t_from_lambda(torch.from_numpy(-u)).numpy()
            node_v = times
        elif self.basis == "rho":
            v, node_v = np.exp(u), [math.exp(a) for a in log_st]
        else:
            v, node_v = u, log_st
        for n in steps:
            um, wm = u[spans[n]], w[spans[n]]
            measure = wm * np.exp(um - um.max())  # dsigma_tilde = e^u du, rescaled
            nodes = [node_v[n - j] for j in range(orders[n])]  # newest first
            basis = lagrange_basis(np.asarray(nodes), v[spans[n]])
            out[n] = tuple((basis @ measure) / measure.sum())
        return out

    def plan(self, sched: Schedule, ts: torch.Tensor) -> list[tuple[float, ...]]:
        return self.step_weights(sched, ts)

    def describe_step(self, n: int, steps: int) -> str:
        return f"DEIS-{self.rule.order_at(n, steps)}"

    def step(self, state: State) -> State:
        run, n, x = state.run, state.n, state.x
        history = (*state.history, Node(n, self.node_value(run, x, n)))
        w = run.plan[n]  # newest first
        g_terms = [node.value for node in history[::-1][: len(w)]]  # g = sum_j w_j g_terms[j]
        x_new = self.transfer.step_sum(run.sched, x, w, g_terms, state.t, state.s)
        return state.advanced(x_new, self.kept(history))


def deis(
    k: int = 3, basis: str = "t", quadrature_nodes: int = 32, lower_order_final: bool = False
) -> DEIS:
    """DEIS through k points with the interpolation variable ``basis`` ("t", "rho",
    "log_rho"); see the module docstring."""
    return DEIS(k, basis, quadrature_nodes, lower_order_final)


def deis_tab_1(
    basis: str = "t", quadrature_nodes: int = 32, lower_order_final: bool = False
) -> DEIS:
    """deis-tab-1: constant eps over the step, i.e. DDIM (Zhang & Chen 2023, r = 0)."""
    return DEIS(1, basis, quadrature_nodes, lower_order_final)


def deis_tab_2(
    basis: str = "t", quadrature_nodes: int = 32, lower_order_final: bool = False
) -> DEIS:
    """deis-tab-2: eps linear in t through the last 2 evaluations (r = 1); order 2."""
    return DEIS(2, basis, quadrature_nodes, lower_order_final)


def deis_tab_3(
    basis: str = "t", quadrature_nodes: int = 32, lower_order_final: bool = False
) -> DEIS:
    """deis-tab-3: eps quadratic in t through the last 3 evaluations (r = 2). Order 2: the
    ramp's DDIM first step caps the order of the interior third-order steps."""
    return DEIS(3, basis, quadrature_nodes, lower_order_final)


# -- iPNDM --------------------------------------------------------------------------------------


def ipndm() -> MultistepSolver:
    """iPNDM (Zhang & Chen 2023, reference ``get_sampler_ipndm``): pseudo AB4 on eps,

    x_{n+1} = phi(x_n, e', t_n, t_{n+1}),  e' = (55 e_n - 59 e_{n-1} + 37 e_{n-2} - 9 e_{n-3}) / 24,

    after the ramp e' = e_0 (step 0), (3 e_1 - e_0) / 2, (23 e_2 - 16 e_1 + 5 e_0) / 12, with the
    equal-step weights on any grid. This is ``pndm-ramp`` exactly (same engine, same numbers).
    Global order 2: the DDIM first step caps it. NFE = N.
    """
    return MultistepSolver(
        "ipndm",
        DDIMTransfer(),
        4,
        RampWarmup(3),
        order=2,
        weights="fixed",
        citation=PAPER,
        summary="iPNDM: pseudo AB4, AB1..AB3 ramp, equal-step weights (= pndm-ramp); order 2",
    )


COEFFICIENTS = ("lagrange", "zhou2024")


class ReferenceVariableIPNDM(MultistepSolver):
    """iPNDM-v with the closed-form coefficients of Zhou et al. (2024, zju-pi/diff-sampler).

    In sigma_tilde steps h = s_{n+1} - s_n, h1 = s_n - s_{n-1}, h2, h3 (s = sigma_tilde), with
    r = h / h1, rho1 = h1 / h2, rho2 = h2 / h3, q = h1 (h1 + h2) / (h2 (h2 + h3)):

        AB2: w = (1 + r/2, -r/2)                                   (exact variable-step AB2)
        AB3: w = AB2 + tau3 (1, -(1 + rho1), rho1),
             tau3 = 1/2 - h^2 / (6 h1 (h1 + h2))
        AB4: w = AB3 + tau4 (1, -(1 + rho1 + q), rho1 + q (1 + rho2), -q rho1),
             tau4 = [(1 - h / (3 (h + h1))) / 2 + (1 - h / (2 (h + h1))) h / (6 (h + h1 + h2))]
                    * h (h + h1) (h + h1 + h2) / (h1 (h1 + h2) (h1 + h2 + h3)).

    AB2 is the exact variable-step AB2 and AB3 reduces to AB3 on equal steps, but on unequal
    steps AB3 does not integrate quadratics exactly, and AB4 is not AB4 even on equal steps:
    there tau4 = 11/24 instead of 3/8, i.e. weights (57, -65, 43, -11) / 24 instead of (55, -59,
    37, -9) / 24, so its interior steps are third order; on unequal steps its weights do not sum
    to 1 unless rho1 = rho2 (a geometric grid such as "lambda"), so the method is then not
    exact for constant eps.
    """

    def _ab_weights(self, sched, ts, n: int, m: int) -> tuple[float, ...]:
        st = [math.exp(-sched.scalars(float(ts[i])).lam) for i in range(n - m + 1, n + 2)]
        return _zhou_weights(st[::-1][1:], st[-1]) if m > 1 else (1.0,)


def _zhou_weights(history: list[float], s_next: float) -> tuple[float, ...]:
    """The diff-sampler iPNDM-v weights for nodes ``history`` = (s_n, s_{n-1}, ...) (newest
    first, sigma_tilde values) and the step to ``s_next``; see ``ReferenceVariableIPNDM``."""
    s = history
    h = s_next - s[0]
    h1 = s[0] - s[1]
    r = h / h1
    w = [1.0 + r / 2.0, -r / 2.0]
    if len(s) == 2:
        return tuple(w)
    h2 = s[1] - s[2]
    rho1 = h1 / h2
    tau3 = 0.5 - h * h / (6.0 * h1 * (h1 + h2))
    w = [w[0] + tau3, w[1] - (1.0 + rho1) * tau3, rho1 * tau3]
    if len(s) == 3:
        return tuple(w)
    h3 = s[2] - s[3]
    rho2, q = h2 / h3, h1 * (h1 + h2) / (h2 * (h2 + h3))
    tau4 = (
        (
            (1.0 - h / (3.0 * (h + h1))) / 2.0
            + (1.0 - h / (2.0 * (h + h1))) * h / (6.0 * (h + h1 + h2))
        )
        * (h * (h + h1) * (h + h1 + h2))
        / (h1 * (h1 + h2) * (h1 + h2 + h3))
    )
    pattern = (1.0, -(1.0 + rho1 + q), rho1 + q * (1.0 + rho2), -q * rho1)
    return (
        w[0] + tau4 * pattern[0],
        w[1] + tau4 * pattern[1],
        w[2] + tau4 * pattern[2],
        tau4 * pattern[3],
    )


def ipndm_v(coefficients: str = "lagrange") -> MultistepSolver:
    """iPNDM-v: iPNDM with Adams-Bashforth weights for the actual, unequal steps.

    The reference (Zhou et al. 2024, zju-pi/diff-sampler ``ipndm_v_sampler``, also in
    k-diffusion / ComfyUI) works in EDM's sigma, i.e. odebench's sigma_tilde = exp(-lambda):
    x/alpha against sigma_tilde, where the DDIM map is Euler's step. ``coefficients``:

    - ``"lagrange"`` (default): the exact variable-step AB weights in sigma_tilde (the mean over
      the step of the Lagrange interpolant through the history), i.e. ``pndm-ramp`` with
      ``weights="variable"`` and DEIS' rhoAB through 4 points;
    - ``"zhou2024"``: the reference's closed forms, which agree with "lagrange" for AB1, AB2,
      and AB3 on equal steps, and otherwise not (``ReferenceVariableIPNDM``): its "AB4" has
      third-order weights even on equal steps, and weights that do not sum to 1 on grids whose
      step ratio varies (a Karras grid), where constant eps is no longer integrated exactly.

    Global order 2 (the Euler first step caps it). NFE = N.
    """
    if coefficients not in COEFFICIENTS:
        raise ValueError(f"coefficients must be one of {COEFFICIENTS}, got {coefficients!r}")
    if coefficients == "lagrange":
        return MultistepSolver(
            "ipndm-v",
            DDIMTransfer(),
            4,
            RampWarmup(3),
            order=2,
            weights="variable",
            citation=ZHOU,
            summary="iPNDM-v: iPNDM with variable-step AB weights in sigma_tilde; order 2",
        )
    solver = ReferenceVariableIPNDM(
        "ipndm-v[zhou2024]",
        DDIMTransfer(),
        4,
        RampWarmup(3),
        order=2,
        weights="variable",
        citation=ZHOU,
        summary="iPNDM-v with the reference's closed-form coefficients; order 2",
    )
    # its AB3 is exact for quadratics only on equal steps and its "AB4" is third order there:
    # on a grid unequal in sigma_tilde the interior steps are second order
    solver.interior_order = 2
    return solver


FACTORIES = {
    "deis-tab-1": deis_tab_1,
    "deis-tab-2": deis_tab_2,
    "deis-tab-3": deis_tab_3,
    "ipndm": ipndm,
    "ipndm-v": ipndm_v,
}
