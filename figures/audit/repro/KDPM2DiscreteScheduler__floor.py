"""KDPM2DiscreteScheduler: floor (error floor)

Written by odebench's audit (odebench audit --repro): a stand-alone reproduction that uses
only torch, numpy, the standard library and diffusers.

diffusers:  0.42.1 (the version odebench audited; this one: printed when it runs)
scheduler:  KDPM2DiscreteScheduler, config {} on the table ddpm-linear-1000
finding:    error floor 8.2e-05 at the finest N (final step: the same step from t=0.00103 to
            t=0 at every N adds 1.2e-04)
odebench:   error floor 8.2e-05 -> 6.4e-05 with exact warm-up steps: the lower-order warm-up
            steps of a multistep method; also removed by exact-final-step
cause:      the lower-order warm-up steps of a multistep method

The problem has a closed form: data N(mu, diag(s2)) of rank 3 in 8-d, exact model outputs
(no network) and the probability-flow ODE a linear map per coordinate, so the exact end
state is known without an ODE solver. The scheduler runs as a diffusers pipeline runs it
(set_timesteps, scale_model_input, model, step) on float64 latents, so any rounding is the
scheduler's own, from a sample of the marginal at its first timestep; each run ends at the
time odebench measured for it (END).
Then it applies the counterfactual that removed the finding in odebench (exact warm-up
steps), written inline as a subclass, and prints the numbers again.

    python <this file> [N1,N2,...]      (default: odebench's ladder; N among END's)
"""

import copy
import math
import sys
import warnings

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
CLASS = diffusers.KDPM2DiscreteScheduler
CONFIG = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}
# set_timesteps(N, **SET_KWARGS), step(..., **STEP_KWARGS)
SET_KWARGS = {}
STEP_KWARGS = {}
PATH = "vp"  # "vp": x = a x0 + b z, a^2 = alpha_bar; "flow": a = 1 - t, b = t; "ve": b = sigma
REVERSE = False  # invert_sigmas: the scheduler's sigma is 1 - t
OUTPUT = "eps"  # the model's output: eps, x0, v, velocity or edm (Karras' F)
SIGN = 1.0  # EDM's v_prediction flips the sign of c_out
STATE = "sigma-scaled"  # "sigma-scaled": the state is x / a (the k-diffusion ports); else x
T = 1000  # num_train_timesteps; odebench's time of a VP timestep i is t = (i + 1) / T
SIGMA_MAX, SIGMA_DATA = 80.0, 0.5
BETAS = np.linspace(1e-4, 0.02, 1000)
# per N: the time t the output is at (odebench's point-mass probe)
END = {
    10: 0.0,
    20: 0.0,
    25: 0.0,
    30: 0.0,
    40: 0.0,
    50: 0.0,
    60: 0.0,
    70: 0.0,
    100: 0.0,
    125: 0.0,
    150: 0.0,
    200: 0.0,
    250: 0.0,
    300: 0.0,
    500: 0.0,
    700: 0.0,
}
MULTISTAGE = False  # some model calls repeat a timestep (the stages of one step)
LADDER = [
    10,
    20,
    25,
    30,
    40,
    50,
    60,
    70,
    100,
    125,
    150,
    200,
    250,
    300,
    500,
    700,
]
PROBE_N = 50
MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
KNOTS_T = np.arange(T + 1) / T
KNOTS_LOG = np.concatenate([[0.0], np.cumsum(np.log1p(-BETAS))])  # log alpha_bar at KNOTS_T


