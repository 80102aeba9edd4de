"""The report card of an audit: order fits, a verdict, named findings; table, CSV, figure.

:func:`build_report` turns the rows and facts of :mod:`.measure` into an
:class:`AuditReport` (it is also what the "audit" study's summary calls, so the CLI and the
study say the same thing). Findings are short strings, each naming one departure and its
cause, e.g. ``"end time t=0.001 (not data): error floor 3.6e-02 against data"``.

Order fits use :func:`odebench.metrics.fit_order` on h = 1 / N (N the inference steps the user
asks for): the effective ODE (first evaluated time to the time the output is at), the
intended one (to t = 0, data), the state entering the last step, and separately on the step
counts that divide T and those that do not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import verdict
from ..metrics.order import OrderFit
from ..study.cache import atomic_write_text, new_file_mode
from .card import (
    STATE,
    AuditReport,
    _family_ratio,
    _finest,
    _finite,
    _fit,
    _float64,
    _fmt_fit,
    _nfe_rule,
    _ok,
    _range,
)

FLOAT32_LEVEL = 1e-5  # an error floor below this (relative to |x|) is float32-sized
GAP = 0.25  # index units: a call this far from its input's time is on the wrong time


def _final_step_order(rows, fits, nominal) -> str:
    """A finding when the last step's local error (its defect) has a lower order than a step
    of the nominal order has (nominal + 1), and matters (>= 10% of the final error)."""
    fit = fits.get("final_defect")
    if nominal is None or fit is None or not fit.ok or fit.slope < 0.3:
        return ""
    fd, err = _finest(rows, "final_defect"), _finest(rows, "err_ode")
    if not (_finite(fd) and _finite(err)) or fd < 0.1 * err:
        return ""
    if fit.slope >= nominal + 1.0 - 0.5:
        return ""
    return (
        f"final step: its local error has order {fit.slope:.2f} (a step of order "
        f"{fit.slope - 1:.2f}; order {nominal:g} needs {nominal + 1:g})"
    )


def _why_reduced(rows, facts, fits, nominal) -> str:
    """The cause of an order below the nominal one, read off the measurements: calls off
    their inputs' times (grid); the order held at t = 0.1 and up to the last step (final
    step) or lost only on the last steps into t = 0 (singularity); or lost from the start."""
    gaps = [r.get("max_gap", 0.0) for r in _ok(rows) if _finite(r.get("max_gap"))]
    if gaps and max(gaps) >= GAP:
        return "time gaps: calls at times their inputs are not at"
    ode, before, mid = fits.get("ode"), fits.get("before_final"), fits.get("mid")
    p = ode.slope if ode and ode.ok else math.nan
    holds = nominal - 0.3
    mid_ok = mid is not None and mid.ok and mid.slope >= holds
    t_last = _finest(rows, "t_before_final")
    where = f"t={t_last:.3g} at the finest N" if _finite(t_last) else "its start"
    ends = [r["t_end"] for r in _ok(rows) if _finite(r.get("t_end"))]
    into = "t = 0, where sigma ~ sqrt(t)" if ends and max(ends) == 0.0 else "the end time"
    if before is not None and before.ok and before.slope >= min(holds, p + 0.5):
        return f"final step: order {before.slope:.2f} up to the state entering it ({where})"
    if mid_ok:
        b = f"{before.slope:.2f}" if before is not None and before.ok else "lower"
        return (
            f"singularity: order {mid.slope:.2f} at t=0.1, {b} by the last step; the last "
            f"steps into {into} lose it"
        )
    first = fits.get("first")
    e_first, e_mid = _finest(rows, "err_first"), _finest(rows, "err_mid")
    if (
        first is not None
        and first.ok
        and first.slope < nominal + 1 - 0.3
        and _finite(e_first)
        and _finite(e_mid)
        and e_first > 0.1 * e_mid
    ):
        return f"warm-up: the first step's local error has order {first.slope:.2f}"
    if mid is not None and mid.ok:
        return f"the steps themselves: order {mid.slope:.2f} already at t=0.1"
    return "cause not identified by the probes"


def build_report(rows: list[dict[str, Any]], facts: dict[str, Any]) -> AuditReport:
    """Fits, verdict, findings and the card's lines from measured rows and facts (a
    stochastic sampler's from :func:`.stochastic_card.build`)."""
    if facts.get("stochastic"):
        from .stochastic_card import build

        return build(rows, facts)
    if facts.get("setup_error"):
        name = str(facts.get("sampler") or facts.get("scheduler_class"))
        text = f"does not run: {facts['setup_error']}"
        lines = [("sampler", name), ("verdict", text)]
        return AuditReport(name, rows, facts, {}, text, [text], lines)
    T = int(facts.get("T", 1000))
    nominal = facts.get("nominal")
    nominal = float(nominal) if _finite(nominal) else None
    fits = {
        "ode": _fit(rows, "err_ode"),
        "data": _fit(rows, "err_data"),
        "before_final": _fit(rows, "err_before_final"),
        "first": _fit(rows, "err_first"),
        "mid": _fit(rows, "err_mid"),
        "final_defect": _fit(rows, "final_defect"),
        "divisors": _fit(rows, "err_ode", lambda r: bool(r.get("divides_T"))),
        "non_divisors": _fit(rows, "err_ode", lambda r: not r.get("divides_T")),
    }
    findings: list[str] = []
    ok = _ok(rows)
    # failures
    by_status: dict[str, list[int]] = {}
    for r in rows:
        if r.get("status") != "ok":
            by_status.setdefault(str(r.get("status")), []).append(int(r["steps"]))
    for status, ns in by_status.items():
        findings.append(f"N={','.join(map(str, ns))}: {status}")
    if facts.get("probe_status", "ok") != "ok" and not by_status:
        findings.append(f"probe run (N={facts.get('probe_steps')}): {facts['probe_status']}")
    diff = facts.get("stochastic_diff", 0.0)
    if _finite(diff) and diff > 0:
        findings.append(
            f"stochastic: two runs from the same x_T differ by {diff:.1e} (not an ODE sampler)"
        )
    if facts.get("clip_sample"):
        findings.append(
            f"clip_sample=True: x0 predictions clipped to +-{facts.get('clip_range', 1.0):g} "
            "(not the ODE)"
        )
    if facts.get("thresholding"):
        findings.append("thresholding=True: dynamic thresholding of x0 (not the ODE)")
    # grid: calls at times their inputs are not at
    off = [r for r in ok if _finite(r.get("max_gap")) and r["max_gap"] >= GAP]
    if off:
        w = max(off, key=lambda r: r["max_gap"])
        ns = ",".join(str(r["steps"]) for r in off)
        findings.append(
            f"time gap: model called at t={w['worst_t_call']:.4f} on a state at "
            f"t={w['worst_t_state']:.4f} ({w['max_gap']:.1f} steps of the table off; N={ns})"
        )
    # start and end times
    starts = [r["t_start"] for r in ok if _finite(r.get("t_start"))]
    if starts and min(starts) < 1.0 - 0.5 / T:
        lo = min(ok, key=lambda r: r["t_start"])
        vary = len({round(s, 9) for s in starts}) > 1
        findings.append(
            f"start time t={lo['t_start']:.3f} (not 1) at N={lo['steps']}"
            + (f"; depends on N ({min(starts):.3f}..{max(starts):.3f})" if vary else "")
        )
    ends = [r["t_end"] for r in ok if _finite(r.get("t_end"))]
    end_note = ""
    t_typ = float(np.median(ends)) if ends else math.nan
    if ends and t_typ > 0.0:
        floor = _finest(rows, "err_data")
        findings.append(
            f"end time t={t_typ:g} (not data): error {floor:.1e} against data at the finest N"
        )
        end_note = f"; against data: floor {floor:.1e}"
    t_attr = facts.get("t_end_attr", math.nan)
    if _finite(t_attr) and ends and abs(float(np.median(ends)) - t_attr) * T > 0.5:
        findings.append(
            f"end time: attributes say t={t_attr:g} ({facts.get('t_end_attr_from')}) but the "
            f"output is at t={float(np.median(ends)):g}"
        )
    f64, f64_findings = _float64(facts)
    findings += f64_findings
    init = facts.get("init_scale", 1.0)
    if _finite(init) and abs(init - 1.0) > 1e-6:
        what = (
            "the VP start"
            if facts.get("state_kind") in ("vp", "sigma-scaled")
            else "the start state's noise level"
        )
        findings.append(
            f"start scale: noise * init_noise_sigma ({facts.get('init_noise_sigma'):.5g}) is "
            f"{what} times {init:.6f}, not 1"
        )
    # convergence
    ode = fits["ode"]
    verdict_text, conv = _convergence(rows, facts, fits, nominal)
    findings += conv
    div, non = fits["divisors"], fits["non_divisors"]
    if (
        div
        and non
        and div.ok
        and non.ok
        and abs(div.slope - non.slope)
        > max(0.3, div.ci_halfwidth if math.isfinite(div.ci_halfwidth) else 0.0)
    ):
        findings.append(f"order {div.slope:.2f} on N dividing {T}, {non.slope:.2f} on the others")
    elif (div and div.ok) and not (non and non.ok) and off:
        findings.append(f"converges only on N dividing {T} (order {div.slope:.2f})")
    final = _final_step_order(rows, fits, nominal)
    if final:
        findings.append(final)
    ratio, nfe = _family_ratio(rows)
    if _finite(ratio) and ratio > 3.0:
        findings.append(
            f"{ratio:.1f}x the error of odebench's {facts.get('family')} at equal NFE ({nfe})"
        )
    calls_row = next((r for r in rows if r.get("call_timesteps")), None)
    nfes = [(r["steps"], r["nfe"]) for r in ok]
    lines = [
        ("sampler", str(facts.get("sampler"))),
        (
            "problem",
            f"{facts.get('problem')} on {facts.get('odebench_schedule') or facts.get('schedule')} "
            f"({facts.get('n_samples')} samples, seed {facts.get('seed')})",
        ),
        ("model calls", _nfe_rule(nfes) + _repeats(ok)),
        (
            "call timesteps",
            f"N={calls_row['steps']}: {calls_row['call_timesteps']}" if calls_row else "-",
        ),
        ("interpolant", str(facts.get("interpolant") or f"VP table {facts.get('schedule')}")),
        ("model output", str(facts.get("model_output") or "eps (prediction_type epsilon)")),
        ("state variable", STATE.get(str(facts.get("state_kind")), str(facts.get("state_kind")))),
        ("start time", _range(rows, "t_start")),
        (
            "end time",
            _range(rows, "t_end")
            + (
                f" (attributes: {facts.get('t_end_attr_from')})"
                if facts.get("t_end_attr_from")
                else ""
            ),
        ),
        ("time gaps", "none" if not off else f"up to {max(r['max_gap'] for r in off):.1f} steps"),
        ("nominal order", f"{facts.get('nominal')} ({facts.get('nominal_source')})"),
        ("order (own ODE)", _fmt_fit(ode) + f"; N|{T}: {_fmt_fit(div)}; others: {_fmt_fit(non)}"),
        ("order at t=0.1", _fmt_fit(fits["mid"])),
        ("verdict", verdict_text),
        ("reaches data", _fmt_fit(fits["data"]) + end_note),
        ("float64", f64),
        (
            "vs odebench",
            f"{facts.get('family') or '-'} at equal NFE: error ratio {ratio:.2g} (NFE {nfe})"
            if _finite(ratio)
            else "-",
        ),
    ]
    return AuditReport(str(facts.get("sampler")), rows, facts, fits, verdict_text, findings, lines)


