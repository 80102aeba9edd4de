"""Pool workers die with their parent, even one killed with SIGKILL (issue 17).

``odebench run STUDY --workers 2`` is started in a subprocess; once both workers are computing,
the parent is killed with SIGKILL (it runs no code: no pool shutdown). Every process it had
started (the workers, and the pool's resource tracker) must be gone a few seconds later.
The cells sleep, so the workers are alive and busy when the parent dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from odebench.study import Field, StudyKind, register

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def run_cell(config: dict[str, Any]) -> list[dict[str, Any]]:
    """A cell that outlives the test unless its worker is killed."""
    time.sleep(120)
    return [{"value": config["index"]}]


register(
    StudyKind(
        name="reliability-sleep",
        grid={"index": Field(int, help="cell")},
        options={},
        ladder_axes=(),
        run_cell=run_cell,
    )
)

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import test_reliability_orphans  # registers the kind
from odebench.cli import main
sys.exit(main(["run", {study!r}, "--workers", "2", "--out", {out!r}, "--no-progress"]))
"""
STUDY = '[study]\nname = "s"\nkind = "reliability-sleep"\n[grid]\nindex = [1, 2, 3, 4]\n'


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_and_tracker_die_with_a_killed_parent(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    script = SCRIPT.format(
        tests=str(Path(__file__).parent), study=str(study), out=str(tmp_path / "out")
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the tracker and the two workers
            started = _children(parent.pid)
            if len(started) >= 3:
                break
            assert parent.poll() is None, "the run ended before its workers started"
            time.sleep(0.2)
        assert len(started) >= 3, started
        time.sleep(1.0)  # let the workers reach their initializer
        started = _children(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, started)):
            time.sleep(0.2)
        assert not [p for p in started if _alive(p)], "processes outlived their parent"
    finally:  # whatever the outcome, leave nothing behind
        if parent.poll() is None:
            parent.kill()
        for pid in [*started, *_children(parent.pid)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
