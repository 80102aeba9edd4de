"""The audit of a k-diffusion-style sampler function ``sample(model, x, sigmas, ...)``.

Much sampling code (k-diffusion, ComfyUI, the A1111 lineage) is a plain function that takes a
denoiser ``model(x, sigma) -> x0`` for x = x0 + sigma z (Karras et al. 2022, EDM's VE
variable), a start state at sigmas[0] and a decreasing grid of noise levels, and returns the
state at sigmas[-1]. The audit drives such a function on odebench's problems: the state is
odebench's VP state over alpha (x / alpha, at sigma = sigma / alpha, the schedule's
``sigma_tilde``), the denoiser is the problem's exact x0 prediction, and the audit chooses
the grids (the function never chooses them; that is what makes it a sampler function):

- **to t = 0.1**: N steps uniform in log sigma (k-diffusion's ``get_sigmas_exponential``)
  from the schedule's start to t = 0.1, a positive sigma away from the data end; the order
  the card reads "at t=0.1" (the smooth region).
- **to data**: Karras et al. (2022, eq. 5, rho = 7) N - 1 steps from the start down to
  sigma = 0.002 with sigma = 0 appended (k-diffusion's ``append_zero``); N steps in all,
  and what a user's run reaches.

Each final state is compared with the exact flow (:mod:`odebench.reference`). ``extra_args``,
``callback`` and ``disable`` are passed only where the signature names them; the callback's
states give the order at t = 0.1 *inside* the run to data too. A function that raises,
returns a non-tensor, a wrong shape or a non-finite state gives a status line on its row.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import problems, schedules
from .._tensor import DTYPE, one_thread
from ..grids import start_time, timesteps
from ..metrics import rms_error
from ..reference import reference
from .adapters import _one_line
from .card import AuditReport, _fit, _fmt_fit, _nfe_rule, _ok
from .nominal import Claim

#: Step counts of a function's ladder (each N runs twice: to t = 0.1 and to data).
FUNCTION_STEPS = [8, 11, 16, 23, 32, 45, 64, 90, 128]
MID = 0.1  # the positive end (the card's "order at t=0.1")
SIGMA_MIN = 0.002  # Karras et al. 2022's sigma_min, before k-diffusion's appended 0
RHO = 7.0
OPTIONAL = ("extra_args", "callback", "disable")


def is_function_spec(spec: Any) -> bool:
    """True for "path/to/file.py:name" and "package.module:name" (not "diffusers:Name")."""
    if not isinstance(spec, str) or ":" not in spec:
        return False
    where = spec.strip().rpartition(":")[0]
    return bool(where) and where != "diffusers"


def load(spec: str) -> Callable:
    """The function named by ``spec`` ("file.py:name" or "package.module:name"). Raises
    ValueError with one line naming the file, module or name that fails."""
    where, _, name = spec.strip().rpartition(":")
    if not name.isidentifier():
        raise ValueError(f"{spec!r}: expected path/to/file.py:function or package.module:function")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"cannot import {where}: no such file")
        mod_name = "_odebench_audit_" + "".join(c if c.isalnum() else "_" for c in str(path))
        try:
            loader = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[mod_name] = module
            loader.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise ValueError(f"cannot import {where}: {_one_line(exc)}") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise ValueError(
                f"cannot import module {where!r} (unknown sampler package or module): "
                + _one_line(exc)
            ) from None
    if not hasattr(module, name):
        raise ValueError(f"{where} has no attribute {name!r}")
    fn = getattr(module, name)
    if not callable(fn) or isinstance(fn, type):
        raise ValueError(f"{spec} is not a function (it is {type(fn).__name__})")
    return fn


def optional_arguments(fn: Callable) -> list[str]:
    """Which of extra_args, callback, disable the signature of ``fn`` names."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []
    return [k for k in OPTIONAL if k in params]


