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


def _off(prep, keys: tuple[str, ...]) -> dict[str, bool]:
    """The config switches among ``keys`` that are on, switched off."""
    return {k: False for k in keys if prep.effective.get(k) is True}


def _inline(name: str) -> bool:
    return name in tpl.FIXES or name in ("next-grid-time", "exact-call-times")


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
            f"odebench's counterfactual {', '.join(missing)} has no inline version "
            "here: the script shows the defect only"
        )
        names = []
    elif best is not None:
        what = " + ".join(p.change for p in best.probes)
        tail = getattr(cause, "tail", {})
        cause_text = "; ".join(tail.get(p.name, p.cause) for p in best.probes)
        fix_text = f"{what} (odebench's counterfactual, inline)"
    else:
        cause_text = "none of odebench's counterfactual probes removes it (their numbers above)"
        fix_text = "none (no counterfactual removed it: it prints what was tried)"
    tried = [f"{a.name} {_fmt(v)}" for a, v in cause.numbers] or ["nothing applied"]
    user_text = report.facts.get("user_config") or "{}"
    values = {
        "TITLE": _wrap(f"{report.sampler}: {cause.kind.name} ({cause.kind.label})", 0),
        "VERSION": version,
        "CONFIG_TEXT": _wrap(
            f"{prep.cls.__name__}, config {user_text}"
            + (f" on the table {schedule}" if iface.interpolant == "vp" else "")
        ),
        "FINDING": _wrap(finding),
        "NUMBERS": _wrap(_numbers(cause)),
        "CAUSE": _wrap(cause_text),
        "FIX_TEXT": _wrap(fix_text),
    }
    spec = _Spec(prep, config, schedule, cause.kind.name, names, ends, report)
    text = tpl.fill(assemble(spec, "; ".join(tried)), values)
    return Script(name, text, report.sampler, finding, cause.kind.name, cause.text())


@dataclass
class _Spec:
    """What a script needs: its scheduler, finding kind, counterfactual and ladder."""

    prep: Any
    config: dict[str, Any]
    schedule: str
    kind: str
    fixes: list[str]
    ends: dict[int, float]
    report: AuditReport

    @property
    def iface(self):
        return self.prep.setup.iface


def assemble(spec: _Spec, tried: str) -> str:
    """A script's text for ``spec``: only the snippets (:data:`.repro_template.SNIPPETS`) its
    finding needs, their switches folded in; the header's placeholders left to fill."""
    if spec.kind in tpl.LAW_MEASURES and spec.report.facts.get("stochastic"):
        return assemble_law(spec, tried)
    iface, kind, fixes = spec.iface, spec.kind, spec.fixes
    path, state = iface.interpolant, str(spec.report.facts.get("state_kind", "vp"))
    output = iface.kind
    steps = any(n in EXACT_STEPS for n in fixes)
    retime = "exact-call-times" in fixes
    on_ladder = kind in tpl.LADDER_KINDS
    times = kind == "time gap" or retime  # state_times(): a point-mass run
    runs = kind != "float32 table"
    multistage = any(int(r.get("repeats", 0) or 0) > 0 for r in _ok(spec.report.rows))
    snip = tpl.SNIPPETS
    parts = []
    if runs:
        parts.append(snip["coeffs", path])
        if times or (steps and state == "sigma-scaled"):
            parts.append(snip["time_of_b", "vp" if state == "sigma-scaled" else path])
        if output == "edm":
            parts.append(snip["c_in", "edm"])
        parts.append(snip["model", "head"] + _model_body(output))
        if on_ladder or steps:
            parts.append(snip["flow", ""])
    parts.append(snip["original", ""])
    if on_ladder:
        parts.append(snip["rms", ""])
    if runs:
        parts.append(_run(spec, on_ladder, times, retime, state, output))
    if times:
        parts.append(snip["state_times", ""])
    if kind == "time gap":
        parts.append(snip["gap", ""])
    if kind == "float32 state":
        parts.append(snip["nonlinearity", ""])
    if kind == "float32 table":
        parts.append(snip["table_deviation", ""])
    if kind == "order":
        parts.append(snip["order", ""])
    if any(n.startswith("float64") for n in fixes):
        parts.append(snip["Float64View", ""])
    if steps:
        parts.append(_exact_steps(state, path, multistage))
    parts.extend(_fix(n, spec) for n in fixes if n != "exact-call-times")
    parts.append(tpl.MEASURE + _main(spec, on_ladder, retime))
    body = "".join(parts)
    values = {
        **_shared_values(spec, tpl.MEASURES[kind], on_ladder),
        "RETIME_CALL": ", times=state_times(n) if retime else None" if retime else "",
        "RETIME_TRUE": ", retime=True" if retime else "",
        "SLICE": "[:3]" if times else "",
        "GAP": "0.0 if retime else gap(make, n)" if retime else "gap(make, n)",
        "MEASURE_ARGS": (", steps" if on_ladder else "") + (", retime=False" if retime else ""),
        "SIGMA_TIME": "1.0 - s" if iface.reverse else "s",
    }
    body = tpl.fill(body, values, strict=False)
    head = _head(body, on_ladder, runs and bool(spec.report.facts.get("stochastic")))
    return head + _constants(spec, runs, on_ladder or steps, tried) + body


