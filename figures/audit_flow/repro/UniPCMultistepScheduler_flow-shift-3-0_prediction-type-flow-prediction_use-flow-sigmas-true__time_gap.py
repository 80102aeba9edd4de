"""UniPCMultistepScheduler {"prediction_type": "flow_prediction", "use_flow_sigmas": true,
"flow_shift": 3.0}: time gap (gap (steps))

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  0.42.1 (the version audited; the one running it is printed)
scheduler:  UniPCMultistepScheduler, config {"flow_shift": 3.0, "prediction_type":
            "flow_prediction", "use_flow_sigmas": true}
finding:    time gap: model called at t=0.9370 on a state at t=0.9360 (1.0 steps of the
            table off; N=10,20,25,30,40,50,60,70,100,125,150,200,250,300)
odebench:   none of the probes removes it (gap (steps) 0.97; float64-tables 0.97,
            float64-state 0.97, solver-order-final -, exact-call-times 0.99, exact-warm-up
            0.97, exact-final-step 0.97, exact-last-steps 0.97, float64-tables +
            float64-state + solver-order-final + exact-call-times + exact-warm-up +
            exact-final-step + exact-last-steps 0.97)
cause:      none of odebench's counterfactual probes removes it (their numbers above)
fix:        none (no counterfactual removed it: it prints what was tried)
Exact model outputs of data N(mu, diag(s2)); float64 latents; exact end states.
Usage: python <this file> [N1,N2,...]  (N among LADDER's; default: all)
"""

import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.UniPCMultistepScheduler
CONFIG = {"flow_shift": 3.0, "prediction_type": "flow_prediction", "use_flow_sigmas": True}
T = 1000  # num_train_timesteps
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
# odebench's ladder of N, and per N the time t its output is at (point-mass probe)
LADDER = [10, 20, 25, 30, 40, 50, 60, 70, 100, 125, 150, 200, 250, 300]
END = {
    10: 0.0008706954704962087, 20: 0.0007131039844724754, 25: 0.0005728522180903622,
    30: 0.00029315171547908306, 40: 7.604635911583986e-05, 50: 0.00040437467784052247,
    60: 0.00014411841781084275, 70: 0.00045450414363771386, 100: 0.0002591297115259831,
    125: 0.0005014290730127892, 150: 0.0006276857965888227, 200: 0.0007923390579754158,
    250: 0.0008654175111751499, 300: 0.0008911261244848102,
}
# odebench's counterfactuals, and what was left of the defect
TRIED = """float64-tables 0.97; float64-state 0.97; solver-order-final failed; exact-call-times
0.99; exact-warm-up 0.97; exact-final-step 0.97; exact-last-steps 0.97; float64-tables
+ float64-state + solver-order-final + exact-call-times + exact-warm-up +
exact-final-step + exact-last-steps 0.97"""


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (flow matching)."""
    return 1.0 - t, t


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    t = float(timestep) / T
    return min(t, 1.0) if t < 1.0 + 1e-5 else t


def time_of_b(b):
    """The time at which the noise coefficient is b."""
    return b


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
    print("no counterfactual removes it; odebench tried: " + " ".join(TRIED.split()))
    print(f"RESULT largest time gap (table steps): {before:.3e}")


if __name__ == "__main__":
    main(sys.argv)
