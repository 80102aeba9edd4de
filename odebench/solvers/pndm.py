"""The pseudo numerical methods of Liu et al. (2022): gradient part x the DDIM transfer.

Liu, Ren, Lin, Zhao, "Pseudo Numerical Methods for Diffusion Models on Manifolds", ICLR 2022
(arXiv 2202.09778). With the true eps the DDIM transfer is exact (Property 3.1); the paper
states global order 1 for DDIM and 2 for S-PNDM / F-PNDM (Property 3.2: the transfer part
limits the order, the gradient part alone being of order 4). On a grid uniform in t the
fourth-order gradient parts place their stages at midpoints in t, which are not midpoints in
sigma_tilde (the variable in which the transfer is Euler), hence order 2; ``gradient_order``
records the order they reach where the two coincide (the "edm" schedule).
"""

from __future__ import annotations

from .multistep import MultistepSolver, RungeKuttaWarmup
from .runge_kutta import RungeKuttaSolver
from .tableau import EULER, HEUN, RK4
from .transfer import DDIMTransfer

PAPER = "Liu et al. 2022, Pseudo Numerical Methods for Diffusion Models on Manifolds"


def ddim() -> RungeKuttaSolver:
    """DDIM = pseudo Euler: e' = eps(x_t, t), x' = phi(x_t, e', t, t - delta).

    Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021 (eta = 0); read as the
    pseudo Euler method in Liu et al. (2022), Sec. 3.2. Global order 1. NFE = N.
    """
    return RungeKuttaSolver(
        "ddim",
        EULER,
        DDIMTransfer(),
        order=1,
        citation=PAPER,
        summary="DDIM (eta=0) = pseudo Euler; order 1 (Song et al. 2021)",
    )


def pie() -> RungeKuttaSolver:
    """Pseudo improved Euler: e' = (eps(x_t, t) + eps(phi(x_t, e_1, t, t-delta), t-delta)) / 2.

    Liu et al. (2022), Sec. 3.3. Global order 2. NFE = 2N.
    """
    return RungeKuttaSolver(
        "pie",
        HEUN,
        DDIMTransfer(),
        order=2,
        citation=PAPER,
        summary="pseudo improved Euler (PIE); order 2, 2 NFE/step",
    )


def prk() -> RungeKuttaSolver:
    """Pseudo Runge-Kutta (Liu et al. 2022, Eq. 12): RK4 stages, each transferred from x_t.

    Stage times t, t - delta/2, t - delta/2, t - delta; e' = (e1 + 2 e2 + 2 e3 + e4) / 6.
    Global order 2 (Property 3.2; gradient part of order 4). NFE = 4N.
    """
    return RungeKuttaSolver(
        "prk",
        RK4,
        DDIMTransfer(),
        order=2,
        citation=PAPER,
        summary="pseudo Runge-Kutta (PRK, Eq. 12); order 2, 4 NFE/step",
    )


def s_pndm(weights: str = "fixed") -> MultistepSolver:
    """S-PNDM: one PIE step, then pseudo AB2 e' = (3 e_t - e_{t+delta}) / 2.

    Liu et al. (2022), Sec. 3.3 / Property 3.2: global order 2. NFE = N + 1.
    """
    return MultistepSolver(
        "s-pndm",
        DDIMTransfer(),
        2,
        RungeKuttaWarmup(HEUN, 1),
        order=2,
        weights=weights,
        citation=PAPER,
        summary="S-PNDM: PIE warm-up, pseudo AB2; order 2",
    )


def f_pndm(weights: str = "fixed") -> MultistepSolver:
    """F-PNDM (Algorithm 2): three PRK steps, then pseudo linear multistep (Eq. 13)
    e' = (55 e_t - 59 e_{t+delta} + 37 e_{t+2delta} - 9 e_{t+3delta}) / 24.

    Liu et al. (2022): global order 2 (Property 3.2). NFE = N + 9. Also known as PLMS.
    """
    return MultistepSolver(
        "f-pndm",
        DDIMTransfer(),
        4,
        RungeKuttaWarmup(RK4, 3),
        order=2,
        weights=weights,
        citation=PAPER,
        summary="F-PNDM = PLMS: 3 PRK warm-up steps, pseudo AB4; order 2",
    )
