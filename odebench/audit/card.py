"""What an audit card is made of: the :class:`AuditReport` and the small helpers that read
rows (finished runs, ranges, finest values), fit orders on h = 1 / N with
:func:`odebench.metrics.fit_order`, and state float64 facts. Shared by the ODE card
(:mod:`.report`) and the stochastic one (:mod:`.stochastic_card`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics import fit_order
from ..metrics.order import OrderFit

STATE = {
    "vp": "VP (c_in = 1)",
    "sigma-scaled": "x / alpha (c_in = 1 / sqrt(sigma^2 + 1))",
    "flow": "the interpolant's x (c_in = 1)",
    "ve": "the interpolant's x (network input c_in x)",
}


@dataclass
class AuditReport:
    """What :func:`audit` measured and concluded about one sampler."""

    sampler: str
    rows: list[dict[str, Any]]
    facts: dict[str, Any]
    fits: dict[str, OrderFit | None]
    verdict: str
    findings: list[str] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # summary columns of stochastic cards
    #: what :mod:`.causes` found: "causes", "attempts", "usable" (not summary columns)
    counterfactuals: dict[str, Any] = field(default_factory=dict)

    def card(self) -> str:
        """The report card as a two-column text table."""
        width = max(len(k) for k, _ in self.lines)
        out = [f"{k.ljust(width)}  {v}" for k, v in self.lines]
        out.append("findings".ljust(width) + "  " + ("none" if not self.findings else ""))
        out += [f"{'':{width}}  - {f}" for f in self.findings]
        return "\n".join(out)

    def summary(self) -> dict[str, Any]:
        """One flat row (the study's summary table)."""
        ode = self.fits.get("ode")
        return {
            "sampler": self.sampler,
            "nominal": self.facts.get("nominal"),
            "order": ode.slope if ode and ode.ok else math.nan,
            "ci_low": ode.ci_low if ode and ode.ok else math.nan,
            "ci_high": ode.ci_high if ode and ode.ok else math.nan,
            "verdict": self.verdict,
            "t_start": _range(self.rows, "t_start"),
            "t_end": _range(self.rows, "t_end"),
            "error_at_finest": _finest(self.rows, "err_ode"),
            "data_error_at_finest": _finest(self.rows, "err_data"),
            "float64": _float64(self.facts)[0],
            "family": self.facts.get("family", ""),
            "family_ratio": _family_ratio(self.rows)[0],
            "findings": " | ".join(self.findings),
            **self.extra,
        }


def _ok(rows):
    return [r for r in rows if r.get("status") == "ok"]


def _range(rows, key: str) -> str:
    vals = sorted({round(float(r[key]), 6) for r in _ok(rows) if _finite(r.get(key))})
    if not vals:
        return "-"
    return f"{vals[0]:g}" if len(vals) == 1 else f"{vals[0]:g}..{vals[-1]:g}"


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _finest(rows, key: str) -> float:
    good = [r for r in _ok(rows) if _finite(r.get(key))]
    return float(max(good, key=lambda r: r["steps"])[key]) if good else math.nan


def _fit(rows, key: str, select=None) -> OrderFit | None:
    pick = [r for r in rows if select is None or select(r)]
    if len(pick) < 3:
        return None
    h = np.array([1.0 / r["steps"] for r in pick])
    err = np.array(
        [float(r.get(key, math.nan)) if r.get("status") == "ok" else math.nan for r in pick]
    )
    err = np.where(np.isfinite(err) | np.isnan(err), err, np.nan)
    acc = np.array([float(r.get("ref_acc", 0.0) or 0.0) for r in pick])
    acc = np.where(np.isfinite(acc), acc, 0.0)
    exclude = np.isfinite(err) & (err < 100.0 * acc)
    return fit_order(h, err, exclude=exclude)


def _fmt_fit(fit: OrderFit | None) -> str:
    if fit is None or not fit.ok:
        return "no consistent slope"
    ci = f" [{fit.ci_low:.2f}, {fit.ci_high:.2f}]" if math.isfinite(fit.ci_low) else ""
    return f"{fit.slope:.2f}{ci}"


def _float64(facts: dict[str, Any]) -> tuple[str, list[str]]:
    """('yes' | 'no (...)', findings) from the linearity probe and the tables."""
    why, findings = [], []
    if facts.get("probe_status", "ok") != "ok":
        return "unknown (the probe run failed)", findings
    lin = facts.get("linearity_defect", math.nan)
    if (_finite(lin) and lin > 1e-2) or lin == math.inf:
        why.append("state rounded to float32 in step()")
        findings.append(
            f"float32 state: step() rounds the sample to float32 (response to a 1e-9 "
            f"perturbation of x_T is nonlinear by {lin:.1e}; float64 gives ~1e-6)"
        )
    if facts.get("out_dtype") and facts["out_dtype"] != "float64":
        why.append(f"returns {facts['out_dtype']}")
        findings.append(f"returns {facts['out_dtype']} samples for float64 inputs")
    if facts.get("table_dtype") not in (None, "float64", "unknown"):
        dev = facts.get("table_rel_dev", math.nan)
        why.append(f"alphas_cumprod {facts['table_dtype']} (rel. dev. {dev:.1e})")
        findings.append(
            f"float32 table: alphas_cumprod stored as {facts['table_dtype']} (max rel. "
            f"deviation {dev:.1e} from the float64 table)"
        )
    return ("yes" if not why else "no (" + "; ".join(why) + ")"), findings


def _family_ratio(rows) -> tuple[float, int]:
    """Scheduler error / family-solver error at the rung nearest 50 NFE where both exist."""
    good = [
        r
        for r in _ok(rows)
        if _finite(r.get("family_err")) and _finite(r.get("err_ode")) and r.get("family_err", 0) > 0
    ]
    if not good:
        return math.nan, 0
    r = min(good, key=lambda r: abs(r["nfe"] - 50))
    return r["err_ode"] / r["family_err"], int(r["nfe"])


def _nfe_rule(nfes: list[tuple[int, int]]) -> str:
    if not nfes:
        return "-"
    if len(nfes) >= 2:
        (n1, f1), (n2, f2) = nfes[0], nfes[-1]
        a = (f2 - f1) / (n2 - n1) if n2 != n1 else 0
        b = f1 - a * n1
        if all(abs(a * n + b - f) < 1e-9 for n, f in nfes) and float(a).is_integer():
            lead = "N" if a == 1 else f"{int(a)}N"
            return f"NFE = {lead}{int(b):+d}" if b else f"NFE = {lead}"
    return "NFE " + ", ".join(f"{f} (N={n})" for n, f in nfes)