def _convergence(rows, facts, fits, nominal) -> tuple[str, list[str]]:
    """The verdict on the effective ODE, and the findings it implies."""
    ode = fits["ode"]
    good = [r for r in _ok(rows) if _finite(r.get("err_ode"))]
    if not good:
        return "does not run", ["no run finished: no convergence measured"]
    errs = [r["err_ode"] for r in sorted(good, key=lambda r: r["steps"])]
    scale = float(facts.get("x_scale", 1.0) or 1.0)
    if errs[-1] > 3.0 * min(errs):  # more steps made it worse: not converging
        best = min(good, key=lambda r: r["err_ode"])
        why = _why_floor(rows, facts, errs[-1], scale)
        text = (
            f"does not converge: error {errs[-1]:.1e} at N={max(r['steps'] for r in good)}, "
            f"{errs[-1] / min(errs):.0f}x its minimum {min(errs):.1e} at N={best['steps']} "
            f"({why})"
        )
        return text, [text]
    if ode is None or not ode.ok or ode.slope <= 0.3:
        grows = errs[-1] > errs[0]
        why = _why_floor(rows, facts, min(errs), scale)
        text = (
            f"does not converge: error {min(errs):.1e}..{max(errs):.1e}"
            + (" (grows with N)" if grows else "")
            + f" ({why})"
        )
        return text, [text]
    findings = []
    floors = [e for e, f in zip(ode.err, ode.flags, strict=True) if f == "floor"]
    tail = ""
    if floors:
        floor = float(np.median(floors))
        why = _why_floor(rows, facts, floor, scale)
        if 3 * len(floors) >= len(good):  # the floor is most of the ladder: not converging
            text = (
                f"does not converge: error floor {floor:.1e} from N={_floor_from(ode)} "
                f"(order {ode.slope:.2f} before it; {why})"
            )
            return text, [text]
        tail = f", down to a floor {floor:.1e} ({why})"
        findings.append(f"error floor {floor:.1e} at the finest N ({why})")
    if nominal is None:
        return f"converges at order {_fmt_fit(ode)}{tail}", findings
    v = verdict(ode, nominal)
    if v == "as declared":
        return f"converges at order {_fmt_fit(ode)} (nominal {nominal:g}){tail}", findings
    if v == "reduced":
        why = _why_reduced(rows, facts, fits, nominal)
        text = f"order {ode.slope:.2f} below nominal {nominal:g} ({why}){tail}"
        return text, [*findings, text]
    if v == "superconvergent":
        return f"order {_fmt_fit(ode)} above nominal {nominal:g}{tail}", findings
    text = f"order inconclusive: {_fmt_fit(ode)} against nominal {nominal:g}"
    return text, [*findings, text]


