"""A tiny study kind for the runner tests (a module of its own so spawn workers import it).

``run_cell`` is cheap and deterministic. Two environment variables let tests observe and
steer it without touching the cell config (which would change the cache keys):

* ``DUMMY_LOG_DIR``: each call writes one file there holding its pid and config, so a test
  can count calls and see which process ran them.
* ``DUMMY_FAIL_CELL``: ``"solver,scale"``; the cell with those values raises.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.study import Field, StudyKind, register

SOLVERS = ("a", "b", "c")


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be positive"


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step count: a fake error ``scale * steps**-order`` and some extras."""
    log_dir = os.environ.get("DUMMY_LOG_DIR")
    if log_dir:
        record = {"pid": os.getpid(), "config": config}
        (Path(log_dir) / f"{uuid.uuid4().hex}.json").write_text(json.dumps(record))
    fail = os.environ.get("DUMMY_FAIL_CELL")
    if fail and fail == f"{config['solvers']},{config['scale']}":
        raise RuntimeError(f"planned failure in {fail}")
    if config["mode"] == "bad-row":
        return [{"error": [1.0, 2.0]}]
    if config["mode"] == "conflict":
        return [{"solvers": "not-" + config["solvers"], "error": 1.0}]
    order = SOLVERS.index(config["solvers"]) + 1
    rows = []
    for steps in config["steps"]:
        row: dict[str, Any] = {
            "steps": steps,
            "error": config["scale"] * steps ** (-order) / 3.0,
            "nfe": steps * order,
            "ok": steps % 2 == 0,
        }
        if steps == config.get("split_from", {}).get("steps", config["steps"])[0]:
            row["note"] = "first, rung"  # only some rows have it; has a comma
        rows.append(row)
    return rows


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean error per solver."""
    return df.groupby("solvers", sort=False, as_index=False)["error"].mean()


def plot(df: pd.DataFrame, summary: pd.DataFrame | None, folder: Path) -> list[Path]:
    """A stand-in 'figure': a text file per call, written into the folder given."""
    path = folder / "dummy.txt"
    path.write_text(f"{len(df)} rows, {0 if summary is None else len(summary)} solvers\n")
    return [path]


KIND = StudyKind(
    name="dummy",
    grid={
        "solvers": Field(str, choices=lambda: SOLVERS, help="fake solver names"),
        "steps": Field(int, check=_positive, help="step ladder"),
        "scale": Field(float, default=[1.0], help="error scale"),
    },
    options={
        "n_samples": Field(int, default=4),
        "mode": Field(str, default="ok", choices=("ok", "bad-row", "conflict")),
    },
    ladder_axes=("steps",),
    run_cell=run_cell,
    summarize=summarize,
    plot=plot,
)
register(KIND)

#: The same kind with its step ladder split into one cell per step count (the "first rung"
#: note is decided by the whole ladder, ``split_from``, so the rows are the same).
SPLIT_KIND = dataclasses.replace(KIND, name="dummy-split", split_axes=("steps",))
register(SPLIT_KIND)
