"""DPMSolverMultistepScheduler {"algorithm_type": "sde-dpmsolver++"}: float32 state
(nonlinearity)

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  DPMSolverMultistepScheduler, config {"algorithm_type": "sde-dpmsolver++"} on the
            table ddpm-linear-1000
finding:    float32 state: step() rounds the sample to float32 (response to a 1e-9
            perturbation of x_T is nonlinear by 8.5e-01; float64 gives ~1e-6)
odebench:   nonlinearity 0.85 -> 8.9e-05 with a float64 state: float32 rounding inside
            step()
cause:      float32 rounding inside step()
fix:        a float64 state (odebench's counterfactual, inline)
Exact model outputs of data N(mu, diag(s2)); float64 latents; seeded noise.
"""

import math
import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.DPMSolverMultistepScheduler
CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "algorithm_type": "sde-dpmsolver++",
}
T = 1000  # num_train_timesteps
BETAS = np.linspace(1e-4, 0.02, 1000)
KNOTS_T = np.arange(T + 1) / T
KNOTS_LOG = np.concatenate([[0.0], np.cumsum(np.log1p(-BETAS))])  # log alpha_bar at KNOTS_T
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
PROBE_N = 50


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


def original(**over):
    """A fresh scheduler, as a pipeline makes one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLASS.from_config({**CONFIG, **over})


def run(make, n, shift=0.0):
    """The output of the pipeline loop for n steps, its start shifted by shift * 1e-9.
    step()'s noise is seeded alike in every run."""
    sch = make()
    sch.set_timesteps(n)
    steps = list(sch.timesteps)
    t0 = time_of(steps[0])
    a0, b0 = coeffs(t0)
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    x = a0 * torch.as_tensor(MU) + torch.as_tensor(np.sqrt(a0 * a0 * S2 + b0 * b0)) * z
    if shift:  # a perturbation of size shift * 1e-9 relative
        d = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
        x = x + shift * 1e-9 * float(x.norm() / d.norm()) * d
    state = x
    gen = torch.Generator().manual_seed(1)
    for timestep in steps:
        t_call = time_of(timestep)
        out = model((sch.scale_model_input(state, timestep)).to(DTYPE), t_call)
        state = sch.step(out, timestep, state, generator=gen).prev_sample
    return state.to(DTYPE)


def nonlinearity(make, n=PROBE_N):
    """|D(2d) - 2 D(d)| / |2 D(d)| for the outputs' response D to start perturbations d, 2d
    of relative size 1e-9 (a float64 state: ~1e-6; a state rounded to float32: order 1)."""
    base, one, two = (run(make, n, shift=k) for k in (0.0, 1.0, 2.0))
    den = float((2 * (one - base)).norm())
    return math.inf if den == 0 else float((two - base - 2 * (one - base)).norm()) / den


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


def measure(make):
    """Print the defect's numbers; return its value."""
    value = nonlinearity(make)
    print(f"  the output's response to a 1e-9 change of the start: nonlinear by {value:.2e}")
    return value


def main(argv):
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original)
    print("with the counterfactual (float64_state):")
    after = measure(fix_float64_state(original))
    print(f"RESULT nonlinearity: {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
