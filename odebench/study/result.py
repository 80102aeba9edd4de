"""What a finished study run produced (:class:`StudyResult`), kept apart from the runner so
that the kind registry can name it without importing the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is only needed for the type hints; keep worker imports light.
    import pandas as pd

__all__ = ["StudyResult"]


@dataclass(frozen=True)
class StudyResult:
    """What a finished run produced and how much of it came from the cache.

    ``kind`` names the study's kind, whose ``format_summary`` reads these files back.
    """

    csv: Path
    summary_csv: Path | None
    figures: list[Path]
    n_cells: int
    n_cached: int
    n_computed: int
    dataframe: pd.DataFrame = field(repr=False)
    kind: str = ""
