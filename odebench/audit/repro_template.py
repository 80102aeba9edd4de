"""The text of the stand-alone reproduction scripts that :mod:`.repro` writes.

A script is assembled from small snippets, each the code of one function in one variant
(``SNIPPETS[(function, variant)]``): :mod:`.repro` picks only what a finding needs (the one
path, the one model output, the probes of its counterfactual, the measure of its kind), so a
script is a few dozen lines of its own code. Placeholders are ``{{NAME}}``; :func:`fill`
replaces them.

The problem: data N(mu, diag(s2)) of rank 3 in 8-d (odebench's gaussian-lowrank in its own
basis: the schedulers act elementwise, so a rotation changes nothing). For x = a x0 + b z the
exact model outputs are linear in x, and the probability-flow ODE maps each coordinate
linearly: x(t) = a(t) mu + sqrt(v(t) / v(s)) (x(s) - a(s) mu), v = a^2 s2 + b^2. So the exact
end state needs no ODE solver, and a point mass (mu = 0, s2 = 0) shows the time each state is
at: the model input is b z exactly.
"""

from __future__ import annotations

HEAD = '''\
"""{{TITLE}}

odebench's audit wrote this stand-alone reproduction (it imports torch, numpy, diffusers).
diffusers:  {{VERSION}} (the version audited; the one running it is printed)
scheduler:  {{CONFIG_TEXT}}
finding:    {{FINDING}}
odebench:   {{NUMBERS}}
cause:      {{CAUSE}}
fix:        {{FIX_TEXT}}
Exact model outputs of data N(mu, diag(s2)); float64 latents; exact end states.{{USAGE}}
"""

{{IMPORTS}}

import diffusers
import numpy as np
import torch

torch.set_num_threads(1)
'''

USAGE = """
Usage: python <this file> [N1,N2,...]  (N among LADDER's; default: all)"""

#: the VP table: odebench's time of a timestep i is t = (i + 1) / T
VP_TABLE = """BETAS = {{BETAS}}
KNOTS_T = np.arange(T + 1) / T
KNOTS_LOG = np.concatenate([[0.0], np.cumsum(np.log1p(-BETAS))])  # log alpha_bar at KNOTS_T
"""

#: the problem's data: N(MU, diag(S2))
DATA = """MU = np.linspace(-0.6, 0.6, 8)
S2 = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0])
DTYPE = torch.float64
"""

