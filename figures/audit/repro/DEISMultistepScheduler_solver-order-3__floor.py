"""DEISMultistepScheduler {"solver_order": 3}: floor (error at the finest N)

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  DEISMultistepScheduler, config {"solver_order": 3} on the table ddpm-linear-1000
finding:    does not converge: error 1.9e-01 at N=700, 509x its minimum 3.6e-04 at N=125
            (time gaps: calls off their inputs' times)
odebench:   error at the finest N 0.19 -> 1.1e-05 with float64 tables: float32 tables
            (alphas_cumprod, sigmas, lambdas)
cause:      float32 tables (alphas_cumprod, sigmas, lambdas)
fix:        float64 tables (odebench's counterfactual, inline)
Exact model outputs of data N(mu, diag(s2)); float64 latents; exact end states.
Usage: python <this file> [N1,N2,...]  (N among LADDER's; default: all)
"""

import math
import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.DEISMultistepScheduler
CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "solver_order": 3,
}
T = 1000  # num_train_timesteps
BETAS = np.linspace(1e-4, 0.02, 1000)
KNOTS_T = np.arange(T + 1) / T
KNOTS_LOG = np.concatenate([[0.0], np.cumsum(np.log1p(-BETAS))])  # log alpha_bar at KNOTS_T
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
# odebench's ladder of N, and per N the time t its output is at (point-mass probe)
LADDER = [10, 20, 25, 30, 40, 50, 60, 70, 100, 125, 150, 200, 250, 300, 500, 700]
END = {
    10: 0.001, 20: 0.001, 25: 0.001, 30: 0.001, 40: 0.001, 50: 0.001, 60: 0.001, 70: 0.001,
    100: 0.001, 125: 0.001, 150: 0.001, 200: 0.001, 250: 0.001, 300: 0.0010458446670641944,
    500: 0.001121035561361111, 700: 0.0013452104116942623,
}


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (log alpha_bar linear between the knots)."""
    abar = math.exp(float(np.interp(t, KNOTS_T, KNOTS_LOG)))
    return math.sqrt(abar), math.sqrt(max(1.0 - abar, 0.0))


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    return (float(timestep) + 1.0) / T


def model(x, t, mu=MU, s2=S2):
    """The exact model output (eps) at time t for data N(mu, diag(s2))."""
    a, b = coeffs(t)
    mean, var = torch.as_tensor(a * mu), torch.as_tensor(a * a * s2 + b * b)
    return b * (x - mean) / var


def flow(x, s, t, mu=MU, s2=S2):
    """The exact probability-flow map of the interpolant's x from time s to time t."""
    (a1, b1), (a2, b2) = coeffs(s), coeffs(t)
    ratio = torch.as_tensor(np.sqrt((a2 * a2 * s2 + b2 * b2) / (a1 * a1 * s2 + b1 * b1)))
    return a2 * torch.as_tensor(mu) + ratio * (x - a1 * torch.as_tensor(mu))


def original(**over):
    """A fresh scheduler, as a pipeline makes one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLASS.from_config({**CONFIG, **over})


def rms(x, y):
    return float(((x - y) ** 2).sum(-1).mean().sqrt())


def run(make, n):
    """The pipeline loop for n steps: (n, error against the exact end state, the last
    step's defect)."""
    sch = make()
    sch.set_timesteps(n)
    steps = list(sch.timesteps)
    t0 = time_of(steps[0])
    a0, b0 = coeffs(t0)
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    x = a0 * torch.as_tensor(MU) + torch.as_tensor(np.sqrt(a0 * a0 * S2 + b0 * b0)) * z
    state = x
    seen = []
    for timestep in steps:
        t_call = time_of(timestep)
        seen.append((sch.scale_model_input(state, timestep)).to(DTYPE))
        out = model(seen[-1], t_call)
        state = sch.step(out, timestep, state).prev_sample
    # the state entering the last step: the last call above the end time (PNDM's last is at it)
    j = max((k for k, ts in enumerate(steps) if time_of(ts) > END[n] + 0.5 / T), default=-1)
    last = flow(seen[j], time_of(steps[j]), END[n])
    x, exact = state.to(DTYPE), flow(x, t0, END[n])
    return n, rms(x, exact), rms(x, last)


class _Wide:
    """A module seen with its 32- and 16-bit float names meaning float64."""

    def __init__(self, module, names, wide):
        self._module, self._names, self._wide = module, names, wide

    def __getattr__(self, name):
        return self._wide if name in self._names else getattr(self._module, name)


class Float64View:
    """Within the block, the diffusers modules defining CLASS and its bases read
    torch.float32 / np.float32 (and 16-bit names) as float64; their globals are restored."""

    def __enter__(self):
        low = ("float32", "float", "float16", "half", "bfloat16")
        views = {
            id(torch): _Wide(torch, low, torch.float64),
            id(np): _Wide(np, ("float32", "single", "float16", "half"), np.float64),
        }
        self.saved = []
        for name in {k.__module__ for k in CLASS.__mro__} - {"builtins", __name__}:
            space = vars(sys.modules[name]) if name in sys.modules else {}
            for key, value in list(space.items()):
                if value is torch or value is np:
                    self.saved.append((space, key, value))
                    space[key] = views[id(value)]

    def __exit__(self, *exc):
        for space, key, value in reversed(self.saved):
            space[key] = value


def fix_float64_tables(make):
    """float64 tables: the constructor and set_timesteps run with float32 meaning float64."""

    def make_fixed(**over):
        with Float64View():
            sch = make(**over)
        base = type(sch)

        class Float64Tables(base):
            def set_timesteps(self, *args, **kwargs):
                with Float64View():
                    return base.set_timesteps(self, *args, **kwargs)

        sch.__class__ = Float64Tables
        return sch

    return make_fixed


def measure(make, steps):
    """Print the defect's numbers; return its value."""
    rows = [run(make, n) for n in steps]
    print("      N        error   local order   last step's defect")
    for i, (n, err, last) in enumerate(rows):
        p = " " * 11
        if i and err > 0:  # the local order
            p = f"{math.log(rows[i - 1][1] / err) / math.log(n / rows[i - 1][0]):11.2f}"
        print(f"  {n:5d}   {err:.3e}   {p}   {last:.3e}")
    print(f"  smallest error {min(r[1] for r in rows):.3e}, at the finest N {rows[-1][1]:.3e}")
    return rows[-1][1]


def main(argv):
    steps = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else LADDER
    if not set(steps) <= set(END):
        raise SystemExit(f"N must be among odebench's ladder {sorted(END)}")
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original, steps)
    print("with the counterfactual (float64_tables):")
    after = measure(fix_float64_tables(original), steps)
    print(f"RESULT error at the finest N: {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