def _shared_values(spec: _Spec, measure: str, on_ladder: bool) -> dict[str, str]:
    """The placeholders every script fills alike: its measure, label, path and arguments."""
    iface = spec.iface
    return {
        "MEASURE": measure,
        "LABEL": tpl.LABELS[spec.kind],
        "OUTPUT": iface.kind,
        "SET": ", **SET_KWARGS" if iface.set_kwargs else "",
        "STEP": ", **STEP_KWARGS" if spec.prep.step_args else "",
        "STEPS": ", steps" if on_ladder else "",
        "FLOW_TIME": "1 - float(timestep) / T" if iface.reverse else "float(timestep) / T",
        "VELOCITY": "-(b * (x - mean) / var - x0)"
        if iface.reverse
        else "b * (x - mean) / var - x0",
        "SIGN": "-" if float(iface.sign) < 0 else "",
    }


def _head(body: str, on_ladder: bool, stochastic: bool = False) -> str:
    """The header docstring and the imports ``body`` uses (placeholders left to fill)."""
    head = tpl.HEAD.replace("{{USAGE}}", tpl.USAGE if on_ladder else "")
    if stochastic:
        head = head.replace("exact end states.", "seeded noise.")
    imports = [m for m in ("copy", "math", "sys", "warnings") if m + "." in body]
    return head.replace("{{IMPORTS}}", "\n".join(f"import {m}" for m in imports))


def assemble_law(spec: _Spec, tried: str) -> str:
    """The script of a stochastic sampler's finding read from its laws (a weak floor: W2 of
    M seeded runs to the exact law, as the audit's Monte Carlo estimate; a time gap: each
    input's exact law from designed noise rows). Its runs draw step()'s noise from a seeded
    generator. (A float32 state or table is :func:`assemble`'s, the generator seeded.)"""
    iface, kind, fixes = spec.iface, spec.kind, spec.fixes
    snip, output = tpl.SNIPPETS, iface.kind
    parts = [snip["coeffs", iface.interpolant]]
    if kind == "time gap":
        parts.append(snip["time_of_ratio", iface.interpolant])
    parts.append(snip["model", "head"] + _model_body(output))
    parts.append(snip["original", ""])
    parts.append(snip["run", "law"])
    if kind == "weak floor":
        parts.append(snip["w2", ""])
    if kind == "time gap":
        parts += [snip["state_times", "law"], snip["gap", ""]]
    if any(n.startswith("float64") for n in fixes):
        parts.append(snip["Float64View", ""])
    parts.extend(_fix(n, spec) for n in fixes)
    parts.append(tpl.MEASURE + _main(spec, True, False))
    scales = callable(getattr(spec.prep.cls, "scale_model_input", None))
    model_in = "sch.scale_model_input(state, timestep)" if scales else "state"
    scaled = str(spec.report.facts.get("state_kind")) == "sigma-scaled"
    values = {
        **_shared_values(spec, tpl.LAW_MEASURES[kind], True),
        "MODEL_IN": f"({model_in}).to(DTYPE)",
        "MEASURE_ARGS": ", steps",
        "GAP": "gap(make, n)",
        "RETIME_TRUE": "",
        "SCALE_START": (
            "    one = torch.ones(1, dtype=DTYPE)  # the scheduler's state: x / its scale\n"
            "    state = state / float(copy.deepcopy(sch).scale_model_input(one, steps[0])[0])\n"
            if scaled
            else ""
        ),
        "C_END_LINE": (
            "    c_end = 1.0 / math.hypot(float(sch.sigmas[-1]), 1.0)  # the state is x / a\n"
            if scaled
            else ""
        ),
        "C_END": " * c_end" if scaled else "",
    }
    body = tpl.fill("".join(parts), values, strict=False)
    constants = _constants(spec, True, True, tried)
    constants += "M = 4096  # seeded runs of a law (the audit's Monte Carlo sample)\n"
    facts = spec.report.facts
    if kind == "weak floor" and (facts.get("clip_sample") or facts.get("thresholding")):
        constants += (
            "# Clipping acts per coordinate: with the data on the axes (here) it clips more\n"
            "# than in odebench's rotated gaussian-lowrank, so W2 is larger than the card's;\n"
            "# the plateau and what removes it are the finding.\n"
        )
    return _head(body, True, True) + constants + body


