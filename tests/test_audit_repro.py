"""Reproductions for maintainers (``odebench audit --repro``): the scripts run where odebench
cannot be imported, show the defect, and the counterfactual's number is the smaller one."""

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from odebench.audit import cli
from odebench.audit.card import AuditReport
from odebench.audit.causes import Attempt, Cause, audit_explained, kind_of
from odebench.audit.counterfactual import BY_NAME
from odebench.audit.repro import INDEX, scripts, write_scripts

#: runs a script (argv[1], its arguments after it) with every import of odebench refused
ISOLATED = """
import runpy, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "odebench" or name.startswith("odebench."):
            raise ImportError("odebench is not importable here")

sys.meta_path.insert(0, Refuse())
try:
    import odebench
except ImportError:
    pass
else:
    raise SystemExit("odebench was importable")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
RESULT = re.compile(r"^RESULT (.+): (\S+) -> (\S+)$", re.M)
ALLOWED = {"torch", "numpy", "diffusers"} | set(sys.stdlib_module_names)


def run_isolated(path: Path, ladder: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED, str(path), ladder],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def before_after(out: str) -> tuple[float, float]:
    match = RESULT.search(out)
    assert match, out
    return float(match.group(2)), float(match.group(3))


def imports(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0] if not node.level else ".")
    return names


@pytest.fixture(scope="module")
def ddim_trailing(tmp_path_factory):
    """``odebench audit DDIMScheduler (trailing) --repro DIR``: its scripts and card."""
    folder = tmp_path_factory.mktemp("ddim")
    parser = argparse.ArgumentParser(prog="odebench")
    cli.add_parser(parser.add_subparsers(dest="command"))
    config = '{"clip_sample": false, "timestep_spacing": "trailing"}'
    argv = ["audit", "diffusers:DDIMScheduler", "--config", config, "--steps", "10,30,40"]
    argv += ["--n-samples", "4", "--out", str(folder / "out"), "--repro", str(folder / "repro")]
    cli.run(parser.parse_args(argv))
    return folder / "repro"


def test_cli_writes_a_script_per_finding_and_the_time_gap_goes(ddim_trailing, tmp_path):
    index = (ddim_trailing / INDEX).read_text().splitlines()
    stem = "DDIMScheduler_clip-sample-false_timestep-spacing-trailing"
    names = sorted(p.name for p in ddim_trailing.glob("*.py"))
    assert {f"{stem}__float32_table.py", f"{stem}__time_gap.py"} <= set(names)
    assert len(index) == len(names) + 1 and index[0] == "sampler,kind,finding,cause,script"
    gap = ddim_trailing / f"{stem}__time_gap.py"
    text = gap.read_text()
    assert "fix_next_grid_time" in text and "num_train_timesteps" in text
    out = run_isolated(gap, "10,30", tmp_path)
    before, after = before_after(out)
    # N = 30 (not a divisor of 1000): DDIM's t - 1000 // 30 misses the next trailing
    # timestep by about 2 steps of the table; the grid's next time has none
    assert before > 1.0 and after < 0.2


def test_scripts_import_only_torch_numpy_diffusers_and_the_standard_library(ddim_trailing):
    for path in ddim_trailing.glob("*.py"):
        text = path.read_text()
        assert imports(text) <= ALLOWED, path.name
        assert "odebench" not in imports(text)
        assert text.startswith('"""') and "diffusers:  " in text.split('"""')[1]
        assert max(map(len, text.splitlines())) <= 100  # committed under figures/: ruff-clean
        assert len(text.splitlines()) < 200, path.name  # a few dozen lines of its own


def test_a_script_carries_only_the_code_its_finding_needs(ddim_trailing):
    stem = "DDIMScheduler_clip-sample-false_timestep-spacing-trailing"
    table = (ddim_trailing / f"{stem}__float32_table.py").read_text()
    gap = (ddim_trailing / f"{stem}__time_gap.py").read_text()
    # a table's deviation needs no pipeline loop, no model, no ladder
    assert "def table_deviation" in table and "class Float64View" in table
    for absent in ("def run(", "def model(", "LADDER", "def flow(", "exact_steps"):
        assert absent not in table, absent
    # a time gap: the point-mass run and the gap, DDIM's rule, and nothing of the other paths
    assert "def state_times" in gap and "def gap(" in gap and "def table_deviation" not in gap
    for absent in ("Float64View", "SIGMA_MAX", "c_in(", "shift", '"ve"', '"flow"', "velocity"):
        assert absent not in gap, absent
    assert gap.count("LADDER = [") == 1 and "\n    10,\n" not in gap  # the ladder on one line


@pytest.fixture(scope="module")
def dpm_report():
    return audit_explained("diffusers:DPMSolverMultistepScheduler", steps=[10, 20, 40], n_samples=4)


def test_a_float32_state_script_shows_the_nonlinearity_and_float64_removes_it(dpm_report, tmp_path):
    found = {s.kind: s for s in scripts(dpm_report)}
    state = found["float32 state"]
    assert "fix_float64_state" in state.text and imports(state.text) <= ALLOWED
    path = tmp_path / state.name
    path.write_text(state.text)
    before, after = before_after(run_isolated(path, "10,20", tmp_path))
    assert before > 1e-2 and after < 1e-4  # float32 rounding vs float64's ~1e-6


def _hand_report(cls, user, finding, probes, ends, nominal=2):
    """A report whose one finding was removed by ``probes`` (as a study's rows say)."""
    facts = {
        "sampler": cls + (" " + json.dumps(user, sort_keys=True) if user else ""),
        "scheduler_class": cls,
        "user_config": json.dumps(user, sort_keys=True),
        "schedule": "ddpm-linear-1000",
        "state_kind": "vp",
        "probe_steps": 50,
        "nominal": nominal,
    }
    rows = [{"steps": n, "status": "ok", "t_end": t} for n, t in ends.items()]
    attempt = Attempt(tuple(BY_NAME[p] for p in probes), None)
    cause = Cause(finding, kind_of(finding), 1e-3, [attempt], [(attempt, 1e-4)])
    report = AuditReport(facts["sampler"], rows, facts, {}, "", [finding])
    report.counterfactuals["causes"] = [cause]
    return report


def test_an_exact_last_steps_script_shows_dpm_solvers_floor_from_the_steps_below_01(tmp_path):
    report = _hand_report(
        "DPMSolverMultistepScheduler",
        {},
        "error floor 9.7e-04 at the finest N",
        ["exact-last-steps"],
        {20: 0.0, 40: 0.0, 80: 0.0},
    )
    (floor,) = scripts(report, version="test")
    assert "def exact_steps" in floor.text and "t <= 0.1" in floor.text
    path = tmp_path / floor.name
    path.write_text(floor.text)
    out = run_isolated(path, "20,40,80", tmp_path)
    errors = [float(m) for m in re.findall(r"^\s+(?:20|40|80)\s+(\S+)", out, re.M)]
    assert len(errors) == 6 and errors[0] > errors[1] > errors[2]  # converges as diffusers runs
    before, after = before_after(out)
    assert after < before / 2  # the last steps below t = 0.1 hold most of the error


def test_bad_repro_folders_and_reports_without_findings_are_one_line_errors(tmp_path):
    report = _hand_report(
        "DDIMScheduler", {}, "float32 table: alphas_cumprod", ["float64-tables"], {10: 0.0}
    )
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file") as info:
        write_scripts([report], afile)
    assert "\n" not in str(info.value)
    report.counterfactuals.clear()
    with pytest.raises(ValueError, match="no finding to reproduce"):
        write_scripts([report], tmp_path / "repro")
    assert not (tmp_path / "repro").exists()
    parser = argparse.ArgumentParser(prog="odebench")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["audit", "diffusers:DDIMScheduler", "--repro", str(afile)])
    with pytest.raises(ValueError, match="is a file"):
        cli.run(args)  # refused before the audit runs


