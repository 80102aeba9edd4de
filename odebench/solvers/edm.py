"""EDM's deterministic sampler (Karras et al. 2022, Algorithm 1 with S_churn = 0).

Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models", NeurIPS 2022 (arXiv 2206.00364); reference code NVlabs/edm ``generate.py``
(``edm_sampler``). EDM integrates the probability-flow ODE of the VE process, in which a VP
state x at time t is y = x / alpha_t at noise level sigma_tilde = sigma_t / alpha_t, and

    dy / dsigma_tilde = (y - D(y; sigma_tilde)) / sigma_tilde = eps(x, t)

(D the denoiser, D = x0-prediction; ``odebench.ode``, variable "sigma_tilde"). One step from
sigma_tilde_n to sigma_tilde_{n+1}, with d_n = eps(x_n, t_n):

    y'      = y_n + (sigma_tilde_{n+1} - sigma_tilde_n) d_n                        (Euler)
    y_{n+1} = y_n + (sigma_tilde_{n+1} - sigma_tilde_n) (d_n + eps(alpha_{n+1} y', t_{n+1})) / 2
                                                                        (Heun's correction)

and the correction is skipped when sigma_tilde_{n+1} = 0 (EDM's last step, to t = 0, is an
Euler step: the denoiser at sigma = 0 is not evaluated). EDM's own grid always ends at sigma = 0
(the Karras rho = 7 grid followed by 0), so its NFE is 2N - 1; on a grid with t_min > 0 every
step is a Heun step and NFE = 2N.

The Euler step in sigma_tilde is exactly the DDIM map phi (Liu et al. 2022, Eq. 9; see
``DDIMTransfer``), so this is the pseudo improved Euler method "pie" with a different rule at
t = 0: on grids that do not reach t = 0 the two agree to round-off (they are the same
formulas, evaluated here as in Algorithm 1, in y). Global order 2 (Heun's second-order method,
Karras et al. 2022, Sec. 3). The natural grid is ``odebench.timesteps(n, "karras",
schedule=...)``; any decreasing grid works.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

from ..schedules import Schedule
from .base import EpsModel, Solver
from .transfer import DDIMTransfer

PAPER = "Karras, Aittala, Aila, Laine 2022, Elucidating the Design Space of Diffusion Models"


class EDMHeun(Solver):
    """EDM-Heun: Heun's method for x/alpha in sigma_tilde, Euler at sigma = 0 (Karras et al. 2022).

    NFE = 2N on a grid with t_min > 0, 2N - 1 when the grid ends at t = 0 (``nfe_on``).
    """

    name = "edm-heun"
    order = 2
    gradient_order = 2
    warmup = "none"
    citation = PAPER

    def __init__(self) -> None:
        # The step is the DDIM map phi with the averaged slope: a pseudo method (this is "pie").
        self.transfer = DDIMTransfer()

    @property
    def summary(self) -> str:
        return "EDM Heun (Karras et al. 2022, Alg. 1, S_churn=0) = PIE, Euler to t=0; order 2"

    def nfe(self, steps: int) -> int:
        """Two evaluations per step (on a grid whose last point has sigma > 0; see ``nfe_on``)."""
        return 2 * steps

    def nfe_on(self, sched: Schedule, ts: torch.Tensor) -> int:
        """Evaluations on this grid: a last step into sigma = 0 is an Euler step (one)."""
        into_clean = sched.scalars(float(ts[-1])).sigma == 0.0
        return 2 * (len(ts) - 1) - int(into_clean)

    def iterate(
        self, model: EpsModel, sched: Schedule, x: torch.Tensor, ts: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        for t, s in itertools.pairwise(ts):
            here, there = sched.scalars(float(t)), sched.scalars(float(s))
            sigma_here = here.sigma / here.alpha  # sigma_tilde_n
            sigma_there = there.sigma / there.alpha  # sigma_tilde_{n+1} (0 at t = 0)
            y = x / here.alpha
            d = model(x, t)
            y_next = y + (sigma_there - sigma_here) * d
            if there.sigma > 0.0:  # Heun's correction, skipped at sigma = 0 (Algorithm 1)
                d_next = model(there.alpha * y_next, s)
                y_next = y + (sigma_there - sigma_here) * (0.5 * d + 0.5 * d_next)
            x = there.alpha * y_next
            yield x


def edm_heun() -> EDMHeun:
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0)."""
    return EDMHeun()


FACTORIES = {"edm-heun": edm_heun}
