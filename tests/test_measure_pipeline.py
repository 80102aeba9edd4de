"""The diffusers-pipeline recipe (scripts/measure_pipeline.py) on its CPU path: a random tiny
UNet2DModel saved with save_pretrained, measured with the network's own ODE as reference."""

from __future__ import annotations

import pandas as pd
import pytest
from _helpers import load_script

SCRIPT = load_script("measure_pipeline")


def test_tiny_pipeline_measures_declared_orders_and_the_network_share(tmp_path, capsys):
    out = tmp_path / "table.csv"
    argv = ["--tiny", "--device", "cpu", "--steps", "10,20,40", "--n-samples", "2"]
    argv += ["--solvers", "ddim,heun", "--ref-tol", "1e-8", "--out", str(out)]
    assert SCRIPT.main([*argv, "--scheduler", "DPMSolverMultistepScheduler"]) == 0
    table = pd.read_csv(out).set_index("solver")
    assert list(table.index) == ["ddim", "heun", "dpm-solver++-2m"]
    assert table.loc["dpm-solver++-2m", "sampler"].startswith("DPMSolverMultistepScheduler")
    for solver, row in table.iterrows():
        assert row.ci_low <= row.declared <= row.ci_high, (solver, row.to_dict())
        assert 0.0 < row.finest_error < 1e3 and 0.0 < row.network_share <= 1.0
    # the first-order sampler is measured below the second-order ones
    assert table.loc["ddim", "measured"] < table.loc["heun", "measured"]
    assert "measured [95% CI]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tiny", "--steps", "10,20"], "at least 3 increasing"),
        (["--tiny", "--steps", "a,b,c"], "comma-separated integers"),
        (["--tiny", "--n-samples", "0"], "--n-samples"),
        (["/nonexistent/folder"], "no config.json"),
        ([], "give a model folder or --tiny"),
        (["--tiny", "--device", "cuda:7"], "no CUDA device"),
        (["--tiny", "--scheduler", "NoSuchScheduler"], "NoSuchScheduler"),
        (["--tiny", "--solvers", "ddim,no-such-solver"], "no-such-solver"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert SCRIPT.main(["--device", "cpu", *argv] if "--device" not in argv else argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
