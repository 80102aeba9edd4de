"""The report card of a stochastic sampler: classified as stochastic, weak order from exact
laws (with its 95% CI), strong order where the audit drives the noise by a Brownian path.

No ODE finding comes from noise: the ODE convergence verdict is not made, and the times of
the states (the end time, and the time gaps between the time the model is told and the time
its input is at) are read from exact point-mass laws (:func:`.stochastic.end_time`,
:func:`.stochastic.input_times`), not from noisy states. Weak and strong orders are fitted with
:func:`odebench.metrics.fit_order` on h = 1 / N, as the ODE orders are.
"""

from __future__ import annotations

import math
from typing import Any

from ..metrics import verdict
from .card import (
    STATE,
    AuditReport,
    _finest,
    _finite,
    _fit,
    _float64,
    _fmt_fit,
    _nfe_rule,
    _ok,
    _range,
)
from .stochastic_ladder import GAP

COLUMNS = [
    "steps",
    "divides_T",
    "status",
    "nfe",
    "draws",
    "max_draws",
    "t_start",
    "t_end",
    "weak_w2",
    "weak_w2_data",
    "weak_kl",
    "strong_err",
    "strong_ref",
    "max_gap",
    "worst_t_call",
    "worst_t_state",
    "weak_estimate",
    "mc_samples",
    "weak_floor",
    "weak_floor_se",
]
MARGIN = 3.0  # standard errors above the Monte Carlo floor for a rung to enter the weak fit
PLATEAU = 4  # finest resolved rungs whose slope tells a plateau


def _monte_carlo(rows) -> list[dict[str, Any]]:
    return [r for r in _ok(rows) if r.get("weak_estimate") == "monte carlo"]


def _resolved(r) -> bool:
    """A Monte Carlo rung whose W2 exceeds its floor by MARGIN standard errors (exact: all)."""
    if r.get("weak_estimate") != "monte carlo":
        return True
    floor, se = r.get("weak_floor"), r.get("weak_floor_se")
    return _finite(floor) and _finite(se) and r.get("weak_w2", math.nan) > floor + MARGIN * se


def _estimate(rows) -> str:
    """How the weak error was estimated, for the card."""
    mc = _monte_carlo(rows)
    if not mc:
        return "exact W2 to the marginal at the end time"
    r = max(mc, key=lambda r: r["steps"])
    used = sum(1 for r in mc if _finite(r.get("weak_w2")) and _resolved(r))
    return (
        f"Monte Carlo, n={int(r['mc_samples'])} samples, floor {r.get('weak_floor', math.nan):.1e}"
        f" +- {r.get('weak_floor_se', math.nan):.1e}: Frechet W2 to the marginal at the end "
        f"time, fitted on the {used} of {len(mc)} rungs above floor + {MARGIN:g} SE"
    )


