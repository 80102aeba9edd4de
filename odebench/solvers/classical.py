"""Classical methods on the probability-flow ODE in t: gradient part x the linear transfer.

Orders are the textbook ones (Hairer, Norsett, Wanner, "Solving Ordinary Differential
Equations I", 1993): they hold where the right-hand side is smooth, i.e. for t_min > 0 away
from the t -> 0 singularity of common schedules. FON is the paper's name for the classical
fourth-order pair it compares against: RK4 for three steps, then AB4 (Liu et al. 2022, Sec. 4).
"""

from __future__ import annotations

from .multistep import MultistepSolver, RungeKuttaWarmup
from .runge_kutta import RungeKuttaSolver
from .tableau import EULER, HEUN, RK4
from .transfer import LinearTransfer

HNW = "Hairer, Norsett & Wanner 1993, Solving ODEs I"


def euler() -> RungeKuttaSolver:
    """Explicit Euler on dx/dt = f(x, t). Order 1; NFE = N."""
    return RungeKuttaSolver(
        "euler",
        EULER,
        LinearTransfer(),
        order=1,
        citation=HNW,
        summary="explicit Euler on the PF-ODE; order 1",
    )


def heun(euler_into_clean: bool = False) -> RungeKuttaSolver:
    """Heun's method (explicit trapezoid). Order 2; NFE = 2N.

    ``euler_into_clean``: an Euler step into sigma = 0, as EDM's Algorithm 1 and diffusers'
    FlowMatchHeun take it (the corrector would evaluate the model at the data, where the
    eps of low-rank data is undefined); NFE = 2N - 1 on grids that end there."""
    return RungeKuttaSolver(
        "heun[euler-into-clean]" if euler_into_clean else "heun",
        HEUN,
        LinearTransfer(),
        order=2,
        citation=HNW,
        summary="Heun (explicit trapezoid) on the PF-ODE; order 2",
        into_clean=EULER if euler_into_clean else None,
    )


def rk4() -> RungeKuttaSolver:
    """The classical fourth-order Runge-Kutta method. Order 4; NFE = 4N."""
    return RungeKuttaSolver(
        "rk4",
        RK4,
        LinearTransfer(),
        order=4,
        citation=HNW,
        summary="classical RK4 on the PF-ODE; order 4",
    )


def ab2(weights: str = "fixed") -> MultistepSolver:
    """AB2 after one Heun step (the classical twin of S-PNDM). Order 2; NFE = N + 1."""
    return MultistepSolver(
        "ab2",
        LinearTransfer(),
        2,
        RungeKuttaWarmup(HEUN, 1),
        order=2,
        weights=weights,
        citation=HNW,
        summary="Adams-Bashforth 2, Heun warm-up; order 2",
    )


def ab3(weights: str = "fixed") -> MultistepSolver:
    """AB3 after two RK4 steps. Order 3; NFE = N + 6."""
    return MultistepSolver(
        "ab3",
        LinearTransfer(),
        3,
        RungeKuttaWarmup(RK4, 2),
        order=3,
        weights=weights,
        citation=HNW,
        summary="Adams-Bashforth 3, RK4 warm-up; order 3",
    )


def fon(weights: str = "fixed") -> MultistepSolver:
    """FON: three RK4 steps, then AB4, on the ODE itself (Liu et al. 2022's classical baseline;
    the classical twin of F-PNDM). Order 4; NFE = N + 9."""
    return MultistepSolver(
        "fon",
        LinearTransfer(),
        4,
        RungeKuttaWarmup(RK4, 3),
        order=4,
        weights=weights,
        citation=HNW + "; Liu et al. 2022 (FON)",
        summary="FON = AB4 after 3 RK4 steps, on the PF-ODE; order 4",
    )
