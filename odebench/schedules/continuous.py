"""Continuous-time VP schedules with closed-form log alpha_bar, beta and inverses."""

from __future__ import annotations

import math

import torch

from .vp import VPSchedule, one_time_in_floats


class LinearVP(VPSchedule):
    """beta(t) = beta_min + t (beta_max - beta_min): the VP-SDE of Song et al. (ICLR 2021).

    With beta_min = 0.1, beta_max = 20 it is the continuous limit of DDPM's 1000 betas
    linspace(1e-4, 0.02) (Ho et al. 2020): beta(t) ~ T * beta_i. 1 - abar ~ beta_min t near
    t = 0, so the ODE's eps coefficient beta / (2 sigma) grows like t**-1/2 there.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, name: str = "linear"):
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max, self.name = float(beta_min), float(beta_max), name
        self.description = f"VP linear beta {beta_min:g}..{beta_max:g} (Song et al. 2021)"

    @one_time_in_floats
    def _log_alpha_bar(self, t):
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * (t * t))

    @one_time_in_floats
    def _beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def _t_from_log_alpha_bar(self, log_abar):
        # Root of (b1 - b0)/2 t^2 + b0 t + L = 0, in the cancellation-free form.
        b0, d = self.beta_min, self.beta_max - self.beta_min
        return -2.0 * log_abar / (b0 + torch.sqrt(b0 * b0 - 2.0 * d * log_abar))


class ScaledLinearVP(VPSchedule):
    """Stable Diffusion's "scaled linear" schedule in continuous time.

    The discrete betas are linspace(sqrt(0.00085), sqrt(0.012), T)**2 (Rombach et al. 2022);
    their continuous limit is beta(t) = T (r0 + c t)^2 with r0 = sqrt(beta_start) and
    c = sqrt(beta_end) - sqrt(beta_start). abar(1) ~ 4.8e-3: the terminal SNR is not zero.
    """

    def __init__(
        self,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        T: int = 1000,
        name: str = "scaled-linear",
    ):
        if not 0 < beta_start < beta_end:
            raise ValueError(f"need 0 < beta_start < beta_end, got {beta_start}, {beta_end}")
        self.r0, self.c, self.steps, self.name = (
            math.sqrt(beta_start),
            math.sqrt(beta_end) - math.sqrt(beta_start),
            int(T),
            name,
        )
        self.description = f"Stable Diffusion scaled-linear {beta_start:g}..{beta_end:g}, T={T}"

    @one_time_in_floats
    def _log_alpha_bar(self, t):
        r0, c = self.r0, self.c
        # -T * integral_0^t (r0 + c s)^2 ds, written without cancellation for small t.
        return -self.steps * t * (r0 * r0 + r0 * c * t + c * c * t * t / 3.0)

    def _beta(self, t):
        return self.steps * (self.r0 + self.c * t) ** 2

    def _t_from_log_alpha_bar(self, log_abar):
        r0, c = self.r0, self.c
        u = -3.0 * c * log_abar / (self.steps * r0**3)  # (r0 + c t)^3 = r0^3 (1 + u)
        return r0 * torch.expm1(torch.log1p(u) / 3.0) / c


class CosineVP(VPSchedule):
    """Nichol & Dhariwal (ICML 2021): abar(t) = f(t) / f(0), f(t) = cos^2((t + s)/(1 + s) pi/2).

    abar(1) = 0 exactly, so lambda(1) = -inf. The clipping is explicit: the schedule is defined
    on [0, t_clip] with t_clip = 0.9946 by default (as in DPM-Solver's continuous cosine,
    lambda(t_clip) ~ -4.8); asking for a larger t raises. The discrete table "cosine-1000"
    instead caps each beta at 0.999, as Nichol & Dhariwal do.
    With s > 0, 1 - abar ~ c t near t = 0 (the t**-1/2 singularity); with s = 0 ("cosine-s0")
    1 - abar ~ (pi t / 2)^2 and the ODE's coefficients stay bounded.
    """

    def __init__(self, s: float = 0.008, t_clip: float = 0.9946, name: str = "cosine"):
        if not (0 <= s < 1 and 0 < t_clip < 1):
            raise ValueError(f"need 0 <= s < 1 and 0 < t_clip < 1, got s={s}, t_clip={t_clip}")
        self.s, self.t_hi, self.name = float(s), float(t_clip), name
        self.log_f0 = 2.0 * math.log(math.cos(self.s / (1.0 + self.s) * math.pi / 2.0))
        self.description = f"cosine s={s:g} (Nichol & Dhariwal 2021), clipped at t={t_clip:g}"

    def _u(self, t):
        return (t + self.s) / (1.0 + self.s) * (math.pi / 2.0)

    def _log_alpha_bar(self, t):
        u0 = self.s / (1.0 + self.s) * (math.pi / 2.0)
        w = t / (1.0 + self.s) * (math.pi / 2.0)  # u - u0, formed without cancellation
        u = u0 + w
        # Near t = 0 use cos^2 u - cos^2 u0 = -sin(u + u0) sin(u - u0): no cancellation.
        small = torch.log1p(-torch.sin(u + u0) * torch.sin(w) / math.cos(u0) ** 2)
        large = 2.0 * torch.log(torch.cos(u)) - self.log_f0
        return torch.where(u < math.pi / 4, small, large)

    def _beta(self, t):
        return math.pi / (1.0 + self.s) * torch.tan(self._u(t))

    def _t_from_log_alpha_bar(self, log_abar):
        log_cos2 = log_abar + self.log_f0  # log cos^2(u)
        u = torch.atan2(torch.sqrt(-torch.expm1(log_cos2)), torch.exp(0.5 * log_cos2))
        t = (u * 2.0 * (1.0 + self.s) / math.pi - self.s).clamp(self.t_lo, self.t_hi)
        for _ in range(2):  # Newton polish: the closed form cancels near t = 0 when s > 0
            beta = self._beta(t)  # zero at t = 0 when s = 0, where the closed form is exact
            step = (self._log_alpha_bar(t) - log_abar) / torch.where(beta > 0, beta, 1.0)
            t = t + torch.where(beta > 0, step, 0.0)
        return t


class SigmaLinearVP(VPSchedule):
    """The EDM schedule sigma_tilde(t) = sigma_max * t (Karras et al. 2022), in VP form.

    abar(t) = 1 / (1 + sigma_max^2 t^2). The DDIM transfer is an Euler step in sigma_tilde, so on
    this schedule it is an Euler step in t: pseudo methods then reach the full order of their
    gradient part, which the pure-quadrature tests exploit. No singularity at t = 0.
    """

    def __init__(self, sigma_max: float = 80.0, name: str = "edm"):
        if sigma_max <= 0:
            raise ValueError(f"sigma_max must be positive, got {sigma_max}")
        self.sigma_max, self.name = float(sigma_max), name
        self.description = f"VP form of EDM's sigma_tilde = {sigma_max:g} t (Karras et al. 2022)"

    def _log_alpha_bar(self, t):
        return -torch.log1p((self.sigma_max * t) ** 2)

    def _beta(self, t):
        st = self.sigma_max * t
        return 2.0 * self.sigma_max * st / (1.0 + st * st)

    def _t_from_log_alpha_bar(self, log_abar):
        return torch.sqrt(torch.expm1(-log_abar)) / self.sigma_max
