"""The "Adding a solver" page runs as written: its solver registers, measures order 2 globally
and 3 locally, and the registry refuses a second solver under the same name."""

import re
from pathlib import Path

import pytest

import odebench as ob

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-solver.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_adds_a_solver_in_under_20_lines_and_its_order_test_passes():
    solver_block, test_block = _blocks()
    lines = [ln.strip() for ln in solver_block.splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(code) < 20, len(code)
    scope: dict = {}
    try:
        exec(compile(solver_block, str(PAGE), "exec"), scope)
        solver = ob.solvers.get("pseudo-midpoint")
        assert solver.order == 2 and solver.local_order == 3
        assert solver.composition == "midpoint tableau x ddim"
        with pytest.raises(ValueError, match="exists"):
            ob.solvers.register("pseudo-midpoint", scope["pseudo_midpoint"])
        exec(compile(test_block, str(PAGE), "exec"), scope)
    finally:
        ob.solvers.unregister("pseudo-midpoint")
    assert "pseudo-midpoint" not in ob.solvers.names()


def test_register_rejects_bad_names_and_factories():
    with pytest.raises(ValueError, match="name"):
        ob.solvers.register(" padded ", lambda: None)
    with pytest.raises(ValueError, match="callable"):
        ob.solvers.register("not-callable", 3)
    with pytest.raises(ValueError, match="exists"):
        ob.solvers.register("ddim", lambda: None)
    with pytest.raises(ValueError, match="unknown"):
        ob.solvers.unregister("never-registered")
