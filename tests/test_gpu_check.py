"""scripts/gpu_check.py runs end to end on the CPU with --small (same code paths as on a GPU),
and what it reports is sane: the orders near the declared ones, the time shares fractions,
the evaluations accounted for."""

import json
import math
import re

import pandas as pd
import pytest
from _helpers import load_script

import odebench as ob
from odebench.models.timing import HOST_SECTIONS

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One --small run on the CPU: (the script module, its JSON report, its folder)."""
    out = tmp_path_factory.mktemp("gpu_check")
    gpu_check = load_script("gpu_check")
    assert gpu_check.main(["--small", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    return gpu_check, report, out


def test_solver_timings(small_run):
    gpu_check, report, _ = small_run
    names = [r["solver"] for r in report["unet_timings"]]
    assert names[:-1] == gpu_check.SOLVERS and names[-1] == "diffusers DDIMScheduler"
    assert {"dpm-solver++-2m", "unipc-2-bh2"} <= set(names)  # every family of issue 16
    assert all(r["finite"] and r["ms_per_nfe"] > 0 for r in report["unet_timings"])
    ddim = report["unet_timings"][0]
    assert ddim["nfe"] == ddim["steps"]
    assert all(r["finite"] for r in report["digits"])


def test_report_structure_and_log(small_run):
    _, report, out = small_run
    assert report["small"] is True and report["device"] == "cpu"
    commit = report["source"]["commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert set(report["network_studies"]) == {"orders", "quality"}
    assert set(report["part_seconds"]) == {"unet_timings", "digits", "orders", "quality"}
    assert all(s > 0 for s in report["part_seconds"].values())
    assert report["total_seconds"] >= sum(report["part_seconds"].values())
    log = (out / "gpu_check.log").read_text()
    assert "ms/NFE" in log and "wall time in the network" in log
    for r in report["network_studies"].values():
        name = f"{r['kind']}-{r['network']}"
        assert (out / f"{name}.csv").exists() and (out / f"{name}_summary.csv").exists()
        assert f"{r['kind']} of {r['network']}" in log


@pytest.mark.parametrize("what", ["orders", "quality"])
def test_network_time_is_accounted_for(small_run, what):
    _, report, _ = small_run
    r = report["network_studies"][what]
    assert r["network"] == "gmm-2d-mlp" and r["problem"] == "gmm-2d"
    assert 0.0 < r["network_seconds"] <= r["seconds"]
    assert 0.0 < r["network_share"] <= 1.0
    assert math.isclose(r["network_share"], r["network_seconds"] / r["seconds"])
    assert 0.0 < r["reference_seconds"] < r["network_seconds"]
    assert r["reference_calls"] > 0 and r["solver_calls"] > 0
    assert r["network_calls"] == r["reference_calls"] + r["solver_calls"]
    assert r["network_rows"] == r["network_calls"] * r["config"]["n_samples"]
    # on the CPU backend="auto" integrates with scipy; on a GPU it must say "torch"
    assert r["reference_backend"] == "scipy"
    # the calls attributed to the solvers are exactly the NFE the study rows report
    rows = pd.DataFrame(r["rows"]).drop_duplicates(["solver", "steps"])
    assert r["solver_calls"] == int(rows["nfe"].sum())
    share = report["network_share"]
    assert 0.0 < share <= 1.0
    # the stack samples cover the cell and file the network's evaluations as "network"
    shares = r["host_shares"]
    assert r["host_samples"] > 0 and math.isclose(sum(shares.values()), 1.0)
    assert "network" in shares and set(shares) <= {s for s, _ in HOST_SECTIONS} | {
        "network",
        "other",
    }


def test_orders_near_the_declared_ones(small_run):
    _, report, _ = small_run
    summary = report["network_studies"]["orders"]["summary"]
    assert [row["solver"] for row in summary] == ["ddim", "s-pndm", "dpm-solver++-2m"]
    for row in summary:
        assert row["declared"] == ob.solvers.get(row["solver"]).order
        assert math.isfinite(row["measured"]), row
        assert abs(row["measured"] - row["declared"]) < 0.25, row
        assert row["ci_low"] <= row["declared"] <= row["ci_high"], row
        assert row["verdict"] == "as declared"
    rows = report["network_studies"]["orders"]["rows"]
    assert all(r["reliable"] and 0 < r["ref_accuracy"] < 1e-5 for r in rows)


def test_quality_is_finite_and_paired_errors_shrink(small_run):
    _, report, _ = small_run
    r = report["network_studies"]["quality"]
    rows = pd.DataFrame(r["rows"])
    assert set(rows["metric"]) == {"frechet", "sliced_w2", "mmd"}
    for column in ("value", "se", "floor", "excess", "paired", "paired_se"):
        assert rows[column].map(math.isfinite).all(), column
    assert (rows["floor"] > 0).all()
    # the paired difference to the reference's exact-ODE samples shrinks as the steps grow:
    # the solver's samples converge to the reference's
    for (solver, metric), g in rows.groupby(["solver", "metric"]):
        g = g.sort_values("steps")
        assert g["paired_se"].iloc[-1] < g["paired_se"].iloc[0], (solver, metric)
    summary = pd.DataFrame(r["summary"])
    assert set(summary["solver"]) == {"ddim", "f-pndm"}
    assert summary["match_nfe"].notna().all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--network", "no-such-net"], "no shipped network"),
        (["--batch", "0"], "--batch must be positive"),
        (["--device", "nonsense"], "unknown device"),
    ],
)
def test_gpu_check_refuses_bad_options(tmp_path, capsys, argv, message):
    gpu_check = load_script("gpu_check")
    assert gpu_check.main([*argv, "--small", "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_gpu_check_refuses_a_missing_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    gpu_check = load_script("gpu_check")
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_the_profile_script_accounts_for_the_orders_cell(tmp_path, capsys):
    """scripts/profile_gpu_orders.py on the CPU: its cell's rows, and profiles that see both
    the network and the reference around it."""
    profile = load_script("profile_gpu_orders")
    assert profile.main(["--network", "gmm-2d-mlp", "--device", "cpu", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "orders-gmm-2d-mlp.csv")
    assert sorted(rows["steps"].unique()) == [50, 100]  # the first two step counts
    cumulative = (tmp_path / "profile_orders_cumtime.txt").read_text()
    assert "network.py" in cumulative and "reference.py" in cumulative
    cell, network = map(float, re.findall(r"([\d.]+) s", capsys.readouterr().out)[:2])
    assert 0 < network <= cell


def test_the_report_names_its_code_by_a_digest(small_run, tmp_path):
    """The code's SHA-256 (what a copied tree on a GPU machine can name its code by): the
    digest of this checkout, and another for a copy with one byte changed."""
    import shutil
    from pathlib import Path

    gpu_check, report, _ = small_run
    root = Path(gpu_check.__file__).resolve().parents[1]
    digest = report["source"]["code_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == gpu_check.code_digest(root)
    copy = tmp_path / "tree"
    shutil.copytree(root / "odebench", copy / "odebench", ignore=shutil.ignore_patterns("*.pyc"))
    (copy / "scripts").mkdir()
    shutil.copy(root / "scripts" / "gpu_check.py", copy / "scripts")
    assert gpu_check.code_digest(copy) == digest
    target = copy / "odebench" / "solvers" / "__init__.py"
    target.write_text(target.read_text() + "\n")
    assert gpu_check.code_digest(copy) != digest