def _floor_from(fit: OrderFit) -> int:
    hs = [h for h, f in zip(fit.h, fit.flags, strict=True) if f == "floor"]
    return round(1.0 / max(hs)) if hs else 0


def _why_floor(rows, facts, floor: float, scale: float) -> str:
    reasons = []
    gaps = [r.get("max_gap", 0.0) for r in _ok(rows) if _finite(r.get("max_gap"))]
    if gaps and max(gaps) >= GAP:
        reasons.append("time gaps: calls off their inputs' times")
    if facts.get("clip_sample") or facts.get("thresholding"):
        reasons.append("clipping")
    defect = _fit(rows, "final_defect")
    fd = _finest(rows, "final_defect")
    t0, t1 = _finest(rows, "t_before_final"), _finest(rows, "t_end")
    forward = _finite(t0) and _finite(t1) and t0 > t1  # a step towards data, not garbage
    if (
        forward
        and defect is not None
        and (not defect.ok or defect.slope < 0.3)
        and _finite(fd)
        and (fd >= 0.3 * floor)
    ):
        reasons.append(
            f"final step: the same step from t={t0:.3g} to t={t1:.3g} at every N adds {fd:.1e}"
        )
    if floor < FLOAT32_LEVEL * scale and not str(_float64(facts)[0]).startswith("yes"):
        reasons.append("float32 round-off")
    return ", ".join(reasons) or "cause not identified by the probes"


