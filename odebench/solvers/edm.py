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

In odebench's decomposition this is the Heun tableau (gradient part) with EDM's form of the
DDIM map (``EDMTransfer``: Euler in sigma_tilde for x / alpha), and Euler into sigma = 0:
the pseudo improved Euler method "pie" evaluated in y, with a different rule at t = 0 (on grids
that do not reach t = 0 the two agree to round-off). Global order 2 (Heun's second-order
method, Karras et al. 2022, Sec. 3). The natural grid is ``odebench.timesteps(n, "karras",
schedule=...)``; any decreasing grid works.
"""

from __future__ import annotations

from .runge_kutta import RungeKuttaSolver
from .tableau import EULER, HEUN
from .transfer import EDMTransfer

PAPER = "Karras, Aittala, Aila, Laine 2022, Elucidating the Design Space of Diffusion Models"


def edm_heun() -> RungeKuttaSolver:
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0):
    Heun x EDM's y-form transfer, Euler into sigma = 0. Order 2; NFE = 2N (2N - 1 on a grid
    ending at t = 0, see ``nfe_on``)."""
    return RungeKuttaSolver(
        "edm-heun",
        HEUN,
        EDMTransfer(),
        order=2,
        citation=PAPER,
        summary="EDM Heun (Karras et al. 2022, Alg. 1, S_churn=0) = PIE, Euler to t=0; order 2",
        into_clean=EULER,
    )


FACTORIES = {"edm-heun": edm_heun}
