"""The shipped class-conditional digits-cond-unet: its card, classifier-free guidance, and that
its labels choose the digit (checked by the shipped digits classifier)."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers import load_script

import odebench as ob
from odebench.models import load, shipped
from odebench.models.classifier import load_digits_classifier, predict
from odebench.models.loading import ASSETS, sha256

NAME = "digits-cond-unet"
SCHED = ob.schedules.get("ddpm-linear-1000")


def test_card_declares_the_condition_and_its_weights():
    assert NAME in shipped()
    card = json.loads((ASSETS / f"{NAME}.json").read_text())
    assert card["condition"] == {"kind": "class-labels", "classes": 10, "null": 10}
    assert card["architecture"]["kwargs"]["num_classes"] == 10
    assert sha256(ASSETS / card["weights"]) == card["sha256"]
    assert card["training"]["eval_loss"] < 0.08


def test_guided_output_is_null_plus_w_times_the_conditional_difference():
    labels = torch.tensor([3, 7, 0, 9])
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    null = load(NAME, dtype=torch.float64)  # no condition: the null label
    cond = load(NAME, dtype=torch.float64, condition=labels)
    for t in (0.9, 0.3, 0.02):
        e0, e1 = null(x, t), cond(x, t)
        assert float((e1 - e0).abs().max()) > 1e-3  # the label matters
        for w in (0.0, 2.5):
            guided = load(NAME, dtype=torch.float64, condition=labels, guidance_scale=w)
            torch.testing.assert_close(guided(x, t), e0 + w * (e1 - e0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"condition": torch.tensor([11])}, "labels in 0..9"),
        ({"condition": torch.tensor([1.0])}, "integer class labels"),
        ({"guidance_scale": 2.0}, "needs condition="),
    ],
)
def test_bad_conditions_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(NAME, **kwargs)


def test_an_unconditional_network_takes_no_condition():
    with pytest.raises(ValueError, match="not conditional"):
        load("digits-unet", condition=torch.tensor([1]))


def test_the_label_chooses_the_digit():
    """20 samples, labels i mod 10, 20 DDIM steps: the classifier reads the asked-for digit;
    without a label (null) the digits are whatever the model draws."""
    classifier = load_digits_classifier()
    labels = torch.arange(20) % 10
    x_T = torch.randn(20, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = ob.timesteps(20, "uniform", 1.0, 1e-3)
    hits = {}
    for name, kwargs in (("null", {}), ("cond", {"condition": labels})):
        model = load(NAME, **kwargs)
        model.input_shape = (1, 8, 8)
        x = ob.solve("ddim", model, SCHED, x_T, grid).x
        hits[name] = float((predict(classifier, x.float()) == labels).float().mean())
    assert hits["cond"] >= 0.9, hits
    assert hits["null"] <= 0.5, hits


def test_training_script_writes_a_loadable_conditional_card(tmp_path):
    script = load_script("train_digits_unet")
    net, record = script.train(3, seed=0, log_every=0, conditional=True)
    card = script.write(net, record, tmp_path)
    assert card.name == f"{NAME}.json"
    model = load(card, condition=torch.tensor([4]), guidance_scale=2.0)
    assert model(torch.zeros(1, 1, 8, 8), 0.5).shape == (1, 1, 8, 8)


def test_a_guidance_ladder_runs_the_conditional_network_at_every_scale():
    """With any w != 0 in the ladder, w = 0 is the conditional network's own null-label eps
    (not the separately trained unconditional network): one network compared with itself."""
    from odebench.kinds.common.networks import guided_models

    prob = ob.problems.get("digits-data", SCHED)
    config = {"model": "trained", "guidance": [0.0, 2.0]}
    models = dict((tag["guidance"], m) for tag, m in guided_models(config, prob, SCHED, n=4))
    assert {m.card["name"] for m in models.values()} == {NAME}
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    null = load(NAME, dtype=torch.float64)
    torch.testing.assert_close(models[0.0](x, 0.4), null(x, 0.4), rtol=0, atol=0)
    ((_, alone),) = guided_models({"model": "trained"}, prob, SCHED, n=4)
    assert alone.card["name"] == "digits-unet"  # no guidance asked: the unconditional network


def test_a_split_guidance_cell_runs_what_its_whole_ladder_would():
    """The runner splits an orders cell's guidance ladder into one cell per scale
    (``split_from``): the w = 0 cell still runs the conditional network on its null label
    and still tags its rows, as the unsplit cell does at w = 0."""
    from odebench.kinds.common.networks import guided_models
    from odebench.kinds.orders import KIND

    assert "guidance" in KIND.split_axes
    prob = ob.problems.get("digits-data", SCHED)
    whole = {"model": "trained", "guidance": [0.0, 2.0]}
    for w in (0.0, 2.0):
        split = {"model": "trained", "guidance": [w], "split_from": {"guidance": [0.0, 2.0]}}
        ((tag, model),) = guided_models(split, prob, SCHED, n=4)
        want = {t["guidance"]: m for t, m in guided_models(whole, prob, SCHED, n=4)}[w]
        assert tag == {"guidance": w}
        assert model.card["name"] == want.card["name"] == NAME
        x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(model(x, 0.3), want(x, 0.3), rtol=0, atol=0)
