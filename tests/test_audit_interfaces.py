"""The audit speaks every parametrisation: flow matching (velocity), EDM (preconditioned raw
output), and eps / x0 / v on VP tables; and the reference starts where alpha = 0."""

import math

import pytest
import torch

import odebench as ob
from odebench.audit.interfaces import choose
from odebench.reference import reference

D = torch.float64
SMALL = [10, 20, 40, 80]


def small_audit(name, config=None, steps=SMALL):
    from odebench.audit import audit

    return audit(f"diffusers:{name}", config or {}, steps=steps, n_samples=4, probe_steps=10)


def card_value(report, key):
    return dict(report.lines)[key]


# -- the reference from alpha = 0 ----------------------------------------------------------------


class Hidden:
    """A problem without its exact flow: the reference must integrate."""

    def __init__(self, prob):
        self.eps, self.x0_pred = prob.eps, prob.x0_pred


@pytest.fixture(scope="module")
def gaussian_flow():
    sched = ob.schedules.get("flow")
    cov = torch.tensor([[0.5, 0.2, 0.0], [0.2, 0.3, 0.1], [0.0, 0.1, 0.8]], dtype=D)
    prob = ob.problems.Gaussian(torch.tensor([1.0, -2.0, 0.5], dtype=D), cov, sched)
    x = prob.sample_marginal(6, 1.0, torch.Generator().manual_seed(3)).to(D)
    return sched, prob, x


def test_reference_starts_at_pure_noise_and_matches_the_exact_gaussian_flow(gaussian_flow):
    """Under flow from t = 1 (alpha = 0, lambda = -inf) the two independent solves (in t on
    the velocity, in u = e^lambda on x / sigma) agree with the exact flow map, and the
    accuracy each reports bounds the true error."""
    sched, prob, x = gaussian_flow
    times = torch.tensor([1.0, 0.8, 0.3, 0.05], dtype=D)  # 0.8 > 1/2: the piece ends there
    ref = reference(Hidden(prob), sched, x, times, tol=1e-10)
    assert "from alpha = 0" in ref.method and "in u" in ref.second
    for k, t in enumerate(times):
        err = float((ref.states[k] - prob.flow(x, times[0], t)).pow(2).mean().sqrt())
        assert err < 1e-8
        assert err <= 100 * float(ref.accuracy[k]) + 1e-14
    assert float(ref.accuracy[1:].max()) > 0  # two solves, not one copied


def test_reference_from_pure_noise_through_a_switch_time_and_with_a_velocity_model(
    gaussian_flow,
):
    """A first requested time below lambda = 0 (t = 1/2 under flow) is reached through it;
    a velocity network's model.x0 is what the first piece uses; eps alone is refused."""
    sched, prob, x = gaussian_flow
    model = ob.models.from_prediction(prob.prediction("velocity"), "velocity", sched)
    times = torch.tensor([1.0, 0.2], dtype=D)
    ref = reference(prob, sched, x, times, tol=1e-10, model=model)
    exact = prob.flow(x, times[0], times[1])
    assert float((ref.states[1] - exact).abs().max()) < 1e-8
    with pytest.raises(ValueError, match="direct x0 prediction"):
        reference(prob, sched, x, times, model=prob.eps)


# -- interfaces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_edm_raw_output_makes_the_schedulers_denoiser_exact(prediction_type):
    """The F the audit feeds an EDM scheduler is what its own precondition_outputs turns into
    the exact x0 (a wrong c_skip, c_out or sign would not)."""
    diffusers = pytest.importorskip("diffusers")
    cfg = {"prediction_type": prediction_type, "sigma_max": 80.0, "sigma_data": 0.5}
    sch = diffusers.EDMEulerScheduler(**cfg)
    iface = choose(diffusers.EDMEulerScheduler, dict(sch.config), "ddpm-linear-1000")
    prob = ob.problems.get("gmm-2d", iface.schedule)
    for sigma in (70.0, 3.0, 0.05):
        t = sigma / 80.0
        x = prob.sample_marginal(5, t, torch.Generator().manual_seed(1)).to(D)
        raw = iface.network(prob)(x, torch.tensor(t, dtype=D))
        denoised = sch.precondition_outputs(x, raw, torch.tensor(sigma, dtype=D))
        assert torch.allclose(denoised, prob.x0_pred(x, torch.tensor(t, dtype=D)), atol=1e-10)
        c_noise = float(sch.precondition_noise(torch.tensor(sigma, dtype=D)))
        assert iface.time(c_noise) == pytest.approx(t, rel=1e-12)
        assert iface.c_in(t) == pytest.approx(1 / math.sqrt(sigma**2 + 0.25), rel=1e-12)


