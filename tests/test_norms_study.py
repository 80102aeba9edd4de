"""The norms study: sample norms and densities along paths, against exact paths and bands."""

import math

import torch
from _helpers import cell_config, cell_table

import odebench as ob
from odebench.kinds import norms


def cell(**kw):
    base = {
        "problem": "gaussian-lowrank",
        "schedule": "linear",
        "solver": ["ddim", "fon"],
        "nfe": 30,
        "n_samples": 64,
    }
    config = cell_config("norms", **{**base, **kw})
    return cell_table(norms.run_cell(config), config)


def test_rows_follow_each_solvers_grid_at_equal_nfe():
    df = cell(solver=["ddim", "s-pndm", "f-pndm", "fon"])
    for name, g in df.groupby("solver"):
        solver = ob.solvers.get(name)
        n = solver.steps_for_nfe(30)
        assert len(g) == n + 1 and g["nfe_used"].iloc[0] == solver.nfe(n) <= 30
        assert g["t"].iloc[0] == 1.0 and g["t"].iloc[-1] == 1e-3
    start = df[df["step"] == 0]
    assert (start["norm_ratio"] - 1).abs().max() < 1e-14
    assert start["nll_excess"].abs().max() < 1e-12


def test_pseudo_methods_stay_on_the_exact_paths_of_dirac_data():
    """Property 3.1 again, through the study: a misaligned pairing of times would show."""
    df = cell(problem="dirac", solver=["ddim", "f-pndm"])
    assert (df["norm_ratio"] - 1).abs().max() < 1e-12
    assert df["nll_excess"].abs().max() < 1e-9


def test_band_is_the_exact_marginal():
    df = cell(solver=["ddim"])
    prob = ob.problems.get("gaussian-lowrank")
    expected = torch.sqrt(prob.second_moment(torch.tensor(df["t"].to_numpy())))
    torch.testing.assert_close(torch.tensor(df["band_center"].to_numpy()), expected)
    assert (df["band_low"] <= df["band_center"]).all()
    assert (df["band_center"] <= df["band_high"]).all()


def test_fon_leaves_the_low_rank_set_in_density_where_f_pndm_does_not():
    """With exact eps, at t = 1e-3 on the linear schedule: fon's states sit far out in the
    thin directions of p_t (NLL excess of several nats), f-pndm's do not."""
    summary = norms.summarize(cell(solver=["f-pndm", "fon"], nfe=50)).set_index("solver")
    assert summary.loc["fon", "final_nll_excess"] > 1.0
    assert abs(summary.loc["f-pndm", "final_nll_excess"]) < 1e-2


def test_x0_distance_measures_the_models_prediction():
    """An eps model that is wrong off the data subspace moves x0-predictions off it."""
    prob = ob.problems.get("gaussian-lowrank")
    sched = prob.schedule
    basis = prob.subspace[1]
    normal = torch.linalg.qr(torch.cat([basis, torch.eye(16, dtype=basis.dtype)], 1))[0][:, 3]

    def wrong(x, t):
        return prob.eps(x, t) + 0.01 * normal

    ts = ob.timesteps(5, t_min=0.1)
    x = prob.sample_marginal(8, 1.0, torch.Generator().manual_seed(0))
    traj = ob.solve("ddim", wrong, sched, x, ts, trajectory=True).trajectory
    exact = torch.stack([prob.flow(x, ts[0], t) for t in ts])
    rows = norms.path_rows(prob, sched, wrong, "ddim", ts, traj, exact)
    dist = [r["x0_dist_max"] for r in rows]
    expected = [float(0.01 * sched.sigma(t) / sched.alpha(t)) for t in ts]
    assert all(math.isclose(d, e, rel_tol=1e-6) for d, e in zip(dist, expected, strict=True))


def test_cli_norms(run_cli):
    run = run_cli("norms", "--problem", "gaussian-lowrank", "--nfe", "20", "--n-samples", "16")
    assert run.code == 0
    assert "max NLL excess" in run.out and "fon" in run.out
    run.wrote("norms.csv", "norms_summary.csv", "norms.png")
