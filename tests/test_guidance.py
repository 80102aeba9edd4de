"""Exact class-conditional and guided eps of mixtures (odebench.problems.guidance)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import odebench as ob
from odebench.problems.guidance import GuidedMixture, class_labels

T = [0.05, 0.3, 0.9]


def restricted(prob: ob.problems.GaussianMixture, c: int) -> ob.problems.GaussianMixture:
    """The mixture of class c's components, built independently (weights renormalised)."""
    keep = prob.classes == c
    w = prob.weights[keep] / prob.weights[keep].sum()
    return ob.problems.GaussianMixture(
        prob.means[keep], prob.variances[keep], w, prob.schedule, name=f"class {c}"
    )


@pytest.mark.parametrize("name", ["gmm-2d", "gmm-64d"])
@pytest.mark.parametrize("schedule", ["linear", "flow"])
def test_conditional_eps_is_the_restricted_mixtures_eps(name, schedule):
    prob = ob.problems.get(name, schedule)
    labels = class_labels(12, prob.K)
    x = torch.randn(12, prob.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    cond = GuidedMixture(prob, labels, scale=1.0)
    for t in T:
        want = torch.stack(
            [restricted(prob, int(c)).eps(x[i : i + 1], t)[0] for i, c in enumerate(labels)]
        )
        torch.testing.assert_close(cond(x, t), want, rtol=1e-12, atol=1e-12)
        want_x0 = torch.stack(
            [restricted(prob, int(c)).x0_pred(x[i : i + 1], t)[0] for i, c in enumerate(labels)]
        )
        torch.testing.assert_close(cond.x0(x, t), want_x0, rtol=1e-12, atol=1e-12)


def test_guidance_is_the_linear_combination_and_zero_is_unconditional():
    prob = ob.problems.get("gmm-2d", "linear")
    labels = torch.tensor([0, 3, 4, 1, 2, 2])
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    null = GuidedMixture(prob, labels, 0.0)
    cond = GuidedMixture(prob, labels, 1.0)
    for t in T:
        torch.testing.assert_close(null(x, t), prob.eps(x, t), rtol=0, atol=0)
        e0, e1 = null(x, t), cond(x, t)
        for w in (0.5, 3.0, 7.5):
            guided = GuidedMixture(prob, labels, w)
            torch.testing.assert_close(guided(x, t), e0 + w * (e1 - e0), rtol=1e-11, atol=1e-11)
            x0 = null.x0(x, t) + w * (cond.x0(x, t) - null.x0(x, t))
            torch.testing.assert_close(guided.x0(x, t), x0, rtol=1e-11, atol=1e-11)
            # eps and x0 of one guided model are one prediction: x = alpha x0 + sigma eps
            tt = torch.tensor(t, dtype=torch.float64)
            a, s = prob.schedule.alpha(tt), prob.schedule.sigma(tt)
            torch.testing.assert_close(a * guided.x0(x, t) + s * guided(x, t), x)


def test_per_sample_times_keep_each_rows_label():
    prob = ob.problems.get("gmm-2d", "linear")
    labels = torch.tensor([0, 4, 1])
    x = torch.randn(3, 2, dtype=torch.float64)
    t = torch.tensor([0.2, 0.7, 0.2], dtype=torch.float64)
    model = GuidedMixture(prob, labels, 2.0)
    rows = torch.stack(
        [GuidedMixture(prob, labels[i : i + 1], 2.0)(x[i : i + 1], t[i])[0] for i in range(3)]
    )
    torch.testing.assert_close(model(x, t), rows, rtol=1e-13, atol=1e-13)


def test_digits_classes_are_the_digits():
    prob = ob.problems.get("digits-data")
    assert prob.classes.shape == (1797,)
    assert sorted(torch.unique(prob.classes).tolist()) == list(range(10))
    # a noisy image of a 0 conditioned on 0 denoises to an average of zeros only
    zero = prob.means[prob.classes == 0]
    x = prob.schedule.alpha(torch.tensor(0.3)) * zero[:1]
    x0 = GuidedMixture(prob, torch.tensor([0]), 1.0).x0(x, 0.3)
    assert float(torch.cdist(x0, zero).min()) < float(torch.cdist(x0, prob.means).max())


@pytest.mark.parametrize(
    "labels, scale, match",
    [
        (torch.tensor([0, 9]), 1.0, "among its classes"),
        (torch.tensor([0.0, 1.0]), 1.0, "integer"),
        (torch.tensor([0, 1]), -1.0, ">= 0"),
    ],
)
def test_bad_guidance_is_refused(labels, scale, match):
    with pytest.raises(ValueError, match=match):
        GuidedMixture(ob.problems.get("gmm-2d"), labels, scale)


def test_label_count_must_match_the_batch():
    model = GuidedMixture(ob.problems.get("gmm-2d"), torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match="2 labels for a batch of 3"):
        model(torch.zeros(3, 2, dtype=torch.float64), 0.5)


# -- guidance in the study kinds -----------------------------------------------------------
def _orders_config(**over):
    from odebench.kinds.orders import run_cell

    config = {
        "problem": "gmm-2d",
        "model": "exact",
        "schedule": "linear",
        "t_min": 0.1,
        "spacing": "uniform",
        "seed": 0,
        "solver": ["ddim", "heun"],
        "steps": [10, 20, 40],
        "n_samples": 8,
        "mode": "global",
        "t_max": 1.0,
        "device": "cpu",
        "ref_tol": 1e-10,
    }
    config.update(over)
    return run_cell, config


def test_orders_guidance_axis_tags_rows_and_zero_is_the_unguided_ladder():
    run_cell, config = _orders_config()
    plain = run_cell(config)
    _, guided_config = _orders_config(guidance=[0.0, 3.0])
    guided = run_cell(guided_config)
    assert "guidance" not in plain[0]
    zero = [r for r in guided if r["guidance"] == 0.0]
    three = [r for r in guided if r["guidance"] == 3.0]
    assert len(zero) == len(three) == len(plain)
    for a, b in zip(plain, zero, strict=True):
        assert a["error_rms"] == b["error_rms"]
    # guidance changes the field: the errors of the guided ladder differ
    assert all(a["error_rms"] != b["error_rms"] for a, b in zip(zero, three, strict=True))


def test_guidance_needs_a_conditional_model():
    from odebench.kinds.common.networks import eps_model

    prob = ob.problems.get("gaussian-lowrank")
    with pytest.raises(ValueError, match="has one"):
        eps_model("exact", prob, prob.schedule, guidance=2.0, n=4)
    digits = ob.problems.get("digits-data")
    with pytest.raises(ValueError, match="needs a conditional network"):
        eps_model("digits-unet", digits, digits.schedule, guidance=2.0, n=4)


def test_a_guided_norms_study_writes_one_figure_per_scale(tmp_path):
    """A norms study with a guidance ladder: its rows carry w and its figures are one per w
    (they had one name, and publishing the second failed at the end of the run)."""
    from odebench.cli import main

    study = tmp_path / "guided_norms.toml"
    study.write_text(
        '[study]\nname = "guided_norms"\nkind = "norms"\n'
        f'output = "{tmp_path / "out"}"\n'
        '[grid]\nproblem = ["gmm-2d"]\nmodel = ["exact"]\nschedule = ["linear"]\n'
        'guidance = [0.0, 3.0]\nsolver = ["ddim", "f-pndm"]\nnfe = [20]\nt_min = [0.01]\n'
        'spacing = ["uniform"]\nseed = [0]\n[options]\nn_samples = 8\nref_tol = 1e-8\n'
    )
    assert main(["run", str(study), "--no-progress"]) == 0
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2 and pngs[0].endswith("_w0.png") and pngs[1].endswith("_w3.png")
    rows = pd.read_csv(tmp_path / "out" / "guided_norms_summary.csv")
    assert sorted(rows["guidance"].unique()) == [0.0, 3.0]
