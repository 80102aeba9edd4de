"""The audit finds and names known bugs of a fake scheduler, and survives failing ones.

``FakeDDIMScheduler`` (below) is a DDIM clone in the diffusers interface with switchable bugs;
each test audits the clean clone and a buggy one on the same ladder, so an assertion that a
finding is present is paired with one that it is absent without the bug.
"""

import math
from types import SimpleNamespace

import pytest
import torch

import odebench as ob
from odebench.audit import Claim, audit
from odebench.audit.adapters import drive, make_factory

D = torch.float64


class FakeDDIMScheduler:
    """A DDIM clone in the diffusers scheduler interface, with bugs that can be switched on.

    The audit tests drive it as they would drive any diffusers scheduler. Without bugs it is
    DDIM (eta = 0) on a "trailing" grid (``multistep=False``), or a second-order multistep
    method: Adams-Bashforth 2 on eps in the VE variable (x / alpha, sigma_tilde), with
    variable-step weights and an Euler first step (``multistep=True``). Its table is the float64
    table of the odebench schedule named by ``schedule``. Bugs (``bug=``):

    - ``"prev-rule"``: the step targets t - T // N - 1 instead of the next timestep;
    - ``"first-order-final"``: the last step uses the current eps only (Euler / DDIM);
    - ``"end-abar0"``: the last step ends at alphas_cumprod[0] instead of 1 (t = 1/T);
    - ``"float32-table"``: alphas_cumprod stored as float32;
    - ``"raise-step"``: step() raises at the third step for N = 20;
    - ``"nan"``: step() returns NaN at the second step for N = 40.
    """

    order = 1

    def __init__(
        self,
        num_train_timesteps=1000,
        schedule="ddpm-linear-1000",
        bug=None,
        multistep=False,
        **_ignored,
    ):
        self.T, self.bug, self.multistep = int(num_train_timesteps), bug, bool(multistep)
        acp = ob.schedules.get(schedule).alphas_cumprod.clone()
        self.alphas_cumprod = acp.float() if bug == "float32-table" else acp
        self.final_alpha_cumprod = torch.tensor(1.0, dtype=D)
        self.init_noise_sigma = 1.0
        self.config = {
            "num_train_timesteps": self.T,
            "schedule": schedule,
            "bug": bug,
            "multistep": multistep,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def set_timesteps(self, n: int):
        self.n = int(n)
        idx = torch.round(torch.arange(self.T, 0, -self.T / self.n, dtype=D)) - 1
        self.timesteps = idx.long()
        self.history = []

    def scale_model_input(self, x, t):
        return x

    def _abar(self, i: int) -> torch.Tensor:
        if i >= 0:
            return self.alphas_cumprod[i].to(D)
        return self.alphas_cumprod[0].to(D) if self.bug == "end-abar0" else self.final_alpha_cumprod

    def step(self, eps, t, x):
        i = int(t)
        k = int((self.timesteps == i).nonzero()[0])
        last = k + 1 == len(self.timesteps)
        prev = -1 if last else int(self.timesteps[k + 1])
        if self.bug == "prev-rule":
            prev = max(i - self.T // self.n - 1, -1)
        if self.bug == "raise-step" and self.n == 20 and k == 2:
            raise ZeroDivisionError("planted failure")
        if self.bug == "nan" and self.n == 40 and k == 1:
            return SimpleNamespace(prev_sample=x * float("nan"))
        a, a_prev = self._abar(i), self._abar(prev)
        s, s_prev = ((1 - a) / a).sqrt(), ((1 - a_prev) / a_prev).sqrt()
        e = eps
        if self.multistep and self.history and not (last and self.bug == "first-order-final"):
            e_old, s_old = self.history[-1]
            e = eps + (s_prev - s) / (2 * (s - s_old)) * (eps - e_old)
        self.history.append((eps, s))
        x_tilde = x / a.sqrt() + (s_prev - s) * e
        return SimpleNamespace(prev_sample=x_tilde * a_prev.sqrt())


STEPS = [10, 20, 30, 40, 60, 80, 120, 160, 240]
AB2 = Claim(2, "fake: Adams-Bashforth 2 in sigma_tilde")
DDIM = Claim(1, "fake: DDIM")


def run(claim=DDIM, **config):
    return audit(FakeDDIMScheduler, config, steps=STEPS, n_samples=8, claim=claim)


@pytest.fixture(scope="module")
def clean():
    return run()


@pytest.fixture(scope="module")
def clean_ab2():
    return run(AB2, multistep=True)


def named(report, prefix: str) -> list[str]:
    return [f for f in report.findings if f.startswith(prefix)]


def test_clean_clone_converges_as_declared_with_no_findings(clean, clean_ab2):
    assert clean.findings == []
    assert clean.verdict.startswith("converges at order")
    assert abs(clean.fits["ode"].slope - 1.0) < 0.1
    assert clean_ab2.findings == []
    assert abs(clean_ab2.fits["ode"].slope - 2.0) < 0.15
    ends = {r["t_end"] for r in clean.rows}
    starts = {r["t_start"] for r in clean.rows}
    assert ends == {0.0} and starts == {1.0}  # trailing grid: 999 -> ... -> data


def test_wrong_previous_timestep_rule_is_named_a_time_gap(clean):
    bug = run(bug="prev-rule")
    grid = named(bug, "time gap: model called at")
    assert grid and not named(clean, "time gap")
    assert max(r["max_gap"] for r in bug.rows) >= 1.0  # at least one index off
    assert "time gaps" in bug.verdict


def test_first_order_final_step_is_named(clean_ab2):
    bug = run(AB2, multistep=True, bug="first-order-final")
    assert named(bug, "final step: its local error has order")
    assert not named(clean_ab2, "final step")
    assert bug.fits["final_defect"].slope < 2.5 < clean_ab2.fits["final_defect"].slope
    assert "below nominal 2 (final step" in bug.verdict


def test_final_step_to_abar0_is_an_end_time_not_data(clean_ab2):
    bug = run(AB2, multistep=True, bug="end-abar0")
    assert named(bug, "end time t=0.001 (not data)")
    assert named(bug, "end time: attributes say t=0")  # final_alpha_cumprod claims 1
    assert not named(clean_ab2, "end time")
    assert all(r["t_end"] == 0.001 for r in bug.rows)
    # converges to its own ODE (to t = 0.001), not to data
    assert bug.verdict.startswith("converges at order")
    by_n = {r["steps"]: r for r in bug.rows}
    assert by_n[240]["err_ode"] < by_n[40]["err_ode"] / 10  # converging to t = 0.001
    assert by_n[240]["err_data"] > by_n[40]["err_data"] / 2  # stuck against data
    assert by_n[240]["err_data"] > 30 * clean_ab2.rows[-1]["err_data"]


def test_float32_table_is_named(clean):
    bug = run(bug="float32-table")
    assert named(bug, "float32 table: alphas_cumprod stored as float32")
    assert not named(clean, "float32")
    assert bug.facts["table_rel_dev"] > 1e-9 > clean.facts["table_rel_dev"]


@pytest.mark.parametrize(
    ("bug", "line"),
    [
        ("raise-step", "N=20: error in step 3: ZeroDivisionError: planted failure"),
        ("nan", "N=40: nan at step 2"),
    ],
)
def test_a_failing_step_is_a_line_not_a_crash(bug, line):
    report = run(bug=bug)
    assert line in report.findings
    bad = [r for r in report.rows if r["status"] != "ok"]
    assert len(bad) == 1 and math.isnan(bad[0]["err_ode"])
    assert report.verdict.startswith("converges")  # the other rungs still measured
    assert line in report.card()


def test_a_failing_constructor_is_a_line_in_every_row():
    class Broken(FakeDDIMScheduler):
        def set_timesteps(self, n):
            raise RuntimeError("no timesteps today")

    report = audit(Broken, {}, steps=[10, 20, 40], n_samples=4, claim=DDIM)
    assert report.findings[0].startswith("N=10,20,40: error in set_timesteps: RuntimeError")
    assert report.verdict == "does not run"


def test_drive_maps_sigma_scaled_states_back_to_vp():
    """A scheduler whose state is x / alpha (c_in = alpha) gives the same output as the VP
    clone once mapped back; a wrong mapping would be off by 1 / alpha ~ 157 at the start."""
    import odebench as ob

    sched = ob.schedules.get("ddpm-linear-1000")
    prob = ob.problems.get("gaussian-lowrank", sched)

    class Scaled(FakeDDIMScheduler):
        def set_timesteps(self, n):
            super().set_timesteps(n)  # diffusers' k-diffusion ports keep sigma_tilde, 0 last
            acp = self.alphas_cumprod[self.timesteps]
            self.sigmas = torch.cat([((1 - acp) / acp).sqrt(), acp[:1] * 0])

        def scale_model_input(self, x, t):
            return x * self._abar(int(t)).sqrt()

        def step(self, eps, t, x):
            a = self._abar(int(t)).sqrt()
            out = super().step(eps, t, x * a).prev_sample
            k = int((self.timesteps == int(t)).nonzero()[0])
            nxt = int(self.timesteps[k + 1]) if k + 1 < len(self.timesteps) else -1
            return type("O", (), {"prev_sample": out / self._abar(nxt).sqrt()})()

    def start(t):
        return prob.sample_marginal(4, t, torch.Generator().manual_seed(0))

    vp = drive(make_factory(FakeDDIMScheduler, {}), 20, start, prob.eps)
    ve = drive(make_factory(Scaled, {}), 20, start, prob.eps)
    assert ve.c_start < 0.01 and vp.c_start == 1.0
    assert float((ve.x_vp - vp.x_vp).abs().max()) < 1e-10
