"""Stochastic samplers: numerical methods for the reverse-time SDEs that share the
probability-flow ODE's marginals.

For x_t = alpha x0 + sigma z the family of reverse SDEs indexed by eta >= 0,

    dx = [(alpha'/alpha) x + (1 + eta^2) c_eps eps] dt + eta g dW,   g^2 = 2 sigma c_eps,

(c_eps = -sigma lambda', the ODE's eps coefficient, ``odebench.ode``) has the marginals p_t
for every eta; eta = 0 is the ODE, eta = 1 the reverse SDE of Song et al. (2021). Each
sampler here is one step of that family, written in the decomposition of the deterministic
ones (a transfer, a gradient part) plus one noise draw per step from the run's noise source
(``odebench.solvers.noise``), so ``odebench.solve(..., generator=...)`` is reproducible and a
Brownian path gives strong errors. With h = lambda_s - lambda_t > 0 over a step t -> s:

- ``ddim-eta`` / ``ddpm``: x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c xi with
  c = eta sigma_s sqrt(1 - e^{-2h}) (Song, Meng & Ermon 2021, Eq. 16; for eta = 1 the DDPM
  posterior variance (1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s) of Ho et al. 2020);
- ``euler-maruyama``: the SDE above, Euler-Maruyama in t;
- ``euler-ancestral``: k-diffusion's ancestral Euler in sigma_tilde = sigma / alpha: an Euler
  step down to sigma_down, then noise of size sigma_up;
- ``sde-dpm-solver-1``, ``sde-dpm-solver-2m`` (eps form) and ``sde-dpm-solver++-1``,
  ``sde-dpm-solver++-2m`` (x0 form): the exponential integrators of the eta = 1 SDE (Lu et al.
  2022b, "SDE-DPM-Solver++(2M)"; diffusers' "sde-dpmsolver" and "sde-dpmsolver++");
- ``edm-churn``: EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): raise the noise
  level by gamma, then a Heun step in sigma_tilde.

A step into sigma = 0 (clean data) adds no noise: it is the deterministic map there. With
eta = 0 (or S_churn = 0) each sampler takes its ODE counterpart's code path, bit for bit.
Additive noise (g does not depend on x) makes the first-order schemes strong order 1 as well
as weak order 1 (Kloeden & Platen 1992, Sec. 10.2: Euler-Maruyama is Milstein there).
"""

from __future__ import annotations

import math

import torch

from .._tensor import scaled_sum
from .base import Node, Solver, State
from .noise import NoiseSource
from .ramp import OrderRule
from .runge_kutta import rk_step
from .tableau import EULER, HEUN
from .transfer import DataTransfer, DDIMTransfer, EDMTransfer, LinearTransfer

KP = "Kloeden & Platen 1992, Numerical Solution of SDEs, Sec. 10.2 (additive noise)"


def _eta(eta: float) -> float:
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not math.isfinite(eta):
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    return float(eta)


def _draw(state: State) -> torch.Tensor:
    noise: NoiseSource | None = state.run.noise
    if noise is None:
        raise ValueError(
            "a stochastic sampler needs a noise source: odebench.solve(..., generator=...)"
        )
    return noise(state.x, state.t, state.s)


class StochasticSolver(Solver):
    """A one-evaluation-per-step stochastic sampler (weak and strong order declared)."""

    stochastic = True

    def nfe(self, steps: int) -> int:
        return steps


class FirstOrderEta(StochasticSolver):
    """A first-order member of the eta family: weak order 1, strong order 1 for eta > 0
    (additive noise); eta = 0 is its ODE sampler."""

    def __init__(self, eta: float, base: str, transfer, gradient: str, citation: str):
        self.eta = _eta(eta)
        self.name = base if self.eta == 1.0 else f"{base}[{self.eta:g}]"
        self.transfer, self.citation = transfer, citation
        self.gradient = f"{gradient}, eta = {self.eta:g}"
        self.order = self.weak_order = 1
        self.strong_order = 1 if self.eta > 0 else None


