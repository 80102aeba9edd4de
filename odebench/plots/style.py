"""What every figure family shares: solver colours and markers, cell titles and file names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

STYLE = {
    "ddim": ("C0", "o"),
    "s-pndm": ("C1", "s"),
    "f-pndm": ("C2", "^"),
    "fon": ("C3", "v"),
    "euler": ("C4", "D"),
    "heun": ("C5", "P"),
    "rk4": ("C6", "X"),
    "pie": ("C7", "<"),
    "prk": ("C8", ">"),
    "ab2": ("C9", "h"),
    "ab3": ("k", "*"),
    "ipndm": ("0.5", "p"),
}



def style(name: str) -> tuple[str, str]:
    """(colour, marker) of a solver; black dots for one without a style."""
    return STYLE.get(name, ("k", "."))


def model_tag(keys: dict[str, Any], sep: str) -> str:
    """``sep + model`` for a network model, nothing for the exact eps."""
    model = keys.get("model", "exact")
    return "" if model in (None, "exact") else f"{sep}{model}"


def cell_title(keys: dict[str, Any]) -> str:
    """The title of a cell's figure: problem, model, schedule, t_min, grid (and seed)."""
    return (
        f"{keys['problem']}{model_tag(keys, ' with network ')}, {keys['schedule']} schedule, "
        f"t_min = {keys['t_min']:g}, "
        f"{keys['spacing']} grid" + (f", seed {keys['seed']}" if keys.get("seed") else "")
    )


def cell_name(keys: dict[str, Any], prefix: str) -> str:
    """The file stem of a cell's figure."""
    return (
        f"{prefix}_{keys['problem']}{model_tag(keys, '_')}_{keys['schedule']}_"
        f"tmin{keys['t_min']:g}_"
        f"{keys['spacing']}" + (f"_seed{keys['seed']}" if keys.get("seed") else "")
    )


def save(fig: Any, path: Path) -> Path:
    """Lay out, write and close ``fig``; return ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
