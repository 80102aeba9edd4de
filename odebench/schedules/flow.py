"""Flow matching (rectified flow): x_t = (1 - t) x0 + t z, t = 1 pure noise.

alpha = 1 - t, sigma = t (Lipman et al. 2023; Liu et al. 2023; Esser et al. 2024, SD3), so
lambda = log((1 - t) / t), t(lambda) = 1 / (1 + e^lambda), and the velocity of the
interpolant is z - x0. The probability-flow ODE in t,

    dx/dt = (eps - x) / (1 - t) = E[z - x0 | x_t = x],

has c_eps = 1 / (1 - t) and alpha'/alpha = -1 / (1 - t): both are infinite at t = 1, where
alpha = 0 and eps = x carries no information about x0. That end is exact here (alpha = 0,
lambda = -inf, sigma_tilde = inf), as the data end t = 0 is (sigma = 0, lambda = +inf).
The time shifts people sample with (SD3's shift, Flux's resolution-dependent shift) are
grid options, ``odebench.timesteps(..., shift=...)``: they move the grid, not the path.
"""

from __future__ import annotations

import torch

from .base import Schedule


class FlowMatching(Schedule):
    """alpha = 1 - t, sigma = t on [0, 1]: the straight path of flow matching."""

    interpolant = "flow"

    def __init__(self, name: str = "flow"):
        self.name = name
        self.description = "flow matching: x_t = (1 - t) x0 + t z (alpha = 1 - t, sigma = t)"

    def _alpha(self, t):
        return 1.0 - t

    def _sigma(self, t):
        return t.clone()

    def _lambda(self, t):
        return torch.log1p(-t) - torch.log(t)

    def _dlog_alpha(self, t):
        return -1.0 / (1.0 - t)

    def _c_eps(self, t):
        return 1.0 / (1.0 - t)

    def _alpha_deriv(self, t):
        return torch.full_like(t, -1.0)

    def _sigma_deriv(self, t):
        return torch.ones_like(t)

    def _dlog_alpha_dlambda(self, t):
        return t.clone()

    def _t_from_lambda(self, lam):
        return torch.sigmoid(-lam)

    def sigma_tilde(self, t: torch.Tensor | float) -> torch.Tensor:
        t = self._t(t)
        return t / (1.0 - t)
