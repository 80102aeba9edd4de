"""An audit holds its output folder as ``odebench run`` does (issue 17).

Two audits into one folder at once would each write their table, card and figure over the
other's; the second one is refused in one line (exit 2) before it computes anything, and the
folder is free again once the first one ends, killed or not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odebench.cli import main
from odebench.study.lock import locked

SAMPLER = f"{Path(__file__).parent / 'test_audit_functions.py'}:sample_euler"
HOLD = """
import sys, time
from pathlib import Path
from odebench.study.lock import locked
with locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def _audit(out: Path) -> int:
    return main(["audit", SAMPLER, "--steps", "8,16,32", "--n-samples", "4", "--out", str(out)])


def _refused(code: int, capsys: pytest.CaptureFixture[str], out: Path) -> None:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "is in use by another run" in lines[0], err
    assert "Traceback" not in err
    assert not [p for p in out.iterdir() if p.suffix in (".csv", ".txt", ".png")]


def test_a_second_audit_into_a_held_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    out.mkdir()
    with locked(out):  # another run (an open file description of its own) holds it
        _refused(_audit(out), capsys, out)
    assert _audit(out) == 0  # free again once released
    assert [p.stat().st_size > 0 for p in out.glob("*sample_euler.csv")] == [True]


def test_an_audit_is_refused_while_another_process_holds_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        _refused(_audit(out), capsys, out)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert _audit(out) == 0  # the kernel dropped the killed holder's lock