def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (VP: log alpha_bar linear between the knots)."""
    if PATH == "vp":
        abar = math.exp(float(np.interp(t, KNOTS_T, KNOTS_LOG)))
        return math.sqrt(abar), math.sqrt(max(1.0 - abar, 0.0))
    return (1.0, SIGMA_MAX * t) if PATH == "ve" else (1.0 - t, t)


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    ts = float(timestep)
    if PATH == "vp":
        return (ts + 1.0) / T
    t = math.exp(4.0 * ts) / SIGMA_MAX if PATH == "ve" else (1 - ts / T if REVERSE else ts / T)
    return min(t, 1.0) if t < 1.0 + 1e-5 else t


def time_of_b(b):
    """The time at which the noise coefficient is b."""
    if PATH == "vp":
        return float(np.interp(math.log(max(1.0 - b * b, 1e-300)), KNOTS_LOG[::-1], KNOTS_T[::-1]))
    return b / SIGMA_MAX if PATH == "ve" else b


def c_in(t):
    """Network input = c_in * x (EDM's preconditioning; 1 otherwise)."""
    return 1.0 / math.hypot(SIGMA_MAX * t, SIGMA_DATA) if OUTPUT == "edm" else 1.0


def model(x, t, mu=MU, s2=S2):
    """The exact model output at time t for data N(mu, diag(s2)); x the interpolant's x."""
    a, b = coeffs(t)
    mean, var = torch.as_tensor(a * mu), torch.as_tensor(a * a * s2 + b * b)
    x0 = torch.as_tensor(mu) + a * torch.as_tensor(s2) * (x - mean) / var
    z = b * (x - mean) / var
    if OUTPUT == "edm":  # x0 = c_skip x + c_out F
        sd = SIGMA_DATA
        c_skip, c_out = sd * sd / (b * b + sd * sd), SIGN * b * sd / math.hypot(b, sd)
        return (x0 - c_skip * x) / c_out
    velocity = -(z - x0) if REVERSE else z - x0
    return {"eps": z, "x0": x0, "v": a * z - b * x0, "velocity": velocity}[OUTPUT]


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


def scale(sch, x, timestep):
    f = getattr(sch, "scale_model_input", None)
    return x if f is None else f(x, timestep)


def run(make, n, mu=MU, s2=S2, times=None, shift=0.0):
    """The pipeline loop for n steps: (output, exact output, the exact flow of the state
    entering the last step, the interpolant's x at each model call, the start's noise).
    times: the model is told these times instead of its timesteps' (a counterfactual)."""
    sch = make()
    sch.set_timesteps(n, **SET_KWARGS)
    steps = list(sch.timesteps)
    t0 = time_of(steps[0])
    a0, b0 = coeffs(t0)
    z = torch.randn(16, len(mu), generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    x = a0 * torch.as_tensor(mu) + torch.as_tensor(np.sqrt(a0 * a0 * s2 + b0 * b0)) * z
    if shift:  # a perturbation of size shift * 1e-9 relative (the float64 linearity probe)
        d = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
        x = x + shift * 1e-9 * float(x.norm() / d.norm()) * d
    one = torch.ones(1, dtype=DTYPE)
    state = x / (float(scale(copy.deepcopy(sch), one, steps[0])[0]) / c_in(t0))
    seen = []
    for k, timestep in enumerate(steps):
        t_call = time_of(timestep)
        seen.append((scale(sch, state, timestep) / c_in(t_call)).to(DTYPE))
        out = model(seen[-1], t_call if times is None else times[k], mu, s2)
        state = sch.step(out, timestep, state, **STEP_KWARGS).prev_sample
    c_end = 1.0 / math.hypot(float(sch.sigmas[-1]), 1.0) if STATE == "sigma-scaled" else 1.0
    if n not in END:  # no measured end time: no exact output (the linearity probe needs none)
        return state.to(DTYPE) * c_end, None, None, seen, z
    # the state entering the last step: the last call above the end time (PNDM's last call,
    # at the end time, does not move the state)
    j = max((k for k, ts in enumerate(steps) if time_of(ts) > END[n] + 0.5 / T), default=-1)
    last = flow(seen[j], time_of(steps[j]), END[n], mu, s2)
    return state.to(DTYPE) * c_end, flow(x, t0, END[n], mu, s2), last, seen, z


def rms(x, y):
    return float(((x - y) ** 2).sum(-1).mean().sqrt())


def state_times(n, make=original):
    """The time each model call's input state is at (read off a point-mass run)."""
    *_, seen, z = run(make, n, 0 * MU, 0 * S2)
    return [time_of_b(float(x.norm() / z.norm())) for x in seen]


def gap(make, n):
    """The largest distance, in steps of the table, of a model call's time from its state's."""
    sch = make()
    sch.set_timesteps(n, **SET_KWARGS)
    calls = [time_of(t) for t in sch.timesteps]
    return max(T * abs(s - c) for s, c in zip(state_times(n, make), calls, strict=True))


def nonlinearity(make, n=PROBE_N):
    """|D(2d) - 2 D(d)| / |2 D(d)| for the outputs' response D to start perturbations d, 2d
    of relative size 1e-9 (a float64 state: ~1e-6; a state rounded to float32: order 1)."""
    base, one, two = (run(make, n, shift=k)[0] for k in (0.0, 1.0, 2.0))
    den = float((2 * (one - base)).norm())
    return math.inf if den == 0 else float((two - base - 2 * (one - base)).norm()) / den


def table_deviation(make):
    """The largest relative deviation of the scheduler's alphas_cumprod from float64's."""
    sch = make()
    sch.set_timesteps(PROBE_N, **SET_KWARGS)
    ours = torch.as_tensor(np.exp(KNOTS_LOG[1:]))
    return float(((torch.as_tensor(sch.alphas_cumprod).to(DTYPE) - ours).abs() / ours).max())


def ladder(make, steps, retime=False):
    """(N, error against the exact end state, the last step's defect) for each N."""
    out = []
    for n in steps:
        x, exact, last, _, _ = run(make, n, times=state_times(n) if retime else None)
        out.append((n, rms(x, exact), rms(x, last)))
    return out


def order(rows):
    """The least-squares slope of log error against log 1/N."""
    n, err = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows])
    keep = err > 0
    if keep.sum() < 2:
        return math.nan
    return float(-np.polyfit(np.log(n[keep]), np.log(err[keep]), 1)[0])