class Denoiser:
    """The exact denoiser D(x, sigma) = E[x0 | x] for x = x0 + sigma z, from the problem's
    x0 prediction on its VP path (x_VP = alpha x at sigma = sigma_tilde); counts its calls.
    sigma may be a number or a tensor (k-diffusion passes ``sigma * x.new_ones(batch)``)."""

    def __init__(self, prob, sched):
        self.x0, self.sched, self.calls = prob.prediction("x0"), sched, 0
        self._t: dict[float, tuple[float, float]] = {}

    def time(self, sigma: float) -> tuple[float, float]:
        hit = self._t.get(sigma)
        if hit is None:
            t = float(self.sched.t_from_sigma_tilde(torch.tensor(sigma, dtype=DTYPE)))
            hit = self._t[sigma] = (t, float(self.sched.alpha(torch.tensor(t, dtype=DTYPE))))
        return hit

    def __call__(self, x: torch.Tensor, sigma, **_: Any) -> torch.Tensor:
        self.calls += 1
        s = torch.as_tensor(sigma, dtype=DTYPE).reshape(-1)
        if s.numel() == 0 or not bool(torch.isfinite(s).all()) or float(s.min()) <= 0:
            raise ValueError(f"the denoiser needs a positive sigma, got {s.tolist()[:4]}")
        if s.numel() > 1 and bool((s != s[0]).any()):
            return torch.cat([self(x[i : i + 1], s[i]) for i in range(x.shape[0])])
        t, alpha = self.time(float(s[0]))
        return self.x0(alpha * x.to(DTYPE), torch.tensor(t, dtype=DTYPE)).to(x.dtype)


def grids(n: int, sched, t0: float) -> dict[str, torch.Tensor]:
    """The two grids of N steps, as times: "mid" (uniform in log sigma, t0 to 0.1), "data"
    (Karras down to sigma = 0.002, then sigma = 0)."""
    t_min = float(sched.t_from_sigma_tilde(torch.tensor(SIGMA_MIN, dtype=DTYPE)))
    karras = timesteps(max(n - 1, 1), "karras", t0, t_min, schedule=sched, rho=RHO)
    return {
        "mid": timesteps(n, "lambda", t0, MID, schedule=sched),
        "data": torch.cat([karras, torch.zeros(1, dtype=DTYPE)]),
    }


def _sigmas(sched, ts: torch.Tensor) -> torch.Tensor:
    return torch.tensor(
        [0.0 if float(t) == 0.0 else float(sched.sigma_tilde(t)) for t in ts], dtype=DTYPE
    )


def run_once(fn, prob, sched, x_T, ts, args: list[str]) -> dict[str, Any]:
    """One call of ``fn`` on grid ``ts`` from the VP state x_T: the final VP state, NFE,
    callback states (VP, with their times) and a status ("ok", "error: ...", "nan", ...)."""
    denoise = Denoiser(prob, sched)
    sigmas = _sigmas(sched, ts)
    alpha0 = float(sched.alpha(ts[0]))
    seen: list[tuple[float, torch.Tensor]] = []

    def callback(info: dict[str, Any]) -> None:
        # k-diffusion calls it before step i: x is the state at sigmas[i]
        i, x = info.get("i"), info.get("x")
        if isinstance(i, int) and isinstance(x, torch.Tensor) and 0 < i < len(ts) - 1:
            t = ts[i]
            seen.append((float(t), float(sched.alpha(t)) * x.detach().to(DTYPE).clone()))

    kwargs = {"extra_args": {}, "callback": callback, "disable": True}
    kwargs = {k: kwargs[k] for k in args}
    out: dict[str, Any] = {"status": "ok", "x": None, "nfe": 0, "seen": seen}
    try:
        x = fn(denoise, x_T / alpha0, sigmas, **kwargs)
    except Exception as exc:  # the function's failure is a line of the card
        out["status"] = f"error: {_one_line(exc)}"
        return out
    out["nfe"] = denoise.calls
    if not isinstance(x, torch.Tensor):
        out["status"] = f"returned {type(x).__name__}, not a tensor"
    elif tuple(x.shape) != tuple(x_T.shape):
        out["status"] = f"returned shape {tuple(x.shape)} for x of shape {tuple(x_T.shape)}"
    elif not bool(torch.isfinite(x).all()):
        out["status"] = "returned non-finite values"
    else:
        out["x"] = float(sched.alpha(ts[-1])) * x.detach().to(DTYPE)
    return out