class DDIMEta(FirstOrderEta):
    """DDIM with eta (Song et al. 2021, Eq. 16): eta = 0 is DDIM, eta = 1 is DDPM's ancestral
    sampler. Weak order 1, strong order 1 (additive noise); NFE = N."""

    def __init__(self, eta: float = 1.0, name: str | None = None):
        cite = "Song, Meng & Ermon 2021 (DDIM, Eq. 16); Ho et al. 2020; " + KP
        super().__init__(eta, "ddim-eta", DDIMTransfer(), "Euler plus noise", cite)
        self.name = name or f"ddim-eta[{self.eta:g}]"

    def step(self, state: State) -> State:
        run, x, t, s = state.run, state.x, state.t, state.s
        eps = run.model(x, t)
        at, as_ = run.sched.scalars(float(t)), run.sched.scalars(float(s))
        if self.eta == 0.0 or as_.sigma == 0.0:
            return state.advanced(self.transfer.step(run.sched, x, eps, t, s))
        h = as_.lam - at.lam
        v = -math.expm1(-2.0 * h)  # 1 - e^{-2h}: the posterior's share of sigma_s^2
        u = self.eta * self.eta * v
        c = as_.sigma * math.sqrt(u)
        # sqrt(sigma_s^2 - c^2) - alpha_s sigma_t / alpha_t, without cancellation for small h
        coef = -as_.sigma * (u / (1.0 + math.sqrt(1.0 - u)) + math.expm1(h))
        ratio = math.exp(0.5 * (as_.log_alpha_bar - at.log_alpha_bar))
        return state.advanced(ratio * x + coef * eps + c * _draw(state))


class EulerMaruyama(FirstOrderEta):
    """Euler-Maruyama in t on the eta-SDE of the module docstring; eta = 0 is ``euler``.
    Weak order 1, strong order 1 (additive noise, Kloeden & Platen 1992); NFE = N."""

    def __init__(self, eta: float = 1.0):
        super().__init__(eta, "euler-maruyama", LinearTransfer(), "Euler-Maruyama", KP)

    def step(self, state: State) -> State:
        run, x, t, s = state.run, state.x, state.t, state.s
        eps = run.model(x, t)
        here = run.sched.scalars(float(t))
        # -beta x / 2 + (1 + eta^2) c_eps eps, formed as LinearTransfer.slope forms f (eta = 0)
        drift = scaled_sum(-0.5 * here.beta, x, (1.0 + self.eta * self.eta) * here.c_eps, eps)
        x_new = self.transfer.step(run.sched, x, drift, t, s)
        if self.eta == 0.0:
            return state.advanced(x_new)
        g = math.sqrt(2.0 * here.sigma * here.c_eps)
        scale = self.eta * g * math.sqrt(float(t) - float(s))
        return state.advanced(x_new + scale * _draw(state))


class EulerAncestral(FirstOrderEta):
    """Ancestral Euler in sigma_tilde (k-diffusion's sample_euler_ancestral): with
    s_up = min(st_s, eta st_s sqrt(1 - st_s^2 / st_t^2)) and s_down = sqrt(st_s^2 - s_up^2),
    y_s = y + (s_down - st_t) eps + s_up xi for y = x / alpha. eta = 0 is Euler in sigma_tilde
    (EDM's form of DDIM). Weak order 1, strong order 1 (additive noise); NFE = N."""

    def __init__(self, eta: float = 1.0):
        cite = "Karras et al. 2022 / k-diffusion sample_euler_ancestral; " + KP
        super().__init__(eta, "euler-ancestral", EDMTransfer(), "Euler to sigma_down", cite)

    def step(self, state: State) -> State:
        run, x, t, s = state.run, state.x, state.t, state.s
        eps = run.model(x, t)
        at, as_ = run.sched.scalars(float(t)), run.sched.scalars(float(s))
        st_t, st_s = at.sigma / at.alpha, as_.sigma / as_.alpha
        if self.eta == 0.0 or st_s == 0.0:
            return state.advanced(self.transfer.step(run.sched, x, eps, t, s))
        up = min(st_s, self.eta * st_s * math.sqrt(-math.expm1(2.0 * math.log(st_s / st_t))))
        down = math.sqrt(st_s * st_s - up * up)
        y = x / at.alpha + (down - st_t) * eps + up * _draw(state)
        return state.advanced(as_.alpha * y)


