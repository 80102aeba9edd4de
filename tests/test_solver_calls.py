"""An instrumented model: every solver calls eps exactly nfe(steps) times, at the stage times
its method defines, and at the states those stages define.

The expected call times below are written from the papers' definitions, independently of the
solvers' tableaus: RK4 / PRK stages at t, t + h/2, t + h/2, t + h (h < 0 along sampling);
Heun / PIE at t, t + h; multistep methods once per step at t_n after their warm-up.
"""

import pytest
import torch
from _helpers import CallRecorder as Recorder

import odebench as ob
from odebench.solvers import variants
from odebench.solvers.transfer import DDIMTransfer

D = torch.float64


def one(ts, n):
    return [ts[n]]


def two(ts, n):
    return [ts[n], ts[n + 1]]


def four(ts, n):
    mid = ts[n] + (ts[n + 1] - ts[n]) / 2
    return [ts[n], mid, mid, ts[n + 1]]


def in_lambda(sched, *fractions):
    """Stages placed in log-SNR: t(lambda_n + r h) for each r (DPM-Solver's intermediate
    points, Lu et al. 2022, Algorithms 1 and 2)."""

    def rule(ts, n):
        lam = [float(sched.lambda_(ts[n])), float(sched.lambda_(ts[n + 1]))]
        inner = [float(sched.t_from_lambda(lam[0] + r * (lam[1] - lam[0]))) for r in fractions]
        return [ts[n], *inner]

    return rule


def expected_times(name: str, ts: list[float], sched=None) -> list[float]:
    N = len(ts) - 1
    if name in ("dpm-solver-2", "dpm-solver-3"):
        rule = in_lambda(sched, 0.5) if name.endswith("2") else in_lambda(sched, 1 / 3, 2 / 3)
        return [t for n in range(N) for t in rule(ts, n)]
    warm = {
        "s-pndm": (two, 1),
        "ab2": (two, 1),
        "ab3": (four, 2),
        "f-pndm": (four, 3),
        "fon": (four, 3),
        "ipndm": (one, 0),
    }
    every = {
        "ddim": one,
        "euler": one,
        "pie": two,
        "heun": two,
        "prk": four,
        "rk4": four,
        "dpm-solver-1": one,
        "dpm-solver++-2m": one,
        "dpm-solver++-3m": one,
        "ipndm-v": one,
        "deis-tab-1": one,
        "deis-tab-2": one,
        "deis-tab-3": one,
        "unipc-2": one,
        "unipc-3": one,
        "unipc-2-bh2": one,
        "unipc-3-bh2": one,
        "edm-heun": two,  # Heun in sigma_tilde; its Euler last step only where sigma = 0
    }
    if name in every:
        return [t for n in range(N) for t in every[name](ts, n)]
    rule, w = warm[name]
    return [t for n in range(w) for t in rule(ts, n)] + [ts[n] for n in range(w, N)]


NFE = {
    "ddim": lambda N: N,
    "euler": lambda N: N,
    "pie": lambda N: 2 * N,
    "heun": lambda N: 2 * N,
    "prk": lambda N: 4 * N,
    "rk4": lambda N: 4 * N,
    "s-pndm": lambda N: N + 1,
    "ab2": lambda N: N + 1,
    "ab3": lambda N: N + 6,
    "f-pndm": lambda N: N + 9,
    "fon": lambda N: N + 9,
    "ipndm": lambda N: N,
    "ipndm-v": lambda N: N,
    "deis-tab-1": lambda N: N,
    "deis-tab-2": lambda N: N,
    "deis-tab-3": lambda N: N,
    "unipc-2": lambda N: N,
    "unipc-3": lambda N: N,
    "unipc-2-bh2": lambda N: N,
    "unipc-3-bh2": lambda N: N,
    "edm-heun": lambda N: 2 * N,
    "dpm-solver-1": lambda N: N,
    "dpm-solver-2": lambda N: 2 * N,
    "dpm-solver-3": lambda N: 3 * N,
    "dpm-solver++-2m": lambda N: N,
    "dpm-solver++-3m": lambda N: N,
}
#: Faithful variants run only on integer grids of discrete tables; their calls are checked
#: against the implementations themselves in tests/test_variants.py.
VARIANTS = set(variants.FACTORIES)
SOLVERS = [n for n in ob.solvers.names() if n != "pf" and n not in VARIANTS]


def test_every_solver_has_an_nfe_rule_here():
    assert set(SOLVERS) == set(NFE), "add the new solver's expected calls to this test"


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("spacing,steps", [("uniform", 7), ("quadratic", 12), ("lambda", 5)])
def test_calls_count_and_times(name, spacing, steps):
    sched = ob.schedules.get("cosine")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(steps, spacing, t_min=0.02, schedule=sched)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(3, ts[0], torch.Generator().manual_seed(0))
    sol = ob.solve(name, rec, sched, x, ts)
    solver = ob.solvers.get(name)
    assert sol.nfe == len(rec.calls) == solver.nfe(steps) == NFE[name](steps)
    got = [t for t, _ in rec.calls]
    assert got == pytest.approx(expected_times(name, ts.tolist(), sched), abs=1e-13, rel=1e-12)


@pytest.mark.parametrize("name", ["prk", "f-pndm"])
def test_prk_stages_are_transferred_from_the_step_start(name):
    """Eq. 12: x_2 = phi(x_t, e_1, t, t - d/2), x_3 = phi(x_t, e_2, ...), x_4 = phi(x_t, e_3,
    t, t - d). Every stage starts from x_t, not from the previous stage."""
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(5, t_min=0.1)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(1))
    ob.solve(name, rec, sched, x, ts)
    phi = DDIMTransfer().step
    (t1, x1), (t2, x2), (_, x3), (t4, x4) = rec.calls[:4]
    t1, t2, t4 = (torch.tensor(v, dtype=D) for v in (t1, t2, t4))
    torch.testing.assert_close(x1, x)
    torch.testing.assert_close(x2, phi(sched, x, prob.eps(x1, t1), t1, t2))
    torch.testing.assert_close(x3, phi(sched, x, prob.eps(x2, t2), t1, t2))
    torch.testing.assert_close(x4, phi(sched, x, prob.eps(x3, t2), t1, t4))


def test_multistep_history_keeps_first_stage_only():
    """F-PNDM's first AB4 step combines e_1 of the three PRK steps with eps(x_3, t_3)."""
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(4, t_min=0.1)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(2))
    sol = ob.solve("f-pndm", rec, sched, x, ts)
    firsts = [prob.eps(rec.calls[4 * k][1], ts[k]) for k in range(3)]
    e3 = prob.eps(rec.calls[12][1], ts[3])
    combo = (55 * e3 - 59 * firsts[2] + 37 * firsts[1] - 9 * firsts[0]) / 24
    expected = DDIMTransfer().step(sched, rec.calls[12][1], combo, ts[3], ts[4])
    torch.testing.assert_close(sol.x, expected)


def test_pf_counts_its_own_evaluations():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(3))
    sol = ob.solve("pf", rec, sched, x, ob.timesteps(3, t_min=0.1), rtol=1e-8, atol=1e-8)
    assert sol.nfe == len(rec.calls) > 10
    assert ob.solvers.get("pf").nfe(3) is None
