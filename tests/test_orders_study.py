"""The orders study: references that judge themselves, fits, caching, the command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import cell_config, cell_table

import odebench as ob
from odebench import convergence
from odebench.kinds import orders
from odebench.study import parse_study, run_study

SMALL = {"steps": [25, 50, 100, 200, 400], "n_samples": 8}


def cell(**kw):
    base = {
        "problem": "gaussian-lowrank",
        "schedule": "linear",
        "solver": ["ddim"],
        "steps": SMALL["steps"],
        "n_samples": SMALL["n_samples"],
    }
    return cell_config("orders", **{**base, **kw})


def spec(**grid):
    base = {
        "problem": ["gaussian-lowrank"],
        "schedule": ["linear"],
        "solver": ["ddim"],
        "steps": SMALL["steps"],
        "t_min": [0.1],
    }
    base.update(grid)
    return parse_study(
        {
            "study": {"name": "orders", "kind": "orders"},
            "grid": base,
            "options": {"n_samples": SMALL["n_samples"]},
        }
    )


def test_ddim_is_first_order_on_the_lowrank_gaussian_within_its_ci():
    config = cell()
    rows = cell_table(orders.run_cell(config), config)
    assert rows["ref_accuracy"].max() < 1e-13  # the exact flow map, judged by composition
    summary = orders.summarize(rows)
    fit = summary.iloc[0]
    assert fit["ci_low"] <= 1.0 <= fit["ci_high"]
    assert fit["verdict"] == "as declared"
    assert fit["declared"] == ob.solvers.get("ddim").order


def test_gmm_reference_reports_its_accuracy_and_flags_what_it_cannot_judge():
    """A loose reference cannot judge rk4's fine errors: those rows are marked unreliable and
    left out of the fit, never silently fitted."""
    config = cell(problem="gmm-2d", solver=["rk4"], ref_tol=1e-8)
    rows = orders.run_cell(config)
    acc = {r["ref_accuracy"] for r in rows}
    assert len(acc) == 1 and 1e-12 < acc.pop() < 1e-5
    flags = [r["reliable"] for r in rows]
    assert flags[0] and not flags[-1]
    table = cell_table(rows, config)
    assert "unreliable-reference" in orders.summarize(table).iloc[0]["left_out"]


def test_local_errors_have_slope_order_plus_one():
    config = cell(solver=["ddim", "rk4", "s-pndm", "fon"], mode="local", t_min=0.05)
    table = cell_table(orders.run_cell(config), config)
    summary = orders.summarize(table)
    mid = summary[summary["t0"] == 0.4].set_index("solver")
    for name in ("ddim", "rk4", "s-pndm", "fon"):
        assert abs(mid.loc[name, "measured"] - ob.solvers.get(name).order) < 0.3, name


def test_local_step_uses_exact_history_for_multistep_methods():
    """With an exact history, one pseudo-AB step on Dirac data is exact (Property 3.1)."""
    sched = ob.schedules.get("cosine")
    prob = ob.problems.get("dirac", sched)
    x_T = prob.sample_marginal(4, sched.t_hi, torch.Generator().manual_seed(0))
    plan = convergence.local_plan(sched.t_hi, 0.05, n_h=2)
    ref = convergence.local_reference(prob, sched, x_T, plan, sched.t_hi, 1e-12)
    for row in convergence.local_errors(ob.solvers.get("f-pndm"), prob.eps, sched, ref, plan):
        assert row["error_rms"] < 1e-12


def test_identical_csv_from_a_fresh_run_and_after_resuming(tmp_path):
    s = spec(solver=["ddim", "s-pndm"], t_min=[0.1, 0.05], steps=[25, 50, 100])
    first = run_study(s, out=tmp_path / "a", progress=False)
    assert first.n_computed == 2
    clean = first.csv.read_bytes()
    run_study(s, out=tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "orders.csv").read_bytes() == clean  # deterministic cells
    # an interrupted run: one cell's cache lost and no CSV written yet
    first.csv.unlink()
    sorted((tmp_path / "a" / ".cache").glob("*.json"))[0].unlink()
    again = run_study(s, out=tmp_path / "a", progress=False)
    assert (again.n_computed, again.n_cached) == (1, 1)
    assert again.csv.read_bytes() == clean


def test_dask_runs_the_same_cells_as_in_process(tmp_path):
    distributed = pytest.importorskip("distributed")
    s = spec(solver=["ddim"], t_min=[0.1, 0.05], steps=[25, 50, 100])
    local = run_study(s, out=tmp_path / "local", progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = run_study(s, out=tmp_path / "dask", progress=False, cluster=cluster)
    assert remote.csv.read_bytes() == local.csv.read_bytes()


def test_cli_orders_runs_and_reruns_from_cache(run_cli):
    args = [
        "orders",
        "--problem",
        "gaussian-lowrank",
        "--solvers",
        "ddim,f-pndm",
        "--steps",
        "25,50,100,200",
        "--n-samples",
        "8",
    ]
    first = run_cli(*args)
    assert first.code == 0
    assert "ddim" in first.out and "as declared" in first.out and "1 computed" in first.out
    first.wrote("orders.csv", "orders_summary.csv", "orders.png")
    again = run_cli(*args)
    assert again.code == 0 and "0 computed, 1 from cache" in again.out


@pytest.mark.parametrize(
    "toml,needle",
    [
        (
            '[study]\nname="x"\nkind="orders"\n[grid]\nproblem=["gmm-2d"]\nschedule=["linear"]\n'
            'solver=["ddim"]\nstepz=[10]\n',
            "stepz",
        ),
        (
            '[study]\nname="x"\nkind="orders"\n[grid]\nproblem=["gmm-2d"]\nschedule=["linear"]\n'
            'solver=["ddim"]\nsteps="20"\n',
            "grid.steps",
        ),
        (
            '[study]\nname="x"\nkind="orders"\n[grid]\nproblem=[]\nschedule=["linear"]\n'
            'solver=["ddim"]\n',
            "grid.problem",
        ),
        (
            '[study]\nname="x"\nkind="orders"\n[grid]\nproblem=["gmm-2d"]\nschedule=["linear"]\n'
            'solver=["ddim"]\n[options]\nn_sample=3\n',
            "options.n_sample",
        ),
    ],
)
def test_bad_study_files_exit_2_with_one_line_naming_the_key(tmp_path, toml, needle):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odebench.cli",
            "run",
            str(path),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not list(Path(tmp_path).rglob("*.csv"))


def test_a_failing_cell_leaves_no_csv(run_cli):
    """t_min above t_max is only found inside the cell: exit 2, one line, no table."""
    run = run_cli(
        "orders", "--problem", "gmm-2d", "--t-max", "0.05", "--t-min", "0.1", "--steps", "10,20,40"
    )
    run.failed_in_one_line("t_min")


def test_a_diverging_solver_is_a_result_not_a_crash():
    """rk4 asked to reach t = 0 on the linear schedule meets beta / (2 sigma) = inf there."""
    sched = ob.schedules.get("linear")
    prob = ob.problems.get("gmm-2d", sched)
    ts = ob.timesteps(10, "uniform", 1.0, 0.0)
    x = prob.sample_marginal(4, 1.0, torch.Generator().manual_seed(0))
    sol = ob.solve("rk4", prob.eps, sched, x, ts, trajectory=True)
    assert sol.diverged is not None and sol.diverged.step == 10 and sol.diverged.t_to == 0.0
    assert torch.isnan(sol.x).all() and torch.isfinite(sol.trajectory[9]).all()
    assert sol.nfe == 40
