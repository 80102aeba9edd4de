"""The shipped flow-matching network gmm-2d-flow-mlp and the PredictionMLP it is built from.

Thresholds are measured values of the shipped network with margin (numbers in comments);
retraining it (scripts/train_gmm_networks.py --only gmm-2d-flow-mlp) may need them re-measured.
"""

import json

import pytest
import torch

import odebench as ob
from odebench.kinds.common import eps_model
from odebench.models import NetworkModel
from odebench.models.loading import ASSETS, load_state_dict, sha256, shipped
from odebench.models.mlp import PredictionMLP
from odebench.schedules.prediction import to_eps, to_x0

NAME = "gmm-2d-flow-mlp"


@pytest.fixture(scope="module")
def flow():
    """(loaded model in float64, gmm-2d under the flow schedule)."""
    return ob.models.load(NAME, dtype=torch.float64), ob.problems.get("gmm-2d", schedule="flow")


def test_ships_loads_and_predicts_velocity(flow):
    model, prob = flow
    assert NAME in shipped()
    assert isinstance(model, NetworkModel) and isinstance(model.net, PredictionMLP)
    assert model.prediction == "velocity" and model.schedule.name == "flow"
    assert model.time_input == "t" and model.net.dim == prob.dim
    assert "prediction='velocity'" in repr(model)
    assert ob.models.load(NAME).dtype == torch.float32  # shipped weights are float32


def test_card_fields_size_and_checksum(flow):
    model, _ = flow
    card = json.loads((ASSETS / f"{NAME}.json").read_text())
    assert card == model.card
    assert card["data"] == "gmm-2d" and card["schedule"] == "flow"
    assert card["parametrization"] == "velocity" and card["time_input"] == "t"
    assert card["architecture"]["class"] == "prediction-mlp"
    assert card["architecture"]["kwargs"]["prediction"] == "velocity"
    weights = ASSETS / card["weights"]
    assert sha256(weights) == card["sha256"]
    assert all(v.dtype == torch.float32 for v in load_state_dict(weights).values())
    # The same architecture size as the VP eps network of the same data.
    eps_card = json.loads((ASSETS / "gmm-2d-mlp.json").read_text())
    assert (
        card["parameters"]
        == eps_card["parameters"]
        == sum(p.numel() for p in model.net.parameters())
    )
    training = card["training"]
    for key in ("steps", "seed", "final_loss", "wall_seconds", "t_sampling", "loss"):
        assert key in training
    assert "z - x0" in training["loss"] and training["steps"] == eps_card["training"]["steps"]
    err = card["prediction_error"]
    assert len(err["t"]) == len(err["rms_error"]) == len(err["eps_rel_error"])


def test_eps_is_to_eps_of_its_velocity(flow):
    model, prob = flow
    sched = prob.schedule
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(16, generator=gen, dtype=torch.float64) * 0.98 + 0.005
    v = model.native(x, t)
    assert torch.equal(model(x, t), to_eps("velocity", v, x, t, sched))
    assert torch.equal(model.x0(x, t), to_x0("velocity", v, x, t, sched))
    # Flow matching by hand: x = (1 - t) x0 + t eps and v = eps - x0 give
    # eps = x + (1 - t) v and x0 = x - t v.
    tt = t[:, None]
    torch.testing.assert_close(model(x, t), x + (1 - tt) * v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.x0(x, t), x - tt * v, rtol=1e-12, atol=1e-12)


def test_velocity_is_accurate_on_the_manifold(flow):
    model, prob = flow
    exact = prob.prediction("velocity")
    gen = torch.Generator().manual_seed(5)
    # Bounds: about 5 times the card's prediction_error (measured there on 2048 points).
    for t, bound in ((1.0, 0.01), (80 / 81, 0.01), (0.5, 0.1), (0.01, 0.1)):
        x = prob.sample_marginal(512, t, gen)
        tt = torch.tensor(t, dtype=torch.float64)
        rms = float(torch.sqrt(torch.mean((model.native(x, tt) - exact(x, tt)) ** 2)))
        assert rms < bound, (t, rms)
    # ... and its data prediction at the pure-noise end is the data mean (exact there: 0).
    z = torch.randn(256, 2, generator=gen, dtype=torch.float64)
    mean = prob.x0_pred(z, 1.0)
    assert float((model.x0(z, 1.0) - mean).abs().max()) < 0.05  # measured: < 0.01


def test_trained_flow_network_is_picked_and_checked(flow):
    _, prob = flow
    net = eps_model("trained", prob, prob.schedule)
    assert net.name == NAME
    linear = ob.problems.get("gmm-2d", schedule="linear")
    assert eps_model("trained", linear, linear.schedule).name == "gmm-2d-mlp"
    with pytest.raises(ValueError, match="trained with schedule 'flow', not 'linear'"):
        eps_model(NAME, linear, linear.schedule)


def test_sampling_with_the_flow_network_follows_the_exact_ode(flow):
    model, prob = flow
    gen = torch.Generator().manual_seed(0)
    t_max = 80 / 81
    x_T = prob.sample_marginal(64, t_max, gen)
    grid = ob.timesteps(50, t_max=t_max, t_min=1e-3, schedule=prob.schedule)
    net = ob.solve("dpm-solver++-2m", model, prob.schedule, x_T, grid).x
    exact = ob.solve("dpm-solver++-2m", prob.eps, prob.schedule, x_T, grid).x
    assert float((net - exact).norm(dim=1).median()) < 0.1


@pytest.mark.parametrize("schedule", ["flow", "linear", "ve"])
@pytest.mark.parametrize("kind", PredictionMLP.PREDICTIONS)
def test_untrained_prediction_mlp_is_the_gaussian_prediction(schedule, kind):
    """The zero-initialised MLP is its Gaussian skip: on Gaussian data it is exact, for every
    prediction kind and interpolant (a wrong coefficient in eps_G, x0_G or from_pair fails)."""
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.2]], dtype=torch.float64)
    prob = ob.problems.Gaussian(torch.tensor([0.5, -1.0]), cov, schedule=schedule)
    net = PredictionMLP(2, hidden=8, layers=1, fourier=2, schedule=schedule, prediction=kind)
    net = net.double()
    evals, evecs = torch.linalg.eigh(cov)
    net.mean.copy_(prob.mean), net.evecs.copy_(evecs), net.evals.copy_(evals)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # sigma' (so the velocity) is infinite at t = 0 under VP, where sigma ~ t^(1/2).
    start = 1e-4 if kind == "velocity" and schedule == "linear" else 0.0
    for t in (start, 0.01, 0.5, 1.0):
        tt = torch.full((8,), t, dtype=torch.float64)
        torch.testing.assert_close(net(x, tt), prob.prediction(kind)(x, tt), rtol=1e-9, atol=1e-9)


def test_prediction_mlp_refuses_unknown_kinds():
    with pytest.raises(ValueError, match=r"prediction must be one of .*'velocity'"):
        PredictionMLP(2, prediction="denoiser")
