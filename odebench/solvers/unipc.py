"""UniPC (Zhao et al. 2023): the unified predictor UniP-p and corrector UniC-p.

Zhao, Bai, Rao, Zhou, Lu, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models", NeurIPS 2023 (arXiv 2302.04867); reference code wl-zhao/UniPC ``uni_pc.py``
(``multistep_uni_pc_bh_update``), also diffusers' ``UniPCMultistepScheduler``.

Notation. lambda = log(alpha / sigma); a step goes from t_n (lambda_n) to s = t_{n+1},
h = lambda_s - lambda_n > 0. The model output m is the data prediction x0 = (x - sigma eps) /
alpha (``prediction="data"``, the reference's default "data_prediction", i.e. UniPC built on
DPM-Solver++) or eps itself (``prediction="noise"``). With hh = -h (data) or +h (noise):

    base  = DPM-Solver++(1) / DDIM:  (sigma_s / sigma_n) x_n - alpha_s (e^{hh} - 1) m_n   (data)
                                     (alpha_s / alpha_n) x_n - sigma_s (e^{hh} - 1) m_n   (noise)
    r_k   = (lambda_{n-k} - lambda_n) / h,   D_k = (m_{n-k} - m_n) / r_k,   k = 1 .. p-1
    UniP-p: x~_s = base - c_s B(h) sum_{k<p} a_k D_k
    UniC-p: x_s  = base - c_s B(h) (sum_{k<p} c_k D_k + c_p (m(x~_s, s) - m_n))

with c_s = alpha_s (data) or sigma_s (noise), B(h) = hh ("bh1") or e^{hh} - 1 ("bh2"), and the
coefficients solving R a = b (predictor: the leading (p-1) x (p-1) block; corrector: p x p
with r_p = 1), ``R[i][k]`` = r_k^i, b_i = hh phi_{i+2}(hh) (i + 1)! / B(h), i = 0 .. p-1,
phi_k the exponential-integrator functions phi_k(z) = sum_j z^j / (j + k)!. As in the reference,
a = (1/2) for p = 2 and c = (1/2) for p = 1 ("simplified" choices that keep the order).

In odebench's decomposition a step is a gradient part and a transfer part: UniP and UniC
assemble an effective model output g = m_n + (B(h) / (e^{hh} - 1)) (the a- or c-weighted sum
above), and the transfer is the exponential-integrator map x_s = base(x_n, g): ``DataTransfer``
for data prediction, the DDIM map (``DDIMTransfer``) for noise prediction (both in
``odebench.solvers.transfer``). Both are the
DDIM map, with the slope expressed as x0 or as eps.

The sampling loop (reference ``sample(method="multistep")`` and diffusers agree): one model
evaluation per step, at t_0 and then at each predicted point x~_{n+1}, which also feeds the
corrector of step n and the history (the corrected state is not re-evaluated), so NFE = N.
Warm-up: step n uses p_n = min(p, n + 1) (UniPC-1, ..., UniPC-(p-1) first). The last step has
no corrector (its evaluation would be spent only on the correction; both references skip it by
default). ``lower_order_final=True`` also lowers p_n to min(p_n, N - n), the references' default
(wl-zhao ``sample(lower_order_final=True)``; diffusers' UniPC ``lower_order_final=True``, at any
number of steps, unlike its DPM-Solver and DEIS schedulers, which do it below 15): the last step
is then DDIM without correction, whose O(h^2) local error makes the method second order. A step
to sigma = 0 (t = 0, lambda = +inf) is always first order without corrector, as it must be
(h = inf): x_0 = alpha_0 m_n (data; m_n is the x0-prediction at the last evaluated point), the
DDIM step to t = 0 (noise); it is necessarily the last step, and diffusers does the same
(``final_sigmas_type="zero"`` with ``lower_order_final``).

Declared order. UniC-p raises the order of UniP-p from p to p + 1 (Zhao et al. 2023, Sec. 3).
The warm-up's first step, UniP-1 + UniC-1 (order 2, local error O(h^3)), caps the global order
at 3: ``unipc-2`` has order 3 and so does ``unipc-3`` (the paper's 4 is the order of its interior
steps); with ``lower_order_final=True`` both have order 2. The variant B(h) does not change the
order. Measured on gaussian-lowrank (lambda grids down to t = 0.1, tests/test_modern_solvers.py):
unipc-3 3.0 from t = 0.4, but 4.2 from t = 1, where the start costs nothing visible.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..schedules import Schedule
from .base import Node, Solver, State
from .ramp import OrderRule
from .transfer import DataTransfer, DDIMTransfer

PAPER = (
    "Zhao, Bai, Rao, Zhou, Lu 2023, UniPC: A Unified Predictor-Corrector Framework for Fast "
    "Sampling of Diffusion Models"
)
VARIANTS = ("bh1", "bh2")
PREDICTIONS = ("data", "noise")


def phi(k: int, z: float) -> float:
    """phi_k(z) = sum_{j >= 0} z^j / (j + k)!, with phi_0 = e^z and phi_{k+1}(z) = (phi_k(z) -
    1/k!) / z. The series is used for |z| < 1, where the recursion cancels catastrophically."""
    if abs(z) < 1.0:
        term, total = 1.0 / math.factorial(k), 0.0
        for j in range(40):
            total += term
            term *= z / (j + k + 1)
        return total
    value = math.exp(z)
    for i in range(k):
        value = (value - 1.0 / math.factorial(i)) / z
    return value


def unipc_coefficients(
    r: list[float], hh: float, B: float, p: int
) -> tuple[list[float], list[float]]:
    """(a, c): the UniP-p weights a_1..a_{p-1} and the UniC-p weights c_1..c_p.

    ``r`` = (r_1, ..., r_{p-1}) the history ratios, ``hh`` = -h or h, ``B`` = B(h). Solves
    R a = b on the leading (p-1) block and R c = b with r_p = 1, except a = (1/2) for p = 2 and
    c = (1/2) for p = 1, as the reference does.
    """
    b = np.array([hh * phi(i + 2, hh) * math.factorial(i + 1) / B for i in range(p)])
    nodes = np.array([*r, 1.0])
    R = np.array([nodes**i for i in range(p)])
    if p == 1:
        a: list[float] = []
    elif p == 2:
        a = [0.5]
    else:
        a = np.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
    c = [0.5] if p == 1 else np.linalg.solve(R, b).tolist()
    return a, c


class UniPC(Solver):
    """UniPC-p: UniP-p predictor and UniC-p corrector, multistep in lambda (Zhao et al. 2023).

    NFE = N. Options: ``variant`` "bh1" (B(h) = hh, the default of the reference's ``UniPC``
    class) or "bh2" (B(h) = e^{hh} - 1, diffusers' default), ``prediction`` "data" (default)
    or "noise", ``lower_order_final`` (default False; True reproduces the references' default
    final steps).
    """

    takes_history = True

    def __init__(
        self,
        p: int = 2,
        variant: str = "bh1",
        prediction: str = "data",
        lower_order_final: bool = False,
    ):
        if p not in (1, 2, 3):
            raise ValueError(f"UniPC order p must be 1, 2 or 3, got {p}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.p, self.variant, self.prediction = p, variant, prediction
        self.lower_order_final = bool(lower_order_final)
        self.rule = OrderRule(p, self.lower_order_final)
        # m at nodes n - p + 1 .. n: the one at node n was made by the step before (at the
        # predicted state, or at x_0 by init), and this step reads it.
        self.history_depth, self.keeps_current = p - 1, True
        self.transfer = DataTransfer() if prediction == "data" else DDIMTransfer()
        self.gradient = f"UniP-{p} + UniC-{p}, B(h) {variant}"
        suffix = "" if variant == "bh1" else f"-{variant}"
        options = [
            o for o, on in (("noise", prediction == "noise"), ("lof", self.lower_order_final)) if on
        ]
        self.name = f"unipc-{p}{suffix}" + (f"[{','.join(options)}]" if options else "")
        self.order = self.gradient_order = 2 if self.lower_order_final else min(p + 1, 3)
        self.interior_order = p + 1  # UniC-p raises UniP-p's order p by one
        ramp = ", ".join(f"UniPC-{j}" for j in range(1, p))
        self.warmup = "none" if p == 1 else f"lower-order ramp {ramp}"
        self.citation = PAPER

    @property
    def summary(self) -> str:
        return (
            f"UniPC-{self.p} ({self.variant}, {self.prediction} prediction; Zhao et al. 2023); "
            f"order {self.order}"
        )

    def nfe(self, steps: int) -> int:
        return steps

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        return len(ts) - 1

    def step_order(self, n: int, steps: int, sigma_next: float) -> int:
        """p_n: the warm-up ramp, the optional lower-order final steps, 1 for sigma = 0."""
        return self.rule.order_at(n, steps, sigma_next == 0.0)

    def describe_step(self, n: int, steps: int) -> str:
        return f"UniPC-{min(self.p, n + 1)}" + (" (no corrector)" if n == steps - 1 else "")

    def plan(self, sched: Schedule, ts: torch.Tensor) -> list[float]:
        return [sched.scalars(float(t)).lam for t in ts]

    def step(self, state: State) -> State:
        run, n, x = state.run, state.n, state.x
        sched, t, s, lams = run.sched, state.t, state.s, run.plan
        m_n = state.history[-1].value
        p = self.step_order(n, run.steps, sched.scalars(float(s)).sigma)
        if p == 1 and state.is_last_step:  # DDIM (data or noise form); also the step to sigma = 0
            return state.advanced(self.transfer.step(sched, x, m_n, t, s))
        h = lams[n + 1] - lams[n]
        hh = -h if self.prediction == "data" else h
        B = hh if self.variant == "bh1" else math.expm1(hh)
        past = state.history[-p:-1][::-1]  # nodes n - 1, ..., n - p + 1, newest first
        r = [(lams[node.node] - lams[n]) / h for node in past]
        rD = [node.value - m_n for node in past]  # r_k D_k: the division goes into the weights
        a, c = unipc_coefficients(r, hh, B, p)
        scale = B / math.expm1(hh)  # B(h) relative to the transfer's own e^{hh} - 1
        # g = m_n + scale sum_k a_k D_k, handed to the map term by term (D_k = rD_k / r_k)
        pred = [scale * a_k / r_k for a_k, r_k in zip(a, r, strict=True)]
        x_pred = self.transfer.step_sum(sched, x, (1.0, *pred), (m_n, *rD), t, s)
        if state.is_last_step:  # no corrector after the last step
            return state.advanced(x_pred)
        m_s = self.node_value(run, x_pred, n + 1)  # UniC's evaluation, kept for the next step
        corr = [scale * c_k / r_k for c_k, r_k in zip(c, [*r, 1.0], strict=True)]  # r_p = 1
        x_corr = self.transfer.step_sum(sched, x, (1.0, *corr), (m_n, *rD, m_s - m_n), t, s)
        history = (*state.history, Node(n + 1, m_s))
        return state.advanced(x_corr, self.kept(history))


def unipc_2(
    variant: str = "bh1", prediction: str = "data", lower_order_final: bool = False
) -> UniPC:
    """UniPC-2: UniP-2 + UniC-2, after one UniPC-1 step; order 3 (Zhao et al. 2023)."""
    return UniPC(2, variant, prediction, lower_order_final)


def unipc_3(
    variant: str = "bh1", prediction: str = "data", lower_order_final: bool = False
) -> UniPC:
    """UniPC-3: UniP-3 + UniC-3 after UniPC-1, UniPC-2; order 3 (the UniPC-1 start caps the
    paper's 4)."""
    return UniPC(3, variant, prediction, lower_order_final)


def unipc_2_bh2(prediction: str = "data", lower_order_final: bool = False) -> UniPC:
    """UniPC-2 with B(h) = e^h - 1 (diffusers' default variant)."""
    return UniPC(2, "bh2", prediction, lower_order_final)


def unipc_3_bh2(prediction: str = "data", lower_order_final: bool = False) -> UniPC:
    """UniPC-3 with B(h) = e^h - 1 (diffusers' default variant)."""
    return UniPC(3, "bh2", prediction, lower_order_final)


FACTORIES = {
    "unipc-2": unipc_2,
    "unipc-3": unipc_3,
    "unipc-2-bh2": unipc_2_bh2,
    "unipc-3-bh2": unipc_3_bh2,
}
