"""Reproductions for maintainers: one stand-alone script per finding of an audit card.

``odebench audit diffusers:NAME --repro DIR`` (and an audit study whose cells ran the
counterfactual probes) writes, for each finding the probes address (:data:`.causes.KINDS`),
``DIR/<sampler>__<kind>.py``: a script of a few dozen lines of its own code that imports
only torch, numpy, the standard library and diffusers. It builds a closed-form problem (see
:mod:`.repro_template`), runs the scheduler as a pipeline runs it, prints the defect with
numbers, applies the counterfactual that removed the finding (the probe of
:mod:`.counterfactual`, written inline) and prints the numbers again; a finding that no probe
removed gets a script that shows the defect and names what was tried. ``DIR/index.csv``
lists the scripts (sampler, finding, kind, cause, script).

The scripts are made from what an audit stores: the rows (the end time of each N), the
facts (class, user config, table, state variable) and the causes; so a study writes them
from its table without rerunning anything.

    reports = [audit_explained("diffusers:LMSDiscreteScheduler")]
    write_scripts(reports, "repro/")
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..study.cache import atomic_write_text
from . import repro_template as tpl
from .adapters import SET_TIMESTEPS_KEYS, STEP_KEYS, base_config
from .card import AuditReport, _finite, _ok
from .causes import UNKNOWN, Cause

#: numpy expressions of the VP tables (float64), as diffusers' beta_schedule defines them
BETAS = {
    "ddpm-linear-1000": "np.linspace(1e-4, 0.02, 1000)",
    "scaled-linear-1000": "np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2",
    "cosine-1000": (
        "np.minimum(1 - np.cos((np.arange(1, 1001) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2"
        " / np.cos((np.arange(1000) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2, 0.999)"
    ),
}
#: probes whose inline code the scripts carry (every probe of :data:`.counterfactual.PROBES`)
EXACT_STEPS = ("exact-warm-up", "exact-final-step", "exact-last-steps")
INDEX = "index.csv"
REPRO_DIR = "repro"  # the folder an audit study writes them into


@dataclass
class Script:
    """One reproduction: its file name, text, and what it reproduces."""

    name: str
    text: str
    sampler: str
    finding: str
    kind: str
    cause: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def file_stem(report: AuditReport) -> str:
    """``Class_key-value_...`` of a report's sampler (and its table/problem where not the
    defaults), usable as a file name."""
    facts = report.facts
    name = str(facts.get("scheduler_class") or report.sampler.split(" ")[0])
    user = json.loads(facts.get("user_config") or "{}")
    parts = [name] + [f"{_slug(k)}-{_slug(json.dumps(v))}" for k, v in sorted(user.items())]
    for key, default in (("schedule", "ddpm-linear-1000"), ("problem", "gaussian-lowrank")):
        if facts.get(key) not in (None, default):
            parts.append(_slug(str(facts[key])))
    return "_".join(parts)


def _interface(report: AuditReport):
    """(prepared audit, full scheduler config, set_timesteps kwargs) of a report's sampler."""
    from .measure import prepare

    facts = report.facts
    user = json.loads(facts.get("user_config") or "{}")
    name = str(facts.get("scheduler_class") or report.sampler.split(" ")[0])
    schedule = str(facts.get("schedule") or "ddpm-linear-1000")
    prep = prepare("diffusers:" + name, user, "gaussian-lowrank", schedule, 1, 0)
    own = {k: v for k, v in user.items() if k not in SET_TIMESTEPS_KEYS and k not in STEP_KEYS}
    vp = prep.setup.iface.interpolant == "vp"
    config = {**(base_config(schedule, prep.setup.T) if vp else {}), **own}
    return prep, config, schedule


