"""The model interface: time conventions, batching, dtypes, safe loading, diffusers UNets."""

import json

import pytest
import torch

import odebench as ob
from odebench.models import (
    NetworkModel,
    apply_state_dict,
    load_diffusers_unet,
    load_state_dict,
    tiny_unet2d,
)
from odebench.models.loading import build_architecture, read_card


class Probe(torch.nn.Module):
    """eps = x * w + time (records the time input it was given)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))
        self.seen = []

    def forward(self, x, time):
        self.seen.append(time.detach().clone())
        return x * self.w + time.reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize(
    "time_input,expected", [("t", 0.25), ("index", 249.0), ("index-authors", 248.0)]
)
def test_time_conventions(time_input, expected):
    net = Probe()
    model = NetworkModel(net, time_input=time_input, T=1000)
    model(torch.zeros(3, 2, dtype=torch.float64), torch.tensor(0.25, dtype=torch.float64))
    torch.testing.assert_close(net.seen[-1], torch.full((3,), expected))


def test_index_convention_matches_the_discrete_table():
    """Index i is fed exactly where the table's abar_i sits: t = (i + 1) / T."""
    sched = ob.schedules.get("ddpm-linear-1000")
    net = Probe()
    model = NetworkModel(net, time_input="index", T=1000)
    i = torch.tensor([0, 17, 999])
    for k in range(3):
        model(torch.zeros(1, 1), sched.t_of_index(i[k]))
        assert float(net.seen[-1]) == pytest.approx(float(i[k]), abs=1e-4)


def test_batches_dtype_device_and_counts():
    net = Probe()
    full = NetworkModel(net, batch_size=None)
    chunked = NetworkModel(net, batch_size=3)
    x = torch.randn(10, 4, dtype=torch.float64)
    a, b = full(x, 0.5), chunked(x, 0.5)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert len(net.seen) == 1 + 4  # 10 rows in chunks of 3
    assert chunked.calls == 1 and chunked.samples == 10
    assert not a.is_inference()  # usable by autograd-free code outside inference mode
    sol = ob.solve("ddim", chunked, "linear", x, ob.timesteps(5, t_min=0.1))
    assert sol.nfe == 5 and chunked.calls == 6


def test_network_shape_mismatch_is_refused():
    class Bad(torch.nn.Module):
        def forward(self, x, time):
            return x[:, :1]

    model = NetworkModel(Bad(), name="bad")
    with pytest.raises(ValueError, match=r"bad: network returned shape \(2, 1\)"):
        model(torch.zeros(2, 3), 0.5)


def test_bad_options():
    with pytest.raises(ValueError, match="time_input must be one of") as bad:
        NetworkModel(Probe(), time_input="sigmas")
    assert "sigma-tilde" in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(ValueError, match="needs the number of training steps T"):
        NetworkModel(Probe(), time_input="index")
    with pytest.raises(ValueError, match="unknown prediction kind 'sample'") as bad:
        NetworkModel(Probe(), prediction="sample", schedule="flow")
    assert "eps, x0, v, velocity, denoiser" in str(bad.value) and "\n" not in str(bad.value)
    for kw in ({"prediction": "velocity"}, {"time_input": "sigma"}):
        with pytest.raises(ValueError, match="needs schedule="):
            NetworkModel(Probe(), **kw)
    with pytest.raises(ValueError, match="x0 needs the network's schedule"):
        NetworkModel(Probe()).x0(torch.zeros(2, 2), 0.5)


@pytest.mark.parametrize(
    "schedule,time_input,scale,expected",
    [
        ("linear", "sigma", 1.0, lambda s: float(s.sigma(0.25))),
        ("linear", "sigma-tilde", 1.0, lambda s: float(s.sigma(0.25) / s.alpha(0.25))),
        ("flow", "sigma", 1000.0, lambda s: 0.25),  # SD3 / diffusers: 1000 x flow time
        ("flow", "sigma-tilde", 1.0, lambda s: 1 / 3),  # sigma / alpha = t / (1 - t)
        ("ve", "sigma-tilde", 1.0, lambda s: 20.0),  # EDM's sigma = 80 t
    ],
)
def test_noise_level_time_inputs(schedule, time_input, scale, expected):
    sched, net = ob.schedules.get(schedule), Probe()
    model = NetworkModel(net, time_input=time_input, time_scale=scale, schedule=sched)
    model(torch.zeros(3, 2, dtype=torch.float64), torch.tensor(0.25, dtype=torch.float64))
    want = torch.full((3,), expected(sched) * scale, dtype=torch.float32)
    torch.testing.assert_close(net.seen[-1], want)


