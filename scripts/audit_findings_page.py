"""Write the tables of docs/audit-findings.md from the audit studies' repro indexes.

    python scripts/audit_findings_page.py

Everything after the page's ``<!-- FINDINGS -->`` marker is made here, from
``figures/audit/repro/index.csv``, ``figures/audit_flow/repro/index.csv`` and
``figures/audit_stochastic/repro/index.csv`` (written by ``odebench run studies/NAME.toml``
for audit, audit_flow and audit_stochastic): how many
findings each counterfactual removed, then every finding with odebench's numbers, the
counterfactual, its script and the upstream issue. The text before the marker is kept.
``--check`` exits 1 when the page differs from what it would write.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "audit-findings.md"
MARKER = "<!-- FINDINGS -->"
STUDIES = [
    (
        "figures/audit/repro/index.csv",
        "odebench run studies/audit.toml",
        "The VP schedulers, eps prediction (`studies/audit.toml`)",
    ),
    (
        "figures/audit_flow/repro/index.csv",
        "odebench run studies/audit_flow.toml",
        "Flow matching, EDM, x0 and v prediction (`studies/audit_flow.toml`)",
    ),
    (
        "figures/audit_stochastic/repro/index.csv",
        "odebench run studies/audit_stochastic.toml",
        "Stochastic samplers (`studies/audit_stochastic.toml`)",
    ),
]
COMMAND = "python scripts/audit_findings_page.py"
#: upstream issues, by what the finding is (only those found; the page says how searched)
DDIM_RULE = (
    "[#12633](https://github.com/huggingface/diffusers/issues/12633), "
    "[#11347](https://github.com/huggingface/diffusers/issues/11347) (open)"
)
LMS = "related: [#3598](https://github.com/huggingface/diffusers/issues/3598) (open)"
NONE = "none of the probes"


def change(cause: str) -> str:
    """The counterfactual an index row's cause names ("... (together)" for a combination)."""
    if cause.startswith(NONE):
        return NONE
    match = re.match(r".*? -> \S+ with (.*?) together \(", cause)
    if match:
        return match.group(1) + " (together)"
    match = re.match(r".*? -> \S+ with (.*?): ", cause)
    return match.group(1) if match else cause


def numbers(cause: str) -> str:
    """odebench's number before and after the counterfactual (before only where none)."""
    pattern = (
        r"none of the probes removes it \((.*?);"
        if cause.startswith(NONE)
        else r"(.*? -> \S+) with"
    )
    match = re.match(pattern, cause)
    return match.group(1) if match else ""


def upstream(row: dict[str, str]) -> str:
    fix = change(row["cause"])
    if row["sampler"].startswith("DDIMScheduler") and fix.startswith("steps to the grid"):
        return DDIM_RULE
    if row["sampler"].startswith("LMSDiscreteScheduler") and row["kind"] in ("floor", "order"):
        return LMS
    return "none found"


def read(path: str) -> list[dict[str, str]]:
    with (ROOT / path).open() as f:
        return list(csv.DictReader(f))


def table(index: list[dict[str, str]]) -> str:
    out = [
        "| sampler | finding | odebench's numbers | removed by | script | upstream issue |",
        "|---|---|---|---|---|---|",
    ]
    for r in index:
        sampler = r["sampler"].replace("|", "/")
        out.append(
            f"| `{sampler}` | {r['kind']} | {numbers(r['cause'])} | {change(r['cause'])} "
            f"| `{r['script']}` | {upstream(r)} |"
        )
    return "\n".join(out)


def summary(index: list[dict[str, str]]) -> str:
    count = Counter((r["kind"], change(r["cause"])) for r in index)
    out = ["| finding | removed by (odebench's counterfactual) | findings |", "|---|---|---|"]
    out += [f"| {kind} | {fix} | {n} |" for (kind, fix), n in sorted(count.items())]
    return "\n".join(out)


def findings(studies=STUDIES) -> str:
    """The page's text after the marker."""
    present = [(p, cmd, title) for p, cmd, title in studies if (ROOT / p).is_file()]
    parts = [
        "## Findings by cause\n\n"
        'How many findings of each kind each counterfactual removed ("together": only the '
        'probes\nnamed, applied at once; "none of the probes": the script shows the defect '
        "and lists what\nwas tried):\n"
    ]
    for path, cmd, title in present:
        source = f"Source: `{path}` (`{cmd}`; `{COMMAND}`)."
        parts.append(f"\n**{title}**\n\n{summary(read(path))}\n\n{source}\n")
    parts.append(
        "\n## Every finding\n\n"
        "Each row: the sampler as the study names it, the kind of finding, odebench's number "
        "before\nand after the counterfactual that removed it (from the card), that "
        "counterfactual, the\nscript (in the study's `repro/` folder) and the upstream issue.\n"
    )
    for path, cmd, title in present:
        index = read(path)
        source = f"Source: `{path}` (`{cmd}`; `{COMMAND}`)."
        folder = Path(path).parent
        parts.append(
            f"\n### {title}\n\n{len(index)} findings, scripts in `{folder}/`.\n\n"
            f"{table(index)}\n\n{source}\n"
        )
    return "".join(parts)


def page(text: str) -> str:
    """``text`` (the page) with everything after the marker made anew."""
    if MARKER not in text:
        raise ValueError(f"{PAGE.name}: no {MARKER} marker")
    return text.split(MARKER)[0].rstrip() + f"\n\n{MARKER}\n" + findings()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    text = PAGE.read_text()
    try:
        new = page(text)
    except ValueError as err:
        print(f"audit_findings_page: {err}", file=sys.stderr)
        return 2
    if args.check:
        return 0 if new == text else 1
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