def _mc_verdict(rows) -> tuple[str, list[str]] | None:
    """The weak verdict of a Monte Carlo ladder: at the floor, a plateau above it (the error
    stops falling: a bias such as clipping), or the exact-law verdict on the resolved rungs."""
    mc = sorted(
        (r for r in _monte_carlo(rows) if _finite(r.get("weak_w2"))), key=lambda r: r["steps"]
    )
    if not mc:
        return None
    up = [r for r in mc if _resolved(r)]
    floor = f"Monte Carlo floor {mc[-1].get('weak_floor', math.nan):.1e}"
    if len(up) < 3:
        text = f"weak error at the {floor} from N={mc[0]['steps']}: weak order not measured"
        return text, [text]
    tail = up[-PLATEAU:]
    local = _fit(tail, "weak_w2")
    if up[-1] is mc[-1] and (local is None or not local.ok or local.slope <= 0.3):
        plateau = sorted(r["weak_w2"] for r in tail)[len(tail) // 2]
        text = (
            f"does not converge weakly: W2 stops falling at {plateau:.1e} (N={tail[0]['steps']}.."
            f"{tail[-1]['steps']}), {plateau / mc[-1]['weak_floor']:.0f}x the {floor}"
        )
        return text, [text]
    return None


def _weak_verdict(rows, fit, nominal) -> tuple[str, list[str]]:
    mc = _mc_verdict(rows)
    if mc is not None:
        return mc
    good = [r for r in _ok(rows) if _finite(r.get("weak_w2")) and _resolved(r)]
    if not good:
        return "no exact law: weak order not measured", []
    errs = [r["weak_w2"] for r in sorted(good, key=lambda r: r["steps"])]
    if errs[-1] > 3.0 * min(errs):  # more steps made it worse
        best = min(good, key=lambda r: r["weak_w2"])
        text = (
            f"weak error does not converge: W2 {errs[-1]:.1e} at N={max(r['steps'] for r in good)}"
            f", {errs[-1] / min(errs):.0f}x its minimum {min(errs):.1e} at N={best['steps']}"
        )
        gaps = [r for r in good if _finite(r.get("max_gap")) and r["max_gap"] >= GAP]
        return text + (" (time gaps)" if gaps else ""), [text + (" (time gaps)" if gaps else "")]
    if fit is None or not fit.ok or fit.slope <= 0.3:
        text = f"weak error does not converge: W2 {min(errs):.1e}..{max(errs):.1e}"
        return text, [text]
    if nominal is None:
        return f"converges weakly at order {_fmt_fit(fit)}", []
    v = verdict(fit, nominal)
    if v == "as declared":
        return f"converges weakly at order {_fmt_fit(fit)} (nominal weak {nominal:g})", []
    text = f"weak order {_fmt_fit(fit)} against nominal weak {nominal:g} ({v})"
    return text, [text]


def build(rows: list[dict[str, Any]], facts: dict[str, Any]) -> AuditReport:
    """Fits, verdict, findings and card lines of a stochastic sampler."""
    keys = (("ode", "weak_w2"), ("weak", "weak_w2"), ("data", "weak_w2_data"))
    fits = {name: _fit(rows, key, _resolved) for name, key in keys}
    fits["strong"] = _fit([r for r in rows if _finite(r.get("strong_err"))], "strong_err")
    nominal = float(facts["nominal"]) if _finite(facts.get("nominal")) else None
    findings: list[str] = []
    by_status: dict[str, list[int]] = {}
    for r in rows:
        if r.get("status") != "ok":
            by_status.setdefault(str(r.get("status")), []).append(int(r["steps"]))
    findings += [f"N={','.join(map(str, ns))}: {st}" for st, ns in by_status.items()]
    diff, seeded = facts.get("stochastic_diff", math.nan), facts.get("seeded_diff", math.nan)
    source = facts.get("noise_source") or "not through randn_tensor"
    findings.append(
        f"stochastic: two unseeded runs from the same x_T differ by {diff:.1e}; weak and "
        "strong orders replace the ODE verdict"
    )
    if facts.get("takes_generator") and _finite(seeded) and seeded > 0:
        findings.append(f"step(generator=) does not make a run reproducible (differ {seeded:.1e})")
    if facts.get("clip_sample"):
        findings.append(
            f"clip_sample=True: x0 predictions clipped to +-{facts.get('clip_range', 1.0):g}"
        )
    ok = _ok(rows)
    ends = sorted({r["t_end"] for r in ok if _finite(r.get("t_end"))})
    if ends and max(ends) > 0.0:
        findings.append(
            f"end time t={max(ends):g} (not data): W2 {_finest(rows, 'weak_w2_data'):.1e} "
            "against data at the finest N"
        )
    off = [r for r in ok if _finite(r.get("max_gap")) and r["max_gap"] >= GAP]
    if off:
        w = max(off, key=lambda r: r["max_gap"])
        findings.append(
            f"time gap: model called at t={w['worst_t_call']:.4f} on a state whose point-mass "
            f"law is at t={w['worst_t_state']:.4f} ({w['max_gap']:.1f} steps of the table off; "
            f"N={','.join(str(r['steps']) for r in off)})"
        )
    f64, f64_findings = _float64(facts)
    findings += f64_findings
    weak = fits["weak"]
    verdict_text, conv = _weak_verdict(rows, weak, nominal)
    findings += conv
    strong = fits["strong"]
    note = str(facts.get("strong_note", ""))
    if note.startswith("not measured"):
        strong_text = note
    else:
        strong_text = _fmt_fit(strong) + (f" ({note})" if note else "")
    draws = sorted({(r["steps"], r.get("draws", 0)) for r in ok})
    per_step = max((r.get("max_draws", 0) for r in ok), default=0)
    repro = "yes (two runs with one seed are identical)" if seeded == 0 else "no"
    if not facts.get("takes_generator"):
        repro = "no generator= argument"
    kl = _finest(rows, "weak_kl")
    mc = _monte_carlo(rows)
    no_kl = "a sample covariance" if mc else "a singular covariance"
    laws = f"Monte Carlo laws of {int(mc[0]['mc_samples'])} runs" if mc else "exact output laws"
    lines = [
        ("sampler", str(facts.get("sampler"))),
        (
            "problem",
            f"{facts.get('problem')} on {facts.get('odebench_schedule') or facts.get('schedule')}"
            f" ({laws}; {facts.get('n_samples')} paths for the strong error)",
        ),
        ("class", "stochastic (SDE sampler): not judged as an ODE solver"),
        (
            "noise",
            f"{_draw_rule(draws)} per run, at most {per_step} per step, via {source}; "
            f"seeded generator= reproducible: {repro}",
        ),
        ("model calls", _nfe_rule([(r["steps"], r["nfe"]) for r in ok])),
        ("interpolant", str(facts.get("interpolant") or f"VP table {facts.get('schedule')}")),
        ("model output", str(facts.get("model_output") or "eps (prediction_type epsilon)")),
        ("state variable", STATE.get(str(facts.get("state_kind")), str(facts.get("state_kind")))),
        ("start time", _range(rows, "t_start")),
        ("end time", _range(rows, "t_end") + " (point-mass output law: sigma/alpha = s/c1)"),
        (
            "time gaps",
            ("none" if not off else f"up to {max(r['max_gap'] for r in off):.1f} steps")
            + " (from the point-mass law of each model input, not from noise)",
        ),
        (
            "nominal weak order",
            f"{facts.get('nominal') if nominal is not None else '-'} "
            f"({facts.get('nominal_source')})",
        ),
        ("weak order", f"{_fmt_fit(weak)} ({_estimate(rows)})"),
        (
            "weak error",
            f"W2 {_finest(rows, 'weak_w2'):.2e} at the finest N"
            + (f"; KL {kl:.2e}" if _finite(kl) else f"; KL - ({no_kl})"),
        ),
        ("strong order", strong_text),
        ("verdict", verdict_text),
        ("reaches data", _fmt_fit(fits["data"]) + " (weak, W2 against the data law)"),
        ("float64", f64 + " (seeded runs)"),
    ]
    rep = AuditReport(str(facts.get("sampler")), rows, facts, fits, verdict_text, findings, lines)
    rep.extra = {
        "error_at_finest": _finest(rows, "weak_w2"),
        "data_error_at_finest": _finest(rows, "weak_w2_data"),
        "class": "stochastic",
        "strong_order": strong.slope if strong and strong.ok else math.nan,
        "strong_ci_low": strong.ci_low if strong and strong.ok else math.nan,
        "strong_ci_high": strong.ci_high if strong and strong.ok else math.nan,
        "weak_kl_at_finest": kl,
    }
    return rep


def _draw_rule(draws: list[tuple[int, int]]) -> str:
    if not draws:
        return "no run with an exact law:"
    rules = {"N draws": 0, "N - 1 draws": 1}
    for rule, off in rules.items():
        other = [f"{k} at N={n}" for n, k in draws if k != n - off]
        if len(other) <= len(draws) // 4:
            return rule + (f" ({', '.join(other)})" if other else "")
    return "draws " + ", ".join(f"{k} (N={n})" for n, k in draws)


def draw(ax, report: AuditReport, legend: bool = True) -> None:
    """Weak (W2) and strong errors against NFE, log-log."""
    ok = sorted(_ok(report.rows), key=lambda r: r["nfe"])
    weak, strong = report.fits.get("weak"), report.fits.get("strong")
    for key, fit, name, style in (
        ("weak_w2", weak, "weak W2", "o-"),
        ("strong_err", strong, "strong", "s:"),
    ):
        pts = [(r["nfe"], r[key]) for r in ok if _finite(r.get(key)) and r[key] > 0]
        if pts:
            lab = f"{name} (order {_fmt_fit(fit)})" if fit and fit.ok else name
            ax.loglog(*zip(*pts, strict=True), style, label=lab, ms=3)
    ax.set_xlabel("NFE")
    ax.set_ylabel("W2 / RMS error")
    ax.grid(True, which="both", alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


__all__ = ["COLUMNS", "build", "draw"]