def time_of_sigma(s):
    """The time of a scheduler's own sigma (k-diffusion ports, flow matching, EDM)."""
    if STATE == "sigma-scaled":
        return time_of_b(s / math.hypot(s, 1.0))
    return s / SIGMA_MAX if PATH == "ve" else (1.0 - s if REVERSE else s)


def exact_steps(make, which, tag):
    """The steps which(k, n, t) selects replaced by the exact flow from the state's time t to
    the next one; the scheduler still sees its model outputs. A state is at its own sigma
    where the class has sigmas (else at its timestep's time, the last one at END); a
    two-stage class's second stage and a singlestep solver's sub-steps inside a group are
    not states and keep their step. Its count is kept under ``tag``: such fixes stack."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class ExactSteps(base):
            def set_timesteps(self, n, *args, **kwargs):
                base.set_timesteps(self, n, *args, **kwargs)
                self.__dict__[tag] = [int(n), 0, False]  # N, calls so far, replaced one yet

            def step(self, model_output, timestep, sample, *args, **kwargs):
                first = getattr(self, "state_in_first_order", None)
                out = base.step(self, model_output, timestep, sample, *args, **kwargs)
                n, k, done = count = self.__dict__[tag]
                count[1] += 1
                times, sigmas, k_sel = list(self.timesteps), getattr(self, "sigmas", None), k
                if STATE != "vp" and sigmas is not None and len(sigmas) > k + 1:
                    t_now, t_next = (time_of_sigma(float(s)) for s in sigmas[k : k + 2])
                else:  # the calls after it at the end time (PNDM's last): the last step
                    t_now, rest = time_of(times[k]), [time_of(t) for t in times[k + 1 :]]
                    at_end = bool(rest) and all(abs(r - END[n]) * T <= 0.5 for r in rest)
                    t_next = END[n] if not rest or at_end else rest[0]
                    k_sel = len(times) - 1 if at_end else k
                starts = first if first is not None else k == 0 or times[k] != times[k - 1]
                orders = getattr(self, "order_list", None)
                inside = not done and orders is not None and k < len(orders) and orders[k] != 1
                if not which(k_sel, len(times), t_now) or (MULTISTAGE and not starts) or inside:
                    return out
                if t_next < t_now:
                    scaled = STATE == "sigma-scaled"  # the state is x / a
                    c_now, c_next = (coeffs(t)[0] if scaled else 1.0 for t in (t_now, t_next))
                    out.prev_sample = flow(sample.to(DTYPE) * c_now, t_now, t_next) / c_next
                    count[2] = True
                return out

        sch.__class__ = ExactSteps
        return sch

    return make_fixed


def fix_exact_warm_up(make):
    """exact warm-up steps: the first 1 step(s) (the lower-order ones) by the exact flow."""
    return exact_steps(make, lambda k, n, t: k < min(1, n - 1), "repro_warm_up")


# the counterfactual that removed the finding (empty: none did); RETIME: the model is told
# the time its input state is at (exact-call-times); TRIED: what odebench tried, and its number
FIXES = [fix_exact_warm_up]
RETIME = False
TRIED = """float64-tables 8.2e-05; float64-state 8.2e-05; exact-warm-up 6.4e-05; exact-final-step
1.9e-05; exact-last-steps 0.00016"""


def print_ladder(rows):
    print("      N        error   local order   last step's defect")
    prev = None
    for n, err, last in rows:
        p = " " * 11
        if prev and err > 0:
            p = f"{math.log(prev[1] / err) / math.log(n / prev[0]):11.2f}"
        print(f"  {n:5d}   {err:.3e}   {p}   {last:.3e}")
        prev = (n, err)


def measure(make, steps, retime=False):
    """Print the defect's numbers; return (label, value)."""
    rows = ladder(make, steps, retime)
    print_ladder(rows)
    print(f"  smallest error {min(r[1] for r in rows):.3e}, at the finest N {rows[-1][1]:.3e}")
    return "error at the finest N", rows[-1][1]


def main(argv):
    steps = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else LADDER
    if not set(steps) <= set(END):
        raise SystemExit(f"N must be among odebench's ladder {sorted(END)}")
    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    label, before = measure(original, steps)
    if not FIXES:
        print("no counterfactual removes it; odebench tried: " + " ".join(TRIED.split()))
        print(f"RESULT {label}: {before:.3e}")
        return
    make = original
    for fix in FIXES:
        make = fix(make)
    print("with the counterfactual (" + ", ".join(f.__name__[4:] for f in FIXES) + "):")
    _, after = measure(make, steps, RETIME)
    print(f"RESULT {label}: {before:.3e} -> {after:.3e}")


if __name__ == "__main__":
    main(sys.argv)