class SDEDPMSolver(StochasticSolver):
    """SDE-DPM-Solver(++) of order k in {1, 2}, multistep (Lu et al. 2022b), on the eta = 1
    SDE. With m the data prediction (``data``) or eps (``noise``), D = m_n + (m_n - m_{n-1}) /
    (2 r) (r = h_{n-1} / h; D = m_n for k = 1 and the first step):

        data:  x_s = (sigma_s/sigma_t) e^{-h} x + alpha_s (1 - e^{-2h}) D
                     + sigma_s sqrt(1 - e^{-2h}) xi
        noise: x_s = (alpha_s/alpha_t) x - 2 sigma_s (e^h - 1) D + sigma_s sqrt(e^{2h} - 1) xi

    k = 1: weak and strong order 1 (exponential Euler-Maruyama, additive noise); k = 2: no
    published order (measured). The step into sigma = 0 is the deterministic first-order map.
    """

    takes_history = True

    def __init__(self, k: int = 2, prediction: str = "data"):
        if k not in (1, 2):
            raise ValueError(f"SDE-DPM-Solver order must be 1 or 2, got {k}")
        if prediction not in ("data", "noise"):
            raise ValueError(f"prediction must be 'data' or 'noise', got {prediction!r}")
        self.k, self.prediction = k, prediction
        self.transfer = DataTransfer() if prediction == "data" else DDIMTransfer()
        self.history_depth = k - 1
        self.rule = OrderRule(k)
        plus = "++" if prediction == "data" else ""
        self.name = f"sde-dpm-solver{plus}-{k}" + ("m" if k == 2 else "")
        self.gradient = f"{k}M in lambda on {'x0' if plus else 'eps'}"
        self.order = self.weak_order = 1 if k == 1 else None
        self.strong_order = 1 if k == 1 else None
        self.warmup = "none" if k == 1 else "1 first-order step"
        self.citation = "Lu et al. 2022b (DPM-Solver++), SDE solvers; " + KP

    def plan(self, sched, ts) -> list:
        return [sched.scalars(float(t)) for t in ts]

    def step(self, state: State) -> State:
        run, n, x, t, s = state.run, state.n, state.x, state.t, state.s
        m = self.transfer.evaluate(run.sched, run.model, x, t)
        full = (*state.history, Node(n, m))
        history = self.kept(full)
        here, there = run.plan[n], run.plan[n + 1]
        if there.sigma == 0.0:
            return state.advanced(self.transfer.step(run.sched, x, m, t, s), history)
        h = there.lam - here.lam
        D = m
        if self.rule.order_at(n, run.steps) == 2:
            r = (here.lam - run.plan[n - 1].lam) / h
            D = m + (0.5 / r) * (m - full[-2].value)
        xi = _draw(state)
        if self.prediction == "data":
            v = -math.expm1(-2.0 * h)
            lin = (there.sigma / here.sigma) * math.exp(-h)
            return state.advanced(
                lin * x + (there.alpha * v) * D + (there.sigma * math.sqrt(v)) * xi, history
            )
        ratio = math.exp(0.5 * (there.log_alpha_bar - here.log_alpha_bar))
        coef = -2.0 * there.sigma * math.expm1(h)
        return state.advanced(
            ratio * x + coef * D + (there.sigma * math.sqrt(math.expm1(2.0 * h))) * xi, history
        )


