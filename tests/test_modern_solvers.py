"""UniPC, DEIS, iPNDM and EDM-Heun as ODE solvers (odebench/solvers/unipc.py, deis.py, edm.py).

What the papers define, checked independently of the solvers' code where possible:

- exactness for Dirac data (noise constant along exact paths; x0-prediction constant), the
  analogue of Property 3.1 of Liu et al. (2022), on uniform, lambda and Karras grids and on a
  grid ending at t = 0;
- model calls: how many, at which times, at which states (UniPC: t_0, ..., t_{N-1}, every call
  after the first at the *predicted* state, the corrector reusing it; DEIS / iPNDM: t_0 .. t_{N-1}
  at the trajectory states; EDM-Heun: t_n and t_{n+1} per step, only t_n for a step to t = 0);
- measured global orders on gaussian-lowrank (exact flow) against the declared orders;
- equivalences: deis-tab-1 = DDIM, ipndm = pndm-ramp, ipndm-v = pndm-ramp(weights="variable"),
  edm-heun = pie on grids that do not reach t = 0;
- diffusers' UniPCMultistepScheduler and DEISMultistepScheduler ("logrho") step for step.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from _helpers import CallRecorder as Recorder
from scipy.integrate import quad_vec

import odebench as ob
from odebench.metrics import fit_order
from odebench.problems import Dirac
from odebench.solvers import deis as deis_mod
from odebench.solvers import edm as edm_mod
from odebench.solvers import unipc as unipc_mod
from odebench.solvers.deis import DEIS, ipndm_v
from odebench.solvers.multistep import MultistepSolver, RampWarmup
from odebench.solvers.tableau import AB_FIXED, ab_variable_weights
from odebench.solvers.transfer import DDIMTransfer
from odebench.solvers.unipc import UniPC, phi

D = torch.float64
FACTORIES = {**unipc_mod.FACTORIES, **deis_mod.FACTORIES, **edm_mod.FACTORIES}
NAMES = sorted(FACTORIES)


def make(name, **options):
    return FACTORIES[name](**options)


# Every configuration that must be exact on Dirac data (options included).
CONFIGS = [(n, {}) for n in NAMES] + [
    ("unipc-2", {"prediction": "noise"}),
    ("unipc-3", {"variant": "bh2", "prediction": "noise", "lower_order_final": True}),
    ("unipc-3", {"lower_order_final": True}),
    ("deis-tab-3", {"basis": "rho"}),
    ("deis-tab-3", {"basis": "log_rho", "lower_order_final": True}),
]


def config_id(config):
    name, options = config
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def grid(spacing, sched, n=12, t_min=1e-3):
    if spacing == "pndm":
        return ob.timesteps(n, "pndm", schedule=sched)  # ends at t = 0
    if spacing == "to-zero":  # the PNDM grid on a table, uniform down to t = 0 otherwise
        return grid("pndm", sched, n) if sched.T else ob.timesteps(n, t_min=0.0, schedule=sched)
    return ob.timesteps(n, spacing, t_min=t_min, schedule=sched)


# -- Dirac data: exact on every grid ------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("schedule", ["linear", "cosine", "ddpm-linear-1000"])
def test_exact_on_dirac_data(config, schedule):
    name, options = config
    sched = ob.schedules.get(schedule)
    g = torch.Generator().manual_seed(7)
    prob = Dirac(2.0 * torch.randn(3, generator=g, dtype=D), sched)
    noise = torch.randn(5, 3, generator=g, dtype=D)
    for spacing in ("uniform", "lambda", "karras", "to-zero"):
        ts = grid(spacing, sched)
        x_T = sched.alpha(ts[0]) * prob.mean + sched.sigma(ts[0]) * noise
        sol = ob.solve(make(name, **options), prob.eps, sched, x_T, ts, trajectory=True)
        exact = sched.alpha(ts)[:, None, None] * prob.mean + sched.sigma(ts)[:, None, None] * noise
        rel = (sol.trajectory - exact).norm(dim=-1) / exact.norm(dim=-1)
        assert float(rel.max()) < 1e-12, (spacing, float(rel.max()))


def test_reference_ipndm_v_coefficients_are_not_exact_for_constant_eps_on_karras_grids():
    """diff-sampler's closed-form AB4 weights sum to 1 only when consecutive step ratios agree
    (a geometric grid, e.g. uniform in lambda): exact there, not on a Karras grid."""
    sched = ob.schedules.get("linear")
    prob = Dirac(torch.tensor([0.5, -1.0], dtype=D), sched)
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=D)
    errors = {}
    for spacing in ("lambda", "karras"):
        ts = grid(spacing, sched, n=10, t_min=0.01)
        x_T = sched.alpha(ts[0]) * prob.mean + sched.sigma(ts[0]) * noise
        sol = ob.solve(ipndm_v(coefficients="zhou2024"), prob.eps, sched, x_T, ts)
        exact = sched.alpha(ts[-1]) * prob.mean + sched.sigma(ts[-1]) * noise
        errors[spacing] = float((sol.x - exact).norm() / exact.norm())
    assert errors["lambda"] < 1e-12
    assert errors["karras"] > 1e-5, errors


# -- model calls: count, times, states ----------------------------------------------------------


def expected_times(name: str, ts: list[float]) -> list[float]:
    """From the papers: multistep methods evaluate once per step at t_n (UniPC's evaluation at
    t_{n+1} serves both the corrector of step n and the predictor of step n + 1, and none is
    made after the last step); EDM-Heun evaluates at t_n and t_{n+1}, and only at t_n when
    t_{n+1} = 0 (Euler step)."""
    steps = len(ts) - 1
    if name == "edm-heun":
        return [t for n in range(steps) for t in ([ts[n], ts[n + 1]] if ts[n + 1] > 0 else [ts[n]])]
    return ts[:-1]


NFE = {
    "unipc-2": lambda N, zero: N,
    "unipc-3": lambda N, zero: N,
    "unipc-2-bh2": lambda N, zero: N,
    "unipc-3-bh2": lambda N, zero: N,
    "deis-tab-1": lambda N, zero: N,
    "deis-tab-2": lambda N, zero: N,
    "deis-tab-3": lambda N, zero: N,
    "ipndm": lambda N, zero: N,
    "ipndm-v": lambda N, zero: N,
    "edm-heun": lambda N, zero: 2 * N - 1 if zero else 2 * N,
}


def _solve(name, model, sched, x, ts, **options):
    return ob.solve(make(name, **options), model, sched, x, ts, trajectory=True)


def test_every_factory_has_an_nfe_rule_here():
    assert set(NFE) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "schedule,spacing,steps",
    [("cosine", "uniform", 7), ("cosine", "quadratic", 12), ("linear", "karras", 6),
     ("ddpm-linear-1000", "pndm", 10)],
)  # fmt: skip
def test_calls_count_and_times(name, schedule, spacing, steps):
    sched = ob.schedules.get(schedule)
    prob = ob.problems.get("gmm-2d", sched)
    ts = grid(spacing, sched, n=steps, t_min=0.02)
    N = len(ts) - 1
    zero = float(ts[-1]) == 0.0
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(3, ts[0], torch.Generator().manual_seed(0))
    sol = _solve(name, rec, sched, x, ts)
    solver = make(name)
    declared = solver.nfe_on(sched, ts) if hasattr(solver, "nfe_on") else solver.nfe(N)
    assert sol.nfe == len(rec.calls) == NFE[name](N, zero) == declared
    if not zero:
        assert solver.nfe(N) == sol.nfe
    got = [t for t, _ in rec.calls]
    assert got == pytest.approx(expected_times(name, ts.tolist()), abs=1e-15, rel=1e-14)
    assert torch.isfinite(sol.x).all()


@pytest.mark.parametrize("name", ["deis-tab-3", "ipndm", "ipndm-v"])
def test_multistep_methods_evaluate_at_the_trajectory_states(name):
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(8, "lambda", t_min=0.05, schedule=sched)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(3))
    sol = _solve(name, rec, sched, x, ts)
    for n, (_, state) in enumerate(rec.calls):
        torch.testing.assert_close(state, sol.trajectory[n], rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_unipc_first_step_is_ddim_then_the_order_1_corrector(variant):
    """UniP-1 is DDIM (in data-prediction form); UniC-1 then adds -alpha_1 B(h) (m_1 - m_0) / 2
    with m the x0-predictions, m_1 taken at the predicted state, B(h) = -h (bh1) or
    e^{-h} - 1 (bh2), h = lambda_1 - lambda_0 (Zhao et al. 2023, UniC with p = 1)."""
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(6, "lambda", t_min=0.05, schedule=sched)
    rec = Recorder(prob.eps)
    x0 = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(4))
    sol = _solve("unipc-2", rec, sched, x0, ts, variant=variant)
    a0, s0 = sched.alpha(ts[0]), sched.sigma(ts[0])
    a1, s1 = sched.alpha(ts[1]), sched.sigma(ts[1])
    e0 = prob.eps(x0, ts[0])
    predicted = DDIMTransfer().step(sched, x0, e0, ts[0], ts[1])
    torch.testing.assert_close(rec.calls[1][1], predicted, rtol=1e-13, atol=1e-13)
    m0 = (x0 - s0 * e0) / a0
    m1 = (predicted - s1 * prob.eps(predicted, ts[1])) / a1
    h = float(sched.lambda_(ts[1]) - sched.lambda_(ts[0]))
    B = -h if variant == "bh1" else math.expm1(-h)
    corrected = predicted - a1 * B * 0.5 * (m1 - m0)
    torch.testing.assert_close(sol.trajectory[1], corrected, rtol=1e-12, atol=1e-12)
    # the corrector acts: later model calls are at predictions, not at the yielded states
    for n in range(1, len(ts) - 1):
        assert not torch.allclose(rec.calls[n][1], sol.trajectory[n], rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_step_to_clean_data_is_first_order(name):
    """A step to t = 0 (sigma = 0, lambda = inf) is the DDIM / Euler step to clean data,
    x_0 = (x - sigma eps(x)) / alpha at the last evaluated (time, state) -- for UniPC the
    predicted state, whose x0-prediction it returns; multistep iPNDM takes its AB4 step
    instead (it is pndm-ramp, whose DDIM map handles sigma = 0)."""
    sched = ob.schedules.get("ddpm-linear-1000")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(8, "pndm", schedule=sched)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(5))
    sol = _solve(name, rec, sched, x, ts)
    t_last, state = rec.calls[-1]
    assert t_last == float(ts[-2])
    here = sched.scalars(t_last)
    clean = (state - here.sigma * prob.eps(state, ts[-2])) / here.alpha
    if name.startswith("ipndm"):
        assert not torch.allclose(sol.x, clean, rtol=1e-6, atol=0)
    else:
        torch.testing.assert_close(sol.x, clean, rtol=1e-13, atol=1e-13)


def test_edm_heun_second_stage_is_the_euler_step_in_sigma_tilde():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(5, "karras", t_min=0.01, schedule=sched)
    rec = Recorder(prob.eps)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(6))
    sol = _solve("edm-heun", rec, sched, x, ts)
    for n in range(len(ts) - 1):
        x_n, euler = rec.calls[2 * n][1], rec.calls[2 * n + 1][1]
        torch.testing.assert_close(x_n, sol.trajectory[n], rtol=0, atol=0)
        a_n, a_s = sched.alpha(ts[n]), sched.alpha(ts[n + 1])
        dsig = sched.sigma_tilde(ts[n + 1]) - sched.sigma_tilde(ts[n])
        expected = a_s * (x_n / a_n + dsig * prob.eps(x_n, ts[n]))  # y' = y + dsigma d
        torch.testing.assert_close(euler, expected, rtol=1e-13, atol=1e-13)


# -- equivalences -------------------------------------------------------------------------------


EQUIV_GRIDS = [("linear", "uniform"), ("cosine", "lambda"), ("linear", "karras"),
               ("ddpm-linear-1000", "pndm")]  # fmt: skip


@pytest.mark.parametrize("schedule,spacing", EQUIV_GRIDS)
def test_deis_tab_1_is_ddim_and_ipndm_is_pndm_ramp(schedule, spacing):
    sched = ob.schedules.get(schedule)
    prob = ob.problems.get("gmm-2d", sched)
    ts = grid(spacing, sched, n=9, t_min=0.01)
    x = prob.sample_marginal(6, ts[0], torch.Generator().manual_seed(8))

    def ramp(weights):  # pseudo AB4 after the AB1..AB3 ramp, composed from the engine
        return MultistepSolver(
            "ramp",
            DDIMTransfer(),
            4,
            RampWarmup(3),
            order=2,
            citation="",
            summary="",
            weights=weights,
        )

    pairs = [
        ("deis-tab-1", ob.solvers.get("ddim")),
        ("ipndm", ramp("fixed")),
        ("ipndm-v", ramp("variable")),
    ]
    for name, other in pairs:
        ours = ob.solve(make(name), prob.eps, sched, x, ts, trajectory=True).trajectory
        theirs = ob.solve(other, prob.eps, sched, x, ts, trajectory=True).trajectory
        assert torch.equal(ours, theirs), name


@pytest.mark.parametrize("schedule,spacing", EQUIV_GRIDS[:3])
def test_edm_heun_is_pie_and_deis_rho_4_is_ipndm_v_away_from_t0(schedule, spacing):
    """Heun in sigma_tilde = PIE; DEIS rhoAB through 4 points = the variable-step AB4 in
    sigma_tilde (quadrature vs closed-form Lagrange integrals). Same maths, other round-off."""
    sched = ob.schedules.get(schedule)
    prob = ob.problems.get("gmm-2d", sched)
    ts = grid(spacing, sched, n=15, t_min=0.01)
    x = prob.sample_marginal(6, ts[0], torch.Generator().manual_seed(9))
    for ours, theirs in [
        (make("edm-heun"), ob.solvers.get("pie")),
        (DEIS(4, "rho"), ipndm_v()),
    ]:
        a = ob.solve(ours, prob.eps, sched, x, ts, trajectory=True).trajectory
        b = ob.solve(theirs, prob.eps, sched, x, ts, trajectory=True).trajectory
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_edm_heun_and_pie_part_at_t0():
    """On a grid ending at t = 0, PIE evaluates eps at t = 0 and EDM does not (2N vs 2N - 1)."""
    sched = ob.schedules.get("ddpm-linear-1000")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(10, "pndm", schedule=sched)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(10))
    a = ob.solve("pie", prob.eps, sched, x, ts, trajectory=True)
    b = ob.solve(make("edm-heun"), prob.eps, sched, x, ts, trajectory=True)
    torch.testing.assert_close(a.trajectory[:-1], b.trajectory[:-1], rtol=1e-12, atol=1e-12)
    assert (a.nfe, b.nfe) == (20, 19)
    assert not torch.allclose(a.x, b.x, rtol=1e-6, atol=0)


def test_deis_t_and_rho_bases_agree_on_the_edm_schedule():
    """On "edm" sigma_tilde = 80 t, so a polynomial in t is one in sigma_tilde."""
    sched = ob.schedules.get("edm")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(12, "karras", t_max=0.5, t_min=0.005, schedule=sched)
    x = prob.sample_marginal(4, ts[0], torch.Generator().manual_seed(11))
    for k in (2, 3):
        a = ob.solve(DEIS(k, "t"), prob.eps, sched, x, ts).x
        b = ob.solve(DEIS(k, "rho"), prob.eps, sched, x, ts).x
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "schedule,t_max,t_min", [("linear", 1.0, 0.01), ("cosine-1000", 1.0, 0.99)],
)  # fmt: skip
def test_deis_t_weights_are_the_mean_of_the_lagrange_basis_over_the_step(schedule, t_max, t_min):
    """w_{n,j} = (1 / (s_{n+1} - s_n)) int L_j(t(s)) ds, s = sigma_tilde, L_j the Lagrange basis
    in t through t_n, t_{n-1}, ...: checked against scipy's adaptive quadrature in s (split at
    the table's knots, where t(s) is not smooth)."""
    sched = ob.schedules.get(schedule)
    ts = ob.timesteps(5, "lambda", t_max, t_min, schedule=sched)
    weights = DEIS(3, "t").step_weights(sched, ts)
    times = ts.tolist()
    st = [float(sched.sigma_tilde(t)) for t in times]
    knots = [float(sched.sigma_tilde(c)) for c in getattr(sched, "knots_t", torch.zeros(0))]
    for n in (1, 2, 4):
        nodes = np.array([times[n - j] for j in range(min(3, n + 1))])

        def basis(s, nodes=nodes):
            t = float(sched.t_from_sigma_tilde(s))
            return np.array([np.prod([(t - v) / (u - v) for v in nodes if v != u]) for u in nodes])

        breaks = [st[n + 1], *sorted(c for c in knots if st[n + 1] < c < st[n]), st[n]]
        integral = sum(
            quad_vec(basis, a, b, epsabs=0, epsrel=1e-13)[0] for a, b in itertools.pairwise(breaks)
        )
        expected = integral / (st[n] - st[n + 1])
        np.testing.assert_allclose(weights[n], expected, rtol=1e-10, atol=1e-12)