def _fix_code(names: list[str], prep, config: dict[str, Any], report: AuditReport) -> str:
    code = ""
    if any(n.startswith("float64") for n in names):
        code += tpl.FLOAT64_VIEW
    if any(n in EXACT_STEPS for n in names):
        code += tpl.FIXES["exact-steps"]
    for name in names:
        key = name
        if name == "next-grid-time":
            ddim = not callable(getattr(prep.cls, "previous_timestep", None))
            key = "next-grid-time:" + ("ddim" if ddim else "previous_timestep")
        nominal = report.facts.get("nominal")
        order = config.get("solver_order") or (math.ceil(nominal) if _finite(nominal) else 1)
        values = {
            "FLIPS": _literal(_off(prep, ("lower_order_final", "euler_at_final"))),
            "CLIPS": _literal(_off(prep, ("clip_sample", "thresholding"))),
            "WARM": str(int(order) - 1),
        }
        code += tpl.fill(tpl.FIXES[key], values)
    return code


def _off(prep, keys: tuple[str, ...]) -> dict[str, bool]:
    """The config switches among ``keys`` that are on, switched off."""
    return {k: False for k in keys if prep.effective.get(k) is True}


def _inline(name: str) -> bool:
    return name in tpl.FIXES or name == "next-grid-time"


def _numbers(cause: Cause) -> str:
    return cause.text()


def script(report: AuditReport, cause: Cause, name: str, version: str, interface=None) -> Script:
    """The reproduction of one finding (``cause``, from ``report.counterfactuals``);
    ``interface``: :func:`_interface` of ``report`` if already made."""
    prep, config, schedule = interface or _interface(report)
    iface = prep.setup.iface
    # the attempt the card names: the fewest probes, singles in probe order
    best = min(cause.removed_by, key=lambda a: len(a.probes)) if cause.removed_by else None
    names = [p.name for p in best.probes] if best is not None else []
    missing = [n for n in names if not _inline(n)]
    ok = [r for r in _ok(report.rows) if _finite(r.get("t_end"))]
    ends = {int(r["steps"]): float(r["t_end"]) for r in ok}
    finding = cause.finding.split(" [counterfactual:")[0]
    finding = finding.replace(f" ({UNKNOWN})", "").replace(f"; {UNKNOWN}", "")
    if missing:  # a probe newer than the scripts' inline code
        cause_text = "; ".join(p.cause for p in best.probes)
        fix_text = (
            f"odebench's counterfactual {', '.join(missing)} has no inline version in these "
            "scripts: it shows the defect only."
        )
        names = []
    elif best is not None:
        what = " + ".join(p.change for p in best.probes)
        tail = getattr(cause, "tail", {})
        cause_text = "; ".join(tail.get(p.name, p.cause) for p in best.probes)
        fix_text = (
            f"Then it applies the counterfactual that removed the finding in odebench "
            f"({what}), written inline as a subclass, and prints the numbers again."
        )
    else:
        cause_text = "not identified: no counterfactual probe removed it"
        fix_text = "No counterfactual removed the finding: it shows the defect and what was tried."
    tried = [f"{a.name} {_fmt(v)}" for a, v in cause.numbers] or ["nothing applied"]
    sigma_max = float(getattr(iface.schedule, "sigma_max", 80.0) or 80.0)
    user_text = report.facts.get("user_config") or "{}"
    values = {
        "TITLE": _wrap(f"{report.sampler}: {cause.kind.name} ({cause.kind.label})", 0),
        "VERSION": version,
        "CLASS": prep.cls.__name__,
        "CONFIG_TEXT": _wrap(
            f"{prep.cls.__name__}, config {user_text}"
            + (f" on the table {schedule}" if iface.interpolant == "vp" else "")
        ),
        "FINDING": _wrap(finding),
        "NUMBERS": _wrap(_numbers(cause)),
        "CAUSE": _wrap(cause_text),
        "FIX_TEXT": _wrap(fix_text, 0),
        "CONFIG": _literal(config),
        "SET_KWARGS": _literal(dict(iface.set_kwargs)),
        "STEP_KWARGS": _literal(dict(prep.step_args)),
        "PATH": _literal(iface.interpolant),
        "REVERSE": repr(bool(iface.reverse)),
        "OUTPUT": _literal(iface.kind),
        "SIGN": repr(float(iface.sign)),
        "STATE": _literal(str(report.facts.get("state_kind", "vp"))),
        "T": str(int(iface.T)),
        "SIGMA_MAX": repr(sigma_max),
        "SIGMA_DATA": repr(float(iface.sigma_data)),
        "BETAS": BETAS.get(schedule, BETAS["ddpm-linear-1000"]),
        "END": _literal(ends),
        "LADDER": _literal(sorted(ends)),
        "MULTISTAGE": repr(any(int(r.get("repeats", 0) or 0) > 0 for r in ok)),
        "PROBE_N": str(int(report.facts.get("probe_steps", 50) or 50)),
        "FIX_NAMES": "[" + ", ".join("fix_" + n.replace("-", "_") for n in names) + "]",
        "RETIME": repr("exact-call-times" in names),
        "TRIED": '"""' + _wrap("; ".join(tried), 0, 86) + '"""',
        "MEASURE": tpl.MEASURES[cause.kind.name],
    }
    body = tpl.HEAD + tpl.COMMON + _fix_code(names, prep, config, report) + tpl.MAIN
    text = tpl.fill(body, values)
    return Script(name, text, report.sampler, finding, cause.kind.name, cause.text())


