"""Sizes that would take the machine down are refused before anything runs (issue 17).

Each probe of the issue (a 10^9-step grid, 10^9 start points, an NFE of 10^9, an audit rung of
10^6 steps, a 200,000-cell grid) gets exit status 2 and one line that gives the estimate and
the option that lifts the limit, within seconds and without growing the process's memory; the
main job still runs with no flag. A Dask address that is not one fails at once, an unreachable
scheduler within the connect timeout; every option of every kind is checked by its declared
type and range when the study is loaded.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CliRun

from odebench.cli import main
from odebench.study import StudyError, expand_cells, get, parse_study, runner
from odebench.study.limits import MAX_CELLS, Estimate, check, default_max_memory, estimate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MB = 1024  # ru_maxrss is in KiB on Linux


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["orders", "--solvers", "ddim", "--steps", "1000000000", "--n-samples", "2"], "memory"),
        (["orders", "--n-samples", "1000000000"], "memory"),
        (["norms", "--nfe", "1000000000"], "memory"),
        (["audit", "diffusers:DDIMScheduler", "--steps", "10,20,1000000"], "--yes"),
        (["audit", "diffusers:DDIMScheduler", "--n-samples", "1000000000"], "--max-memory"),
        (["orders", "--seed", ",".join(map(str, range(20_000)))], "cells"),
    ],
)
def test_huge_sizes_are_refused_in_one_line(
    run_cli, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    before, start = _peak_kib(), time.perf_counter()
    if args[0] == "audit":  # no progress bar to turn off
        code = main([*args, "--out", str(tmp_path)])
        captured = capsys.readouterr()
        result = CliRun(code, captured.out, captured.err, tmp_path)
    else:
        result = run_cli(*args)
    result.failed_in_one_line(needle)
    assert "needs about" in result.err
    assert "--max-memory GB" in result.err or "--yes" in result.err
    assert time.perf_counter() - start < 20
    assert _peak_kib() - before < 300 * MB  # nothing was allocated for the run
    assert not (result.folder / ".cache").exists()  # refused before the folder was used


def test_probe_as_a_new_user_runs_it(tmp_path: Path) -> None:
    """The first probe as a separate process: one line, exit 2, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "odebench.cli", "orders", "--solvers", "ddim", "--steps",
         "1000000000", "--n-samples", "2", "--out", str(tmp_path / "o"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "GB of memory" in lines[0] and "--max-memory" in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_200000_cell_study_is_refused_before_it_is_expanded(run_cli, tmp_path: Path) -> None:
    seeds = ", ".join(map(str, range(200_000)))
    path = tmp_path / "big.toml"
    path.write_text(
        f'[study]\nname = "big"\nkind = "orders"\n[grid]\nproblem = ["gmm-2d"]\n'
        f'schedule = ["linear"]\nsolver = ["ddim"]\nseed = [{seeds}]\n'
    )
    start = time.perf_counter()
    result = run_cli("run", str(path), out=tmp_path / "out")
    result.failed_in_one_line(f"above the limit of {MAX_CELLS} cells")
    assert "200000 cells" in result.err and "--yes" in result.err
    assert time.perf_counter() - start < 20


def test_the_limits_are_lifted_by_the_options_they_name() -> None:
    big = Estimate(memory=2 * default_max_memory(), seconds=1.0, steps=10)
    with pytest.raises(StudyError, match="--max-memory GB"):
        check(big, 1)
    check(big, 1, max_memory=3 * default_max_memory())
    slow = Estimate(memory=1.0, seconds=1e6, steps=10)
    with pytest.raises(StudyError, match="--yes"):
        check(slow, 1)
    check(slow, 1, yes=True)
    with pytest.raises(StudyError, match="--yes"):
        check(Estimate(1.0, 1.0, steps=10**6), 1)
    with pytest.raises(StudyError, match="cells"):
        check(Estimate(1.0, 1.0), MAX_CELLS + 1)


def test_the_default_leaves_half_the_machine() -> None:
    with open("/proc/meminfo") as fh:
        total = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemTotal"))
    assert default_max_memory() == pytest.approx(total / 2, rel=0.01)


def test_the_estimate_grows_with_every_size() -> None:
    """Samples, dimension, steps and evaluations each raise the estimate (not a constant)."""
    base = estimate(64, 2, evals=1000, nodes=100)
    for bigger in (
        estimate(128, 2, evals=1000, nodes=100),
        estimate(64, 4, evals=1000, nodes=100),
        estimate(64, 2, evals=1000, nodes=200),
    ):
        assert bigger.memory > base.memory
    assert estimate(64, 2, evals=2000, nodes=100).seconds > base.seconds


def test_workers_multiply_the_memory_and_divide_the_time() -> None:
    kind = get("orders")
    spec = parse_study(
        {
            "study": {"name": "w", "kind": "orders"},
            "grid": {"problem": ["gmm-2d"], "schedule": ["linear"], "solver": ["ddim"],
                     "t_min": [0.1, 0.01, 0.001, 0.2]},
        }
    )  # fmt: skip
    configs = expand_cells(spec, kind)
    one = runner.estimate_run(kind, configs, workers=1)
    four = runner.estimate_run(kind, configs, workers=4)
    assert four.memory >= 4 * one.memory
    assert four.seconds == pytest.approx(one.seconds / 4)


def test_the_main_job_passes_its_estimate(run_cli) -> None:
    result = run_cli("orders", "--estimate")
    assert result.code == 0, result.err
    assert result.out.startswith("estimate: about") and "within the limits" in result.out
    assert not list(result.folder.glob("*.csv"))  # --estimate runs nothing


def test_a_scheduler_that_is_no_address_fails_at_once(run_cli) -> None:
    before = {t.name for t in threading.enumerate()}
    start = time.perf_counter()
    result = run_cli("orders", "--scheduler", "notanaddress")
    result.failed_in_one_line("invalid Dask scheduler address")
    assert time.perf_counter() - start < 5
    assert {t.name for t in threading.enumerate()} <= before  # no Dask loop left running


def test_an_unreachable_scheduler_fails_within_the_timeout(
    run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT_S", 1)
    start = time.perf_counter()
    before = {t for t in threading.enumerate() if not t.daemon}
    result = run_cli("orders", "--scheduler", "tcp://127.0.0.1:1", "--t-min", "0.1")
    result.failed_in_one_line("cannot connect to the Dask scheduler")
    assert time.perf_counter() - start < 15
    assert {t for t in threading.enumerate() if not t.daemon} <= before  # exit is not held up


@pytest.mark.parametrize(
    ("kind", "section", "key", "value", "needle"),
    [
        ("quality", "options", "metrics", "[1, 2]", "expected a list of str, got int 1"),
        ("quality", "options", "metrics", "[]", "at least one metric"),
        ("norms", "options", "ref_tol", "0.5", "must lie in (0, 1e-6)"),
        ("orders", "options", "ref_tol", "nan", "NaN"),
        ("sde", "options", "s_churn", "nan", "NaN"),
        ("orders", "grid", "t_min", "[nan]", "NaN"),
        ("audit", "grid", "seed", "[-1]", "must be >= 0"),
        ("audit", "grid", "problem", '["nope"]', "unknown value"),
        ("singularity", "options", "path_steps", "0", "must be positive"),
        ("modern", "options", "n_samples", '"64"', "expected int"),
    ],
)
def test_every_kind_checks_its_options_at_load(
    run_cli, tmp_path: Path, kind: str, section: str, key: str, value: str, needle: str
) -> None:
    grid = {
        "orders": 'problem = ["gmm-2d"]\nschedule = ["linear"]\nsolver = ["ddim"]\n',
        "norms": 'problem = ["gmm-2d"]\nschedule = ["linear"]\n',
        "quality": 'problem = ["gmm-2d"]\nschedule = ["linear"]\n',
        "sde": 'problem = ["gaussian-lowrank"]\nschedule = ["linear"]\nsolver = ["ddpm"]\n',
        "singularity": 'problem = ["gmm-2d"]\nschedule = ["linear"]\n',
        "modern": 'problem = ["gmm-2d"]\nschedule = ["linear"]\nsolver = ["ddim"]\n',
        "audit": 'sampler = ["DDIMScheduler"]\n',
    }[kind]
    sections = {"grid": grid, "options": ""}
    sections[section] += f"{key} = {value}\n"
    path = tmp_path / "s.toml"
    path.write_text(
        f'[study]\nname = "s"\nkind = "{kind}"\n[grid]\n{sections["grid"]}'
        f"[options]\n{sections['options']}"
    )
    result = run_cli("run", str(path), "--estimate", out=tmp_path / "out")
    result.failed_in_one_line(needle)
    assert f"{section}.{key}" in result.err
