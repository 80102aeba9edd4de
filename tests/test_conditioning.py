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
