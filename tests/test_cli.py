"""The command line generated from the study kinds: one subcommand per kind, flags from its
fields, the summary text the kind declares, and the commands and flags of before."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from odebench.cli import build_parser
from odebench.cli.generate import study_data
from odebench.study import get, parse_study

ROOT = Path(__file__).resolve().parents[1]

#: The flags each study command had before it was generated from its kind's fields.
OLD_FLAGS = {
    "orders": "--problem --model --schedule --solvers --t-min --spacing --seed --n-samples "
    "--steps --t-max --local --ref-tol --device",
    "norms": "--problem --model --schedule --solvers --t-min --spacing --seed --n-samples "
    "--nfe --t-max --device",
    "singularity": "--problem --schedule --solvers --t-min --spacing --seed --n-samples --steps",
    "quality": "--problem --model --schedule --solvers --t-min --spacing --seed --n-samples "
    "--steps --t-max --prior --metrics --no-paired --match --device",
}
RUN_FLAGS = "--out --workers --scheduler --no-progress"


def spec_of(argv: list[str]) -> dict:
    """The validated study an ``odebench KIND ...`` command line describes (nothing runs)."""
    args = build_parser().parse_args(argv)
    return parse_study(study_data(get(argv[0]), args)).to_dict()


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(OLD_FLAGS))
def test_every_old_flag_still_exists(command, capsys):
    text = help_of(command, capsys)
    for flag in f"{OLD_FLAGS[command]} {RUN_FLAGS}".split():
        assert re.search(rf"{flag}\b", text), (command, flag)


def test_orders_without_arguments_is_the_main_job():
    """The spec (hence the cache keys and the numbers) of ``odebench orders``, pinned."""
    assert spec_of(["orders"]) == {
        "study": {
            "name": "orders",
            "kind": "orders",
            "description": "odebench orders (command line)",
        },
        "grid": {
            "problem": ["gmm-2d"],
            "model": ["exact"],
            "schedule": ["linear"],
            "prediction": ["eps"],
            "shift": [1.0],
            "guidance": [0.0],
            "solver": ["ddim", "s-pndm", "f-pndm", "fon", "euler", "heun", "rk4"],
            "steps": [25, 50, 100, 200, 400, 800, 1600],
            "t_min": [0.1],
            "spacing": ["uniform"],
            "seed": [0],
        },
        "options": {
            "n_samples": 64,
            "mode": "global",
            "t_max": 1.0,
            "device": "cpu",
            "ref_tol": 1e-12,
        },
    }


def test_shortcuts_and_generated_flags_set_the_same_fields():
    assert spec_of(["orders", "--local"]) == spec_of(["orders", "--mode", "local"])
    match = spec_of(["quality", "--match", "ddim@40", "--no-paired"])["options"]
    assert (match["match_solver"], match["match_steps"], match["paired"]) == ("ddim", 40, False)
    generated = spec_of(["quality", "--match-solver", "ddim", "--match-steps", "40", "--no-paired"])
    assert generated["options"] == match


def test_generated_flags_of_the_singularity_kind():
    """Options the hand-written command never offered come with the kind's fields."""
    spec = spec_of(
        ["singularity", "--path-steps", "20", "--lipschitz-times", "7", "--t-min", "0.01,1e-3"]
    )
    assert spec["options"]["path_steps"] == 20 and spec["options"]["lipschitz_times"] == 7
    assert spec["grid"]["t_min"] == [0.01, 1e-3]
    assert spec["grid"]["schedule"] == ["linear", "cosine-s0"]  # the command's default


def test_any_registered_kind_gets_a_command(run_cli, capsys):
    """The runner tests' dummy kind: required axes are required flags, options with fixed
    choices offer them, and the kind's (absent) summary text prints nothing."""
    import _dummy_kind  # noqa: F401  (registers the "dummy" kind)
    text = help_of("dummy", capsys)
    assert "--solvers SOLVERS[,...]" in text and "{ok,bad-row,conflict}" in text
    missing = run_cli("dummy")
    assert missing.code == 2 and "required: --solvers, --steps" in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    run = run_cli("dummy", "--solvers", "a,b", "--steps", "2,4", "--scale", "1,2.5")
    assert run.code == 0 and "4 cell(s): 4 computed, 0 from cache" in run.out
    run.wrote("dummy.csv", "dummy_summary.csv", "dummy.txt")


def test_modern_help_lists_its_fields(capsys):
    text = help_of("modern", capsys)
    flags = "--problem --solvers --budget --steps --t-min --spacing --n-samples --ref-tol --device"
    for flag in [*flags.split(), *RUN_FLAGS.split()]:
        assert re.search(rf"{flag}\b", text), flag
    assert "NFE budgets of the work-precision part (default 5,10,20,50)" in " ".join(text.split())


def test_a_tiny_modern_run_prints_its_order_fits(run_cli):
    run = run_cli(
        "modern", "--solvers", "ddim,f-pndm", "--budget", "5,10", "--steps", "10,20,40",
        "--n-samples", "4",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "problem=gaussian-lowrank, model=exact, schedule=linear" in run.out
    assert re.search(r"^f-pndm\s+2\s", run.out, flags=re.M)
    run.wrote("modern.csv", "modern_summary.csv", "modern_table.md")
    assert list(run.folder.glob("work_gaussian-lowrank_linear_*.png"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["modern", "--budget", "0"], "grid.budget"),
        (["modern", "--solvers", "ddim,nope"], "grid.solver"),
        (["modern", "--steps", "ten"], "argument --steps"),
        (["modern", "--n-samples", "1.5"], "argument --n-samples"),
        (["orders", "--mode", "both"], "argument --mode"),
        (["norms", "--workers", "0"], "--workers"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run_cli, args, needle):
    run_cli(*args).failed_in_one_line(needle)


def _documented_commands() -> list[str]:
    """Every ``odebench ...`` command line of the README (``[--flag]``: the flag given)."""
    text = (ROOT / "README.md").read_text()
    commands = "|".join(["list", "run", "audit", "modern", *OLD_FLAGS])
    found = re.findall(rf"(?:`|^\s+)(odebench (?:{commands})\b[^`#\n]*)", text, flags=re.M)
    return sorted({c.replace("[", "").replace("]", "").strip() for c in found})


@pytest.mark.parametrize("line", _documented_commands())
def test_the_readme_command_lines_parse(line):
    argv = shlex.split(line)[1:]
    if argv[0] in ("run", "audit") and len(argv) == 1:
        pytest.skip("a mention of the command, not a command line")
    args = build_parser().parse_args(argv)
    assert callable(args.handler)
