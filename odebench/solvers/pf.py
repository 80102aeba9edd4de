"""``pf``: an adaptive high-accuracy solve of the probability-flow ODE (a reference).

scipy's DOP853 (Dormand & Prince 8(5,3); Hairer, Norsett & Wanner 1993) at tight tolerances,
in a time variable where the ODE is smooth: the log-SNR lambda by default, which removes the
t -> 0 singularity of the schedules (dx/dlambda = sigma^2 x - sigma eps). A grid ending at
t = 0 (lambda = +inf) is integrated in sigma_tilde instead. The model is called once per
right-hand-side evaluation on the whole batch; ``nfe`` counts those calls.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..ode import TIME_VARIABLES, time_variable
from .base import Solver


class AdaptiveReference(Solver):
    """Adaptive DOP853 reference solve (scipy) in lambda; not a sampler, a yardstick."""

    adaptive = True
    gradient = "adaptive DOP853 (not a transfer x gradient method: a reference)"
    citation = "Hairer, Norsett & Wanner 1993 (DOP853); scipy.integrate.solve_ivp"

    def __init__(
        self,
        rtol: float = 1e-12,
        atol: float = 1e-12,
        method: str = "DOP853",
        variable: str = "auto",
    ):
        if not (rtol > 0 and atol > 0):
            raise ValueError("rtol and atol must be positive")
        if variable != "auto" and variable not in TIME_VARIABLES:
            raise ValueError(f"variable must be 'auto' or one of {', '.join(TIME_VARIABLES)}")
        self.name, self.rtol, self.atol, self.method, self.variable = (
            "pf",
            rtol,
            atol,
            method,
            variable,
        )
        self.warmup = "none (adaptive)"
        self.last_stats: dict | None = None

    @property
    def summary(self) -> str:
        return f"adaptive {self.method} reference in lambda (rtol {self.rtol:g}); not a sampler"

    def nfe(self, steps: int) -> None:
        return None

    def step(self, state):
        """An adaptive solve has no fixed steps: ``iterate`` integrates the whole grid."""
        raise ValueError(f"{self.name} is adaptive: it takes no fixed steps (no local errors)")

    def exact_state(self, model, sched, ts, n, states):
        raise ValueError(f"{self.name} is adaptive: it takes no fixed steps (no local errors)")

    def iterate(self, model, sched, x, ts, noise=None) -> Iterator[torch.Tensor]:
        name = self.variable
        if name == "auto":
            name = "sigma_tilde" if float(ts[-1]) == 0.0 else "lambda"
        var = time_variable(name)
        vs = var.of_t(sched, ts).numpy()
        if not np.all(np.isfinite(vs)):
            raise ValueError(f"pf: the grid is not finite in the variable {name!r}")
        shape, dtype = x.shape, x.dtype
        y0 = var.state(sched, x, ts[0]).to(torch.float64).reshape(-1).numpy()

        def fun(v: float, y: np.ndarray) -> np.ndarray:
            state = torch.from_numpy(y.copy()).reshape(shape).to(dtype)
            return var.rhs(model, sched, state, v).to(torch.float64).reshape(-1).numpy()

        sol = solve_ivp(
            fun,
            (vs[0], vs[-1]),
            y0,
            method=self.method,
            t_eval=vs[1:],
            rtol=self.rtol,
            atol=self.atol,
        )
        self.last_stats = {
            "status": sol.status,
            "message": sol.message,
            "nfev": sol.nfev,
            "variable": name,
        }
        ys = np.asarray(sol.y)  # an empty list when the integrator gave up before ts[1]
        done = ys.shape[1] if ys.ndim == 2 else 0
        for i in range(len(ts) - 1):
            if i < done:
                y = torch.from_numpy(ys[:, i].copy()).reshape(shape).to(dtype)
                yield var.unstate(sched, y, ts[i + 1])
            else:  # the integrator gave up: the remaining states are not finite
                yield torch.full(shape, float("nan"), dtype=dtype)
