"""odebench: diffusion samplers measured as ODE solvers.

import odebench as ob
sched = ob.schedules.get("linear")
prob = ob.problems.get("gmm-2d", schedule=sched)
ts = ob.timesteps(50, spacing="uniform", t_max=1.0, t_min=1e-3)
sol = ob.solve("f-pndm", prob.eps, sched, prob.sample_marginal(64, ts[0]), ts)
sol.x, sol.nfe
"""

from . import grids, models, ode, problems, schedules, solvers
from .grids import timesteps
from .solvers import Solution, solve

__version__ = "0.1.0"

__all__ = [
    "Solution",
    "__version__",
    "grids",
    "models",
    "ode",
    "problems",
    "schedules",
    "solve",
    "solvers",
    "timesteps",
]
