"""How many significant digits of a results table survive a rerun elsewhere?

    python scripts/compare_tables.py REFERENCE.csv OTHER.csv [--by problem] [--label NAME]
        [--out digits.csv] [--floor 1e-13]
    python scripts/compare_tables.py --summarize digits.csv [--exclude COL,...]

Compares two runs of the same study table cell by cell (same rows in the same order, same
columns): for every numeric column and every group of ``--by`` (default: problem), the largest
relative difference max |a - b| / max(|a|, |b|) and the significant digits that agree,
floor(-log10(that)), 16 when the values are bit-identical. Pairs whose magnitudes are both
below ``--floor`` are round-off by construction (e.g. an NLL excess of 1e-16 for an exact
solver) and are left out. A text column of ';'-separated numbers
(e.g. the local slopes of an order fit) is compared number by number; any other text column
gets 16 digits if every cell matches and 0 otherwise (e.g. a fit that left out other points).

Appends its rows (label, group, column, max_rel_diff, digits, cells, differing) to ``--out``
(written atomically) and prints the digits per group and column. ``--summarize`` reads such
a file back and prints a Markdown table: per label and group the fewest digits any column
keeps, and which column that is (columns in ``--exclude`` left out, e.g. quantities that are
round-off by construction).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def compare(a: pd.DataFrame, b: pd.DataFrame, by: str | None, floor: float) -> pd.DataFrame:
    """One row per (group, numeric column): max relative difference and agreeing digits."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        raise ValueError(
            f"the tables differ in shape or columns: {a.shape} vs {b.shape}, "
            f"{sorted(set(a.columns) ^ set(b.columns))}"
        )
    rows = []
    groups = a[by].astype(str).to_numpy() if by else np.array(["all"] * len(a))
    for col in a.columns:
        if col == by:
            continue
        x, y = a[col], b[col]
        if x.dtype.kind not in "fi" or y.dtype.kind not in "fi":
            lists = _number_lists(x, y)
            if lists is None:
                match = (x.fillna("").astype(str) == y.fillna("").astype(str)).to_numpy()
                for g in dict.fromkeys(groups):
                    m = groups == g
                    rows.append(_text_row(g, col, match[m]))
                continue
            xv, yv, groups_of = lists
            rows.extend(_numeric_rows(col, xv, yv, groups[groups_of], floor))
            continue
        rows.extend(_numeric_rows(col, x.to_numpy(float), y.to_numpy(float), groups, floor))
    return pd.DataFrame(rows)


def _text_row(group: str, col: str, match: np.ndarray) -> dict:
    return {
        "group": group,
        "column": col,
        "max_rel_diff": math.nan,
        "digits": 16 if match.all() else 0,
        "cells": len(match),
        "differing": int((~match).sum()),
    }


def _number_lists(x: pd.Series, y: pd.Series):
    """Cells of ';'-separated numbers, flattened (values, values, row of each), or None."""
    xs, ys, rows = [], [], []
    try:
        for i, (p, q) in enumerate(zip(x.fillna(""), y.fillna(""), strict=True)):
            a = [float(v) for v in str(p).split(";") if v != ""]
            b = [float(v) for v in str(q).split(";") if v != ""]
            if len(a) != len(b):
                return None
            xs += a
            ys += b
            rows += [i] * len(a)
    except ValueError:
        return None
    return np.asarray(xs), np.asarray(ys), np.asarray(rows, dtype=int)


def _numeric_rows(
    col: str, xv: np.ndarray, yv: np.ndarray, groups: np.ndarray, floor: float
) -> list[dict]:
    """Per group: the largest relative difference of the values and the digits that agree."""
    same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
    tiny = np.maximum(np.abs(xv), np.abs(yv)) < floor
    with np.errstate(all="ignore"):
        rel = np.abs(xv - yv) / np.maximum(np.abs(xv), np.abs(yv))
    rel = np.where(same | tiny, 0.0, rel)
    rows = []
    for g in dict.fromkeys(groups):
        m = groups == g
        worst = float(np.nanmax(rel[m])) if m.any() else math.nan
        digits = 16 if worst == 0 else max(0, math.floor(-math.log10(worst)))
        rows.append(
            {
                "group": g,
                "column": col,
                "max_rel_diff": worst,
                "digits": digits,
                "cells": int(m.sum()),
                "differing": int((~same[m] & ~tiny[m]).sum()),
            }
        )
    return rows


def _write_atomically(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summarize(rows: pd.DataFrame, exclude: set[str]) -> str:
    """Markdown: per label (rows) and group (columns), the fewest agreeing digits."""
    rows = rows[~rows["column"].isin(exclude)]
    groups = list(dict.fromkeys(rows["group"].astype(str)))
    lines = ["| table | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for label, g in rows.groupby("label", sort=False):
        cells = []
        for group in groups:
            h = g[g["group"].astype(str) == group]
            if h.empty:
                cells.append("")
                continue
            worst = h.loc[h["digits"].idxmin()]
            digits = int(worst["digits"])
            cells.append("all" if digits == 16 else f"{digits} ({worst['column']})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--summarize":
        parser = argparse.ArgumentParser(prog="compare_tables.py --summarize")
        parser.add_argument("digits", type=Path)
        parser.add_argument("--exclude", default="", help="columns to leave out, comma-separated")
        args = parser.parse_args(argv[1:])
        try:
            rows = pd.read_csv(args.digits)
        except (OSError, pd.errors.ParserError) as err:
            print(f"compare_tables: {err}", file=sys.stderr)
            return 2
        print(summarize(rows, {c for c in args.exclude.split(",") if c}), end="")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--by", default="problem", help="group column ('' for none)")
    parser.add_argument("--label", default="", help="a name for this comparison")
    parser.add_argument("--out", type=Path, help="CSV to append the rows to")
    parser.add_argument("--floor", type=float, default=1e-13, help="round-off magnitude")
    args = parser.parse_args(argv)
    try:
        a, b = pd.read_csv(args.reference), pd.read_csv(args.other)
        by = args.by or None
        if by is not None and by not in a.columns:
            raise ValueError(f"no column {by!r} to group by")
        rows = compare(a, b, by, args.floor)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        print(f"compare_tables: {err}", file=sys.stderr)
        return 2
    rows.insert(0, "label", args.label or args.reference.stem)
    table = rows.pivot(index="column", columns="group", values="digits")
    print(table.to_string())
    if args.out is not None:
        old = pd.read_csv(args.out) if args.out.is_file() else None
        _write_atomically(pd.concat([old, rows]) if old is not None else rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
