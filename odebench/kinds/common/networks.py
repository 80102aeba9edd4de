"""The eps model of a study cell: the problem's exact eps or a shipped network trained on it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ...models import NetworkModel


def eps_model(
    name: str, prob: Any, sched: Any, device: str = "cpu", dtype: torch.dtype = torch.float64
) -> NetworkModel | None:
    """The eps model of a cell: None for the problem's exact eps, else a shipped network in
    ``dtype`` (float64 by default: a smooth right-hand side, so adaptive references can reach
    tight tolerances) on ``device``, refused unless it was trained on this problem and
    schedule. Its output is float64 whatever ``dtype`` it computes in."""
    if name == "exact":
        return None
    from ...models import load, shipped

    if name == "trained":  # the shipped network trained on this problem and schedule
        name = trained_network(prob.name, sched.name, shipped())

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    net = load(name, dtype=dtype, device=device)
    for key, there, here in (
        ("data", card_problem(net.card), prob.name),
        ("schedule", net.card["schedule"], sched.name),
    ):
        if there != here:
            raise ValueError(f"network {name!r} was trained with {key} {there!r}, not {here!r}")
    return net


def card_problem(card: dict[str, Any]) -> str:
    """The embedded problem a network was trained on (``problem``, else ``data``)."""
    return card.get("problem", card["data"])


def trained_network(problem: str, schedule: str, names: list[str]) -> str:
    """The first of the shipped networks ``names`` trained on ``problem`` with ``schedule``."""
    from ...models.loading import ASSETS

    for name in names:
        card = json.loads((ASSETS / f"{name}.json").read_text())
        if card_problem(card) == problem and card["schedule"] == schedule:
            return name
    raise ValueError(
        f"no shipped network was trained on {problem!r} with the {schedule!r} schedule"
    )