def test_reference_ipndm_v_coefficients():
    """diff-sampler's closed forms (ReferenceVariableIPNDM) against the Adams-Bashforth weights
    (the mean over the step of the Lagrange interpolant in sigma_tilde)."""
    ab = AB_FIXED
    equal = [3.0, 4.0, 5.0, 6.0]  # s_n, s_{n-1}, ... newest first; next node 2.0
    assert deis_mod._zhou_weights(equal[:2], 2.0) == pytest.approx(ab[2], abs=1e-15)
    assert deis_mod._zhou_weights(equal[:3], 2.0) == pytest.approx(ab[3], abs=1e-15)
    # "AB4" on equal steps: 11/24 instead of 3/8 on the third backward difference
    assert deis_mod._zhou_weights(equal, 2.0) == pytest.approx(
        np.array([57, -65, 43, -11]) / 24, abs=1e-14
    )
    # AB2 on unequal steps: (1 + r/2, -r/2), r = h_n / h_{n-1}
    assert deis_mod._zhou_weights([3.0, 5.0], 2.0) == pytest.approx((1.25, -0.25), abs=1e-15)
    # AB3 on unequal steps is not exact for quadratics; the Lagrange weights are
    nodes, s_next = np.array([3.0, 5.0, 5.5]), 1.0
    exact = (s_next**3 - nodes[0] ** 3) / 3 / (s_next - nodes[0])  # mean of s^2 over the step
    lagrange = ab_variable_weights(nodes, nodes[0], s_next)
    assert lagrange @ nodes**2 == pytest.approx(exact, rel=1e-14)
    assert abs(np.array(deis_mod._zhou_weights(list(nodes), s_next)) @ nodes**2 - exact) > 0.1