def _repeats(ok) -> str:
    reps = {r["repeats"] for r in ok if r.get("repeats")}
    return f"; repeated times per run: {','.join(map(str, sorted(reps)))}" if reps else ""


# --- outputs ---------------------------------------------------------------------------------

COLUMNS = [
    "steps",
    "divides_T",
    "status",
    "nfe",
    "t_start",
    "t_end",
    "err_ode",
    "err_data",
    "err_before_final",
    "t_before_final",
    "final_defect",
    "err_first",
    "t_mid",
    "err_mid",
    "max_gap",
    "calls_off",
    "worst_t_call",
    "worst_t_state",
    "family_err",
    "family_nfe",
    "ref_acc",
    "repeats",
    "call_timesteps",
]


def slug(sampler: str) -> str:
    """A file-name stem for a sampler label."""
    keep = [c if c.isalnum() or c in "-." else "_" for c in sampler]
    text = "".join(keep)
    while "__" in text:
        text = text.replace("__", "_")
    return text.strip("_")[:120]


def rows_csv(rows: list[dict[str, Any]], extra: dict[str, Any] | None = None, columns=None) -> str:
    import csv
    import io

    columns = columns or COLUMNS
    buf = io.StringIO()
    head = list(extra or {}) + columns
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    for r in rows:
        vals = list((extra or {}).values()) + [r.get(c, "") for c in columns]
        writer.writerow(
            ["" if v is None else (repr(v) if isinstance(v, float) else v) for v in vals]
        )
    return buf.getvalue()