SNIPPETS = {
    ("coeffs", "vp"): '''

def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (log alpha_bar linear between the knots)."""
    abar = math.exp(float(np.interp(t, KNOTS_T, KNOTS_LOG)))
    return math.sqrt(abar), math.sqrt(max(1.0 - abar, 0.0))


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    return (float(timestep) + 1.0) / T
''',
    ("coeffs", "ve"): '''

def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (variance exploding: b = sigma)."""
    return 1.0, SIGMA_MAX * t


def time_of(timestep):
    """The time t the model is told by a scheduler timestep (EDM: 4 ln sigma)."""
    t = math.exp(4.0 * float(timestep)) / SIGMA_MAX
    return min(t, 1.0) if t < 1.0 + 1e-5 else t
''',
    ("coeffs", "flow"): '''

def coeffs(t):
    """(a, b) with x = a x0 + b z at time t (flow matching)."""
    return 1.0 - t, t


def time_of(timestep):
    """The time t the model is told by a scheduler timestep."""
    t = {{FLOW_TIME}}
    return min(t, 1.0) if t < 1.0 + 1e-5 else t
''',
    ("time_of_b", "vp"): '''

def time_of_b(b):
    """The time at which the noise coefficient is b."""
    return float(np.interp(math.log(max(1.0 - b * b, 1e-300)), KNOTS_LOG[::-1], KNOTS_T[::-1]))
''',
    ("time_of_b", "ve"): '''

def time_of_b(b):
    """The time at which the noise coefficient is b."""
    return b / SIGMA_MAX
''',
    ("time_of_b", "flow"): '''

def time_of_b(b):
    """The time at which the noise coefficient is b."""
    return b
''',
    ("c_in", "edm"): '''

def c_in(t):
    """Network input = c_in * x (EDM's preconditioning)."""
    return 1.0 / math.hypot(SIGMA_MAX * t, SIGMA_DATA)
''',
    ("model", "head"): '''

def model(x, t, mu=MU, s2=S2):
    """The exact model output ({{OUTPUT}}) at time t for data N(mu, diag(s2))."""
    a, b = coeffs(t)
    mean, var = torch.as_tensor(a * mu), torch.as_tensor(a * a * s2 + b * b)
''',
    ("model", "x0"): """    x0 = torch.as_tensor(mu) + a * torch.as_tensor(s2) * (x - mean) / var
""",
    ("model", "eps"): """    return b * (x - mean) / var
""",
    ("model", "x0-out"): """    return x0
""",
    ("model", "v"): """    return a * (b * (x - mean) / var) - b * x0
""",
    ("model", "velocity"): """    return {{VELOCITY}}
""",
    ("model", "edm"): """    sd = SIGMA_DATA  # x0 = c_skip x + c_out F
    c_skip, c_out = sd * sd / (b * b + sd * sd), {{SIGN}}b * sd / math.hypot(b, sd)
    return (x0 - c_skip * x) / c_out
""",
    ("flow", ""): '''

def flow(x, s, t, mu=MU, s2=S2):
    """The exact probability-flow map of the interpolant's x from time s to time t."""
    (a1, b1), (a2, b2) = coeffs(s), coeffs(t)
    ratio = torch.as_tensor(np.sqrt((a2 * a2 * s2 + b2 * b2) / (a1 * a1 * s2 + b1 * b1)))
    return a2 * torch.as_tensor(mu) + ratio * (x - a1 * torch.as_tensor(mu))
''',
    ("original", ""): '''

def original(**over):
    """A fresh scheduler, as a pipeline makes one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLASS.from_config({**CONFIG, **over})
''',
    # run(): the pipeline loop; its head, the start state, its loop and its return by variant
    ("run", "head"): '''

def run(make, n{{RUN_ARGS}}):
    """{{RUN_DOC}}"""
    sch = make()
    sch.set_timesteps(n{{SET}})
    steps = list(sch.timesteps)
    t0 = time_of(steps[0])
    a0, b0 = coeffs(t0)
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    x = a0 * torch.as_tensor({{MU}}) + torch.as_tensor(np.sqrt(a0 * a0 * {{S2}} + b0 * b0)) * z
''',
    ("run", "shift"): """    if shift:  # a perturbation of size shift * 1e-9 relative
        d = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
        x = x + shift * 1e-9 * float(x.norm() / d.norm()) * d
""",
    ("run", "state"): """    state = x
""",
    ("run", "scaled-state"): """    one = torch.ones(1, dtype=DTYPE)
    state = x / {{SCALE_DIV}}
""",
    ("run", "loop"): """    seen = []
    for {{LOOP_VAR}} in {{LOOP_OVER}}:
        t_call = time_of(timestep)
        seen.append({{MODEL_IN}})
        out = model(seen[-1], {{CALL_TIME}}{{MS}})
        state = sch.step(out, timestep, state{{STEP}}).prev_sample
""",
    ("run", "loop-output"): """{{GEN_LINE}}    for timestep in steps:
        t_call = time_of(timestep)
        out = model({{MODEL_IN}}, t_call)
        state = sch.step(out, timestep, state{{STEP}}{{GEN}}).prev_sample
""",
    (
        "run",
        "c_end",
    ): """    c_end = 1.0 / math.hypot(float(sch.sigmas[-1]), 1.0)  # the state is x / a
""",
    ("run", "return-output"): """    return state.to(DTYPE){{C_END}}
""",
    (
        "run",
        "return",
    ): """\
    # the state entering the last step: the last call above the end time (PNDM's last is at it)
    j = max((k for k, ts in enumerate(steps) if time_of(ts) > END[n] + 0.5 / T), default=-1)
    last = flow(seen[j], time_of(steps[j]), END[n]{{MS}})
    x, exact = state.to(DTYPE){{C_END}}, flow(x, t0, END[n]{{MS}})
    return n, rms(x, exact), rms(x, last){{RUN_TAIL}}
""",
    # a stochastic sampler's runs (repro.assemble_law): m seeded samples of its law
    ("run", "law"): '''

def run(make, n, mu=MU, s2=S2, m=M, rows=False):
    """The pipeline loop for n steps on m samples, step()'s noise from one seeded generator:
    the model inputs and the output. rows: a point mass at MU as rows (see state_times)."""
    sch = make()
    sch.set_timesteps(n{{SET}})
    steps = list(sch.timesteps)
    a0, b0 = coeffs(time_of(steps[0]))
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(m, 8, generator=gen, dtype=DTYPE)
    if rows:  # row 0: the mean part (the data MU), row 1: the start's noise
        mu, z = torch.zeros(m, 8, dtype=DTYPE), torch.zeros(m, 8, dtype=DTYPE)
        mu[0], z[1] = torch.as_tensor(MU), 1.0
    state = a0 * torch.as_tensor(mu) + torch.as_tensor(np.sqrt(a0 * a0 * s2 + b0 * b0)) * z
{{SCALE_START}}    seen = []
    for timestep in steps:
        seen.append({{MODEL_IN}})
        out = model(seen[-1], time_of(timestep), mu, s2)
        state = sch.step(out, timestep, state{{STEP}}, generator=gen).prev_sample
{{C_END_LINE}}    return seen, state.to(DTYPE){{C_END}}
''',
    ("w2", ""): '''

def w2(x, t):
    """Frechet W2 between the samples' mean and covariance and the exact law at time t,
    N(a mu, diag(a^2 s2 + b^2))."""
    a, b = coeffs(t)
    x = x.numpy()
    mean, cov, v = x.mean(0), np.cov(x, rowvar=False), a * a * S2 + b * b
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(np.sqrt(np.outer(v, v)) * cov), 0, None)).sum()
    return float(np.sqrt(max(((mean - a * MU) ** 2).sum() + cov.trace() + v.sum() - 2 * cross, 0)))


def mc_floor(t):
    """W2 of M exact samples of the law at t: the Monte Carlo floor of w2()."""
    a, b = coeffs(t)
    z = torch.randn(M, 8, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    return w2(a * torch.as_tensor(MU) + torch.as_tensor(np.sqrt(a * a * S2 + b * b)) * z, t)
''',
    ("state_times", "law"): '''

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
''',
    ("time_of_ratio", "vp"): '''

def time_of_ratio(r):
    """The time at which b / a = r."""
    return float(np.interp(-math.log1p(r * r), KNOTS_LOG[::-1], KNOTS_T[::-1]))
''',
    ("time_of_ratio", "flow"): '''

def time_of_ratio(r):
    """The time at which b / a = r."""
    return r / (1.0 + r)
''',
    ("rms", ""): """

def rms(x, y):
    return float(((x - y) ** 2).sum(-1).mean().sqrt())
""",
    ("state_times", ""): '''

def state_times(n, make=original):
    """The time each model call's input state is at (read off a point-mass run)."""
    *_, seen, z = run(make, n, 0 * MU, 0 * S2)
    return [time_of_b(float(x.norm() / z.norm())) for x in seen]
''',
    ("gap", ""): '''

def gap(make, n):
    """The largest distance, in steps of the table, of a model call's time from its state's."""
    sch = make()
    sch.set_timesteps(n{{SET}})
    calls = [time_of(t) for t in sch.timesteps]
    return max(T * abs(s - c) for s, c in zip(state_times(n, make), calls, strict=True))
''',
    ("nonlinearity", ""): '''

def nonlinearity(make, n=PROBE_N):
    """|D(2d) - 2 D(d)| / |2 D(d)| for the outputs' response D to start perturbations d, 2d
    of relative size 1e-9 (a float64 state: ~1e-6; a state rounded to float32: order 1)."""
    base, one, two = (run(make, n, shift=k) for k in (0.0, 1.0, 2.0))
    den = float((2 * (one - base)).norm())
    return math.inf if den == 0 else float((two - base - 2 * (one - base)).norm()) / den
''',
    ("table_deviation", ""): '''

def table_deviation(make):
    """The largest relative deviation of the scheduler's alphas_cumprod from float64's."""
    sch = make()
    sch.set_timesteps(PROBE_N{{SET}})
    ours = torch.as_tensor(np.exp(KNOTS_LOG[1:]))
    return float(((torch.as_tensor(sch.alphas_cumprod).to(DTYPE) - ours).abs() / ours).max())
''',
    ("order", ""): '''

def order(rows):
    """The least-squares slope of log error against log 1/N."""
    n, err = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows])
    keep = err > 0
    if keep.sum() < 2:
        return math.nan
    return float(-np.polyfit(np.log(n[keep]), np.log(err[keep]), 1)[0])
''',
    ("Float64View", ""): '''

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
''',
    ("time_of_sigma", "sigma-scaled"): '''

def time_of_sigma(s):
    """The time of a scheduler's own sigma (the state is x / a)."""
    return time_of_b(s / math.hypot(s, 1.0))
''',
    ("time_of_sigma", "ve"): '''

def time_of_sigma(s):
    """The time of a scheduler's own sigma."""
    return s / SIGMA_MAX
''',
    ("time_of_sigma", "flow"): '''

def time_of_sigma(s):
    """The time of a scheduler's own sigma."""
    return {{SIGMA_TIME}}
''',
    # exact_steps(): its head, how it finds the state's time and the next (by its sigmas, or
    # by its timesteps), its test of a step that starts a group, and its exact step
    ("exact_steps", "head"): '''

def exact_steps(make, which, tag):
    """The steps which(k, n, t) selects replaced by the exact flow from the state's time t to
    the next one (the scheduler still sees its model outputs); fixes stack (count: ``tag``)."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class ExactSteps(base):
            def set_timesteps(self, n, *args, **kwargs):
                base.set_timesteps(self, n, *args, **kwargs)
                self.__dict__[tag] = [int(n), 0, False]  # N, calls so far, replaced one yet

            def step(self, model_output, timestep, sample, *args, **kwargs):
{{FIRST}}                out = base.step(self, model_output, timestep, sample, *args, **kwargs)
                n, k, done = count = self.__dict__[tag]
                count[1] += 1
                times, k_sel = list(self.timesteps), k
''',
    (
        "exact_steps",
        "by-timesteps",
    ): """{{INDENT}}t_now, rest = time_of(times[k]), [time_of(t) for t in times[k + 1 :]]
{{INDENT}}at_end = bool(rest) and all(abs(r - END[n]) * T <= 0.5 for r in rest)
{{INDENT}}t_next = END[n] if not rest or at_end else rest[0]
{{INDENT}}k_sel = len(times) - 1 if at_end else k
""",
    (
        "exact_steps",
        "by-sigmas",
    ): """                sigmas = getattr(self, "sigmas", None)  # a state is at its own sigma
                if sigmas is not None and len(sigmas) > k + 1:
                    t_now, t_next = (time_of_sigma(float(s)) for s in sigmas[k : k + 2])
                else:  # the calls after it at the end time (PNDM's last): the last step
""",
    ("exact_steps", "select"): """                orders = getattr(self, "order_list", None)
                inside = not done and orders is not None and k < len(orders) and orders[k] != 1
                if not which(k_sel, len(times), t_now){{STARTS}} or inside:
                    return out
""",
    (
        "exact_steps",
        "multistage",
    ): """\
                starts = first if first is not None else k == 0 or times[k] != times[k - 1]
""",
    ("exact_steps", "step"): """                if t_next < t_now:
                    out.prev_sample = flow(sample.to(DTYPE), t_now, t_next)
                    count[2] = True
                return out
""",
    ("exact_steps", "scaled-step"): """                if t_next < t_now:  # the state is x / a
                    c_now, c_next = coeffs(t_now)[0], coeffs(t_next)[0]
                    out.prev_sample = flow(sample.to(DTYPE) * c_now, t_now, t_next) / c_next
                    count[2] = True
                return out
""",
    ("exact_steps", "tail"): """
        sch.__class__ = ExactSteps
        return sch

    return make_fixed
""",
}

