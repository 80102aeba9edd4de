"""Conditioned networks and classifier-free guidance in NetworkModel."""

from __future__ import annotations

import pytest
import torch

import odebench as ob
from odebench.models import NetworkModel

D = torch.float64


class LabelNet(torch.nn.Module):
    """eps = 0.5 x + t + bias[label]: affine, so the guided output has a closed form."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]], dtype=D))

    def forward(self, x, t, labels):
        return 0.5 * x + t[:, None] + self.bias[labels]


class KeywordNet(LabelNet):
    def forward(self, x, t, class_labels=None):
        out = super().forward(x, t, class_labels)

        class Output:  # as diffusers returns: the tensor is .sample
            sample = out

        return Output()


def test_labels_shared_or_per_sample_reach_the_network():
    x = torch.randn(4, 2, dtype=D)
    shared = NetworkModel(LabelNet(), condition=torch.tensor([2]))
    torch.testing.assert_close(shared(x, 0.3), 0.5 * x + 0.3 + torch.tensor([3.0, 2.0], dtype=D))
    labels = torch.tensor([0, 1, 2, 1])
    each = NetworkModel(LabelNet(), condition=labels, batch_size=3)
    torch.testing.assert_close(each(x, 0.3), 0.5 * x + 0.3 + LabelNet().bias[labels].detach())
    keyword = NetworkModel(KeywordNet(), condition=labels, condition_keyword="class_labels")
    torch.testing.assert_close(keyword(x, 0.3), each(x, 0.3))


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
def test_classifier_free_guidance_is_null_plus_w_times_the_difference(w):
    x = torch.randn(5, 2, dtype=D)
    model = NetworkModel(
        LabelNet(), condition=torch.tensor([2]), null_condition=torch.tensor([0]), guidance_scale=w
    )
    bias = LabelNet().bias.detach()
    expected = 0.5 * x + 0.2 + bias[0] + w * (bias[2] - bias[0])
    torch.testing.assert_close(model(x, 0.2), expected)
    assert model.calls == 1 and model.samples == (5 if w == 1.0 else 10)


def test_a_guided_model_runs_in_solvers_and_moves_the_samples():
    prob = ob.problems.get("gmm-2d")
    ts = ob.timesteps(20, t_min=1e-2)
    x = prob.sample_marginal(16, 1.0, torch.Generator().manual_seed(0))
    plain = NetworkModel(LabelNet(), condition=torch.tensor([1]))
    guided = NetworkModel(
        LabelNet(),
        condition=torch.tensor([1]),
        null_condition=torch.tensor([0]),
        guidance_scale=4.0,
    )
    a = ob.solve("ddim", plain, prob.schedule, x, ts)
    b = ob.solve("ddim", guided, prob.schedule, x, ts)
    assert a.nfe == b.nfe == 20 and float((a.x - b.x).norm()) > 1.0


def test_bad_conditioning_is_one_line():
    with pytest.raises(ValueError, match="guidance_scale != 1 needs"):
        NetworkModel(LabelNet(), condition=torch.tensor([1]), guidance_scale=2.0)
    with pytest.raises(ValueError, match="guidance_scale must be"):
        NetworkModel(
            LabelNet(),
            condition=torch.tensor([1]),
            null_condition=torch.tensor([0]),
            guidance_scale=-1.0,
        )
    with pytest.raises(ValueError, match="must be a tensor"):
        NetworkModel(LabelNet(), condition=[1, 2])
    with pytest.raises(ValueError, match="null_condition needs a condition"):
        NetworkModel(LabelNet(), null_condition=torch.tensor([0]))
    model = NetworkModel(LabelNet(), condition=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one per sample"):
        model(torch.zeros(3, 2, dtype=D), 0.5)


def test_a_tiny_diffusers_conditional_unet_from_a_local_folder_with_guidance(tmp_path):
    """A UNet2DConditionModel built here (no download), saved and loaded back: the guided
    model is the null output plus w times the difference, computed in one batch."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    unet.save_pretrained(tmp_path / "cond", safe_serialization=True)
    text, empty = torch.randn(1, 4, 8), torch.zeros(1, 4, 8)
    load = ob.models.load_diffusers_unet
    kw = {"dtype": torch.float64, "input_shape": (1, 8, 8)}
    cond = load(tmp_path / "cond", condition=text, **kw)
    null = load(tmp_path / "cond", condition=empty, **kw)
    guided = load(tmp_path / "cond", condition=text, null_condition=empty, guidance_scale=5.0, **kw)
    x = torch.randn(3, 64, dtype=D)
    c, u, g = cond(x, 0.5), null(x, 0.5), guided(x, 0.5)
    torch.testing.assert_close(g, u + 5.0 * (c - u), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="needs condition="):
        load(tmp_path / "cond")
