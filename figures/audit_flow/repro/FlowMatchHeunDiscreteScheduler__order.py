"""FlowMatchHeunDiscreteScheduler: order (order)

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  FlowMatchHeunDiscreteScheduler, config {}
finding:    order inconclusive: 2.08 [0.75, 3.41] against nominal 2
odebench:   order 2.08 -> 2.12 with a float64 state: float32 rounding inside step(); also
            removed by exact-final-step
cause:      float32 rounding inside step()
fix:        a float64 state (odebench's counterfactual, inline)
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
CLASS = diffusers.FlowMatchHeunDiscreteScheduler
CONFIG = {}
T = 1000  # num_train_timesteps
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
# odebench's ladder of N, and per N the time t its output is at (point-mass probe)
LADDER = [10, 20, 25, 30, 40, 50, 60, 70, 100, 125, 150, 200, 250, 300, 500, 700]
END = dict.fromkeys(LADDER, 0.0)


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (flow matching)."""
    return 1.0 - t, t


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    t = float(timestep) / T
    return min(t, 1.0) if t < 1.0 + 1e-5 else t


def model(x, t, mu=MU, s2=S2):
    """The exact model output (velocity) at time t for data N(mu, diag(s2))."""
    a, b = coeffs(t)
    mean, var = torch.as_tensor(a * mu), torch.as_tensor(a * a * s2 + b * b)
    x0 = torch.as_tensor(mu) + a * torch.as_tensor(s2) * (x - mean) / var
    return b * (x - mean) / var - x0


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
        seen.append(state.to(DTYPE))
        out = model(seen[-1], t_call)
        state = sch.step(out, timestep, state).prev_sample
    # the state entering the last step: the last call above the end time (PNDM's last is at it)
    j = max((k for k, ts in enumerate(steps) if time_of(ts) > END[n] + 0.5 / T), default=-1)
    last = flow(seen[j], time_of(steps[j]), END[n])
    x, exact = state.to(DTYPE), flow(x, t0, END[n])
    return n, rms(x, exact), rms(x, last)


def order(rows):
    """The least-squares slope of log error against log 1/N."""
    n, err = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows])
    keep = err > 0
    if keep.sum() < 2:
        return math.nan
    return float(-np.polyfit(np.log(n[keep]), np.log(err[keep]), 1)[0])


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


def fix_float64_state(make):
    """a float64 state: step() runs with float32 meaning float64 (sample.to(torch.float32)
    keeps float64); the tables stay as built."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class Float64State(base):
            def step(self, *args, **kwargs):
                with Float64View():
                    return base.step(self, *args, **kwargs)

        sch.__class__ = Float64State
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
    print(f"  fitted order {order(rows):.2f}, error at the finest N {rows[-1][1]:.3e}")
    return order(rows)


def main(argv):
    steps = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else LADDER
    if not set(steps) <= set(END):
        raise SystemExit(f"N must be among odebench's ladder {sorted(END)}")
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original, steps)
    print("with the counterfactual (float64_state):")
    after = measure(fix_float64_state(original), steps)
    print(f"RESULT fitted order: {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