#: The counterfactuals, one function each: ``fix_<name>(make) -> make`` (a factory of
#: schedulers with that one cause removed); ``{{...}}`` filled per script. exact-call-times
#: has none: the script tells the model its states' times (``retime``).
FIXES = {
    "float64-tables": '''

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
''',
    "float64-state": '''

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
''',
    "next-grid-time:previous_timestep": '''

def fix_next_grid_time(make):
    """each step but the last goes to the grid's next timestep (previous_timestep())."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class NextGridTime(base):
            def previous_timestep(self, timestep):
                times = [float(t) for t in self.timesteps]
                k = min(range(len(times)), key=lambda j: abs(times[j] - float(timestep)))
                if k + 1 >= len(times):
                    return base.previous_timestep(self, timestep)
                if isinstance(timestep, torch.Tensor):
                    return torch.as_tensor(times[k + 1], dtype=timestep.dtype)
                return type(timestep)(times[k + 1])

        sch.__class__ = NextGridTime
        return sch

    return make_fixed
''',
    "next-grid-time:ddim": '''

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
''',
    "solver-order-final": '''

def fix_solver_order_final(make):
    """a final step of the solver's own order; in the config:
    {{FLIPS}}"""
    return lambda **over: make(**{**{{FLIPS}}, **over})
''',
    "no-clipping": '''

def fix_no_clipping(make):
    """no clipping of the x0 prediction; in the config:
    {{CLIPS}}"""
    return lambda **over: make(**{**{{CLIPS}}, **over})
''',
    "exact-quadrature": '''

def fix_exact_quadrature(make):
    """exact LMS coefficients: the integral of the Lagrange basis polynomial in float64
    (diffusers integrates it with scipy's quad, epsrel 1e-4)."""

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        class ExactQuadrature(base):
            def get_lms_coefficient(self, order, t, current_order):
                s = [float(self.sigmas[t - k]) for k in range(order)]
                poly = np.polynomial.Polynomial([1.0])
                for k in range(order):
                    if k != current_order:
                        node = np.polynomial.Polynomial([-s[k], 1.0])
                        poly = poly * node / (s[current_order] - s[k])
                anti = poly.integ()
                return float(anti(float(self.sigmas[t + 1])) - anti(float(self.sigmas[t])))

        sch.__class__ = ExactQuadrature
        return sch

    return make_fixed
''',
    "taylor-3m": '''

def fix_taylor_3m(make):
    """the 3M step's D2 term weighted as Taylor's expansion needs: diffusers adds phi_3 D2
    once, with D2 = h^2 m''/2; the exact exponential integrator needs it twice. This adds
    the missing phi_3 D2 (dpmsolver: sigma_t ((e^h - 1 - h) / h^2 - 1/2) D2)."""
    third = "multistep_dpm_solver_third_order_update"

    def make_fixed(**over):
        sch = make(**over)
        base = type(sch)

        def update(self, model_output_list, *args, **kwargs):
            out = getattr(base, third)(self, model_output_list, *args, **kwargs)
            i = self.step_index
            pairs = [self._sigma_to_alpha_sigma_t(self.sigmas[i + 1 - k]) for k in range(4)]
            lam = [torch.log(a) - torch.log(s) for a, s in pairs]
            h, h0, h1 = lam[0] - lam[1], lam[1] - lam[2], lam[2] - lam[3]
            m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
            r0, r1 = h0 / h, h1 / h
            d2 = ((m0 - m1) / r0 - (m1 - m2) / r1) / (r0 + r1)
            alpha_t, sigma_t = pairs[0]
            if self.config.algorithm_type == "dpmsolver++":
                extra = -(alpha_t * ((torch.exp(-h) - 1.0 + h) / h**2 - 0.5)) * d2
            else:
                extra = -(sigma_t * ((torch.exp(h) - 1.0 - h) / h**2 - 0.5)) * d2
            return out + extra.to(out.dtype)

        sch.__class__ = type("Taylor3M", (base,), {third: update})
        return sch

    return make_fixed
''',
    "exact-warm-up": '''

def fix_exact_warm_up(make):
    """exact warm-up steps: the first {{WARM}} step(s) (the lower-order ones) by the exact flow."""
    return exact_steps(make, lambda k, n, t: k < min({{WARM}}, n - 1), "repro_warm_up")
''',
    "exact-final-step": '''

def fix_exact_final_step(make):
    """the last step by the exact flow (to the end time odebench measured)."""
    return exact_steps(make, lambda k, n, t: k == n - 1, "repro_final_step")
''',
    "exact-last-steps": '''

def fix_exact_last_steps(make):
    """every step from a state at t <= 0.1 by the exact flow."""
    return exact_steps(make, lambda k, n, t: t <= 0.1, "repro_last_steps")
''',
}

