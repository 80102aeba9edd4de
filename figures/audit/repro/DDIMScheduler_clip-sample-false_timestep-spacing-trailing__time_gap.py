"""DDIMScheduler {"clip_sample": false, "timestep_spacing": "trailing"}: time gap (gap (steps))

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  DDIMScheduler, config {"clip_sample": false, "timestep_spacing": "trailing"} on
            the table ddpm-linear-1000
finding:    time gap: model called at t=0.2510 on a state at t=0.3292 (78.2 steps of the
            table off; N=30,60,70,150,300,700)
odebench:   gap (steps) 78.18 -> 0.0e+00 with steps to the grid's next time: the
            previous-timestep rule
cause:      the previous-timestep rule
fix:        steps to the grid's next time (odebench's counterfactual, inline)
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
CLASS = diffusers.DDIMScheduler
CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False,
    "timestep_spacing": "trailing",
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
    10: 0.0, 20: 0.0, 25: 0.0, 30: 0.0, 40: 0.0, 50: 0.0, 60: 0.0012081161231714274, 70: 0.0,
    100: 0.0, 125: 0.0, 150: 0.0018034437785767279, 200: 0.0, 250: 0.0, 300: 0.0, 500: 0.0,
    700: 0.0,
}


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (log alpha_bar linear between the knots)."""
    abar = math.exp(float(np.interp(t, KNOTS_T, KNOTS_LOG)))
    return math.sqrt(abar), math.sqrt(max(1.0 - abar, 0.0))


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    return (float(timestep) + 1.0) / T


def time_of_b(b):
    """The time at which the noise coefficient is b."""
    return float(np.interp(math.log(max(1.0 - b * b, 1e-300)), KNOTS_LOG[::-1], KNOTS_T[::-1]))


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


def run(make, n, mu=MU, s2=S2):
    """The pipeline loop for n steps: (n, error against the exact end state, the last
    step's defect, the model's inputs, the start's noise)."""
    sch = make()
    sch.set_timesteps(n)
    steps = list(sch.timesteps)
    t0 = time_of(steps[0])
    a0, b0 = coeffs(t0)
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    x = a0 * torch.as_tensor(mu) + torch.as_tensor(np.sqrt(a0 * a0 * s2 + b0 * b0)) * z
    state = x
    seen = []
    for timestep in steps:
        t_call = time_of(timestep)
        seen.append((sch.scale_model_input(state, timestep)).to(DTYPE))
        out = model(seen[-1], t_call, mu, s2)
        state = sch.step(out, timestep, state).prev_sample
    # the state entering the last step: the last call above the end time (PNDM's last is at it)
    j = max((k for k, ts in enumerate(steps) if time_of(ts) > END[n] + 0.5 / T), default=-1)
    last = flow(seen[j], time_of(steps[j]), END[n], mu, s2)
    x, exact = state.to(DTYPE), flow(x, t0, END[n], mu, s2)
    return n, rms(x, exact), rms(x, last), seen, z


def state_times(n, make=original):
    """The time each model call's input state is at (read off a point-mass run)."""
    *_, seen, z = run(make, n, 0 * MU, 0 * S2)
    return [time_of_b(float(x.norm() / z.norm())) for x in seen]


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
    rows = [run(make, n)[:3] for n in steps]
    print("      N   gap (table steps)   error")
    for g, (n, err, _) in zip(gaps, rows, strict=True):
        print(f"  {n:5d}   {g:17.3f}   {err:.3e}")
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
