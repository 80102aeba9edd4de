"""Variance exploding / EDM: x = x0 + sigma z with sigma = sigma_max t (alpha = 1).

This is the parametrisation of Song et al.'s VE-SDE and of EDM / k-diffusion (Karras et al.
2022), whose time is sigma itself; odebench keeps t in [0, 1] and reads sigma = sigma_max t,
so EDM's sigma in [0.002, 80] is t in [2.5e-5, 1]. lambda = -log sigma, the ODE is
dx/dt = sigma_max eps (c_eps constant, no singularity at t = 0), and the Karras grid is
``odebench.timesteps(n, "karras", schedule="ve")``. Its eps model is the EDM denoiser's:
eps = (x - D(x; sigma)) / sigma. "edm" is the same noise levels in VP form (x scaled by alpha).
"""

from __future__ import annotations

import math

import torch

from .base import Schedule


class VarianceExploding(Schedule):
    """alpha = 1, sigma = sigma_max t on [0, 1]."""

    interpolant = "ve"

    def __init__(self, sigma_max: float = 80.0, name: str = "ve"):
        if not (isinstance(sigma_max, int | float) and math.isfinite(sigma_max) and sigma_max > 0):
            raise ValueError(f"sigma_max must be a positive number, got {sigma_max!r}")
        self.sigma_max, self.name = float(sigma_max), name
        self.description = f"VE / EDM: x = x0 + sigma z, sigma = {sigma_max:g} t (Karras et al.)"

    def _alpha(self, t):
        return torch.ones_like(t)

    def _sigma(self, t):
        return self.sigma_max * t

    def _lambda(self, t):
        return -torch.log(self.sigma_max * t)

    def _dlog_alpha(self, t):
        return torch.zeros_like(t)

    def _c_eps(self, t):
        return torch.full_like(t, self.sigma_max)

    def _alpha_deriv(self, t):
        return torch.zeros_like(t)

    def _sigma_deriv(self, t):
        return torch.full_like(t, self.sigma_max)

    def _dlog_alpha_dlambda(self, t):
        return torch.zeros_like(t)

    def _t_from_lambda(self, lam):
        return torch.exp(-lam) / self.sigma_max

    def log_alpha_bar(self, t: torch.Tensor | float) -> torch.Tensor:
        return torch.zeros_like(self._t(t))

    def sigma_tilde(self, t: torch.Tensor | float) -> torch.Tensor:
        return self.sigma(t)