#: the ladder's rows, printed: N, error, local order, the last step's defect
LADDER_ROWS = """    rows = [run(make, n{{RETIME_CALL}}){{SLICE}} for n in steps]
    print("      N        error   local order   last step's defect")
    for i, (n, err, last) in enumerate(rows):
        p = " " * 11
        if i and err > 0:  # the local order
            p = f"{math.log(rows[i - 1][1] / err) / math.log(n / rows[i - 1][0]):11.2f}"
        print(f"  {n:5d}   {err:.3e}   {p}   {last:.3e}")
"""

#: What each kind of finding prints: ``MEASURES[kind]`` is the body of ``measure(make,
#: steps[, retime])``, which prints its numbers and returns the value.
MEASURES = {
    "float32 state": """    value = nonlinearity(make)
    print(f"  the output's response to a 1e-9 change of the start: nonlinear by {value:.2e}")
    return value
""",
    "float32 table": """    value = table_deviation(make)
    print(f"  alphas_cumprod: largest relative deviation from the float64 table {value:.2e}")
    return value
""",
    "time gap": """    gaps = [{{GAP}} for n in steps]
    rows = [run(make, n{{RETIME_CALL}}){{SLICE}} for n in steps]
    print("      N   gap (table steps)   error")
    for g, (n, err, _) in zip(gaps, rows, strict=True):
        print(f"  {n:5d}   {g:17.3f}   {err:.3e}")
    return max(gaps)
""",
    "floor": LADDER_ROWS
    + """\
    print(f"  smallest error {min(r[1] for r in rows):.3e}, at the finest N {rows[-1][1]:.3e}")
    return rows[-1][1]
""",
    "order": LADDER_ROWS
    + """\
    print(f"  fitted order {order(rows):.2f}, error at the finest N {rows[-1][1]:.3e}")
    return order(rows)
""",
    "final step": LADDER_ROWS
    + """\
    print(f"  the last step adds {rows[-1][2]:.3e} at the finest N (error {rows[-1][1]:.3e})")
    return rows[-1][2]
""",
}
#: a stochastic sampler's measures (repro.assemble_law), by kind
LAW_MEASURES = {
    "weak floor": """    rows = [(n, w2(run(make, n)[1], END[n])) for n in steps]
    print("      N   W2 to the exact law at the end time (M seeded runs)")
    for n, value in rows:
        print(f"  {n:5d}   {value:.3e}")
    floor = mc_floor(END[steps[-1]])
    print(f"  Monte Carlo floor (M exact samples) at the finest N: {floor:.3e}")
    return rows[-1][1]
""",
    "time gap": """    gaps = [gap(make, n) for n in steps]
    print("      N   gap (table steps)")
    for n, g in zip(steps, gaps, strict=True):
        print(f"  {n:5d}   {g:17.3f}")
    return max(gaps)
""",
}
#: the label of each kind's RESULT line
LABELS = {
    "float32 state": "nonlinearity",
    "float32 table": "table deviation",
    "time gap": "largest time gap (table steps)",
    "floor": "error at the finest N",
    "order": "fitted order",
    "final step": "final step's defect at the finest N",
    "weak floor": "W2 at the finest N",
}
#: the kinds that run the ladder of N (the others measure at one N)
LADDER_KINDS = ("time gap", "floor", "order", "final step")

