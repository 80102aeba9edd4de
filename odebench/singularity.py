"""Schedule singularities of the probability-flow ODE near t = 0, measured.

In forward time (t = 0 data) the PF-ODE is (``odebench.ode``)

    dx/dt = c_x(t) x + c_eps(t) eps(x, t),    c_x = -beta / 2,   c_eps = beta / (2 sigma).

When beta(0) > 0 ("linear", "scaled-linear", "cosine" with s > 0 and the three discrete tables)
1 - abar ~ beta(0) t, so sigma ~ (beta(0) t)^(1/2) and c_eps ~ sqrt(beta(0)) / 2 * t^(-1/2): the
ODE is singular at t = 0 and the smoothness that classical convergence theory assumes fails
there (Liu et al. 2022, Sec. 3). "cosine-s0" (sigma ~ pi t / 2) and "edm" (sigma ~ 80 t) have
beta(0) = 0 and bounded coefficients. The same flow in other variables (``ode.TIME_VARIABLES``):

- lambda (log-SNR):  dx/dlambda = sigma^2 x - sigma eps   (coefficients sigma^2 and sigma, bounded)
- sigma_tilde (VE):  d(x/alpha)/dsigma_tilde = eps        (coefficients 0 and 1)

This module provides the three computations behind the "schedule singularities" study, as
plain dicts (tidy rows) and tensors:

1. ``coefficient_curves`` / ``singular_exponent`` / ``exponent_table``: the coefficients and
   their power-law exponent p in |coef| ~ C t^p near t = 0 (p < 0 is a singularity).
2. ``lipschitz`` / ``lipschitz_along_path``: the stiffness of the right-hand side, the largest
   singular value of J = df/dx per sample, along the exact trajectory.
3. ``per_step_errors``: the local error of each step of a grid, started from the exact state
   (and exact history), so one sees *which* steps cost the accuracy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ._tensor import DTYPE, as_time
from .grids import check_grid
from .metrics import rms_error
from .ode import TIME_VARIABLES, drift_coefficients, time_variable
from .reference import RELIABILITY_FACTOR, Reference, reference
from .schedules import Schedule
from .schedules import get as get_schedule
from .schedules import names as schedule_names_all
from .solvers import Solver, solve
from .solvers import get as get_solver

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Where ``singular_exponent`` fits by default. 1e-4 < 1/T keeps the fit of a 1000-step table
#: inside its first interpolation piece [0, 1/T] (see ``singular_exponent``).
DEFAULT_T_RANGE = (1e-8, 1e-4)
#: Coefficients ``coefficient_curves`` returns, besides "t".
COEFFICIENTS = ("x", "eps")
#: A fitted exponent below -SINGULAR_BELOW marks the coefficient as singular at t = 0.
SINGULAR_BELOW = 0.1


# -- 1. coefficients and their exponent near t = 0 --------------------------------------------
def coefficient_curves(
    schedule: Schedule | str, t: torch.Tensor | float, variable: str = "t"
) -> dict[str, torch.Tensor]:
    """Absolute coefficients of the PF-ODE in ``variable``, as functions of t.

    Returns ``{"t": t, "x": |coefficient of the state|, "eps": |coefficient of eps|}``:

    - ``"t"``:           dx/dt = c_x x + c_eps eps, with c_x = -beta/2, c_eps = beta / (2 sigma)
      (exactly ``ode.drift_coefficients``);
    - ``"lambda"``:      dx/dlambda = sigma^2 x - sigma eps, so sigma^2 and sigma;
    - ``"sigma_tilde"``: d(x/alpha)/dsigma_tilde = eps, so 0 and 1.

    sigma^2 is computed as -expm1(log abar), which keeps its digits near t = 0.
    """
    sched = get_schedule(schedule)
    time_variable(variable)  # raises ValueError on an unknown name
    t = as_time(t)
    if variable == "t":
        c_x, c_eps = drift_coefficients(sched, t)
    elif variable == "lambda":
        c_x = -torch.expm1(sched.log_alpha_bar(t))
        c_eps = sched.sigma(t)
    else:
        sched.log_alpha_bar(t)  # the same domain check as the other variables
        c_x, c_eps = torch.zeros_like(t), torch.ones_like(t)
    return {"t": t, "x": c_x.abs(), "eps": c_eps.abs()}


def singular_exponent(
    schedule: Schedule | str,
    variable: str = "t",
    which: str = "eps",
    t_range: tuple[float, float] = DEFAULT_T_RANGE,
    n: int = 41,
) -> dict:
    """The exponent p of |coef(t)| ~ C t^p near t = 0, by ordinary least squares.

    The slope of log|coef| on log t over ``n`` log-spaced t in ``t_range``. The coefficient is
    a smooth function (not an error ladder with a round-off floor and pre-asymptotic points),
    so a plain OLS slope is right here, reported with its R^2 and the RMS residual in log
    (a clean power law has residual ~ 0; R^2 is nan when log|coef| is exactly constant, and is
    small when the coefficient is bounded and nearly constant: then only the exponent, ~0,
    means something).

    Expected near t = 0 (1 - abar ~ beta(0) t when beta(0) > 0, ~ (k t)^2 when beta(0) = 0),
    as (x, eps) exponents per variable:

    - beta(0) > 0 (linear, scaled-linear, cosine, the tables): t (0, -1/2), lambda (1, 1/2),
      sigma_tilde (zero, 0);
    - beta(0) = 0 (cosine-s0, edm): t (1, 0), lambda (2, 1), sigma_tilde (zero, 0).

    Discrete tables: log abar is a spline through the knots t = j / T with abar(0) = 1, so on
    [0, 1/T] it is one cubic, -beta(0) t + a2 t^2 + a3 t^3 with beta(0) > 0 (the table's
    constructor checks that log abar decreases). Inside [0, 1/T] a table is thus singular
    exactly like a continuous beta(0) > 0 schedule; beta(0) = 0.090 for "ddpm-linear-1000"
    (the table's 1e-4 .. 0.02 ramp extrapolated to t = 0, not 1e-4 * T = 0.1); with piecewise
    linear interpolation it is -T log(1 - beta_0) ~ 0.1. The default range (1e-8, 1e-4) stays
    inside that piece for T = 1000, so one range serves every schedule; a range reaching
    past 1/T spans knots (the exponent then mixes pieces) and the row's ``note`` says so.

    Returns ``{"schedule", "variable", "which", "exponent", "prefactor", "r2", "residual",
    "singular", "t_lo", "t_hi", "n", "note"}``; ``prefactor`` is C = exp(intercept). A
    coefficient that is identically 0 (the state's in sigma_tilde) has exponent nan and says
    so in ``note``.
    """
    sched = get_schedule(schedule)
    if which not in COEFFICIENTS:
        raise ValueError(f"which must be one of {COEFFICIENTS}, got {which!r}")
    t_lo, t_hi = float(t_range[0]), float(t_range[1])
    if not 0.0 < t_lo < t_hi <= sched.t_hi:
        raise ValueError(f"need 0 < t_lo < t_hi <= {sched.t_hi:g}, got t_range={t_range}")
    if n < 3:
        raise ValueError(f"need at least 3 points for a slope and its residual, got n={n}")
    t = torch.logspace(math.log10(t_lo), math.log10(t_hi), n, dtype=DTYPE)
    coef = coefficient_curves(sched, t, variable)[which]
    row = {
        "schedule": sched.name,
        "variable": variable,
        "which": which,
        "exponent": math.nan,
        "prefactor": math.nan,
        "r2": math.nan,
        "residual": math.nan,
        "singular": False,
        "t_lo": t_lo,
        "t_hi": t_hi,
        "n": n,
        "note": "",
    }
    notes = []
    if sched.T is not None:
        piece = 1.0 / sched.T
        notes.append(
            f"inside the first interpolation piece [0, {piece:g}]"
            if t_hi <= piece
            else f"the range spans the table's knots j/{sched.T}; not a pure power law"
        )
    if bool((coef == 0).all()):
        row["note"] = "; ".join([f"the {which} coefficient is identically 0", *notes])
        return row
    if not bool(torch.isfinite(coef).all()) or not bool((coef > 0).all()):
        raise ValueError(
            f"{sched.name}: the {which} coefficient in {variable} is zero or not finite "
            f"somewhere in t_range={t_range}"
        )
    lx, ly = np.log(t.numpy()), np.log(coef.numpy())
    xc = lx - lx.mean()
    slope = float((xc * (ly - ly.mean())).sum() / (xc * xc).sum())
    intercept = float(ly.mean() - slope * lx.mean())
    resid = ly - (intercept + slope * lx)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    row.update(
        exponent=slope,
        prefactor=math.exp(intercept),
        r2=1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan,
        residual=float(np.sqrt(np.mean(resid**2))),
        singular=slope < -SINGULAR_BELOW,
        note="; ".join(notes),
    )
    return row


def exponent_table(
    schedule_names: Sequence[str] | None = None,
    variables: Sequence[str] = tuple(TIME_VARIABLES),
    t_range: tuple[float, float] = DEFAULT_T_RANGE,
    n: int = 41,
) -> list[dict]:
    """``singular_exponent`` rows for every schedule x variable x coefficient.

    ``schedule_names`` defaults to every registered schedule (``odebench.schedules.names()``).
    """
    names = list(schedule_names) if schedule_names is not None else schedule_names_all("vp")
    return [
        singular_exponent(name, variable, which, t_range, n)
        for name in names
        for variable in variables
        for which in COEFFICIENTS
    ]


# -- 2. stiffness: the Lipschitz constant of the right-hand side in x ---------------------------
def lipschitz(
    model: EpsModel,
    schedule: Schedule | str,
    x: torch.Tensor,
    t: torch.Tensor | float,
    *,
    iters: int = 50,
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-sample largest singular value of J = df/dx at (x_i, t), shape (B,).

    f(x, t) = c_x x + c_eps eps(x, t), so J = c_x I + c_eps d eps/dx: the local Lipschitz
    constant of the ODE's right-hand side, the number that bounds explicit step sizes
    (h * L of order 1) and classical error constants. For a Gaussian N(mu, U diag(l) U^T),
    d eps/dx = sigma C^{-1} with C = abar Sigma + sigma^2 I, hence J = beta/2 (C^{-1} - I)
    with eigenvalues beta/2 (1/c_i - 1), c_i = abar l_i + 1 - abar: a zero eigenvalue l_i
    (data on a subspace) gives beta/2 (1/sigma^2 - 1) ~ 1/(2t) for beta(0) > 0.

    Batched over samples: ``model`` acts per sample, so J is block diagonal over the batch and
    one vector-Jacobian product of the whole batch gives every J_i^T u_i. One forward pass
    builds the graph; J^T u is a backward pass through it and J v a backward pass through the
    (linear in u) graph of J^T u (the double-vjp trick), so any model that autograd can
    differentiate twice works, and no forward-mode support is needed.

    sigma_max^2 is the largest eigenvalue of A = J^T J. Plain power iteration on A converges
    like (s_2 / s_1)^(2k), which stalls when two singular values are close (on gmm-2d it was
    still moving by up to 3e-3 after 50 iterations); so this is the power iteration that keeps its
    Krylov space: Lanczos on A with full reorthogonalisation, whose largest Ritz value
    (largest eigenvalue of the tridiagonal T_k, an increasing lower bound) converges much
    faster and is exact after dim(x) iterations (the Krylov space then fills the space:
    a residual beta_k below 1000 ulps of the Ritz value stops that sample). Each iteration
    costs one J v and one J^T u. A sample has converged when the relative change of its
    estimate is below ``tol`` and either the estimate decreased (only round-off does that:
    J = c_x I + c_eps d eps/dx cancels to ~1e-12 relative near t = 1, where c_x ~ -10 and
    sigma_max ~ 4e-4) or the remaining change extrapolated from the ratio q of successive
    changes, change q / (1 - q), is below ``tol`` too (so a slow iteration is not mistaken for
    a converged one); a change below that cancellation floor, 8 ulps (1 + 2 |c_x| / sigma),
    also ends it. Iteration stops when every sample has converged, or after ``iters``
    iterations with a ``RuntimeWarning`` (the estimates are then lower bounds).

    Where a coefficient is not finite (t = 0 on a schedule with beta(0) > 0) J is unbounded and
    the result is ``inf``. A model that mixes samples (e.g. batch norm in training mode) breaks
    the block-diagonal assumption; the result is then not per sample.
    """
    sched = get_schedule(schedule)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError("x must be a floating-point tensor with a batch dimension first")
    if iters < 1 or not tol > 0:
        raise ValueError(f"need iters >= 1 and tol > 0, got iters={iters}, tol={tol}")
    t = as_time(t, like=x)
    if t.ndim != 0:
        raise ValueError("lipschitz takes one time t for the whole batch")
    batch = x.shape[0]
    c_x, c_eps = drift_coefficients(sched, t.to(DTYPE))
    if not (math.isfinite(float(c_x)) and math.isfinite(float(c_eps))):
        return torch.full((batch,), math.inf, dtype=x.dtype, device=x.device)
    c_x, c_eps = c_x.to(x.dtype), c_eps.to(x.dtype)
    with torch.no_grad():  # a sample whose right-hand side is not finite has no finite bound
        finite = torch.isfinite((c_x * x + c_eps * model(x, t)).reshape(batch, -1)).all(1)
    if not bool(finite.all()):
        out = torch.full((batch,), math.inf, dtype=x.dtype, device=x.device)
        if bool(finite.any()):
            out[finite] = lipschitz(
                model, schedule, x[finite], t, iters=iters, tol=tol, generator=generator
            )
        return out

    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        y = c_x * xg + c_eps * model(xg, t)
        u0 = torch.zeros_like(y, requires_grad=True)
        (jt_u0,) = torch.autograd.grad(y, xg, u0, create_graph=True)

        def jvp(v: torch.Tensor) -> torch.Tensor:  # J v = d/du (J^T u . v)
            return torch.autograd.grad(jt_u0, u0, v, retain_graph=True)[0]

        def vjp(u: torch.Tensor) -> torch.Tensor:  # J^T u
            return torch.autograd.grad(y, xg, u, retain_graph=True)[0]

        flat_jtj = _flat_operator(jvp, vjp, x.shape)
        ulp = torch.finfo(x.dtype).eps
        q = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        q = q.reshape(batch, -1)
        q = q / torch.linalg.vector_norm(q, dim=1, keepdim=True)
        basis, alphas, betas = [q], [], []
        q_prev = torch.zeros_like(q)
        beta_prev = torch.zeros(batch, dtype=x.dtype, device=x.device)
        est = torch.zeros(batch, dtype=x.dtype, device=x.device)
        change = torch.full_like(est, math.inf)
        done = torch.zeros(batch, dtype=torch.bool, device=x.device)
        for _ in range(iters):
            w = flat_jtj(q)
            alpha = (q * w).sum(1)
            w = w - alpha[:, None] * q - beta_prev[:, None] * q_prev
            Q = torch.stack(basis, 1)  # (B, k, D)
            for _ in range(2):  # full reorthogonalisation, twice is enough
                w = w - torch.einsum("bkd,bk->bd", Q, torch.einsum("bkd,bd->bk", Q, w))
            alphas.append(alpha)
            theta = _largest_ritz(alphas, betas)
            new = theta.clamp_min(0.0).sqrt()
            beta = torch.linalg.vector_norm(w, dim=1)
            exhausted = beta <= 1e3 * ulp * theta.abs().clamp_min(1e-300)
            beta = torch.where(exhausted, torch.zeros_like(beta), beta)
            q_prev, q = q, torch.where(exhausted[:, None], 0.0, w / beta.clamp_min(1e-300)[:, None])
            basis.append(q)
            betas.append(beta)
            beta_prev = beta
            step = (new - est) / new.clamp_min(1e-300)  # relative, >= 0 in exact arithmetic
            q_ratio = (step / change).nan_to_num(nan=0.0).clamp(0.0, 1.0)
            remaining = torch.where(
                q_ratio < 1, step * q_ratio / (1 - q_ratio), torch.full_like(step, math.inf)
            )
            floor = 8.0 * ulp * (1.0 + 2.0 * abs(float(c_x)) / new.clamp_min(1e-300))
            small = step.abs() < tol
            done = (
                exhausted
                | (new == 0)
                | (step.abs() <= floor)
                | (small & (step <= 0))
                | (small & (remaining < tol))
            )
            est, change = new, step.abs()
            if bool(done.all()):
                break
    if not bool(done.all()):
        warnings.warn(
            f"lipschitz: Lanczos iteration did not converge in {iters} iterations for "
            f"{int((~done).sum())} of {batch} samples (largest relative change "
            f"{float(change[~done].max()):.1e}); those estimates are lower bounds",
            RuntimeWarning,
            stacklevel=2,
        )
    return est.detach()


def _flat_operator(jvp, vjp, shape):
    """v -> J^T J v on per-sample flattened vectors (B, D)."""

    def apply(v: torch.Tensor) -> torch.Tensor:
        return vjp(jvp(v.reshape(shape))).reshape(v.shape)

    return apply


def _largest_ritz(alphas: list[torch.Tensor], betas: list[torch.Tensor]) -> torch.Tensor:
    """Largest eigenvalue of each sample's Lanczos tridiagonal matrix, shape (B,)."""
    k = len(alphas)
    T = torch.diag_embed(torch.stack(alphas, 1))
    if k > 1:
        off = torch.diag_embed(torch.stack(betas[: k - 1], 1), offset=1)
        T = T + off + off.transpose(1, 2)
    return torch.linalg.eigvalsh(T)[:, -1]


def lipschitz_along_path(
    problem,
    schedule: Schedule | str | None,
    x_T: torch.Tensor,
    ts: torch.Tensor,
    *,
    model: EpsModel | None = None,
    iters: int = 50,
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """The stiffness of the PF-ODE along the exact trajectories from ``x_T``, one row per t.

    The states come from ``reference.reference(problem, schedule, x_T, ts, model=model)`` (the
    exact flow for Gaussians; with ``model`` the adaptive solve of *that* model's ODE, whose
    stiffness is what is measured). ``schedule`` None means ``problem.schedule``; ``model``
    defaults to ``problem.eps``. Keep it cheap: e.g. 16 samples and 30 times.

    Rows: ``t``; ``lip_max`` and ``lip_median`` over samples of ``lipschitz``; ``c_x`` and
    ``c_eps`` (signed coefficients in t); ``lip_lambda_max`` = lip_max * |dt/dlambda| =
    lip_max * 2 sigma^2 / beta, the same constant for the ODE in lambda (bounded where the one
    in t is not); ``h`` the grid's step from this t to the next (nan at the last t) and
    ``h_lip`` = h * lip_max; ``h_uniform`` = (ts[0] - ts[-1]) / steps, the step of a uniform
    grid with as many steps, and ``h_lip_uniform`` = h_uniform * lip_max: the stability
    number (h L) an explicit method on such a grid meets at t (it grows like 1/t near t = 0
    for data on a subspace, whatever the schedule); ``ref_accuracy`` of the state.
    """
    sched = get_schedule(schedule) if schedule is not None else problem.schedule
    if sched is not problem.schedule:
        problem = problem.with_schedule(sched)
    eps = model if model is not None else problem.eps
    ts = check_grid(ts, sched)
    ref = reference(problem, sched, x_T, ts, model=model)
    h_uniform = float(ts[0] - ts[-1]) / (len(ts) - 1)
    rows = []
    for k, t in enumerate(ts):
        lip = lipschitz(eps, sched, ref.states[k], t, iters=iters, tol=tol, generator=generator)
        lip_max = float(lip.max())
        c_x, c_eps = (float(c) for c in drift_coefficients(sched, t))
        beta = float(sched.beta(t))
        sig2 = float(-torch.expm1(sched.log_alpha_bar(t)))
        h = float(ts[k] - ts[k + 1]) if k + 1 < len(ts) else math.nan
        rows.append(
            {
                "t": float(t),
                "lip_max": lip_max,
                "lip_median": float(lip.median()),
                "c_x": c_x,
                "c_eps": c_eps,
                "lip_lambda_max": lip_max * 2.0 * sig2 / beta if beta > 0 else math.nan,
                "h": h,
                "h_lip": h * lip_max,
                "h_uniform": h_uniform,
                "h_lip_uniform": h_uniform * lip_max,
                "ref_accuracy": float(ref.accuracy[k]),
            }
        )
    return rows


# -- 3. which steps cost the accuracy ------------------------------------------------------------
def _one_step(
    solver: Solver,
    eps: EpsModel,
    sched: Schedule,
    states: torch.Tensor,
    ts: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, str, int]:
    """Step n of ``solver`` on the grid ``ts`` from the exact state(s): (x_{n+1}, kind, first
    node whose exact state was used)."""
    if solver.adaptive:  # no fixed steps: an adaptive solve over [t_n, t_{n+1}]
        return solve(solver, eps, sched, states[n], ts[n : n + 2]).x, solver.name, n
    x = solver.step(solver.exact_state(eps, sched, ts, n, states)).x
    first = min(solver.history_nodes(n), default=n)
    return x, solver.describe_step(n, len(ts) - 1), min(first, n)


def per_step_errors(
    solver: str | Solver,
    problem,
    schedule: Schedule | str | None,
    x_T: torch.Tensor,
    ts: torch.Tensor,
    *,
    model: EpsModel | None = None,
    tol: float = 1e-12,
    ref: Reference | None = None,
) -> list[dict]:
    """The local error of every step of the grid ``ts``, each started from the exact state.

    Step n goes from the exact x(t_n) to t_{n+1} with one step of ``solver``; its error is the
    RMS over samples of |x_{n+1} - x(t_{n+1})|, and ``share`` is that error over the sum over
    all steps: where on the grid the accuracy is lost (the sum of local errors is a proxy for
    the global error that ignores how the flow amplifies or damps each one).

    Every fixed-step solver takes step n from ``solver.exact_state``: its state at node n with
    every kept evaluation made at the exact state of its node (``convergence.
    one_step_from_exact`` does the same on a uniform ladder), so step n is the step the solver
    itself takes there, fed with exact states. During a Runge-Kutta warm-up (F-PNDM's 3 PRK
    steps, FON's 3 RK4 steps, S-PNDM's PIE step) that is the warm-up step; on the first steps
    of a ramp the history is shorter and the step has lower order, as in the solver; fixed or
    variable weights, lower-order-final rules and UniPC's missing last corrector are the
    solver's, on the actual nodes. The adaptive "pf" is run on the two-node grid
    [t_n, t_{n+1}].

    The exact states come from ``reference.reference(problem, schedule, x_T, ts, tol=tol,
    model=model)`` (exact flow for Gaussians, two adaptive solves otherwise), or are ``ref``,
    that reference already computed at ``ts`` (several solvers on one grid share it; the
    singularity study passes one per cell). ``ref_accuracy``
    is the largest reference accuracy over the nodes the step uses (history, t_n, t_{n+1}),
    and ``reliable`` is error >= 100 x ref_accuracy.

    Rows: ``{"step", "t_from", "t_to", "h", "kind", "error", "share", "ref_accuracy",
    "reliable"}``. A non-finite step (e.g. RK4's last stage at t = 0, where c_eps = inf) is an
    ``inf`` error, never an exception; shares are then undefined for the inf rows (nan) and 0
    for the finite ones.
    """
    solver = get_solver(solver)
    sched = get_schedule(schedule) if schedule is not None else problem.schedule
    if sched is not problem.schedule:
        problem = problem.with_schedule(sched)
    eps = model if model is not None else problem.eps
    ts = check_grid(ts, sched)
    if ref is None:
        ref = reference(problem, sched, x_T, ts, tol=tol, model=model)
    elif ref.times.shape != ts.shape or not torch.equal(ref.times, ts.to(ref.times.dtype)):
        raise ValueError("per_step_errors: ref must be the reference at the grid ts")
    states = ref.states
    rows = []
    for n in range(len(ts) - 1):
        with torch.no_grad():
            x, kind, first = _one_step(solver, eps, sched, states, ts, n)
        err = rms_error(x, states[n + 1])
        acc = float(ref.accuracy[first : n + 2].max())
        rows.append(
            {
                "step": n,
                "t_from": float(ts[n]),
                "t_to": float(ts[n + 1]),
                "h": float(ts[n] - ts[n + 1]),
                "kind": kind,
                "error": err,
                "share": math.nan,
                "ref_accuracy": acc,
                "reliable": bool(err >= RELIABILITY_FACTOR * acc),
            }
        )
    total = sum(r["error"] for r in rows)
    for r in rows:
        if math.isinf(r["error"]):
            r["share"] = math.nan
        elif math.isinf(total):
            r["share"] = 0.0
        else:
            r["share"] = r["error"] / total if total > 0 else math.nan
    return rows


__all__ = [
    "COEFFICIENTS",
    "DEFAULT_T_RANGE",
    "SINGULAR_BELOW",
    "coefficient_curves",
    "exponent_table",
    "lipschitz",
    "lipschitz_along_path",
    "per_step_errors",
    "singular_exponent",
]
