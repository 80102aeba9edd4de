"""Cached cells are checked, output folders are held by one run, files honour the umask
(issue 17).

A cache entry edited into other valid JSON (one error times 1000) is recomputed with a
warning instead of going into the table; a second run into a folder another run holds is
refused in one line; tables and cache files get the permissions of any new file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from odebench.study import CacheWarning, parse_study, run_study
from odebench.study.cache import CACHE_DIRNAME, atomic_write_text, rows_checksum
from odebench.study.lock import locked

try:  # the dummy kind registers itself on import (a module of its own for spawn workers)
    from . import _dummy_kind
except ImportError:
    import _dummy_kind  # noqa: F401

STUDY = {
    "study": {"name": "tiny", "kind": "dummy"},
    "grid": {"solvers": ["a", "b"], "steps": [2, 4, 8]},
}


def _run(out: Path):
    return run_study(parse_study(STUDY), out=out, progress=False)


def _entries(out: Path) -> list[Path]:
    return sorted((out / CACHE_DIRNAME).glob("*.json"))


def test_an_edited_cache_entry_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    first = _run(tmp_path).csv.read_bytes()
    path = _entries(tmp_path)[0]
    record = json.loads(path.read_text())
    record["rows"][0]["error"] *= 1000  # still valid JSON, still the right config
    path.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        again = _run(tmp_path)
    assert again.n_computed == 1 and again.n_cached == 1
    assert again.csv.read_bytes() == first
    assert json.loads(path.read_text())["checksum"] == record["checksum"]  # rewritten, valid


def test_an_entry_without_its_checksum_is_recomputed(tmp_path: Path) -> None:
    _run(tmp_path)
    path = _entries(tmp_path)[1]
    record = json.loads(path.read_text())
    del record["checksum"]
    path.write_text(json.dumps(record))
    with pytest.warns(CacheWarning):
        assert _run(tmp_path).n_computed == 1


def test_the_checksum_covers_the_key_and_every_number() -> None:
    rows = [{"steps": 2, "error": 0.25}]
    assert rows_checksum("k", rows) != rows_checksum("k2", rows)
    assert rows_checksum("k", rows) != rows_checksum("k", [{"steps": 2, "error": 250.0}])
    assert rows_checksum("k", rows) == rows_checksum("k", [{"error": 0.25, "steps": 2}])


def test_a_folder_held_by_another_run_is_refused_in_one_line(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(
        '[study]\nname = "tiny"\nkind = "dummy"\n[grid]\nsolvers = ["a"]\nsteps = [2, 4]\n'
    )
    out = tmp_path / "out"
    out.mkdir()
    with locked(out):  # another run (an open file description of its own) holds it
        result = run_cli("run", str(path), out=out)
    result.failed_in_one_line("is in use by another run")
    assert not (out / CACHE_DIRNAME).exists()
    assert run_cli("run", str(path), out=out).code == 0  # free again once released


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        result = _run(tmp_path / "out")
        atomic_write_text(tmp_path / "plain.txt", "x\n")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for path in [result.csv, result.summary_csv, *_entries(tmp_path / "out")]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected


def test_an_audit_writes_its_files_with_the_umask(tmp_path: Path) -> None:
    """The audit's figure too (written through a temporary file, which mkstemp makes 0600)."""
    from odebench.cli import main

    old = os.umask(0o022)
    try:
        sampler = f"{Path(__file__).parent / 'test_audit_functions.py'}:sample_euler"
        args = ["audit", sampler, "--steps", "8,16,32", "--n-samples", "4", "--out", str(tmp_path)]
        assert main(args) == 0
    finally:
        os.umask(old)
    written = [p for p in tmp_path.iterdir() if p.suffix in (".csv", ".txt", ".png")]
    assert {p.suffix for p in written} == {".csv", ".txt", ".png"}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