def _fmt(v: float) -> str:
    return f"{v:.2g}" if _finite(v) else "failed"


def _literal(value: Any, width: int = 60) -> str:
    """A Python literal of a JSON-like value as ruff formats it: double quotes, and a dict or
    list longer than ``width`` one item a line."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        items = [f"{_literal(k)}: {_literal(v)}" for k, v in value.items()]
        one = "{" + ", ".join(items) + "}"
        return one if len(one) <= width else "{\n" + "".join(f"    {i},\n" for i in items) + "}"
    if isinstance(value, list | tuple):
        items = [_literal(v) for v in value]
        one = "[" + ", ".join(items) + "]"
        return one if len(one) <= width else "[\n" + "".join(f"    {i},\n" for i in items) + "]"
    return repr(value)


def _wrap(text: str, indent: int = 12, width: int = 92) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width - indent:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def scripts(report: AuditReport, version: str | None = None) -> list[Script]:
    """A :class:`Script` per finding of ``report`` whose cause the probes looked for (empty
    when the report did not run them)."""
    if version is None:
        import diffusers

        version = diffusers.__version__
    stem, out, seen = file_stem(report), [], {}
    causes = report.counterfactuals.get("causes", [])
    interface = _interface(report) if causes else None
    for cause in causes:
        kind = _slug(cause.kind.name).replace("-", "_")
        seen[kind] = seen.get(kind, 0) + 1
        suffix = f"_{seen[kind]}" if seen[kind] > 1 else ""
        name = f"{stem}__{kind}{suffix}.py"
        out.append(script(report, cause, name, version, interface))
    return out


def write_scripts(reports: list[AuditReport], folder: Path | str) -> list[Path]:
    """Write every report's scripts and ``index.csv`` into ``folder`` (created), each
    atomically; ValueError (one line) when ``folder`` is a file or cannot be written, or when
    no report has a finding to reproduce."""
    all_scripts = [s for r in reports for s in scripts(r)]
    if not all_scripts:
        raise ValueError(
            "--repro: no finding to reproduce (the card has no finding the counterfactual "
            "probes address)"
        )
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--repro {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for s in all_scripts:
            atomic_write_text(folder / s.name, s.text)
            paths.append(folder / s.name)
        atomic_write_text(folder / INDEX, index_csv(all_scripts))
    except OSError as err:
        raise ValueError(f"--repro {folder}: cannot write ({err.strerror})") from None
    return [*paths, folder / INDEX]


def index_csv(items: list[Script]) -> str:
    """The index of the scripts: sampler, kind, finding, cause, script."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["sampler", "kind", "finding", "cause", "script"])
    for s in items:
        writer.writerow([s.sampler, s.kind, s.finding, s.cause, s.name])
    return buf.getvalue()


__all__ = [
    "INDEX",
    "REPRO_DIR",
    "Script",
    "file_stem",
    "index_csv",
    "script",
    "scripts",
    "write_scripts",
]