# -- orders on gaussian-lowrank -----------------------------------------------------------------

# t_max = 0.4: from t_max = 1 (lambda = -5) the first steps are where eps hardly varies, so the
# lower-order starts (DDIM for DEIS / iPNDM-v, UniPC-1 for UniPC-3) cost nothing visible and the
# interior order shows (see test_warm_up_cap_is_invisible_from_t_max_1).
ORDER_LADDER = [16, 32, 64, 128, 256, 512]


@pytest.fixture(scope="module")
def lowrank():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gaussian-lowrank", sched)
    return sched, prob


def measured_order(solver, sched, prob, t_max, ladder):
    x = prob.sample_marginal(8, t_max, torch.Generator().manual_seed(0))
    exact = prob.flow(x, t_max, 0.1)
    errs = []
    for n in ladder:
        ts = ob.timesteps(n, "lambda", t_max, 0.1, schedule=sched)
        errs.append(float((ob.solve(solver, prob.eps, sched, x, ts).x - exact).norm()))
    return fit_order([1.0 / n for n in ladder], errs), errs


@pytest.mark.parametrize("name", NAMES)
def test_measured_order_is_the_declared_order(name, lowrank):
    sched, prob = lowrank
    solver = make(name)
    fit, errs = measured_order(solver, sched, prob, 0.4, ORDER_LADDER)
    assert fit.ok and abs(fit.slope - solver.order) < 0.25, (fit.slope, errs)


