"""Shared test settings and fixtures: deterministic hypothesis runs, float64, one torch thread,
and ``run_cli`` (the command line in-process).

Small float64 tensors are faster on one thread (no pool start-up per op), and
derandomized hypothesis runs make every CI run see the same examples. Plain helpers
(scripts as modules, a recording model, cell configs) are in ``_helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class CliRun:
    """What one ``odebench`` command did: exit status, stdout, stderr, its output folder."""

    code: int
    out: str
    err: str
    folder: Path

    def wrote(self, *names: str) -> None:
        """Assert that each of ``names`` is a non-empty file in the output folder."""
        for name in names:
            assert (self.folder / name).stat().st_size > 0, name

    def failed_in_one_line(self, needle: str) -> None:
        """Assert exit status 2, one line on stderr containing ``needle``, no traceback, and
        no table written."""
        lines = self.err.strip().splitlines()
        assert self.code == 2, (self.code, self.err)
        assert len(lines) == 1 and needle in lines[0], self.err
        assert "Traceback" not in self.err
        assert not list(self.folder.glob("*.csv"))


@pytest.fixture
def run_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliRun]:
    """``run_cli(*args, out=None)`` runs ``odebench ARGS --out OUT --no-progress`` in this
    process (OUT defaults to the test's tmp_path) and returns a :class:`CliRun`; a usage
    error is a CliRun with argparse's exit status, not a SystemExit."""
    from odebench.cli import main

    def run(*args: str, out: Path | None = None) -> CliRun:
        folder = Path(out) if out is not None else tmp_path
        try:
            code = main([*args, "--out", str(folder), "--no-progress"])
        except SystemExit as exit_:  # a usage error, reported by argparse
            code = exit_.code
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err, folder)

    return run
