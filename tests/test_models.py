"""The model interface: time conventions, batching, dtypes, safe loading, diffusers UNets."""

import json

import pytest
import torch

import odebench as ob
from odebench.models import NetworkModel, apply_state_dict, load_diffusers_unet, load_state_dict
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
    with pytest.raises(ValueError, match="time_input must be one of"):
        NetworkModel(Probe(), time_input="sigma")
    with pytest.raises(ValueError, match="needs the number of training steps T"):
        NetworkModel(Probe(), time_input="index")


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
    diffusers = pytest.importorskip("diffusers")
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
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