def _err_near(seen, ref, t_target: float, t_end: float) -> tuple[float, float]:
    """Error of the callback state nearest ``t_target`` (within 0.05, before the end)."""
    near = [(abs(t - t_target), t, x) for t, x in seen if t_end < t < 1.0]
    if not near:
        return math.nan, math.nan
    d, t, x = min(near, key=lambda e: e[0])
    return (rms_error(x, ref.at(t)), t) if d < 0.05 else (math.nan, math.nan)


def rung(fn, prob, sched, x_T, t0: float, n: int, args: list[str]) -> dict[str, Any]:
    """One row: the runs to t = 0.1 and to data with N steps each."""
    g = grids(n, sched, t0)
    row: dict[str, Any] = {"steps": n, "t_start": t0}
    mid = run_once(fn, prob, sched, x_T, g["mid"], args)
    data = run_once(fn, prob, sched, x_T, g["data"], args)
    times = [float(t) for t in torch.cat([g["mid"], g["data"]])] + [t for t, _ in data["seen"]]
    grid = torch.tensor(sorted({t for t in times if t < t0} | {t0}, reverse=True), dtype=DTYPE)
    ref = reference(prob, sched, x_T, grid, tol=1e-12)
    statuses = [s for s in (mid["status"], data["status"]) if s != "ok"]
    row.update(status=statuses[0] if statuses else "ok", nfe=mid["nfe"], nfe_data=data["nfe"])
    row.update(status_mid=mid["status"], status_data=data["status"])
    row["err_ode"] = rms_error(mid["x"], ref.at(MID)) if mid["x"] is not None else math.nan
    row["ref_acc"] = ref.accuracy_at(MID)
    row["err_data"] = rms_error(data["x"], ref.at(0.0)) if data["x"] is not None else math.nan
    row["err_mid"], row["t_mid"] = _err_near(data["seen"], ref, MID, 0.0)
    row["t_end"] = MID
    return row


def _fit_status(rows, key: str, status_key: str):
    """Fit ``key`` over the rows whose own run (``status_key``) finished."""
    pick = [{**r, "status": r.get(status_key, r.get("status"))} for r in rows]
    return _fit(pick, key)


