"""Issue 17's library probes: bad input is refused at the boundary with a ValueError naming the
argument, and a sample that leaves the finite numbers is recorded per sample (which one, at
which step) while the other samples of its batch keep their values."""

import math

import pytest
import torch

import odebench as ob
from odebench import convergence
from odebench.cli import main
from odebench.models import NetworkModel
from odebench.problems import Dirac, Gaussian, GaussianMixture, QuadratureField
from odebench.problems.guidance import GuidedMixture
from odebench.reference import reference
from odebench.solvers.variants import VariantSolver

D = torch.float64
NAN, INF = math.nan, math.inf
BAD_SAMPLE = 3
T_BAD = 0.5  # the model is NaN for BAD_SAMPLE below this time


@pytest.fixture
def setup():
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    x = prob.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    return sched, prob, x


def nan_below(eps, t_bad: float = T_BAD, sample: int = BAD_SAMPLE):
    """``eps`` but NaN for one sample at every time below ``t_bad``."""

    def model(x, t):
        out = eps(x, t).clone()
        if float(t) < t_bad:
            out[sample] = NAN
        return out

    return model


# -- the model's output --------------------------------------------------------------------
def test_an_integer_eps_is_refused_naming_its_dtype(setup):
    sched, prob, x = setup
    ts = ob.timesteps(5, t_min=0.1)
    with pytest.raises(ValueError, match=r"model returned eps of dtype torch.int64; a float"):
        ob.solve("ddim", lambda x, t: prob.eps(x, t).to(torch.int64), sched, x, ts)

    class X0Int:  # a model with its own data prediction, given as integers
        def __call__(self, x, t):
            return prob.eps(x, t)

        def x0(self, x, t):
            return prob.x0_pred(x, t).to(torch.int64)

    flow = ob.schedules.get("flow")  # x0 is read where alpha = 0: flow matching's t = 1
    with pytest.raises(ValueError, match=r"model returned x0 of dtype torch.int64"):
        ob.solve("dpm-solver++-2m", X0Int(), flow, x, ob.timesteps(5, t_max=1.0, t_min=0.1))


def test_a_network_returning_integers_is_refused_before_the_cast():
    class IntNet(torch.nn.Module):
        def forward(self, x, t):
            return torch.round(x).to(torch.int32)

    net = NetworkModel(IntNet(), name="intnet")
    with pytest.raises(ValueError, match=r"intnet: network returned dtype torch.int32"):
        net(torch.zeros(2, 3), 0.5)


# -- problems' constructors -----------------------------------------------------------------
MEANS = [[0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: GaussianMixture([[NAN, 0.0], [1.0, 1.0]], [1.0, 1.0]), "means must be finite"),
        (lambda: GaussianMixture([[INF, 0.0], [1.0, 1.0]], [1.0, 1.0]), "means must be finite"),
        (lambda: GaussianMixture(MEANS, [INF, 1.0]), "variances must be finite"),
        (lambda: GaussianMixture(MEANS, [[1.0, NAN], [1.0, 1.0]]), "variances must be finite"),
        (lambda: GaussianMixture(MEANS, [-1.0, 1.0]), "variances must be >= 0"),
        (lambda: GaussianMixture(MEANS, [[1.0, -0.1], [1.0, 1.0]]), "variances must be >= 0"),
        (lambda: GaussianMixture(torch.zeros(0, 2), torch.zeros(0)), "K >= 1 components"),
        (lambda: GaussianMixture(MEANS, [1.0, 1.0], [NAN, 1.0]), "weights must be finite"),
        (lambda: GaussianMixture("abc", [1.0]), "means must be numbers, got the string"),
        (lambda: GaussianMixture(MEANS, ["a", "b"]), "variances must be numbers"),
        (lambda: Gaussian([0.0, NAN], 1.0), "mean must be finite"),
        (lambda: Gaussian([0.0, 0.0], INF), "cov must be finite"),
        (lambda: Gaussian([0.0, 0.0], -1.0), "cov must be >= 0"),
        (lambda: Dirac([INF, 0.0]), "point must be finite"),
        (lambda: QuadratureField([1.0, NAN]), "direction must be finite"),
    ],
)
def test_bad_problem_parameters_are_refused_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_zero_variances_are_point_masses_not_errors():
    gmm = GaussianMixture(MEANS, [0.0, 0.0])
    x = torch.tensor([[0.5, 0.5]], dtype=D)
    assert torch.isfinite(gmm.eps(x, 0.5)).all()  # c_k = sigma^2 > 0 for every t > 0