def _model_body(output: str) -> str:
    snip = tpl.SNIPPETS
    if output == "eps":
        return snip["model", "eps"]
    body = snip["model", "x0"]
    if output == "velocity":
        return body + snip["model", "velocity"]
    return body + snip["model", {"x0": "x0-out"}.get(output, output)]


def _run(spec: _Spec, on_ladder: bool, times: bool, retime: bool, state: str, output: str):
    """run(): the pipeline loop, as the finding's measure calls it."""
    snip, iface = tpl.SNIPPETS, spec.iface
    scales = callable(getattr(spec.prep.cls, "scale_model_input", None))
    seeded = bool(spec.report.facts.get("stochastic"))
    text = snip["run", "head"]
    if not on_ladder:
        text += snip["run", "shift"]
    scaled = output == "edm" or (scales and not _scales_by_one(spec))
    text += snip["run", "scaled-state" if scaled else "state"]
    text += snip["run", "loop" if on_ladder else "loop-output"]
    if state == "sigma-scaled":
        text += snip["run", "c_end"]
    text += snip["run", "return" if on_ladder else "return-output"]
    c_in = output == "edm"
    model_in = ("sch.scale_model_input(state, timestep)" if scales else "state") + (
        " / c_in(t_call)" if c_in else ""
    )
    scale_one = "float(copy.deepcopy(sch).scale_model_input(one, steps[0])[0])"
    if not scales:
        scale_one = "1.0"
    args = (", mu=MU, s2=S2" if times else "") + (", times=None" if retime else "")
    if not on_ladder:
        doc = "The output of the pipeline loop for n steps, its start shifted by shift * 1e-9."
        if seeded:
            doc += "\n    step()'s noise is seeded alike in every run."
    else:
        doc = (
            "The pipeline loop for n steps: (n, error against the exact end state, the last"
            "\n    step's defect"
            + (", the model's inputs, the start's noise)" if times else ")")
            + (".\n    times: the model is told these times (a counterfactual)." if retime else ".")
        )
    values = {
        "RUN_ARGS": args + (", shift=0.0" if not on_ladder else ""),
        "RUN_DOC": doc,
        "MU": "mu" if times else "MU",
        "S2": "s2" if times else "S2",
        "SCALE_DIV": f"({scale_one} / c_in(t0))" if c_in else scale_one,
        "MODEL_IN": f"({model_in}).to(DTYPE)" if model_in != "state" else "state.to(DTYPE)",
        "LOOP_VAR": "k, timestep" if retime else "timestep",
        "LOOP_OVER": "enumerate(steps)" if retime else "steps",
        "CALL_TIME": "t_call if times is None else times[k]" if retime else "t_call",
        "MS": ", mu, s2" if times else "",
        "C_END": " * c_end" if state == "sigma-scaled" else "",
        "RUN_TAIL": ", seen, z" if times else "",
        # a stochastic sampler: step()'s noise from a generator seeded alike in every run
        "GEN_LINE": "    gen = torch.Generator().manual_seed(1)\n" if seeded else "",
        "GEN": ", generator=gen" if seeded else "",
    }
    del iface
    return tpl.fill(text, values, strict=False)


def _scales_by_one(spec: _Spec) -> bool:
    """Whether the scheduler's scale_model_input leaves a sample as it is (then the state is
    the interpolant's x and the script needs no division by its factor)."""
    import torch

    sch = spec.prep.cls.from_config(spec.config)
    sch.set_timesteps(10, **dict(spec.iface.set_kwargs))
    one = torch.ones(1, dtype=torch.float64)
    return float(sch.scale_model_input(one, sch.timesteps[0])[0]) == 1.0


def _exact_steps(state: str, path: str, multistage: bool) -> str:
    """exact_steps() and the time_of_sigma() it needs, for the state variable's kind."""
    snip = tpl.SNIPPETS
    by_sigmas = state != "vp"
    text = ""
    if by_sigmas:
        key = "sigma-scaled" if state == "sigma-scaled" else ("ve" if path == "ve" else "flow")
        text += snip["time_of_sigma", key]
    text += snip["exact_steps", "head"]
    if by_sigmas:
        text += snip["exact_steps", "by-sigmas"]
    text += tpl.fill(
        snip["exact_steps", "by-timesteps"], {"INDENT": " " * (20 if by_sigmas else 16)}
    )
    if multistage:
        text += snip["exact_steps", "multistage"]
    text += snip["exact_steps", "select"]
    text += snip["exact_steps", "scaled-step" if state == "sigma-scaled" else "step"]
    text += snip["exact_steps", "tail"]
    first = '                first = getattr(self, "state_in_first_order", None)\n'
    return tpl.fill(
        text,
        {
            "FIRST": first if multistage else "",
            "STARTS": " or not starts" if multistage else "",
        },
        strict=False,
    )