class EDMChurn(StochasticSolver):
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2). At each step with
    S_tmin <= st <= S_tmax (st = sigma / alpha), gamma = min(S_churn / N, sqrt(2) - 1) raises
    the noise level to st_hat = st (1 + gamma) by adding sqrt(st_hat^2 - st^2) S_noise xi to
    x / alpha; then one Heun step in sigma_tilde from st_hat (Euler into sigma = 0).
    st_hat is capped at the schedule's largest noise level. S_churn = 0 is ``edm-heun``.
    No published order (measured); NFE = 2N (2N - 1 into sigma = 0)."""

    def __init__(
        self,
        S_churn: float = 40.0,
        S_tmin: float = 0.05,
        S_tmax: float = 50.0,
        S_noise: float = 1.0,
    ):
        for key, val in (("S_churn", S_churn), ("S_tmin", S_tmin), ("S_noise", S_noise)):
            if isinstance(val, bool) or not isinstance(val, int | float) or not val >= 0:
                raise ValueError(f"{key} must be a number >= 0, got {val!r}")
        if isinstance(S_tmax, bool) or not isinstance(S_tmax, int | float) or S_tmax < S_tmin:
            raise ValueError(f"S_tmax must be a number >= S_tmin, got {S_tmax!r}")
        self.S_churn, self.S_tmin, self.S_tmax, self.S_noise = (
            float(S_churn),
            float(S_tmin),
            float(S_tmax),
            float(S_noise),
        )
        self.name = "edm-churn"
        self.transfer = EDMTransfer()
        self.gradient = f"churn {self.S_churn:g} then Heun tableau"
        self.order = self.weak_order = self.strong_order = None
        self.citation = "Karras et al. 2022 (EDM), Algorithm 2"

    def nfe(self, steps: int) -> int:
        return 2 * steps

    def nfe_on(self, sched, ts) -> int:
        clean = sched.scalars(float(ts[-1])).sigma == 0.0
        return 2 * (len(ts) - 1) - int(clean)

    def step(self, state: State) -> State:
        run, x, t, s = state.run, state.x, state.t, state.s
        sched = run.sched
        at, as_ = sched.scalars(float(t)), sched.scalars(float(s))
        st = at.sigma / at.alpha
        gamma = 0.0
        if self.S_tmin <= st <= self.S_tmax:
            gamma = min(self.S_churn / run.steps, math.sqrt(2.0) - 1.0)
        t_hat = t
        if gamma > 0.0:
            top = sched.scalars(float(sched.t_hi))
            cap = top.sigma / top.alpha if top.alpha > 0.0 else math.inf
            st_hat = min(st * (1.0 + gamma), cap)
            t_hat = sched.t_from_sigma_tilde(st_hat).to(t.dtype)
            there = sched.scalars(float(t_hat))
            kick = math.sqrt(max(st_hat * st_hat - st * st, 0.0)) * self.S_noise
            x = there.alpha * (x / at.alpha + kick * _draw(state))
        tableau = EULER if as_.sigma == 0.0 else HEUN
        x_new, _ = rk_step(tableau, self.transfer, run.model, sched, x, t_hat, s)
        return state.advanced(x_new)


FACTORIES = {
    "ddpm": lambda: DDIMEta(1.0, name="ddpm"),
    "ddim-eta": lambda eta=1.0: DDIMEta(eta),
    "euler-maruyama": EulerMaruyama,
    "euler-ancestral": EulerAncestral,
    "sde-dpm-solver-1": lambda: SDEDPMSolver(1, "noise"),
    "sde-dpm-solver-2m": lambda: SDEDPMSolver(2, "noise"),
    "sde-dpm-solver++-1": lambda: SDEDPMSolver(1, "data"),
    "sde-dpm-solver++-2m": lambda: SDEDPMSolver(2, "data"),
    "edm-churn": EDMChurn,
}
