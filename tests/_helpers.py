"""Helpers several test modules share (import them as ``from _helpers import ...``).

Fixtures live in conftest.py; these are plain functions and classes: the scripts as modules,
a model that records its calls, cell configs as the runner builds them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CallRecorder:
    """An eps model that forwards to ``eps`` and records every call as (t, copy of x).

    Asserts the solver calls it as solvers must: one float64 0-d time per call.
    """

    def __init__(self, eps: Any) -> None:
        self.eps, self.calls = eps, []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.ndim == 0 and t.dtype == torch.float64
        self.calls.append((float(t), x.clone()))
        return self.eps(x, t)


def cell_config(kind: str, **values: Any) -> dict[str, Any]:
    """One cell's config as the runner hands it to ``run_cell``: ``values``, then the kind's
    defaults for every other field (one value per plain axis, the list for a ladder axis)."""
    from odebench.study import get

    spec = get(kind)
    config: dict[str, Any] = {}
    for name, field in {**spec.grid, **spec.options}.items():
        if name in values:
            config[name] = values[name]
        elif not field.required:
            default = field.default
            if name in spec.grid and name not in spec.ladder_axes:
                default = default[0] if isinstance(default, (list, tuple)) else default
            config[name] = default
    config.update({k: v for k, v in values.items() if k not in config})
    config["kind"] = kind
    return config


def cell_table(rows: list[dict[str, Any]], config: dict[str, Any]) -> pd.DataFrame:
    """``rows`` of one cell as the runner's table has them: each with the cell's plain axes."""
    from odebench.study import get

    spec = get(config["kind"])
    axes = {a: config[a] for a in spec.grid if a not in spec.ladder_axes and a in config}
    return pd.DataFrame([{**axes, **r} for r in rows])