@pytest.mark.parametrize("scale", [INF, NAN, -1.0])
def test_a_guidance_scale_must_be_finite_and_non_negative(scale):
    gmm = ob.problems.get("gmm-2d")
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        GuidedMixture(gmm, torch.tensor([0, 1]), scale=scale)


# -- the start state and the grid -----------------------------------------------------------
def test_a_non_finite_start_is_refused_naming_x_T_not_reported_as_divergence(setup):
    sched, prob, x = setup
    x = x.clone()
    x[2, 1] = NAN
    x[5, 0] = INF
    ts = ob.timesteps(5, t_min=0.1)
    with pytest.raises(ValueError, match=r"start state x_T\) is not finite: 2 of 8 .*2, 5"):
        ob.solve("ddim", prob.eps, sched, x, ts)
    with pytest.raises(ValueError, match=r"x_T is not finite: 2 of 8"):
        reference(prob, sched, x, ts)
    with pytest.raises(ValueError, match="x_T.*empty batch"):
        reference(prob, sched, torch.zeros(0, 2, dtype=D), ts)


@pytest.mark.parametrize(
    "ts,match",
    [
        ("1.0,0.5,0.1", "a time grid must be a sequence of numbers, got the string"),
        (["a", "b"], "must be a sequence of numbers"),
        ([1.0, "0.5", 0.1], "must be a sequence of numbers"),
        (None, "must be a sequence of numbers"),
        ([1.0, NAN, 0.1], "must be finite, got nan at index 1"),
        ([1.0, 0.2, 0.5], "strictly decreasing"),
        (torch.tensor([True, False]), "real numbers"),
    ],
)
def test_a_bad_grid_is_refused_naming_the_argument(setup, ts, match):
    sched, prob, x = setup
    with pytest.raises(ValueError, match=f"^ts: .*{match}"):
        ob.solve("ddim", prob.eps, sched, x, ts)
    with pytest.raises(ValueError, match=f"^times: .*{match}"):
        reference(prob, sched, x, ts)


def test_a_list_grid_of_numbers_still_runs(setup):
    sched, prob, x = setup
    a = ob.solve("ddim", prob.eps, sched, x, [1.0, 0.5, 0.1])
    b = ob.solve("ddim", prob.eps, sched, x, torch.tensor([1.0, 0.5, 0.1], dtype=D))
    assert torch.equal(a.x, b.x)


# -- divergence is per sample ---------------------------------------------------------------
FIXED_STEP = [n for n in ob.solvers.names() if not ob.solvers.get(n).adaptive]


@pytest.mark.parametrize("name", FIXED_STEP)
def test_one_diverging_sample_leaves_the_others_untouched(setup, name):
    sched, prob, x = setup
    solver = ob.solvers.get(name)
    ts = ob.timesteps(max(12, solver.min_steps), t_min=0.1)
    if isinstance(solver, VariantSolver):  # the faithful variants run on a table's steps
        sched = ob.schedules.get("ddpm-linear-1000")
        prob = prob.with_schedule(sched)
        ts = ob.timesteps(20, "pndm", schedule=sched)
    seed = {"generator": torch.Generator().manual_seed(1)} if solver.stochastic else {}
    clean = ob.solve(name, prob.eps, sched, x, ts, trajectory=True, **dict(seed))
    seed = {"generator": torch.Generator().manual_seed(1)} if solver.stochastic else {}
    sol = ob.solve(name, nan_below(prob.eps), sched, x, ts, trajectory=True, **seed)
    others = torch.arange(len(x)) != BAD_SAMPLE
    assert clean.diverged is None
    assert torch.equal(sol.x[others], clean.x[others])  # not poisoned by the bad sample
    assert torch.equal(sol.trajectory[:, others], clean.trajectory[:, others])
    div = sol.diverged
    assert div is not None and div.samples == [BAD_SAMPLE] and div.count == 1
    k = int(div.sample_steps[BAD_SAMPLE])
    assert div.step == k and k >= 1 and float(ts[k]) < T_BAD  # below the bad time
    assert torch.isfinite(sol.trajectory[:k, BAD_SAMPLE]).all()
    assert (
        torch.isnan(sol.trajectory[k:, BAD_SAMPLE]).all() and torch.isnan(sol.x[BAD_SAMPLE]).all()
    )
    assert sol.finite.tolist() == others.tolist()
    assert sol.nfe == clean.nfe


