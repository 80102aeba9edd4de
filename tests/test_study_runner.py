"""Tests for the generic study runner (odebench.study) with a dummy kind.

The dummy kind lives in ``tests/_dummy_kind.py`` so that spawned pool workers and Dask
workers can import its cell function. It logs one file per call (``DUMMY_LOG_DIR``) so the
tests can count real computations and see which process ran them, and fails on demand
(``DUMMY_FAIL_CELL``) to simulate an interrupted run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from odebench.study import (
    CacheWarning,
    Field,
    StudyError,
    StudyKind,
    cache_key,
    expand_cells,
    get,
    load_study,
    parse_study,
    register,
    run_study,
)
from odebench.study import kinds as kinds_module
from odebench.study.cache import CACHE_DIRNAME

try:  # tests/ as a package (if it gets an __init__.py) or as a rootdir on sys.path
    from . import _dummy_kind as dummy
except ImportError:
    import _dummy_kind as dummy

# ----------------------------------------------------------------------------- helpers

_DELETE = object()
BASE: dict[str, Any] = {
    "study": {"name": "t", "kind": "dummy"},
    "grid": {"solvers": ["a", "b"], "steps": [10, 20]},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    """A minimal TOML writer for the flat study files used here."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, body in data.items():
        if isinstance(body, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
    return "\n".join(lines) + "\n"


def modified(*changes: tuple[str, str | None, Any]) -> dict[str, Any]:
    """BASE with (section, key, value) changes; key None sets or deletes a whole section."""
    data = json.loads(json.dumps(BASE))
    for section, key, value in changes:
        if key is None:
            if value is _DELETE:
                del data[section]
            else:
                data[section] = value
        elif value is _DELETE:
            del data[section][key]
        else:
            data.setdefault(section, {})[key] = value
    return data


def write_study(folder: Path, data: dict[str, Any], name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(to_toml(data))
    return path


STUDY = {
    "study": {"name": "dummy-study", "kind": "dummy", "description": "runner test"},
    "grid": {"solvers": ["a", "b", "c"], "steps": [4, 8, 16], "scale": [1.0, 2.0]},
    "options": {"n_samples": 3},
}


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    return write_study(tmp_path, STUDY)


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where every run_cell call leaves one JSON file (pid + config)."""
    folder = tmp_path / "calls"
    folder.mkdir()
    monkeypatch.setenv("DUMMY_LOG_DIR", str(folder))
    monkeypatch.delenv("DUMMY_FAIL_CELL", raising=False)
    return folder


def calls(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def cache_files(out: Path) -> list[Path]:
    return sorted((out / CACHE_DIRNAME).glob("*.json"))


# ----------------------------------------------------------------------------- spec


def test_expansion_count_and_order(tmp_path: Path) -> None:
    # scale written before solvers: the kind's declared order (solvers, steps, scale) wins.
    data = {
        "study": {"name": "e", "kind": "dummy"},
        "grid": {"scale": [2, 0.5], "solvers": ["c", "a"], "steps": [40, 10, 20]},
    }
    spec = load_study(write_study(tmp_path, data))
    cells = expand_cells(spec)
    assert [(c["solvers"], c["scale"]) for c in cells] == [
        ("c", 2.0),
        ("c", 0.5),
        ("a", 2.0),
        ("a", 0.5),
    ]
    assert all(c["steps"] == [40, 10, 20] for c in cells)  # ladder kept whole, file order
    assert type(cells[0]["scale"]) is float  # int accepted for float, converted
    assert list(cells[0]) == ["solvers", "steps", "scale", "n_samples", "mode", "kind"]
    assert cells[0]["n_samples"] == 4 and cells[0]["mode"] == "ok"  # defaults filled
    assert cells[0]["kind"] == "dummy"


def test_scalar_axis_is_one_element_list_and_spec_fields(tmp_path: Path) -> None:
    data = modified(("grid", "solvers", "b"), ("study", "output", "some/where"))
    spec = load_study(write_study(tmp_path, data))
    assert spec.grid == {"solvers": ("b",), "steps": (10, 20), "scale": (1.0,)}
    assert spec.options == {"n_samples": 4, "mode": "ok"}
    assert spec.output == Path("some/where")
    assert spec.path == tmp_path / "study.toml"
    assert parse_study(spec.to_dict()).grid == spec.grid
    assert len(expand_cells(spec)) == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([("grid", "steps", "20")], 'grid.steps: expected a list of int, got str "20"'),
        ([("grid", "steps", [10, "20"])], 'grid.steps: expected a list of int, got str "20"'),
        ([("grid", "steps", [10, True])], "grid.steps: expected a list of int, got bool"),
        ([("grid", "steps", [0])], "grid.steps: invalid value 0: must be positive"),
        ([("grid", "steps", [10, 10])], "grid.steps: duplicate value 10"),
        ([("grid", "steps", [[10]])], "grid.steps: expected a list of int, got list"),
        ([("grid", "solvers", [])], "grid.solvers: empty list"),
        ([("grid", "solvers", ["d"])], 'grid.solvers: unknown value "d" (choices: "a", "b"'),
        ([("grid", "scale", ["x"])], "grid.scale: expected a list of float, got str"),
        ([("grid", "solvers", _DELETE)], "grid.solvers: required axis missing"),
        (
            [("grid", "stepz", [1])],
            'unknown key grid.stepz (allowed: scale, solvers, steps; did you mean "steps"?)',
        ),
        ([("options", "n_sample", 3)], "unknown key options.n_sample (allowed: mode, n_samples"),
        ([("options", "n_samples", "4")], 'options.n_samples: expected int, got str "4"'),
        ([("options", "n_samples", [4])], "options.n_samples: expected int, got list"),
        ([("options", "n_samples", 4.5)], "options.n_samples: expected int, got float"),
        ([("options", "mode", "fast")], 'options.mode: unknown value "fast"'),
        ([("study", "kind", _DELETE)], "study.kind: required key missing"),
        ([("study", "name", _DELETE)], "study.name: required key missing"),
        ([("study", "kind", "nope")], 'study.kind: unknown kind "nope" (known: '),
        ([("study", "kind", 3)], "study.kind: expected str, got int 3"),
        ([("study", "name", "a/b")], 'study.name: "a/b" is not usable as a file name'),
        ([("study", "descripton", "x")], "unknown key study.descripton"),
        ([("gird", None, {"steps": [1]})], "unknown section [gird]"),
        ([("study", None, _DELETE)], "missing section [study]"),
        ([("grid", None, _DELETE)], "grid.solvers: required axis missing"),
    ],
)
def test_validation_errors_name_the_key(
    tmp_path: Path, changes: list[tuple[str, str | None, Any]], expected: str
) -> None:
    path = write_study(tmp_path, modified(*changes))
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(f"{path}: ")  # the file, then the key


def test_validation_error_for_bad_item_says_which(tmp_path: Path) -> None:
    path = write_study(tmp_path, modified(("grid", "steps", [10, 20, "30"])))
    with pytest.raises(StudyError, match=r"\(item 3\)"):
        load_study(path)


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(StudyError, match=r"study file not found: .*nope\.toml"):
        load_study(missing)


def test_invalid_toml_reports_the_parser_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[study]\nname = "x"\nkind = \n')
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert "invalid TOML" in str(info.value) and "line 3" in str(info.value)


def test_top_level_key_outside_a_section(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('grid = 3\n[study]\nname = "x"\nkind = "dummy"\n')
    with pytest.raises(StudyError, match=r"\[grid\]: expected a table, got int"):
        load_study(path)


# ----------------------------------------------------------------------------- registry


def test_registry_rejects_bad_kinds() -> None:
    assert get("dummy") is dummy.KIND
    assert "dummy" in kinds_module.names()
    with pytest.raises(StudyError, match='unknown kind "no-such-kind"'):
        get("no-such-kind")
    with pytest.raises(ValueError, match="already registered"):
        register(StudyKind("dummy", {}, {}, (), run_cell=dummy.summarize))
    with pytest.raises(ValueError, match="module-level function"):
        register(StudyKind("lam", {}, {}, (), run_cell=lambda c: []))
    with pytest.raises(ValueError, match="ladder axes not in grid"):
        register(StudyKind("lad", {"a": Field(int)}, {}, ("b",), run_cell=dummy.run_cell))
    with pytest.raises(ValueError, match="both grid axis and option"):
        register(
            StudyKind("clash", {"a": Field(int)}, {"a": Field(int)}, (), run_cell=dummy.run_cell)
        )
    with pytest.raises(TypeError, match=r"default of options\.n is not int"):
        register(StudyKind("d", {}, {"n": Field(int, default="x")}, (), run_cell=dummy.run_cell))
    register(dummy.KIND)  # the same definition again is fine (module re-imported)
    assert kinds_module.names().count("dummy") == 1


def test_declared_kind_is_imported_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_kind_mod.py").write_text(
        "from odebench.study import StudyKind, register\n"
        "def run_cell(config):\n"
        "    return []\n"
        "register(StudyKind('lazy-kind', {}, {}, (), run_cell=run_cell))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds_module.declare("lazy-kind", "lazy_kind_mod")
    try:
        assert "lazy-kind" in kinds_module.names()
        assert "lazy_kind_mod" not in sys.modules
        assert get("lazy-kind").run_cell.__module__ == "lazy_kind_mod"
    finally:
        kinds_module.unregister("lazy-kind")
        kinds_module._DECLARED.pop("lazy-kind", None)
        sys.modules.pop("lazy_kind_mod", None)


def test_cache_key_is_canonical() -> None:
    config = {"solvers": "a", "steps": [4, 8], "scale": 0.1, "kind": "dummy"}
    reordered = {"kind": "dummy", "scale": 0.1, "steps": [4, 8], "solvers": "a"}
    assert cache_key(config, "1") == cache_key(reordered, "1")
    assert cache_key(config, "1") != cache_key(config, "2")  # version bump invalidates
    assert cache_key(config, "1") != cache_key({**config, "steps": [8, 4]}, "1")
    # floats by repr: 0.1 + 0.2 is not 0.3, and the key must see that
    assert cache_key({**config, "scale": 0.1 + 0.2}, "1") != cache_key(
        {**config, "scale": 0.3}, "1"
    )


# ----------------------------------------------------------------------------- runner


def test_run_writes_tidy_csv_summary_and_figures(
    study_file: Path, tmp_path: Path, call_log: Path
) -> None:
    out = tmp_path / "out"
    result = run_study(study_file, out=out, progress=False)
    assert (result.n_cells, result.n_cached, result.n_computed) == (6, 0, 6)
    assert len(calls(call_log)) == 6
    assert result.csv == out / "dummy-study.csv"
    df = pd.read_csv(result.csv)
    pd.testing.assert_frame_equal(df, result.dataframe)
    assert list(df.columns) == ["solvers", "steps", "scale", "error", "nfe", "ok", "note"]
    assert len(df) == 6 * 3
    # expansion order, rows in cell order; the ladder value comes from each row
    assert list(df["solvers"])[:6] == ["a"] * 6
    assert list(df["scale"])[:6] == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert list(df["steps"])[:6] == [4, 8, 16, 4, 8, 16]
    assert df["note"].notna().sum() == 6 and df["note"].dropna().eq("first, rung").all()
    b = df[(df.solvers == "b") & (df.scale == 2.0) & (df.steps == 8)]
    assert b["error"].item() == 2.0 * 8**-2 / 3.0  # exact float round trip through the CSV
    assert result.summary_csv == out / "dummy-study_summary.csv"
    assert list(pd.read_csv(result.summary_csv)["solvers"]) == ["a", "b", "c"]
    assert result.figures == [out / "dummy.txt"]
    assert result.figures[0].read_text() == "18 rows, 3 solvers\n"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".cache"]
    assert leftovers == []  # no scratch folders or temporary files
    assert len(cache_files(out)) == 6


def test_rerun_uses_cache_without_calling_cells(
    study_file: Path, tmp_path: Path, call_log: Path
) -> None:
    out = tmp_path / "out"
    first = run_study(study_file, out=out, progress=False)
    csv_bytes = first.csv.read_bytes()
    second = run_study(study_file, out=out, progress=False)
    assert (second.n_cached, second.n_computed) == (6, 0)
    assert len(calls(call_log)) == 6  # no new calls
    assert second.csv.read_bytes() == csv_bytes
    # a changed option is a different config: every cell recomputed
    changed = write_study(tmp_path, {**STUDY, "options": {"n_samples": 5}}, "changed.toml")
    third = run_study(changed, out=out, progress=False)
    assert (third.n_cached, third.n_computed) == (0, 6)
    assert len(calls(call_log)) == 12


def test_resume_after_failure_matches_clean_run(
    study_file: Path, tmp_path: Path, call_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    monkeypatch.setenv("DUMMY_FAIL_CELL", "b,1.0")  # the third cell in expansion order
    with pytest.raises(StudyError) as info:
        run_study(study_file, out=out, progress=False)
    message = str(info.value)
    assert "cell 3/6 failed" in message and '"solvers":"b"' in message
    assert "RuntimeError: planned failure in b,1.0" in message and "\n" not in message
    assert not (out / "dummy-study.csv").exists()
    assert not (out / "dummy-study_summary.csv").exists()
    assert not (out / "dummy.txt").exists()
    assert len(cache_files(out)) == 2  # the two cells before the failure
    assert list((out / CACHE_DIRNAME).iterdir()) == cache_files(out)  # no temp files

    monkeypatch.delenv("DUMMY_FAIL_CELL")
    before = len(calls(call_log))
    resumed = run_study(study_file, out=out, progress=False)
    assert (resumed.n_cached, resumed.n_computed) == (2, 4)
    recomputed = [c["config"] for c in calls(call_log)]
    assert len(recomputed) == before + 4
    assert sum(c["solvers"] == "a" for c in recomputed) == 2  # 'a' cells computed once only

    clean = run_study(study_file, out=tmp_path / "clean", progress=False)
    assert resumed.csv.read_bytes() == clean.csv.read_bytes()
    assert resumed.summary_csv is not None and clean.summary_csv is not None
    assert resumed.summary_csv.read_bytes() == clean.summary_csv.read_bytes()


def test_corrupt_cache_file_is_recomputed(study_file: Path, tmp_path: Path, call_log: Path) -> None:
    out = tmp_path / "out"
    first = run_study(study_file, out=out, progress=False)
    csv_bytes = first.csv.read_bytes()
    files = cache_files(out)
    files[0].write_text(files[0].read_text()[:40])  # truncated
    record = json.loads(files[1].read_text())
    record["config"]["n_samples"] = 999  # a file that does not hold this cell
    files[1].write_text(json.dumps(record))
    files[2].write_bytes(b"\xff\xfe garbage")
    with pytest.warns(CacheWarning, match="recomputing") as record_warnings:
        second = run_study(study_file, out=out, progress=False)
    assert len(record_warnings) == 3
    assert (second.n_cached, second.n_computed) == (3, 3)
    assert len(calls(call_log)) == 9
    assert second.csv.read_bytes() == csv_bytes
    json.loads(files[0].read_text())  # rewritten whole


def test_failed_cell_leaves_no_csv(tmp_path: Path, call_log: Path) -> None:
    data = modified(("options", "mode", "bad-row"))
    with pytest.raises(StudyError, match=r"column 'error' must be a scalar.*got list"):
        run_study(write_study(tmp_path, data), out=tmp_path / "out", progress=False)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # no CSV, no cache


def test_row_contradicting_its_cell_is_an_error(tmp_path: Path, call_log: Path) -> None:
    data = modified(("options", "mode", "conflict"))
    with pytest.raises(StudyError, match=r"a row sets grid axis 'solvers' to 'not-a'"):
        run_study(write_study(tmp_path, data), out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "t.csv").exists()


def test_spec_object_and_default_output(
    tmp_path: Path, call_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_study(write_study(tmp_path, modified(("study", "output", "res/here"))))
    result = run_study(spec, progress=False)
    assert result.csv.resolve() == (tmp_path / "res/here/t.csv").resolve()
    with pytest.raises(StudyError, match="workers must be a positive int"):
        run_study(spec, workers=0, progress=False)


def test_progress_bar_goes_to_stderr(
    study_file: Path, tmp_path: Path, call_log: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_study(study_file, out=tmp_path / "quiet", progress=False)
    quiet = capfd.readouterr()
    run_study(study_file, out=tmp_path / "loud", progress=True)
    loud = capfd.readouterr()
    assert quiet.err == "" and quiet.out == "" and loud.out == ""
    assert "dummy-study" in loud.err and "6/6" in loud.err


def _pids(log: Path) -> set[int]:
    return {c["pid"] for c in calls(log)}


def test_process_pool_matches_in_process(study_file: Path, tmp_path: Path, call_log: Path) -> None:
    serial = run_study(study_file, out=tmp_path / "serial", progress=False)
    assert _pids(call_log) == {os.getpid()}
    for p in call_log.iterdir():
        p.unlink()
    pooled = run_study(study_file, out=tmp_path / "pool", workers=2, progress=False)
    assert pooled.n_computed == 6
    pids = _pids(call_log)
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # really ran in workers
    assert pooled.csv.read_bytes() == serial.csv.read_bytes()
    pd.testing.assert_frame_equal(pooled.dataframe, serial.dataframe)


def test_process_pool_failure(
    study_file: Path, tmp_path: Path, call_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUMMY_FAIL_CELL", "c,2.0")
    out = tmp_path / "pool"
    with pytest.raises(StudyError, match=r"cell 6/6 failed: .*planned failure"):
        run_study(study_file, out=out, workers=2, progress=False)
    assert not (out / "dummy-study.csv").exists()
    assert len(cache_files(out)) == 5  # every other cell finished and was kept


def test_dask_matches_in_process(study_file: Path, tmp_path: Path, call_log: Path) -> None:
    distributed = pytest.importorskip("distributed")
    serial = run_study(study_file, out=tmp_path / "serial", progress=False)
    for p in call_log.iterdir():
        p.unlink()
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        result = run_study(study_file, out=tmp_path / "dask", cluster=cluster, progress=False)
        assert result.n_computed == 6
        assert os.getpid() not in _pids(call_log)
        assert result.csv.read_bytes() == serial.csv.read_bytes()
        # a failing cell through Dask (workers do not see env changes: use the config)
        bad = write_study(tmp_path, modified(("options", "mode", "bad-row")), "bad.toml")
        with pytest.raises(StudyError, match=r"cell [12]/2 failed: .*must be a scalar"):
            run_study(bad, out=tmp_path / "dask-fail", cluster=cluster, progress=False)
        assert not (tmp_path / "dask-fail" / "t.csv").exists()


def test_dask_missing_says_how_to_install(
    study_file: Path, tmp_path: Path, call_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(StudyError, match=r"install odebench\[dask\]"):
        run_study(study_file, out=tmp_path / "out", scheduler="tcp://127.0.0.1:1", progress=False)
    assert calls(call_log) == []


# ----------------------------------------------------------------------------- cell order


def test_split_ladder_gives_one_cell_per_value_and_keeps_the_whole_ladder(tmp_path: Path):
    from odebench.study.runner import count_cells

    data = {
        "study": {"name": "s", "kind": "dummy-split"},
        "grid": {"solvers": ["c", "a"], "steps": [40, 10, 20], "scale": [2.0, 0.5]},
    }
    spec = load_study(write_study(tmp_path, data))
    cells = expand_cells(spec)
    assert count_cells(spec) == len(cells) == 12
    # the split axis varies innermost, in file order; every cell sees the whole ladder
    assert [(c["solvers"], c["scale"], c["steps"]) for c in cells[:4]] == [
        ("c", 2.0, [40]),
        ("c", 2.0, [10]),
        ("c", 2.0, [20]),
        ("c", 0.5, [40]),
    ]
    assert all(c["split_from"] == {"steps": [40, 10, 20]} for c in cells)
    assert len({cache_key(c, get("dummy-split").version) for c in cells}) == 12
    assert expand_cells(spec, limit=2) == cells[:2]


def test_split_ladder_of_one_value_leaves_the_cells_as_they_were(tmp_path: Path):
    grid = {"solvers": ["a", "b"], "steps": [8], "scale": [1.0]}
    split = load_study(
        write_study(
            tmp_path, {"study": {"name": "s", "kind": "dummy-split"}, "grid": grid}, "a.toml"
        )
    )
    whole = load_study(
        write_study(tmp_path, {"study": {"name": "s", "kind": "dummy"}, "grid": grid}, "b.toml")
    )
    strip = [{k: v for k, v in c.items() if k != "kind"} for c in expand_cells(split)]
    assert strip == [{k: v for k, v in c.items() if k != "kind"} for c in expand_cells(whole)]


@pytest.mark.parametrize("workers", [1, 2])
def test_split_cells_write_the_bytes_of_unsplit_ones(tmp_path: Path, workers: int) -> None:
    grid = {"solvers": ["a", "c"], "steps": [4, 8, 16], "scale": [1.0, 3.0]}
    outs = {}
    for name in ("dummy", "dummy-split"):
        data = {"study": {"name": "same", "kind": name}, "grid": grid}
        out = tmp_path / name
        result = run_study(write_study(tmp_path, data, f"{name}.toml"), out=out, workers=workers)
        outs[name] = (result.csv.read_bytes(), result.summary_csv.read_bytes())
        assert result.n_cells == (12 if name == "dummy-split" else 4)
    assert outs["dummy"] == outs["dummy-split"]
    assert b"first, rung" in outs["dummy"][0]


def test_split_axes_must_be_ladder_axes_and_split_from_is_reserved() -> None:
    import dataclasses

    with pytest.raises(ValueError, match="split axes not ladder axes"):
        dataclasses.replace(dummy.KIND, name="bad-split", split_axes=("scale",)).validate()
    grid = {**dummy.KIND.grid, "split_from": Field(str)}
    with pytest.raises(ValueError, match="'split_from' is reserved"):
        dataclasses.replace(dummy.KIND, name="bad-key", grid=grid).validate()


def test_a_pool_starts_the_costliest_cells_first_and_the_csv_keeps_expansion_order():
    from odebench.study.limits import Estimate
    from odebench.study.runner import _Cell, longest_first

    costs = {"a": 1.0, "b": 30.0, "c": 5.0, "d": 30.0}

    def estimate(config: dict[str, Any]) -> Estimate:
        return Estimate(memory=0.0, seconds=costs[config["solver"]])

    def costed(how: Any) -> StudyKind:
        grid = {"solver": Field(str)}
        return StudyKind("costed", grid, {}, (), run_cell=dummy.run_cell, estimate=how)

    kind = costed(estimate)
    cells = [_Cell(i, {"solver": s}, str(i)) for i, s in enumerate("abcd")]
    ordered = longest_first(kind, cells)
    assert [c.config["solver"] for c in ordered] == ["b", "d", "c", "a"]  # ties: expansion order
    assert [c.index for c in cells] == [0, 1, 2, 3]  # the caller's list is not reordered

    def broken(config: dict[str, Any]) -> Estimate:
        raise ValueError("cannot cost this cell")

    assert longest_first(costed(broken), cells) == cells
    assert longest_first(costed(None), cells) == cells