def measure_function(
    fn: Callable,
    *,
    name: str | None = None,
    problem: str = "gaussian-lowrank",
    schedule: str = "linear",
    steps: Sequence[int] = FUNCTION_STEPS,
    n_samples: int = 32,
    seed: int = 0,
    claim: Claim | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per N) and facts of the audit of a sampler function (module docstring)."""
    steps = sorted({int(n) for n in steps})
    if len(steps) < 3 or steps[0] < 2:
        raise ValueError(f"need at least 3 distinct step counts >= 2, got {steps}")
    sched = schedules.get(schedule)
    prob = problems.get(problem, sched)
    t0 = start_time(sched, float(sched.t_hi))
    x_T = prob.sample_marginal(n_samples, t0, torch.Generator().manual_seed(seed)).to(DTYPE)
    args = optional_arguments(fn)
    with one_thread():
        rows = [rung(fn, prob, sched, x_T, t0, n, args) for n in steps]
    label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
    facts = {
        "sampler": label,
        "kind": "function",
        "problem": problem,
        "schedule": schedule,
        "n_samples": n_samples,
        "seed": seed,
        "arguments": args,
        "sigma_start": float(sched.sigma_tilde(torch.tensor(t0, dtype=DTYPE))),
        "sigma_mid": float(sched.sigma_tilde(torch.tensor(MID, dtype=DTYPE))),
        "nominal": claim.order if claim is not None and claim.order is not None else math.nan,
        "nominal_source": claim.source if claim is not None else "",
    }
    return rows, facts


def build_function_report(rows: list[dict[str, Any]], facts: dict[str, Any]) -> AuditReport:
    """The card of a sampler function: its calls, the grids, the orders, failures."""
    fits = {
        "ode": _fit_status(rows, "err_ode", "status_mid"),
        "mid": _fit_status(rows, "err_ode", "status_mid"),
        "data": _fit_status(rows, "err_data", "status_data"),
        "mid_in_data": _fit_status(rows, "err_mid", "status_data"),
    }
    findings: list[str] = []
    by_status: dict[str, list[int]] = {}
    for r in rows:
        for grid in ("mid", "data"):
            status = r.get(f"status_{grid}", "ok")
            if status != "ok":
                by_status.setdefault(f"{status} (grid to {_GRID[grid]})", []).append(r["steps"])
    for status, ns in by_status.items():
        findings.append(f"N={','.join(map(str, ns))}: {status}")
    ode = fits["ode"]
    nominal = facts.get("nominal")
    if not any(r.get("status_mid") == "ok" for r in rows):
        verdict = "does not run"
    elif ode is None or not ode.ok or ode.slope <= 0.3:
        verdict = "does not converge to t=0.1"
        findings.append(verdict)
    elif isinstance(nominal, float) and math.isfinite(nominal):
        off = abs(ode.slope - nominal) > max(0.3, ode.ci_halfwidth)
        verdict = f"order {_fmt_fit(ode)} " + (
            f"against nominal {nominal:g}" if off else f"(nominal {nominal:g})"
        )
        if off:
            findings.append(verdict)
    else:
        verdict = f"converges at order {_fmt_fit(ode)} (no nominal order given)"
    args = facts.get("arguments") or []
    mid_in = fits["mid_in_data"]
    lines = [
        ("sampler", str(facts["sampler"])),
        ("called as", "fn(model, x, sigmas" + "".join(f", {a}=..." for a in args) + ")"),
        (
            "problem",
            f"{facts['problem']} on {facts['schedule']} ({facts['n_samples']} samples, "
            f"seed {facts['seed']})",
        ),
        ("model", "exact denoiser D(x, sigma) -> x0, x = x0 + sigma z (x = VP state / alpha)"),
        ("model calls", _nfe_rule([(r["steps"], r["nfe"]) for r in _ok(rows)])),
        (
            "grids",
            f"to t=0.1: N steps uniform in log sigma, {facts['sigma_start']:.4g} -> "
            f"{facts['sigma_mid']:.4g}; to data: Karras rho {RHO:g}, N-1 steps to sigma "
            f"{SIGMA_MIN:g}, then 0",
        ),
        ("order at t=0.1", _fmt_fit(fits["mid"])),
        ("verdict", verdict),
        ("reaches data", _fmt_fit(fits["data"])),
        (
            "t=0.1 in data run",
            _fmt_fit(mid_in) if "callback" in args else "- (no callback argument)",
        ),
    ]
    return AuditReport(str(facts["sampler"]), rows, facts, fits, verdict, findings, lines)


_GRID = {"mid": "t=0.1", "data": "data"}

FUNCTION_COLUMNS = [
    "steps",
    "status",
    "status_mid",
    "status_data",
    "nfe",
    "nfe_data",
    "t_start",
    "t_end",
    "err_ode",
    "err_data",
    "t_mid",
    "err_mid",
    "ref_acc",
]

__all__ = [
    "FUNCTION_STEPS",
    "Denoiser",
    "build_function_report",
    "is_function_spec",
    "load",
    "measure_function",
]
