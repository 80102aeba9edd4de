"""Fuzzing the command line and study files: every input runs or exits 2 with one line
(issue 17).

Hypothesis draws subcommands with flags of every kind (well-formed and not: huge, negative,
NaN, empty, lists, stray text) and study files (known and unknown keys, values of every TOML
type, broken TOML). Each goes through ``odebench ... --estimate``, which validates everything
and estimates the run but computes nothing, so an accepted input costs milliseconds. The
outcome must be exit status 0, or 2 with exactly one line on stderr; an exception escaping
``main`` (a traceback) fails the test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odebench.cli import main
from odebench.study import get

KINDS = ["orders", "norms", "quality", "singularity", "modern", "sde"]
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_. ", min_size=0, max_size=12)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 3, 16, 64, 10**9, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
NAMES = st.sampled_from(
    ["gmm-2d", "gaussian-lowrank", "linear", "cosine", "ddim", "heun", "uniform", "exact", "w2"]
)


def _flags(kind: str) -> list[str]:
    spec = get(kind)
    return ["--" + name.replace("_", "-") for name in [*spec.grid, *spec.options]]


def _flag_value(draw: Any) -> str:
    value = draw(st.one_of(NUMBERS, NAMES, WORDS, st.lists(st.one_of(NUMBERS, NAMES), max_size=4)))
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@st.composite
def command_lines(draw: Any) -> list[str]:
    kind = draw(st.sampled_from([*KINDS, "audit"]))
    if kind == "audit":
        args = ["audit", draw(st.sampled_from(["diffusers:DDIMScheduler", "nope", "x:y"]))]
        flags = ["--steps", "--n-samples", "--seed", "--problem", "--max-memory", "--config"]
    else:
        args = [kind]
        flags = [*_flags(kind), "--workers", "--scheduler", "--max-memory"]
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4)):
        args += [flag, _flag_value(draw)]
    if draw(st.booleans()):
        args.append(draw(st.sampled_from(["--yes", "--bogus", "--steps"])))
    return [*args, "--estimate"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return json.dumps(value)


SCALARS = st.one_of(NUMBERS, NAMES, WORDS, st.booleans())
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))


#: A valid grid of each kind, which the drawn keys then change or extend.
BASE = {
    "orders": {"problem": ["gmm-2d"], "schedule": ["linear"], "solver": ["ddim"]},
    "norms": {"problem": ["gmm-2d"], "schedule": ["linear"]},
    "quality": {"problem": ["gmm-2d"], "schedule": ["linear"]},
    "singularity": {"problem": ["gmm-2d"], "schedule": ["linear"]},
    "modern": {"problem": ["gmm-2d"], "schedule": ["linear"], "solver": ["ddim"]},
    "sde": {"problem": ["gaussian-lowrank"], "schedule": ["linear"], "solver": ["ddpm"]},
    "audit": {"sampler": ["DDIMScheduler"]},
    "nope": {},
}


@st.composite
def study_files(draw: Any) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))  # anything, mostly not TOML
    kind = draw(st.sampled_from(list(BASE)))
    spec = get(kind) if kind != "nope" else None
    name = draw(st.sampled_from(["s", "s", "s", "x.y", "-bad", ""]))
    lines = ["[study]", f'name = "{name}"', f"kind = {json.dumps(kind)}"]
    for section, keys in (
        ("grid", list(spec.grid) if spec else []),
        ("options", list(spec.options) if spec else []),
    ):
        values = dict(BASE[kind]) if section == "grid" else {}
        for key in draw(st.lists(st.sampled_from([*keys, "typo"]), max_size=3, unique=True)):
            values[key] = draw(VALUES)
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _one_line_or_success(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code in (0, 2), (argv, code, captured.err)
    assert "Traceback" not in captured.err
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("odebench"), (argv, captured.err)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(argv=command_lines())
def test_any_command_line_runs_or_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    _one_line_or_success(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert not list((tmp_path / "out").glob("*.csv"))  # --estimate computes nothing


@FUZZ
@given(text=study_files())
def test_any_study_file_runs_or_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    _one_line_or_success(capsys, ["run", str(path), "--estimate", "--out", str(tmp_path / "o")])