class Exact(torch.nn.Module):
    """A network that is the exact prediction fn(x, time) of an analytic problem."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x, time):
        return self.fn(x, time)


@pytest.mark.parametrize("schedule", ["linear", "flow", "ve"])
@pytest.mark.parametrize("kind", ob.models.PREDICTIONS)
def test_predictions_convert_to_the_exact_eps_and_x0(schedule, kind):
    """A network predicting any kind gives the problem's eps and x0 back (round trip through
    the network's own output); the denoiser is fed (x / alpha, sigma / alpha) as EDM does."""
    prob = ob.problems.get("gmm-2d", schedule=schedule)
    time_input = "sigma-tilde" if kind == "denoiser" else "t"
    model = NetworkModel(
        Exact(prob.prediction(kind)), prediction=kind, schedule=schedule, time_input=time_input
    )
    gen = torch.Generator().manual_seed(2)
    x = 1.5 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.02, 0.1, 0.3, 0.5, 0.8, 0.95], dtype=torch.float64)
    torch.testing.assert_close(model(x, t), prob.eps(x, t), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.x0(x, t), prob.x0_pred(x, t), rtol=1e-10, atol=1e-10)
    if kind == "denoiser":  # its output is x0 itself
        torch.testing.assert_close(model.native(x, t), prob.x0_pred(x, t), rtol=1e-10, atol=1e-10)
    assert model.calls == 2 + (kind == "denoiser") and model.samples == 6 * model.calls


def test_an_eps_network_is_called_as_before_and_gives_x0():
    prob = ob.problems.get("gmm-2d")
    plain = NetworkModel(Exact(prob.eps))
    carded = NetworkModel(Exact(prob.eps), schedule="linear")
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(plain(x, 0.3), carded(x, 0.3)) and plain.schedule is None
    torch.testing.assert_close(carded.x0(x, 0.3), prob.x0_pred(x, 0.3), rtol=1e-12, atol=1e-12)


def test_loading_refuses_pickles_and_names_the_file(tmp_path):
    state = Probe().state_dict()
    for name in ("w.bin", "w.pkl", "weights"):
        path = tmp_path / name
        torch.save(state, path)
        with pytest.raises(ValueError, match=rf"{name}: refusing to load"):
            load_state_dict(path)
    pt = tmp_path / "w.pt"
    torch.save(state, pt)
    assert set(load_state_dict(pt)) == {"w"}  # a plain state dict passes weights_only=True

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": Evil()}, evil)
    with pytest.raises(ValueError, match="evil.pt: cannot read weights"):
        load_state_dict(evil)


def test_corrupt_and_mismatched_weights_name_the_file(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="broken.safetensors: cannot read weights"):
        load_state_dict(bad)
    other = tmp_path / "other.safetensors"
    save_file({"v": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match=r"other.safetensors: .*missing key 'w'"):
        apply_state_dict(Probe(), load_state_dict(other), other)
    shaped = tmp_path / "shaped.safetensors"
    save_file({"w": torch.zeros(3)}, str(shaped))
    with pytest.raises(ValueError, match=r"shaped.safetensors: .*'w' has shape \(3,\)"):
        apply_state_dict(Probe(), load_state_dict(shaped), shaped)


def test_cards_are_checked(tmp_path):
    card = tmp_path / "c.json"
    card.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="c.json: card lacks architecture"):
        read_card(card)
    with pytest.raises(ValueError, match="unknown architecture 'os.system'"):
        build_architecture({"class": "os.system"}, card)
    with pytest.raises(ValueError, match="unknown network 'nope'"):
        ob.models.load("nope")


def test_diffusers_unet_from_a_local_folder(tmp_path):
    pytest.importorskip("diffusers")
    unet = tiny_unet2d()
    unet.save_pretrained(tmp_path / "unet", safe_serialization=True)
    model = load_diffusers_unet(tmp_path / "unet", dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    t = ob.schedules.get("ddpm-linear-1000").t_of_index(torch.tensor(499))
    got = model(x, t)
    with torch.no_grad():
        direct = unet.double()(x, torch.full((2,), 499.0, dtype=torch.float64)).sample
    torch.testing.assert_close(got, direct)
    sol = ob.solve("f-pndm", model, "ddpm-linear-1000", x, ob.timesteps(5, "pndm"))
    assert sol.nfe == 5 + 9 and torch.isfinite(sol.x).all()
    for f in (tmp_path / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ValueError, match="no .safetensors weights"):
        load_diffusers_unet(tmp_path / "unet")
    with pytest.raises(ValueError, match="no config.json"):
        load_diffusers_unet(tmp_path)


def test_flat_states_for_an_image_network():
    """The digits UNet declares input_shape (1, 8, 8): flat (B, 64) states, as the
    digits-data problem uses, give the same eps as images."""
    model = ob.models.load("digits-unet", dtype=torch.float64)
    assert model.input_shape == (1, 8, 8)
    x = torch.randn(3, 64, dtype=torch.float64)
    t = torch.tensor(0.4, dtype=torch.float64)
    torch.testing.assert_close(model(x, t), model(x.reshape(3, 1, 8, 8), t).reshape(3, 64))


def test_trained_picks_the_network_of_the_problem():
    from odebench.kinds.common import eps_model

    prob = ob.problems.get("gmm-2d")
    assert eps_model("trained", prob, prob.schedule).name == "gmm-2d-mlp"
    with pytest.raises(ValueError, match="no shipped network was trained on 'gmm-2d' with"):
        eps_model("trained", prob.with_schedule("cosine"), ob.schedules.get("cosine"))
    with pytest.raises(ValueError, match="trained with data 'gmm-64d', not 'gmm-2d'"):
        eps_model("gmm-64d-mlp", prob, prob.schedule)
