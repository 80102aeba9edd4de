"""DDIMScheduler {"clip_sample": false, "eta": 1.0, "timestep_spacing": "trailing"}: time gap
(gap (steps))

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  DDIMScheduler, config {"clip_sample": false, "eta": 1.0, "timestep_spacing":
            "trailing"} on the table ddpm-linear-1000
finding:    time gap: model called at t=0.3210 on a state whose point-mass law is at
            t=0.3614 (40.4 steps of the table off; N=30,60,70,150,300,700)
odebench:   gap (steps) 40.42 -> 0.0e+00 with steps to the grid's next time: the
            previous-timestep rule
cause:      the previous-timestep rule
fix:        steps to the grid's next time (odebench's counterfactual, inline)
Exact model outputs of data N(mu, diag(s2)); float64 latents; seeded noise.
Usage: python <this file> [N1,N2,...]  (N among LADDER's; default: all)
"""

import math
import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.DDIMScheduler
CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False,
    "timestep_spacing": "trailing",
}
STEP_KWARGS = {"eta": 1.0}  # step(..., **)
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
    10: 0.0, 20: 0.0, 25: 0.0, 30: 0.0, 40: 0.0, 50: 0.0, 60: 0.001, 70: 0.0, 100: 0.0,
    125: 0.0, 150: 0.001, 200: 0.0, 250: 0.0, 300: 0.0, 500: 0.0, 700: 0.0,
}
M = 4096  # seeded runs of a law (the audit's Monte Carlo sample)


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (log alpha_bar linear between the knots)."""
    abar = math.exp(float(np.interp(t, KNOTS_T, KNOTS_LOG)))
    return math.sqrt(abar), math.sqrt(max(1.0 - abar, 0.0))


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    return (float(timestep) + 1.0) / T


def time_of_ratio(r):
    """The time at which b / a = r."""
    return float(np.interp(-math.log1p(r * r), KNOTS_LOG[::-1], KNOTS_T[::-1]))


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


def run(make, n, mu=MU, s2=S2, m=M, rows=False):
    """The pipeline loop for n steps on m samples, step()'s noise from one seeded generator:
    the model inputs and the output. rows: a point mass at MU as rows (see state_times)."""
    sch = make()
    sch.set_timesteps(n)
    steps = list(sch.timesteps)
    a0, b0 = coeffs(time_of(steps[0]))
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(m, 8, generator=gen, dtype=DTYPE)
    if rows:  # row 0: the mean part (the data MU), row 1: the start's noise
        mu, z = torch.zeros(m, 8, dtype=DTYPE), torch.zeros(m, 8, dtype=DTYPE)
        mu[0], z[1] = torch.as_tensor(MU), 1.0
    state = a0 * torch.as_tensor(mu) + torch.as_tensor(np.sqrt(a0 * a0 * s2 + b0 * b0)) * z
    seen = []
    for timestep in steps:
        seen.append((sch.scale_model_input(state, timestep)).to(DTYPE))
        out = model(seen[-1], time_of(timestep), mu, s2)
        state = sch.step(out, timestep, state, **STEP_KWARGS, generator=gen).prev_sample
    return seen, state.to(DTYPE)


def state_times(n, make=original):
    """The time each model call's input is at, exactly: from a point mass at MU its law is
    N(c MU, s^2) per coordinate, and s / c = b / a at its time. The law is affine in the start
    and the draws, so the run is on rows: row 0 the mean part, row 1 the start's noise, row
    j + 1 the j-th draw of step()'s noise (diffusers' randn_tensor answered with unit rows)."""
    module, drawn = sys.modules[CLASS.__module__], []

    def unit(shape, **kwargs):
        drawn.append(1)
        e = torch.zeros(shape, dtype=kwargs.get("dtype") or DTYPE)
        e[len(drawn) + 1] = 1.0
        return e

    saved, module.randn_tensor = module.randn_tensor, unit
    try:
        seen, _ = run(make, n, s2=0 * S2, m=2 * n + 3, rows=True)
    finally:
        module.randn_tensor = saved
    return [time_of_ratio(float(x[1:, 0].norm() / (x[0, 0] / MU[0]))) for x in seen]


def gap(make, n):
    """The largest distance, in steps of the table, of a model call's time from its state's."""
    sch = make()
    sch.set_timesteps(n)
    calls = [time_of(t) for t in sch.timesteps]
    return max(T * abs(s - c) for s, c in zip(state_times(n, make), calls, strict=True))


def fix_next_grid_time(make):
    """each step but the last goes to the grid's next timestep: DDIM's previous timestep
    t - num_train_timesteps // N, seen with num_train_timesteps = (gap to the next) * N."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class NextGridTime(base):
            def step(self, model_output, timestep, *args, **kwargs):
                times = [int(t) for t in self.timesteps]
                k = times.index(int(timestep))
                if k + 1 >= len(times):
                    return base.step(self, model_output, timestep, *args, **kwargs)
                saved = self._internal_dict
                train = (times[k] - times[k + 1]) * int(self.num_inference_steps)
                self._internal_dict = type(saved)({**saved, "num_train_timesteps": train})
                try:
                    return base.step(self, model_output, timestep, *args, **kwargs)
                finally:
                    self._internal_dict = saved

        sch.__class__ = NextGridTime
        return sch

    return make_fixed


def measure(make, steps):
    """Print the defect's numbers; return its value."""
    gaps = [gap(make, n) for n in steps]
    print("      N   gap (table steps)")
    for n, g in zip(steps, gaps, strict=True):
        print(f"  {n:5d}   {g:17.3f}")
    return max(gaps)


def main(argv):
    steps = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else LADDER
    if not set(steps) <= set(END):
        raise SystemExit(f"N must be among odebench's ladder {sorted(END)}")
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original, steps)
    print("with the counterfactual (next_grid_time):")
    after = measure(fix_next_grid_time(original), steps)
    print(f"RESULT largest time gap (table steps): {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