def test_the_recorded_step_is_the_first_step_that_evaluates_below_the_bad_time(setup):
    sched, prob, x = setup
    ts = ob.timesteps(20, t_min=0.1)  # DDIM's step n evaluates the model at ts[n - 1] only
    sol = ob.solve("ddim", nan_below(prob.eps), sched, x, ts)
    first = 1 + int(torch.nonzero(ts < T_BAD)[0])
    want = [first if i == BAD_SAMPLE else 0 for i in range(len(x))]
    assert sol.diverged.sample_steps.tolist() == want
    assert (sol.diverged.t_from, sol.diverged.t_to) == (float(ts[first - 1]), float(ts[first]))
    assert str(sol.diverged).startswith(f"1 of 8 samples diverged, the first at step {first} ")


def test_every_sample_diverging_reads_as_before(setup):
    sched, prob, x = setup
    ts = ob.timesteps(10, t_min=0.1)
    sol = ob.solve("ddim", lambda x, t: prob.eps(x, t) / 0.0, sched, x, ts)
    assert sol.diverged.count == 8 and sol.diverged.step == 1 and torch.isnan(sol.x).all()
    assert str(sol.diverged) == f"diverged at step 1 (t 1 -> {float(ts[1]):g})"


def test_one_dimensional_states_diverge_per_sample_too():
    sched = ob.schedules.get("linear")
    x = torch.linspace(-1.0, 1.0, 5, dtype=D)
    ts = ob.timesteps(6, t_min=0.1)
    sol = ob.solve("ddim", nan_below(lambda x, t: 0.5 * x, sample=1), sched, x, ts)
    assert sol.diverged.samples == [1]
    assert torch.isfinite(sol.x[torch.arange(5) != 1]).all()


def test_the_order_rows_count_the_diverged_samples(setup):
    sched, prob, x = setup
    grids = {n: ob.timesteps(n, t_min=0.1) for n in (10, 20)}
    ref = convergence.global_reference(prob, sched, x, grids, 1e-10)
    solver = ob.solvers.get("ddim")
    rows = convergence.global_errors(solver, nan_below(prob.eps), sched, x, grids, ref)
    for row in rows:
        assert row["diverged_samples"] == 1 and row["error_rms"] == INF
        assert float(grids[row["steps"]][row["diverged_step"]]) == row["diverged_t"] < T_BAD
    clean = convergence.global_errors(solver, prob.eps, sched, x, grids, ref)
    assert all("diverged_samples" not in row for row in clean)  # finite tables keep columns


def test_a_reference_that_fails_names_the_samples_that_made_it_fail(setup):
    sched, prob, x = setup
    ts = ob.timesteps(10, t_min=0.1)
    with pytest.raises(RuntimeError, match=r"failed: .* for 1 of 8 samples \(samples \[3\];"):
        reference(prob, sched, x, ts, model=nan_below(prob.eps))


# -- the command line -----------------------------------------------------------------------
def test_a_bad_problem_in_a_study_cell_is_exit_2_with_one_line(monkeypatch, tmp_path, capsys):
    from odebench.problems import embedded

    bad = (lambda schedule: GaussianMixture([[NAN, 0.0]], [1.0], None, schedule), "bad")
    monkeypatch.setitem(embedded.EMBEDDED, "gmm-2d", bad)
    argv = ["orders", "--solvers", "ddim", "--steps", "5,10", "--n-samples", "2"]
    assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "means must be finite" in err and "Traceback" not in err


def test_an_integer_prediction_is_refused_not_promoted():
    sched = ob.schedules.get("flow")
    model = ob.models.from_prediction(
        lambda x, t: torch.zeros_like(x, dtype=torch.int64), "x0", sched
    )
    with pytest.raises(ValueError, match="x0 model returned torch.int64"):
        model(torch.randn(2, 2, dtype=torch.float64), 0.5)


@pytest.mark.parametrize("ts", ["1,0.5,0.1", ["a", "b"], [0.1, 0.5, 0.9]])
@pytest.mark.parametrize("tool", ["lipschitz_along_path", "per_step_errors"])
def test_the_singularity_tools_name_a_bad_grid(ts, tool):
    prob = ob.problems.get("gmm-2d", ob.schedules.get("linear"))
    x = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))
    args = (prob, None, x, ts) if tool == "lipschitz_along_path" else ("ddim", prob, None, x, ts)
    with pytest.raises(ValueError, match="ts: a time grid"):
        getattr(ob.singularity, tool)(*args)