def write(report: AuditReport, out: Path | str) -> list[Path]:
    """Write ``<slug>.csv`` (rows), ``<slug>_card.txt`` and ``<slug>.png`` into ``out``,
    each atomically (a temporary file renamed into place)."""
    import os
    import tempfile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = slug(report.sampler)
    csv_path, card_path, fig_path = (
        out / f"{stem}.csv",
        out / f"{stem}_card.txt",
        out / f"{stem}.png",
    )
    columns = None
    if report.facts.get("kind") == "function":
        from .functions import FUNCTION_COLUMNS

        columns = FUNCTION_COLUMNS
    if report.facts.get("stochastic"):
        from . import stochastic_card

        columns = stochastic_card.COLUMNS
    atomic_write_text(csv_path, rows_csv(report.rows, {"sampler": report.sampler}, columns))
    atomic_write_text(card_path, report.card() + "\n")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{stem}.", suffix=".png")
    os.fchmod(fd, new_file_mode())  # as any new file, not mkstemp's 0600
    os.close(fd)
    try:
        plot(report, Path(tmp))
        os.replace(tmp, fig_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return [csv_path, card_path, fig_path]


def plot(report: AuditReport, path: Path) -> Path:
    """Error against NFE (log-log): the scheduler against its own ODE and against data, and
    odebench's solver of the same family at equal NFE; fitted slope in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = sorted(_ok(report.rows), key=lambda r: r["nfe"])
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    draw(ax, report, ok)
    ax.set_title(report.sampler, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
    return path


def draw(ax, report: AuditReport, ok: list[dict[str, Any]] | None = None, legend: bool = True):
    """Draw one audit's error curves on ``ax``."""
    if report.facts.get("stochastic"):
        from .stochastic_card import draw as draw_stochastic

        return draw_stochastic(ax, report, legend)
    ok = ok if ok is not None else sorted(_ok(report.rows), key=lambda r: r["nfe"])
    ode = report.fits.get("ode")
    label = f"own ODE (order {_fmt_fit(ode)})" if ode and ode.ok else "own ODE"
    for key, lab, style in (("err_ode", label, "o-"), ("err_data", "against data", "x--")):
        pts = [(r["nfe"], r[key]) for r in ok if _finite(r.get(key)) and r[key] > 0]
        if pts:
            ax.loglog(*zip(*pts, strict=True), style, label=lab, ms=3)
    fam = [
        (r["family_nfe"], r["family_err"])
        for r in ok
        if _finite(r.get("family_err")) and r["family_err"] > 0 and r.get("family_nfe")
    ]
    if fam:
        ax.loglog(
            *zip(*fam, strict=True), "s:", ms=3, label=f"odebench {report.facts.get('family')}"
        )
    ax.set_xlabel("NFE")
    ax.set_ylabel("RMS error")
    ax.grid(True, which="both", alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def audit(
    sampler: Any,
    config: dict[str, Any] | str | None = None,
    **options: Any,
) -> AuditReport:
    """Measure ``sampler`` from outside and return its report card. ``sampler`` is a
    scheduler class, "diffusers:Name" or a scheduler instance (its config is used; options of
    :func:`odebench.audit.measure.measure`: problem, schedule, steps, n_samples, seed, claim,
    probe_steps), or a k-diffusion-style function, "path/file.py:name" or
    "package.module:name" (:mod:`.functions`; options problem, schedule, steps, n_samples,
    seed, claim; no config)."""
    from . import functions
    from .measure import measure

    if functions.is_function_spec(sampler) or (
        callable(sampler) and not isinstance(sampler, type) and not hasattr(sampler, "step")
    ):
        if config:
            raise ValueError("a sampler function takes no --config")
        if options.pop("strong", None):
            raise ValueError("--strong is for stochastic diffusers schedulers, not functions")
        name = sampler if isinstance(sampler, str) else None
        fn = functions.load(sampler) if isinstance(sampler, str) else sampler
        if options.get("schedule") is None:
            options["schedule"] = "linear"
        rows, facts = functions.measure_function(fn, name=name, **options)
        return functions.build_function_report(rows, facts)
    if options.get("schedule", "") is None:
        options.pop("schedule")
    rows, facts = measure(sampler, config, **options)
    return build_report(rows, facts)