def test_each_class_gets_its_interpolant_and_prediction():
    diffusers = pytest.importorskip("diffusers")
    table = "ddpm-linear-1000"
    flow = choose(diffusers.FlowMatchEulerDiscreteScheduler, {}, table)
    assert (flow.interpolant, flow.kind, flow.time(1000.0), flow.time(250.0)) == (
        "flow",
        "velocity",
        1.0,
        0.25,
    )
    wan = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
    assert choose(diffusers.UniPCMultistepScheduler, wan, table).interpolant == "flow"
    for pt, kind in (("epsilon", "eps"), ("sample", "x0"), ("v_prediction", "v")):
        vp = choose(diffusers.DDIMScheduler, {"prediction_type": pt}, table)
        assert (vp.interpolant, vp.kind, vp.time(999)) == ("vp", kind, 1.0)
    dyn = choose(diffusers.FlowMatchEulerDiscreteScheduler, {"use_dynamic_shifting": True}, table)
    assert dyn.set_kwargs["mu"] == pytest.approx(math.log(ob.grids.flux_shift(4096)))


@pytest.mark.parametrize(
    ("name", "config", "supported"),
    [
        ("DDIMScheduler", '{"prediction_type": "bogus"}', "epsilon, sample, v_prediction"),
        ("DDIMScheduler", '{"prediction_type": "flow_prediction"}', "use_flow_sigmas"),
        ("EDMEulerScheduler", '{"prediction_type": "sample"}', "epsilon, v_prediction"),
    ],
)
def test_unmappable_prediction_type_is_one_line_and_exit_2(name, config, supported, capsys):
    pytest.importorskip("diffusers")
    from odebench.cli import main

    code = main(["audit", f"diffusers:{name}", "--config", config, "--steps", "10,20,40"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("odebench: error: ") and supported in err


# -- audits that converge -----------------------------------------------------------------------


def test_flow_match_euler_with_shift_converges_at_order_one_and_says_what_it_fed():
    pytest.importorskip("diffusers")
    rep = small_audit("FlowMatchEulerDiscreteScheduler", {"shift": 3.0})
    ode = rep.fits["ode"]
    assert ode.ok and abs(ode.slope - 1.0) < 0.1
    assert {r["t_start"] for r in rep.rows} == {1.0} and {r["t_end"] for r in rep.rows} == {0.0}
    assert card_value(rep, "interpolant").startswith("flow matching")
    assert card_value(rep, "model output").startswith("velocity")
    assert all(r["max_gap"] < 0.01 for r in rep.rows)


def test_edm_schedulers_converge_with_the_preconditioned_output_either_sign():
    pytest.importorskip("diffusers")
    for name, config, order in (
        ("EDMEulerScheduler", {"prediction_type": "v_prediction"}, 1.0),
        ("EDMDPMSolverMultistepScheduler", {}, 2.0),
    ):
        rep = small_audit(name, config)
        assert rep.fits["ode"].ok and abs(rep.fits["ode"].slope - order) < 0.25, name
        assert card_value(rep, "interpolant").startswith("VE / EDM")
        assert any(f.startswith("start scale") for f in rep.findings)  # sqrt(80^2 + 1)


def test_x0_and_v_predictions_give_the_eps_results_of_the_same_scheduler():
    """Exact x0 or v in place of exact eps: the same trajectory up to float32 round-off."""
    pytest.importorskip("diffusers")
    base = {"clip_sample": False}
    eps = small_audit("DDIMScheduler", base, steps=[10, 20, 40])
    for pt in ("v_prediction", "sample"):
        other = small_audit("DDIMScheduler", {**base, "prediction_type": pt}, steps=[10, 20, 40])
        assert pt in card_value(other, "model output")
        for a, b in zip(eps.rows, other.rows, strict=True):
            assert b["err_ode"] == pytest.approx(a["err_ode"], rel=1e-4)  # float32 tables


def test_a_class_with_a_convention_not_mapped_is_refused_in_one_line(capsys):
    """Stable Audio's cosine scheduler is neither a VP table nor EDM's c_noise: refused, not
    fed eps; on the command line (where it may also lack torchsde) one line, exit 2."""
    cosine = type("CosineDPMSolverMultistepScheduler", (), {})
    with pytest.raises(ValueError, match="does not map it yet"):
        choose(cosine, {}, "ddpm-linear-1000")
    pytest.importorskip("diffusers")
    from odebench.cli import main

    assert main(["audit", "diffusers:CosineDPMSolverMultistepScheduler"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "CosineDPMSolverMultistepScheduler" in err
