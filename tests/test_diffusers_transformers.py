"""diffusers' diffusion transformers from a local folder: DiT (class labels, eps with a
learned variance) and SD3 (flow matching, velocity, text embeddings), tiny configurations
built and saved in the test (no downloads)."""

from __future__ import annotations

import json

import pytest
import torch

import odebench as ob

diffusers = pytest.importorskip("diffusers")
D = torch.float64


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory):
    torch.manual_seed(0)
    net = diffusers.DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,  # eps and a learned variance, as DiT-XL/2
        num_layers=1,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=10,
    )
    folder = tmp_path_factory.mktemp("dit") / "dit"
    net.save_pretrained(folder)
    return folder, net.to(D).eval()


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    torch.manual_seed(0)
    net = diffusers.SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        caption_projection_dim=16,
        pooled_projection_dim=8,
        out_channels=4,
        pos_embed_max_size=16,
    )
    folder = tmp_path_factory.mktemp("sd3") / "sd3"
    net.save_pretrained(folder)
    return folder, net.to(D).eval()


def test_dit_eps_is_the_first_channels_at_the_index_and_guided_on_the_null_label(dit_folder):
    folder, net = dit_folder
    labels = torch.tensor([3, 7])
    x = torch.randn(2, 4, 8, 8, dtype=D, generator=torch.Generator().manual_seed(1))
    t = 0.25  # index t T - 1 = 249
    model = ob.models.load_diffusers(folder, condition=labels, guidance_scale=4.0, dtype=D)
    index = torch.full((2,), 249.0, dtype=D)
    with torch.no_grad():
        cond = net(x, timestep=index, class_labels=labels).sample[:, :4]
        null = net(x, timestep=index, class_labels=torch.tensor([10, 10])).sample[:, :4]
    torch.testing.assert_close(model(x, t), null + 4.0 * (cond - null), rtol=1e-10, atol=1e-10)
    plain = ob.models.load_diffusers(folder, condition=labels, dtype=D)
    torch.testing.assert_close(plain(x, t), cond, rtol=1e-10, atol=1e-10)


def test_sd3_is_a_flow_velocity_model_at_1000_t_with_two_condition_inputs(sd3_folder):
    folder, net = sd3_folder
    g = torch.Generator().manual_seed(2)
    cond = {
        "encoder_hidden_states": torch.randn(1, 5, 16, dtype=D, generator=g),
        "pooled_projections": torch.randn(1, 8, dtype=D, generator=g),
    }
    null = {k: torch.zeros_like(v) for k, v in cond.items()}
    model = ob.models.load_diffusers(
        folder, condition=cond, null_condition=null, guidance_scale=3.0, dtype=D
    )
    assert model.prediction == "velocity" and model.schedule.name == "flow"
    x = torch.randn(3, 4, 8, 8, dtype=D, generator=g)
    t = 0.6
    with torch.no_grad():

        def velocity(c):
            return net(
                hidden_states=x,
                encoder_hidden_states=c["encoder_hidden_states"].expand(3, -1, -1),
                pooled_projections=c["pooled_projections"].expand(3, -1),
                timestep=torch.full((3,), 600.0, dtype=D),
            ).sample

        v = velocity(null) + 3.0 * (velocity(cond) - velocity(null))
    # x = (1 - t) x0 + t eps and v = eps - x0 give eps = x + (1 - t) v
    torch.testing.assert_close(model(x, t), x + (1 - t) * v, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model.native(x, t), v, rtol=1e-9, atol=1e-9)


def test_a_transformer_runs_in_a_solver(sd3_folder):
    folder, _ = sd3_folder
    cond = {"encoder_hidden_states": torch.zeros(1, 5, 16), "pooled_projections": torch.ones(1, 8)}
    model = ob.models.load_diffusers(folder, condition=cond, dtype=D)
    x = torch.randn(2, 4, 8, 8, dtype=D, generator=torch.Generator().manual_seed(3))
    sol = ob.solve(
        "dpm-solver++-2m", model, model.schedule, x, ob.timesteps(6, "uniform", 0.98, 0.05)
    )
    assert sol.nfe == 6 and bool(torch.isfinite(sol.x).all())


def test_transformer_errors_are_one_line(dit_folder, sd3_folder, tmp_path):
    with pytest.raises(ValueError, match=r"DiTTransformer2DModel needs condition= \(class labels"):
        ob.models.load_diffusers(dit_folder[0])
    with pytest.raises(ValueError, match="needs condition= \\(a dict"):
        ob.models.load_diffusers(sd3_folder[0])
    other = tmp_path / "flux"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="a FluxTransformer2DModel, not one of"):
        ob.models.load_diffusers(other)
    with pytest.raises(ValueError, match="same keywords"):
        ob.models.load_diffusers(
            sd3_folder[0],
            condition={"encoder_hidden_states": torch.zeros(1, 5, 16)},
            null_condition={"pooled_projections": torch.zeros(1, 8)},
            guidance_scale=2.0,
        )
