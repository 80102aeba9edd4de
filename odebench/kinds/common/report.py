"""What the command line prints after a study: tables read back from the files it wrote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ...study import StudyResult


def read_table(result: StudyResult) -> pd.DataFrame:
    """The study's tidy table as written (``<name>.csv``)."""
    return pd.read_csv(result.csv)


def read_summary(result: StudyResult) -> pd.DataFrame | None:
    """The summary as written (``<name>_summary.csv``): None if the kind has none, an empty
    frame if it had nothing to summarize."""
    if result.summary_csv is None:
        return None
    try:
        return pd.read_csv(result.summary_csv)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def cell_blocks(
    summary: pd.DataFrame, keys: Sequence[str], table: Callable[[pd.DataFrame], str]
) -> str | None:
    """One block per cell: a blank line, ``key=value, ...`` of the cell, then ``table`` of its
    rows; None for an empty summary. ``keys`` absent from the summary are skipped."""
    present = [k for k in keys if k in summary.columns]
    if not present or not len(summary):
        return None
    blocks = []
    for cell, group in summary.groupby(present, sort=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        header = ", ".join(f"{k}={v}" for k, v in zip(present, cell, strict=True))
        blocks.append(f"\n{header}\n{table(group)}")
    return "\n".join(blocks)
