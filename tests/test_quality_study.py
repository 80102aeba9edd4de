"""The quality study: cells, the matching rule, the paper-shaped table, and the CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from odebench.kinds.quality import markdown_table, run_cell, summarize

BASE = {
    "model": "exact",
    "schedule": "ddpm-linear-1000",
    "t_min": 0.0,
    "spacing": "uniform",
    "seed": 0,
    "t_max": 1.0,
    "prior": "marginal",
    "metrics": ["auto"],
    "paired": True,
    "n_boot": 4,
    "n_floor": 4,
    "n_projections": 16,
    "ref_tol": 1e-8,
    "match_solver": "ddim",
    "match_steps": 40,
    "device": "cpu",
}


def test_gaussian_cell_gives_the_exact_w2_falling_with_steps():
    rows = run_cell(
        {
            **BASE,
            "problem": "gaussian-lowrank",
            "solver": ["ddim", "f-pndm", "pie"],
            "steps": [10, 20, 40],
            "n_samples": 16,
        }
    )
    df = pd.DataFrame(rows)
    assert set(df["metric"]) == {"w2"}
    ddim = df[df["solver"] == "ddim"].set_index("steps")
    assert list(ddim["nfe"]) == [10, 20, 40]
    w = ddim["value"].to_numpy()
    assert 1.6 < w[0] / w[1] < 2.4 and 1.6 < w[1] / w[2] < 2.4  # first order in W2
    assert (df["se"] == 0).all() and (df["floor"] == 0).all()
    # starting from the exact marginal, the exact ODE lands on the target: paired = value
    fin = df[df["value"].notna()]
    assert ((fin["paired"] - fin["value"]).abs() < 1e-12).all()
    assert (df[df["solver"] == "f-pndm"]["value"].to_numpy() < w).all()
    # pie evaluates eps at t = 0, which a rank-3 Gaussian does not have: a noted NaN, no crash
    pie = df[df["solver"] == "pie"]
    assert pie["value"].isna().all() and pie["note"].str.contains("diverged").all()


def test_mixture_cell_has_every_metric_with_error_bars():
    rows = run_cell(
        {
            **BASE,
            "problem": "gmm-2d",
            "solver": ["ddim", "s-pndm"],
            "steps": [10, 40],
            "n_samples": 64,
        }
    )
    df = pd.DataFrame(rows)
    assert set(df["metric"]) == {"frechet", "sliced_w2", "mmd", "nll"}
    assert df[["value", "se", "floor", "paired", "paired_se"]].notna().all().all()
    assert (df["se"] > 0).all()
    # the floor is one per metric: every sampler is compared with the same exact-sample level
    assert (df.groupby("metric")["floor"].nunique() == 1).all()


def test_w2_refused_off_gaussians_and_unknown_metrics():
    with pytest.raises(ValueError, match="Gaussian problem"):
        run_cell(
            {
                **BASE,
                "problem": "gmm-2d",
                "solver": ["ddim"],
                "steps": [4],
                "n_samples": 16,
                "metrics": ["w2"],
            }
        )
    with pytest.raises(ValueError, match="no density"):
        run_cell(
            {
                **BASE,
                "problem": "digits-data",
                "solver": ["ddim"],
                "steps": [4],
                "n_samples": 16,
                "metrics": ["nll"],
                "paired": False,
            }
        )


def _row(solver, steps, nfe, excess, se, paired=None, paired_se=0.01):
    return {
        "problem": "p",
        "model": "exact",
        "schedule": "s",
        "t_min": 0.0,
        "spacing": "uniform",
        "seed": 0,
        "metric": "m",
        "solver": solver,
        "steps": steps,
        "nfe": nfe,
        "value": excess,
        "excess": excess,
        "excess_se": se,
        "paired": excess if paired is None else paired,
        "paired_se": paired_se,
        "match_solver": "ddim",
        "match_steps": 1000,
    }


def test_matching_needs_every_larger_step_count_and_compares_magnitudes():
    df = pd.DataFrame(
        [
            _row("ddim", 1000, 1000, 0.10, 0.01),
            _row("ddim", 100, 100, 0.50, 0.01),
            # matches at 10 steps by chance (a wide error bar), not at 20, then from 50 on
            _row("x", 10, 11, 0.30, 0.2),
            _row("x", 20, 21, 0.40, 0.01),
            _row("x", 50, 51, 0.11, 0.01),
            _row("x", 100, 101, -0.12, 0.01),  # magnitude 0.12 is within 2 errors of 0.10
            # never matches: negative, large in magnitude (an NLL of piled-up samples)
            _row("y", 50, 50, -0.50, 0.01),
            _row("y", 100, 100, -0.40, 0.01),
        ]
    )
    s = summarize(df).set_index("solver")
    assert s.loc["x", "match_nfe"] == 51 and s.loc["x", "match_steps"] == 50
    assert math.isnan(s.loc["y", "match_nfe"])
    assert s.loc["ddim", "match_nfe"] == 1000
    table = markdown_table(df, summarize(df))
    assert "| x | 0.3 ± 0.2 | 0.4 ± 0.01 | 0.11 ± 0.01 | -0.12 ± 0.01 | - | 51 | 51 |" in table
    assert "| y |" in table and "never" in table


def test_cli_quality_writes_table_and_figure(run_cli, tmp_path):
    run = run_cli(
        "quality",
        "--problem",
        "gaussian-lowrank",
        "--solvers",
        "ddim,f-pndm",
        "--steps",
        "10,20,40",
        "--match",
        "ddim@40",
        out=tmp_path / "q",
    )
    assert run.code == 0
    assert "exact W2" in run.out and "| f-pndm |" in run.out
    run.wrote("quality.csv", "quality_table.md")
    assert list(run.folder.glob("quality_gaussian-lowrank_*.png"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--match", "ddim1000"], "SOLVER@STEPS"),
        (["--metrics", "fid"], "unknown metric"),
        (["--problem", "gmm-2d", "--metrics", "w2"], "Gaussian problem"),
        (["--n-samples", "3"], "n_samples"),
    ],
)
def test_cli_quality_bad_input_is_one_line_and_writes_nothing(run_cli, tmp_path, args, message):
    base = ["quality", "--problem", "gaussian-lowrank", "--steps", "4", "--solvers", "ddim"]
    run_cli(*base, *args, out=tmp_path / "q").failed_in_one_line(message)


def test_stochastic_samplers_sit_beside_the_ode_ones():
    """DDPM's exact W2 (its law includes the noise: odebench.laws) falls at first order and
    equals ancestral Euler's; on a mixture it runs from a seeded generator, reproducibly."""
    rows = run_cell(
        {
            **BASE,
            "problem": "gaussian-lowrank",
            "solver": ["ddim", "ddpm", "euler-ancestral"],
            "steps": [10, 20, 40],
            "n_samples": 16,
        }
    )
    df = pd.DataFrame(rows)
    ddpm = df[df["solver"] == "ddpm"].set_index("steps")["value"].to_numpy()
    assert 1.4 < ddpm[1] / ddpm[2] < 2.4
    ancestral = df[df["solver"] == "euler-ancestral"]["value"].to_numpy()
    assert abs(ancestral - ddpm).max() < 1e-10
    mixture = {**BASE, "problem": "gmm-2d", "solver": ["ddpm"], "steps": [10], "n_samples": 64}
    first, again = pd.DataFrame(run_cell(mixture)), pd.DataFrame(run_cell(mixture))
    assert first["value"].notna().all()
    assert first["value"].tolist() == again["value"].tolist()
