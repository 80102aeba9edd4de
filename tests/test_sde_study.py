"""The sde study: exact weak errors and same-path strong errors of stochastic samplers,
their order fits and verdicts, and one-line refusals."""

import math

import pandas as pd
import pytest
from _helpers import cell_config, cell_table

import odebench as ob
from odebench.kinds import sde
from odebench.study import StudyError, parse_study

LADDER = [40, 80, 160, 320]


def cell(**kw):
    base = {
        "problem": "gaussian-lowrank",
        "schedule": "linear",
        "solver": ["ddpm"],
        "steps": LADDER,
        "t_min": 1e-2,
        "spacing": "lambda",
        "n_samples": 8,
        "refine": 4,
    }
    return cell_config("sde", **{**base, **kw})


def fitted(**kw):
    config = cell(**kw)
    table = cell_table(sde.run_cell(config), config)
    return table, sde.summarize(table).set_index("label")


def test_ddpm_is_weak_and_strong_order_one_on_a_tiny_cell():
    """Exact W2 along 40..320 lambda-uniform steps and RMS errors against a 4x finer run on
    the same Brownian path: both fits contain the declared order 1."""
    table, summary = fitted()
    r = summary.loc["ddpm"]
    assert r["weak_declared"] == 1 and r["strong_declared"] == 1
    assert r["weak_ci_low"] <= 1.0 <= r["weak_ci_high"], r
    assert r["weak_verdict"] == "as declared"
    assert 0.8 < r["strong_measured"] < 1.25 and r["strong_verdict"] == "as declared", r
    assert 1.6 < r["kl_slope"] < 2.4  # KL is quadratic in a small law error
    weak = table[table["part"] == "weak"].sort_values("steps")
    assert (weak["w2"].diff().dropna() < 0).all()
    assert set(table["nfe"]) == set(LADDER)


def test_eta_applies_where_a_sampler_takes_it_and_odes_are_the_limit():
    """ddim-eta runs once per eta (eta = 1 is DDPM's map: same W2), ddpm and ddim once each;
    the ODE's declared weak and strong orders are its order, a 2M SDE solver's are None
    ("measured")."""
    config = cell(
        solver=["ddpm", "ddim-eta", "ddim", "sde-dpm-solver++-2m"],
        eta=[0.5, 1.0],
        steps=[40, 80, 160],
        errors="weak",
    )
    table = cell_table(sde.run_cell(config), config)
    labels = list(dict.fromkeys(table["label"]))
    assert labels == ["ddpm", "ddim-eta[0.5]", "ddim-eta[1]", "ddim", "sde-dpm-solver++-2m"]
    assert table[table["label"] == "ddpm"]["eta"].isna().all()
    w2 = table.pivot(index="steps", columns="label", values="w2")
    assert ((w2["ddim-eta[1]"] - w2["ddpm"]).abs() <= 1e-10 * w2["ddpm"]).all()
    assert (w2["ddim-eta[0.5]"] != w2["ddpm"]).all()
    assert "strong_measured" not in sde.summarize(table).columns
    summary = sde.summarize(table).set_index("label")
    assert summary.loc["ddim", "weak_declared"] == 1
    assert summary.loc["sde-dpm-solver++-2m", "weak_verdict"] == "measured"
    assert math.isnan(summary.loc["sde-dpm-solver++-2m", "weak_declared"])


def test_a_wide_ci_is_inconclusive_even_without_a_declared_order():
    """Scattered errors around a slope of 1: the CI is far wider than +-0.5, so the fit is
    "inconclusive" whether or not an order is declared; a clean ladder stays "measured"."""
    steps = [10, 20, 40, 80, 160]
    scatter = [1.0, 0.2, 0.45, 0.03, 0.06]
    group = pd.DataFrame({"steps": steps, "h": [1 / n for n in steps], "reliable": True})
    assert sde._fit(group.assign(e=scatter), "e", None)["verdict"] == "inconclusive"
    assert sde._fit(group.assign(e=scatter), "e", 1)["verdict"] == "inconclusive"
    clean = sde._fit(group.assign(e=[1 / n for n in steps]), "e", None)
    assert clean["verdict"] == "measured" and abs(clean["measured"] - 1) < 1e-9


def test_the_tables_and_figures_are_written(tmp_path):
    table, summary = fitted(solver=["ddpm", "ddim"], steps=[20, 40, 80])
    paths = sde.plot(table, summary.reset_index(), tmp_path)
    names = {p.name for p in paths}
    assert {"sde.png", "sde_weak_table.md", "sde_strong_table.md", "sde_nfe_table.md"} <= names
    weak = (tmp_path / "sde_weak_table.md").read_text()
    assert "| ddpm | 1 |" in weak and "| ddim | 1 |" in weak
    assert "NFE 20" in (tmp_path / "sde_nfe_table.md").read_text()


def test_weak_errors_refuse_a_non_gaussian_problem_in_one_line():
    with pytest.raises(ValueError, match="not Gaussian") as err:
        sde.run_cell(cell(problem="gmm-2d", errors="weak"))
    assert "\n" not in str(err.value)


def test_strong_errors_refuse_grids_that_do_not_nest():
    """A rung whose step count does not divide the reference's cannot be driven by the
    reference's Brownian path."""
    with pytest.raises(ValueError, match="nested grids: 16 steps do not divide") as err:
        sde.run_cell(cell(steps=[16, 24], refine=1, errors="strong"))
    assert "\n" not in str(err.value)


def test_a_lambda_grid_nests_so_its_strong_errors_share_one_path():
    """lambda-uniform grids of 10 and 40 steps are sub-grids of the 80-step one to round-off
    (checked node by node), so the strong part runs there too."""
    linear = ob.schedules.get("linear")
    fine, grids = sde.nested_grids([10, 40], "lambda", 1.0, 1e-2, linear, refine=2)
    assert len(fine) == 81 and set(grids) == {10, 40}


def test_bad_study_values_are_one_line_errors():
    def study(**grid):
        base = {"problem": ["gaussian-lowrank"], "schedule": ["linear"], "solver": ["ddpm"]}
        return {"study": {"name": "s", "kind": "sde"}, "grid": {**base, **grid}}

    with pytest.raises(StudyError, match="grid.eta"):
        parse_study(study(eta=[-0.5]))
    with pytest.raises(StudyError, match="grid.solver"):
        parse_study(study(solver=["pf"]))


def test_the_command_line_refuses_weak_errors_on_a_mixture(run_cli):
    run_cli(
        "sde", "--problem", "gmm-2d", "--errors", "weak", "--steps", "10,20"
    ).failed_in_one_line("not Gaussian")
