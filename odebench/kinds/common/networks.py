"""The eps model of a study cell: the problem's exact eps or a shipped network trained on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from ...problems import GaussianMixture

if TYPE_CHECKING:
    from ...models import NetworkModel
    from ...problems.guidance import GuidedMixture


def eps_model(
    name: str,
    prob: Any,
    sched: Any,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    guidance: float = 0.0,
    n: int | None = None,
    conditional: bool | None = None,
) -> NetworkModel | GuidedMixture | None:
    """The eps model of a cell: None for the problem's exact eps, else a shipped network in
    ``dtype`` (float64 by default: a smooth right-hand side, so adaptive references can reach
    tight tolerances) on ``device``, refused unless it was trained on this problem and
    schedule. Its output is float64 whatever ``dtype`` it computes in.

    ``guidance`` w is classifier-free guidance on the class labels i mod K of the cell's
    ``n`` samples (``problems.guidance.class_labels``): eps_null + w (eps_c - eps_null),
    w = 0 the unconditional model (the default), 1 the conditional one. The exact model is
    then the mixture's exact guided eps; ``trained`` picks the shipped class-conditional
    network of the problem. ``conditional`` (default: ``guidance != 0``) asks for that
    network even at w = 0, where it runs once per evaluation on the null label (its own
    unconditional eps): a guidance ladder then compares one network with itself.
    """
    guidance = float(guidance)
    conditional = guidance != 0.0 if conditional is None else bool(conditional)
    if guidance != 0.0 and not conditional:
        raise ValueError(f"guidance {guidance:g} needs a conditional network")
    if name == "exact":
        if guidance == 0.0:
            return None
        from ...problems.guidance import GuidedMixture, class_labels

        classes = len(prob.classes.unique()) if isinstance(prob, GaussianMixture) else 1
        if classes < 2:
            raise ValueError(f"guidance needs classes: {prob.name!r} has one (no condition)")
        return GuidedMixture(prob, class_labels(_count(n), classes), guidance)
    from ...models import load, shipped

    if name == "trained":  # the shipped network trained on this problem and schedule
        name = trained_network(prob.name, sched.name, shipped(), conditional=conditional)

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    if guidance == 0.0:  # a conditional network without a condition runs on its null label
        net = load(name, dtype=dtype, device=device)
    else:
        from ...models.loading import ASSETS
        from ...problems.guidance import class_labels

        card = json.loads((ASSETS / f"{name}.json").read_text())
        if "condition" not in card:
            raise ValueError(f"guidance {guidance:g} needs a conditional network, not {name!r}")
        labels = class_labels(_count(n), int(card["condition"]["classes"]))
        net = load(name, dtype=dtype, device=device, condition=labels, guidance_scale=guidance)
    for key, there, here in (
        ("data", card_problem(net.card), prob.name),
        ("schedule", net.card["schedule"], sched.name),
    ):
        if there != here:
            raise ValueError(f"network {name!r} was trained with {key} {there!r}, not {here!r}")
    return net


def guided_models(
    config: dict[str, Any], prob: Any, sched: Any, n: int
) -> Iterator[tuple[dict[str, float], Any]]:
    """(row tag, eps model) per guidance scale of a cell's ``guidance`` ladder: the tag is
    ``{"guidance": w}`` where the study varies it, ``{}`` for the default [0]. A ladder with
    any w != 0 runs the class-conditional network at every w, w = 0 on its null label. A
    split cell (one scale of the ladder, ``split_from``) decides both by the whole ladder, so
    its rows are those the unsplit cell gives at its scale."""
    scales = [float(w) for w in config.get("guidance", [0.0])]
    whole = [float(w) for w in config.get("split_from", {}).get("guidance", scales)]
    conditional = any(w != 0.0 for w in whole)
    for w in scales:
        model = eps_model(
            config.get("model", "exact"),
            prob,
            sched,
            config.get("device", "cpu"),
            guidance=w,
            n=n,
            conditional=conditional,
        )
        yield ({"guidance": w} if whole != [0.0] else {}), model


def card_problem(card: dict[str, Any]) -> str:
    """The embedded problem a network was trained on (``problem``, else ``data``)."""
    return card.get("problem", card["data"])


def trained_network(
    problem: str, schedule: str, names: list[str], conditional: bool = False
) -> str:
    """The first of the shipped networks ``names`` trained on ``problem`` with ``schedule``:
    an unconditional one, or with ``conditional`` a class-conditional one."""
    from ...models.loading import ASSETS

    for name in names:
        card = json.loads((ASSETS / f"{name}.json").read_text())
        if (
            card_problem(card) == problem
            and card["schedule"] == schedule
            and ("condition" in card) == conditional
        ):
            return name
    what = "class-conditional network" if conditional else "network"
    raise ValueError(f"no shipped {what} was trained on {problem!r} with the {schedule!r} schedule")


def _count(n: int | None) -> int:
    if n is None or n < 1:
        raise ValueError("guidance needs the number of samples of the cell (their labels)")
    return int(n)