MEASURE = '''

def measure(make{{MEASURE_ARGS}}):
    """Print the defect's numbers; return its value."""
{{MEASURE}}'''

#: main(): its head (the ladder's N where the kind has one), then the fix or what was tried
MAIN = {
    "ladder": """

def main(argv):
    steps = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else LADDER
    if not set(steps) <= set(END):
        raise SystemExit(f"N must be among odebench's ladder {sorted(END)}")
""",
    "one": """

def main(argv):
""",
    "before": """    print(f"diffusers {diffusers.__version__}, {CLASS.__name__}, {CONFIG}")
    print("as diffusers runs it:")
    before = measure(original{{STEPS}})
""",
    "fixed": """    print("with the counterfactual ({{FIX_LIST}}):")
    after = measure({{MAKE}}{{STEPS}}{{RETIME_TRUE}})
    print(f"RESULT {{LABEL}}: {before:.3e} -> {after:.3e}")
""",
    "tried": """\
    print("no counterfactual removes it; odebench tried: " + " ".join(TRIED.split()))
    print(f"RESULT {{LABEL}}: {before:.3e}")
""",
    "tail": """

if __name__ == "__main__":
    main(sys.argv)
""",
}


def fill(text: str, values: dict[str, str], strict: bool = True) -> str:
    """``text`` with each ``{{NAME}}`` replaced by ``values[NAME]`` (KeyError if one is
    missing, unless not ``strict``: the others are left for a later fill)."""
    out = text
    for key, value in values.items():
        out = out.replace("{{" + key + "}}", value)
    if strict and "{{" in out:
        start = out.index("{{")
        raise KeyError(f"unfilled placeholder {out[start : out.index('}}', start) + 2]}")
    return out


__all__ = [
    "DATA",
    "FIXES",
    "HEAD",
    "LABELS",
    "LADDER_KINDS",
    "LADDER_ROWS",
    "LAW_MEASURES",
    "MAIN",
    "MEASURE",
    "MEASURES",
    "SNIPPETS",
    "USAGE",
    "VP_TABLE",
    "fill",
]