def test_the_cli_exits_2_when_repro_has_nothing_to_write(tmp_path, capsys):
    from odebench.cli import main

    argv = ["audit", "tests/test_audit_functions.py:sample_euler", "--steps", "8,16,32"]
    argv += ["--n-samples", "4", "--out", str(tmp_path / "out"), "--repro", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finding to reproduce" in err[0]


def test_the_audit_study_writes_the_same_scripts_from_its_rows(ddim_trailing, tmp_path):
    """A study cell with counterfactuals = true: ``plot`` writes repro/*.py from the rows,
    byte for byte the scripts ``odebench audit --repro`` wrote for the same audit."""
    from _helpers import cell_config, cell_table

    from odebench.kinds.audit import plot, run_cell, summarize

    sampler = 'DDIMScheduler {"clip_sample": false, "timestep_spacing": "trailing"}'
    config = cell_config("audit", sampler=sampler, steps=[10, 30, 40], n_samples=4)
    config["counterfactuals"] = True
    df = cell_table(run_cell(config), config)
    written = plot(df, summarize(df), tmp_path)
    repro = tmp_path / "repro"
    assert repro / INDEX in written
    names = sorted(p.name for p in repro.glob("*.py"))
    assert names == sorted(p.name for p in ddim_trailing.glob("*.py"))
    for name in names:
        assert (repro / name).read_text() == (ddim_trailing / name).read_text(), name


def test_an_exact_call_times_script_tells_the_model_its_states_times():
    report = _hand_report(
        "DPMSolverMultistepScheduler",
        {},
        "error floor 1.0e-03 at the finest N",
        ["exact-call-times", "exact-final-step"],
        {20: 0.0, 40: 0.0},
    )
    (floor,) = scripts(report, version="test")
    assert "no inline version" not in floor.text and "def state_times" in floor.text
    assert "measure(fix_exact_final_step(original), steps, retime=True)" in floor.text
