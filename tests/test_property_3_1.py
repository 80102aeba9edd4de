"""Property 3.1 of Liu et al. (2022): with the true noise, the DDIM transfer is exact.

For Dirac data the noise is constant along every exact trajectory, so every pseudo method
(whatever its gradient part) must reproduce x_t = alpha_t x0 + sigma_t n on every grid point,
for random points, schedules and grids. Classical methods are not exact there: the control.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import odebench as ob
from odebench.problems import Dirac
from odebench.solvers import variants

D = torch.float64
# faithful variants run on integer grids of discrete tables only: see tests/test_variants.py
PSEUDO = [
    n
    for n in ob.solvers.names()
    if n != "pf" and n not in variants.FACTORIES and ob.solvers.get(n).transfer.name == "ddim"
]


@st.composite
def grids(draw, sched):
    """A random strictly decreasing grid, drawn as random steps in lambda.

    Exactness holds in exact arithmetic for any grid; in float64 each stage of a step from t
    to s multiplies the round-off already in eps by about sigma_tilde(t) / sigma_tilde(s)
    (the Dirac eps has Lipschitz constant 1 / sigma). Steps are therefore drawn with
    lambda increments in [0.01, 2.3], i.e. sigma_tilde shrinks by at most 10x per step, from
    a start with alpha / sigma >= 1e-3, down to t >= 1e-4. Every interpolant is drawn: VP,
    VE and flow matching."""
    lowest = float(sched.lambda_(sched.t_hi))  # -inf where alpha(t_hi) = 0 (flow matching)
    t_top = float(sched.t_from_lambda(max(lowest, -6.9078)))  # alpha / sigma >= 1e-3
    lam_end = float(sched.lambda_(1e-4))
    start = draw(st.floats(0.0, 1.0))
    lam = [float(sched.lambda_(t_top)) + start * (lam_end - float(sched.lambda_(t_top))) / 2]
    incs = draw(st.lists(st.floats(0.01, 2.3), min_size=3, max_size=40))
    for inc in incs:
        if lam[-1] + inc >= lam_end:
            break
        lam.append(lam[-1] + inc)
    if len(lam) < 6:  # at least 5 steps, so every warm-up is followed by multistep steps
        lam = [lam[0] + k * (lam_end - lam[0]) / 8 for k in range(6)]
    return sched.t_from_lambda(torch.tensor(lam, dtype=D))


def test_the_pseudo_family_is_what_we_think():
    assert set(PSEUDO) >= {"ddim", "pie", "prk", "s-pndm", "f-pndm"}


@pytest.mark.parametrize("solver", PSEUDO)
@given(
    data=st.data(),
    schedule=st.sampled_from(ob.schedules.names()),
    seed=st.integers(0, 2**20),
    d=st.integers(1, 6),
)
def test_pseudo_methods_are_exact_on_dirac_data(solver, data, schedule, seed, d):
    sched = ob.schedules.get(schedule)
    ts = data.draw(grids(sched))
    g = torch.Generator().manual_seed(seed)
    prob = Dirac(3.0 * torch.randn(d, generator=g, dtype=D), sched)
    noise = torch.randn(5, d, generator=g, dtype=D)
    x_T = sched.alpha(ts[0]) * prob.mean + sched.sigma(ts[0]) * noise
    sol = ob.solve(solver, prob.eps, sched, x_T, ts, trajectory=True)
    exact = sched.alpha(ts)[:, None, None] * prob.mean + sched.sigma(ts)[:, None, None] * noise
    # Relative to the size of the two parts of x_t (a state may pass near 0 in 1-d).
    scale = sched.alpha(ts)[:, None] * prob.mean.norm() + sched.sigma(ts)[:, None] * noise.norm(
        dim=-1
    )
    rel = (sol.trajectory - exact).norm(dim=-1) / scale
    # Multistep weights that extrapolate over unequal steps multiply the round-off already in
    # eps: DEIS-3 reached 5e-12 on a cosine-1000 grid with tenfold steps in sigma_tilde.
    assert float(rel.max()) < 2e-11


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "fon"])
def test_classical_methods_are_not_exact_there(solver):
    sched = ob.schedules.get("linear")
    prob = Dirac(torch.tensor([1.0, -2.0], dtype=D), sched)
    ts = ob.timesteps(20, t_min=0.01)
    x_T = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(0))
    err = ob.solve(solver, prob.eps, sched, x_T, ts).x - prob.flow(x_T, ts[0], ts[-1])
    assert float(err.norm()) > 1e-6


@pytest.mark.parametrize("schedule", ["linear", "cosine", "scaled-linear", "ddpm-linear-1000"])
@pytest.mark.parametrize(
    "spacing,steps", [("uniform", 10), ("uniform", 50), ("quadratic", 20), ("lambda", 25)]
)
def test_exact_on_the_grids_people_use(schedule, spacing, steps):
    sched = ob.schedules.get(schedule)
    ts = ob.timesteps(steps, spacing, t_min=1e-3, schedule=sched)
    prob = Dirac(torch.tensor([1.5, -0.5, 0.25], dtype=D), sched)
    x_T = prob.sample_marginal(16, ts[0], torch.Generator().manual_seed(1))
    exact = prob.flow(x_T, ts[0], ts[-1])
    for solver in PSEUDO:
        got = ob.solve(solver, prob.eps, sched, x_T, ts).x
        assert float(((got - exact).norm(dim=1) / exact.norm(dim=1)).max()) < 1e-12, solver
