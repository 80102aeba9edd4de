"""FlowMatchLCMScheduler: float32 state (nonlinearity)

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  FlowMatchLCMScheduler, config {}
finding:    float32 state: step() rounds the sample to float32 (response to a 1e-9
            perturbation of x_T is nonlinear by 8.6e-01; float64 gives ~1e-6)
odebench:   none of the probes removes it (nonlinearity 0.86; float64-tables 0.81,
            float64-state inf, float64-tables + float64-state inf); with a float64 state the
            response to the 1e-9 change vanishes entirely (inf): the output does not depend
            on x_T at this precision (the sampler forgets its start), so this test cannot
            judge the state's precision
cause:      none of odebench's counterfactual probes removes it (their numbers above)
fix:        none (no counterfactual removed it: it prints what was tried)
Exact model outputs of data N(mu, diag(s2)); float64 latents; seeded noise.
"""

import math
import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.FlowMatchLCMScheduler
CONFIG = {}
T = 1000  # num_train_timesteps
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
PROBE_N = 50
# odebench's counterfactuals, and what was left of the defect
TRIED = """float64-tables 0.81; float64-state failed; float64-tables + float64-state failed"""


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
        out = model(state.to(DTYPE), t_call)
        state = sch.step(out, timestep, state, generator=gen).prev_sample
    return state.to(DTYPE)


def nonlinearity(make, n=PROBE_N):
    """|D(2d) - 2 D(d)| / |2 D(d)| for the outputs' response D to start perturbations d, 2d
    of relative size 1e-9 (a float64 state: ~1e-6; a state rounded to float32: order 1)."""
    base, one, two = (run(make, n, shift=k) for k in (0.0, 1.0, 2.0))
    den = float((2 * (one - base)).norm())
    return math.inf if den == 0 else float((two - base - 2 * (one - base)).norm()) / den


def measure(make):
    """Print the defect's numbers; return its value."""
    value = nonlinearity(make)
    print(f"  the output's response to a 1e-9 change of the start: nonlinear by {value:.2e}")
    return value


def main(argv):
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original)
    print("no counterfactual removes it; odebench tried: " + " ".join(TRIED.split()))
    print(f"RESULT nonlinearity: {before:.3e}")


if __name__ == "__main__":
    main(sys.argv)