@pytest.mark.parametrize(
    "solver,interior",
    [(UniPC(3), 4), (DEIS(3), 3), (ipndm_v(), 4), (UniPC(3, lower_order_final=True), 2)],
    ids=["unipc-3", "deis-tab-3", "ipndm-v", "unipc-3-lof"],
)  # fmt: skip
def test_warm_up_cap_is_invisible_from_t_max_1(solver, interior, lowrank):
    """The same ladder from t_max = 1 shows the interior order (the declared one is what the
    lower-order start allows as h -> 0); lower_order_final's DDIM last step is not hidden."""
    sched, prob = lowrank
    fit, errs = measured_order(solver, sched, prob, 1.0, [40, 80, 160, 320])
    assert abs(fit.slope - interior) < 0.35, (fit.slope, errs)


# -- cross-check with diffusers -----------------------------------------------------------------


def _diffusers_run(scheduler, steps, final_t, prob, sched, x):
    """Run a diffusers multistep scheduler on odebench's time points for its integer timesteps
    (index i at t = (i + 1) / 1000) and ``final_t``. diffusers keeps its sigmas in float32; they
    are replaced by float64 values from the same table so the comparison tests the algorithm."""
    scheduler.set_timesteps(steps)
    idx = scheduler.timesteps.numpy()
    ts = torch.tensor([*((idx + 1) / 1000.0), final_t], dtype=D)
    scheduler.sigmas = sched.sigma_tilde(ts)
    inputs = []
    for i, tau in enumerate(scheduler.timesteps):
        inputs.append(x.clone())
        x = scheduler.step(prob.eps(x, ts[i]), tau, x).prev_sample
    return ts, inputs, x


