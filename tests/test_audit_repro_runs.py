"""The committed reproduction scripts of the audit studies ran where odebench is not
installed (``scripts/run_repro.py``): every script of a folder has a row in its runs.csv,
for the text committed (a regenerated folder without a rerun fails), with exit status 0, a
RESULT line, and the counterfactual's number on the right side of diffusers' own."""

import csv
import hashlib
import importlib.util
import re

import pytest
from _helpers import ROOT

FOLDERS = ["figures/audit/repro", "figures/audit_flow/repro", "figures/audit_stochastic/repro"]
RESULT = re.compile(r"^RESULT (.+): (\S+)(?: -> (\S+))?$")


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_script_of_the_index_ran_as_committed(folder):
    folder = ROOT / folder
    index, runs = rows(folder / "index.csv"), rows(folder / "runs.csv")
    on_disk = sorted(p.name for p in folder.glob("*.py"))
    assert sorted(r["script"] for r in index) == on_disk
    assert sorted(r["script"] for r in runs) == on_disk
    for run in runs:
        text = (folder / run["script"]).read_bytes()
        assert run["sha256"] == hashlib.sha256(text).hexdigest()[:16], (
            f"{run['script']} changed since its run: rerun scripts/run_repro.py"
        )
        assert run["exit"] == "0" and RESULT.match(run["result"]), run
        # no odebench; scipy only where diffusers' class requires it (LMSDiscreteScheduler)
        assert run["env"] in ("torch numpy diffusers", "torch numpy diffusers scipy"), run


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_counterfactual_moves_its_number_the_right_way(folder):
    folder = ROOT / folder
    runs = {r["script"]: r for r in rows(folder / "runs.csv")}
    for entry in rows(folder / "index.csv"):
        match = RESULT.match(runs[entry["script"]]["result"])
        assert match, entry["script"]
        if entry["cause"].startswith("none of the probes"):
            assert match[3] is None, entry["script"]  # nothing removed it: no '->'
            continue
        before, after = float(match[2]), float(match[3])
        right = after > before if entry["kind"] == "order" else after < before
        assert right, entry["script"]


def test_the_runners_check_wants_the_fix_on_the_right_side():
    spec = importlib.util.spec_from_file_location("run_repro", ROOT / "scripts/run_repro.py")
    run_repro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_repro)
    check = run_repro.check
    assert check("order", True, 0, "RESULT fitted order: 1.2e+00 -> 2.0e+00") == "ok"
    assert check("order", True, 0, "RESULT fitted order: 2.0e+00 -> 1.2e+00") != "ok"
    assert check("floor", True, 0, "RESULT error at the finest N: 1e-3 -> 1e-5") == "ok"
    assert check("floor", True, 0, "RESULT error at the finest N: 1e-5 -> 1e-3") != "ok"
    assert check("floor", True, 0, "RESULT error at the finest N: 1e-3") != "ok"  # no fix shown
    assert check("time gap", False, 0, "RESULT largest time gap (table steps): 1.0") == "ok"
    assert check("floor", True, 1, "") == "exit status 1"