def _fix(name: str, spec: _Spec) -> str:
    """The inline code of one counterfactual, its switches filled."""
    prep, config = spec.prep, spec.config
    key = name
    if name == "next-grid-time":
        ddim = not callable(getattr(prep.cls, "previous_timestep", None))
        key = "next-grid-time:" + ("ddim" if ddim else "previous_timestep")
    nominal = spec.report.facts.get("nominal")
    order = config.get("solver_order") or (math.ceil(nominal) if _finite(nominal) else 1)
    values = {
        "FLIPS": _literal(_off(prep, ("lower_order_final", "euler_at_final"))),
        "CLIPS": _literal(_off(prep, ("clip_sample", "thresholding"))),
        "WARM": str(int(order) - 1),
    }
    return tpl.fill(tpl.FIXES[key], values)


def _main(spec: _Spec, on_ladder: bool, retime: bool) -> str:
    """main(): the defect's numbers, then with the counterfactual (or what was tried)."""
    fixes = spec.fixes
    text = tpl.MAIN["ladder" if on_ladder else "one"] + tpl.MAIN["before"]
    if fixes:
        make = "original"
        for n in fixes:
            if n != "exact-call-times":
                make = f"fix_{n.replace('-', '_')}({make})"
        text += tpl.fill(
            tpl.MAIN["fixed"],
            {
                "FIX_LIST": ", ".join(n.replace("-", "_") for n in fixes),
                "MAKE": make,
            },
            strict=False,
        )
    else:
        text += tpl.MAIN["tried"]
    return text + tpl.MAIN["tail"]


def _constants(spec: _Spec, runs: bool, ends: bool, tried: str) -> str:
    """The script's constants: only those its code reads."""
    iface, kind = spec.iface, spec.kind
    vp_table = kind == "float32 table" or (runs and iface.interpolant == "vp")
    lines = [f"CLASS = diffusers.{spec.prep.cls.__name__}", _dense("CONFIG", spec.config)]
    if iface.set_kwargs:
        lines.append(_dense("SET_KWARGS", dict(iface.set_kwargs)) + "  # set_timesteps(N, **)")
    if spec.prep.step_args:
        lines.append(_dense("STEP_KWARGS", dict(spec.prep.step_args)) + "  # step(..., **)")
    if runs:
        lines.append(f"T = {int(iface.T)}  # num_train_timesteps")
    if runs and (iface.interpolant == "ve" or iface.kind == "edm"):
        sigma_max = float(getattr(iface.schedule, "sigma_max", 80.0) or 80.0)
        lines.append(f"SIGMA_MAX, SIGMA_DATA = {sigma_max!r}, {float(iface.sigma_data)!r}")
    text = "\n".join(lines) + "\n"
    if vp_table:
        betas = BETAS.get(spec.schedule, BETAS["ddpm-linear-1000"])
        table = tpl.fill(tpl.VP_TABLE, {"BETAS": betas})
        lines = table.splitlines(keepends=True)
        text += "".join(s for s in lines if runs or not s.startswith("KNOTS_T"))
    text += tpl.DATA if runs else "DTYPE = torch.float64\n"
    if ends:
        ladder = sorted(spec.ends)
        text += (
            "# odebench's ladder of N, and per N the time t its output is at (point-mass probe)\n"
        )
        text += _dense("LADDER", ladder) + "\n"
        values = set(spec.ends.values())
        if len(values) == 1:
            text += f"END = dict.fromkeys(LADDER, {values.pop()!r})\n"
        else:
            text += _dense("END", spec.ends) + "\n"
    if kind in ("float32 state", "float32 table"):
        text += f"PROBE_N = {int(spec.report.facts.get('probe_steps', 50) or 50)}\n"
    if not spec.fixes:
        text += "# odebench's counterfactuals, and what was left of the defect\n"
        text += 'TRIED = """' + _wrap(tried, 0, 86) + '"""\n'
    return text


def _dense(name: str, value: Any, width: int = 95) -> str:
    """``NAME = literal`` on one line, or its items packed into lines of ``width``."""
    one = f"{name} = {_literal(value, 10**6)}"
    if len(one) <= width:
        return one
    if isinstance(value, dict):
        items = [f"{_literal(k)}: {_literal(v)}" for k, v in value.items()]
        opening, closing = "{", "}"
    else:
        items = [_literal(v) for v in value]
        opening, closing = "[", "]"
    lines = _pack([item + "," for item in items], width - 4)
    return f"{name} = {opening}\n" + "".join(f"    {s}\n" for s in lines) + closing


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


def _pack(words: list[str], limit: int) -> list[str]:
    """``words`` joined by spaces into lines of at most ``limit`` characters (a longer word
    alone on its line)."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > limit:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


def _wrap(text: str, indent: int = 12, width: int = 92) -> str:
    return ("\n" + " " * indent).join(_pack(text.split(), width - indent))


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