@pytest.fixture(scope="module")
def discrete_gmm():
    sched = ob.schedules.get("ddpm-linear-1000")
    prob = ob.problems.get("gmm-2d", sched)
    return sched, prob, prob.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))


def _max_rel(ours, theirs):
    return max(float((a - b).norm() / b.norm()) for a, b in zip(ours, theirs, strict=True))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy 2 conversions
@pytest.mark.parametrize("p", [2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("lower_order_final,final", [(True, "zero"), (False, "sigma_min")])
def test_unipc_matches_diffusers(p, variant, prediction, lower_order_final, final, discrete_gmm):
    """diffusers' model inputs are UniPC's predicted states and its last output the final
    prediction: both must be ours to 1e-10 (diffusers' defaults: lower_order_final=True,
    final sigma 0; with lower_order_final=False it needs a final sigma > 0)."""
    diffusers = pytest.importorskip("diffusers")
    sched, prob, x = discrete_gmm
    for steps in (7, 20):
        scheduler = diffusers.UniPCMultistepScheduler(
            beta_schedule="linear", solver_order=p, solver_type=variant,
            predict_x0=prediction == "data", lower_order_final=lower_order_final,
            final_sigmas_type=final,
        )  # fmt: skip
        final_t = 0.0 if final == "zero" else 1e-3
        ts, inputs, out = _diffusers_run(scheduler, steps, final_t, prob, sched, x.clone())
        rec = Recorder(prob.eps)
        ours = UniPC(p, variant, prediction, lower_order_final)
        sol = ob.solve(ours, rec, sched, x.clone(), ts)
        assert _max_rel([s for _, s in rec.calls] + [sol.x], [*inputs, out]) < 1e-10


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy 2 conversions
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("steps", [7, 20])
def test_deis_log_rho_matches_diffusers(k, steps, discrete_gmm):
    """diffusers' DEIS ("logrho"): eps interpolated in log sigma_tilde, integrated in closed
    form; lower_order_final applies there below 15 steps."""
    diffusers = pytest.importorskip("diffusers")
    sched, prob, x = discrete_gmm
    scheduler = diffusers.DEISMultistepScheduler(beta_schedule="linear", solver_order=k)
    ts, inputs, out = _diffusers_run(scheduler, steps, 1e-3, prob, sched, x.clone())
    rec = Recorder(prob.eps)
    sol = ob.solve(DEIS(k, "log_rho", lower_order_final=steps < 15), rec, sched, x.clone(), ts)
    assert _max_rel([s for _, s in rec.calls] + [sol.x], [*inputs, out]) < 1e-10


def test_deis_tab_differs_from_diffusers_deis(discrete_gmm):
    """tAB interpolates eps in t, diffusers in log sigma_tilde: the same for k = 1 (DDIM), not
    for k >= 2 (20 steps of diffusers' grid on gmm-2d: final states 6e-2 apart for k = 2, where
    both are far from converged)."""
    sched, prob, x = discrete_gmm
    idx = np.linspace(0, 999, 21).round()[::-1][:-1]  # diffusers' "linspace" timesteps
    ts = torch.tensor([*((idx + 1) / 1000), 1e-3], dtype=D)
    for k in (1, 2, 3):
        a = ob.solve(DEIS(k, "t"), prob.eps, sched, x, ts).x
        b = ob.solve(DEIS(k, "log_rho"), prob.eps, sched, x, ts).x
        gap = float((a - b).norm() / b.norm())
        assert gap < 1e-14 if k == 1 else gap > 1e-3, (k, gap)


# -- shapes, dtypes, options --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_any_trailing_shape_and_float32(name):
    sched = ob.schedules.get("linear")
    ts = ob.timesteps(9, "karras", t_min=0.01, schedule=sched)

    def eps(x, t):  # elementwise, so the shape must not matter
        return torch.tanh(x) * float(sched.sigma(t))

    x = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(13), dtype=D)
    full = ob.solve(make(name), eps, sched, x, ts).x
    flat = ob.solve(make(name), eps, sched, x.reshape(3, 8), ts).x
    torch.testing.assert_close(full.reshape(3, 8), flat, rtol=1e-14, atol=1e-14)
    single = ob.solve(make(name), eps, sched, x.float(), ts).x
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), full, rtol=1e-4, atol=1e-5)


