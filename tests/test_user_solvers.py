"""A solver of the user's own, named "module:attribute", in odebench.solve and in studies."""

from __future__ import annotations

import textwrap

import pytest

import odebench as ob
from odebench.study import run_study

MODULE = textwrap.dedent(
    '''
    from odebench.solvers import RungeKuttaSolver
    from odebench.solvers.tableau import HEUN
    from odebench.solvers.transfer import DDIMTransfer

    def my_pie(**options):
        """Heun's tableau with the DDIM transfer: the paper's PIE, defined outside odebench."""
        return RungeKuttaSolver("my-pie", HEUN, DDIMTransfer(), 2, "test", "PIE again", **options)

    THE_SOLVER = my_pie()
    NOT_A_SOLVER = 3
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mysamplers_for_odebench.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mysamplers_for_odebench"


def test_a_user_solver_by_module_and_name_is_the_solver_it_names(user_module):
    prob = ob.problems.get("gmm-2d")
    ts = ob.timesteps(10, t_min=1e-2)
    x = prob.sample_marginal(8, 1.0)
    mine = ob.solve(f"{user_module}:my_pie", prob.eps, prob.schedule, x, ts).x
    also = ob.solve(f"{user_module}:THE_SOLVER", prob.eps, prob.schedule, x, ts).x
    pie = ob.solve("pie", prob.eps, prob.schedule, x, ts).x
    assert ob.solvers.get(f"{user_module}:my_pie").order == 2
    assert float((mine - pie).abs().max()) < 1e-13 and float((also - pie).abs().max()) < 1e-13
    assert f"{user_module}:my_pie" not in ob.solvers.names()  # resolved, not registered


def test_a_study_file_runs_a_user_solver(user_module, tmp_path):
    study = tmp_path / "mine.toml"
    study.write_text(
        textwrap.dedent(
            f"""
            [study]
            name = "mine"
            kind = "orders"
            output = "{tmp_path / "out"}"
            [grid]
            problem = ["gaussian-lowrank"]
            schedule = ["linear"]
            solver = ["{user_module}:my_pie", "pie"]
            steps = [20, 40, 80, 160]
            t_min = [0.1]
            [options]
            n_samples = 8
            """
        )
    )
    result = run_study(study, progress=False)
    df = result.dataframe
    mine = df[df["solver"] == f"{user_module}:my_pie"]["error_rms"].to_numpy()
    pie = df[df["solver"] == "pie"]["error_rms"].to_numpy()
    assert len(mine) == 4 and abs(mine - pie).max() < 1e-13


@pytest.mark.parametrize(
    "name, message",
    [
        ("no_such_module_xyz:solver", "cannot import module 'no_such_module_xyz'"),
        ("{m}:missing", "has no 'missing'"),
        ("{m}:NOT_A_SOLVER", "neither a Solver nor a factory"),
    ],
)
def test_a_user_solver_that_cannot_be_had_is_one_line(
    user_module, tmp_path, run_cli, name, message
):
    name = name.format(m=user_module)
    with pytest.raises(ValueError, match=message):
        ob.solvers.get(name)
    res = run_cli("orders", "--solvers", name, "--steps", "10,20")
    assert res.code == 2 and message.split("'")[0] in res.err and "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_installed_packages_add_solvers_through_an_entry_point(user_module, monkeypatch):
    from importlib.metadata import EntryPoint

    from odebench.solvers import registry

    point = EntryPoint("my-pie-ep", f"{user_module}:my_pie", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [point])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    assert registry.load_entry_points() == ["my-pie-ep"]
    assert "my-pie-ep" in ob.solvers.names()
    assert ob.solvers.get("my-pie-ep").name == "my-pie"