def test_phi_functions():
    for z in (-3.0, -0.7, -1e-3, 1e-9, 0.4, 2.5):
        assert phi(0, z) == pytest.approx(math.exp(z), rel=1e-15)
        assert phi(1, z) == pytest.approx(math.expm1(z) / z, rel=1e-14)
        if abs(z) > 0.1:
            assert phi(2, z) == pytest.approx((math.expm1(z) - z) / z**2, rel=1e-13)
            assert phi(3, z) == pytest.approx((math.expm1(z) - z - z * z / 2) / z**3, rel=1e-12)
        else:  # Taylor to z^3; the remainder is below z^4 / 720
            assert phi(2, z) == pytest.approx(0.5 + z / 6 + z * z / 24 + z**3 / 120, rel=1e-14)
            assert phi(3, z) == pytest.approx(1 / 6 + z / 24 + z * z / 120 + z**3 / 720, rel=1e-14)


def test_declarations():
    for name in NAMES:
        solver = make(name)
        assert solver.name == name and solver.citation and solver.order in (1, 2, 3)
        assert solver.summary and solver.nfe(10) in (10, 20)
    assert UniPC(2).order == UniPC(3).order == 3
    assert UniPC(3, lower_order_final=True).order == 2
    assert [DEIS(k).order for k in (1, 2, 3)] == [1, 2, 2]
    assert make("edm-heun").nfe_on(ob.schedules.get("linear"), torch.tensor([0.5, 0.2, 0.0])) == 3
    assert all(make(n).takes_history for n in NAMES if n != "edm-heun")


@pytest.mark.parametrize(
    "factory,options",
    [(UniPC, {"p": 4}), (UniPC, {"variant": "bh3"}), (UniPC, {"prediction": "v"}),
     (DEIS, {"k": 5}), (DEIS, {"basis": "lambda"}), (DEIS, {"quadrature_nodes": 1}),
     (ipndm_v, {"coefficients": "exact"})],
)  # fmt: skip
def test_bad_options_raise(factory, options):
    with pytest.raises(ValueError):
        factory(**options)
