"""scripts/compare_tables.py: agreeing significant digits of two runs of a results table."""

import pandas as pd
import pytest
from _helpers import load_script

compare_tables = load_script("compare_tables")


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem": ["a", "a", "b"],
            "solver": ["ddim", "fon", "ddim"],
            "error": [1.0e-3, 2.0e-5, 0.5],
            "nll_excess": [1e-16, 0.2, 0.3],
        }
    )


def test_identical_tables_agree_in_every_digit():
    rows = compare_tables.compare(_table(), _table(), "problem", 1e-13)
    assert (rows["digits"] == 16).all() and (rows["differing"] == 0).all()


def test_a_relative_change_of_3e_6_leaves_5_digits_and_round_off_values_are_left_out():
    other = _table()
    other.loc[1, "error"] *= 1 + 3e-6  # group a
    other.loc[0, "nll_excess"] = -2e-16  # round-off level: both below the floor 1e-13
    rows = compare_tables.compare(_table(), other, "problem", 1e-13).set_index(["group", "column"])
    assert rows.loc[("a", "error"), "digits"] == 5
    assert rows.loc[("a", "error"), "max_rel_diff"] == pytest.approx(3e-6, rel=1e-3)
    assert rows.loc[("b", "error"), "digits"] == 16
    assert rows.loc[("a", "nll_excess"), "digits"] == 16
    rows = compare_tables.compare(_table(), other, "problem", 0.0).set_index(["group", "column"])
    assert rows.loc[("a", "nll_excess"), "digits"] == 0


def test_lists_of_numbers_in_text_cells_are_compared_number_by_number():
    a = pd.DataFrame({"problem": ["a", "b"], "slopes": ["1.000;2.000", "3.0;4.0"]})
    b = pd.DataFrame({"problem": ["a", "b"], "slopes": ["1.000;2.02", "3.0;4.0"]})
    rows = compare_tables.compare(a, b, "problem", 1e-13).set_index("group")
    assert rows.loc["a", "digits"] == 2 and rows.loc["b", "digits"] == 16


def test_tables_that_do_not_match_are_refused(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _table().to_csv(a, index=False)
    _table().iloc[:2].to_csv(b, index=False)
    assert compare_tables.main([str(a), str(b)]) == 2
    assert "shape" in capsys.readouterr().err
    other = _table()
    other.loc[0, "solver"] = "pie"
    rows = compare_tables.compare(_table(), other, "problem", 1e-13).set_index(["group", "column"])
    assert rows.loc[("a", "solver"), "digits"] == 0 and rows.loc[("b", "solver"), "digits"] == 16
    out = tmp_path / "digits.csv"
    _table().to_csv(b, index=False)
    assert compare_tables.main([str(a), str(b), "--out", str(out), "--label", "x"]) == 0
    assert compare_tables.main([str(a), str(b), "--out", str(out), "--label", "y"]) == 0
    assert list(pd.read_csv(out)["label"].unique()) == ["x", "y"]


def test_the_summary_names_the_fewest_digits_and_the_column_that_limits_them(tmp_path, capsys):
    other = _table()
    other.loc[1, "error"] *= 1 + 3e-6
    rows = compare_tables.compare(_table(), other, "problem", 1e-13)
    rows.insert(0, "label", "t")
    table = compare_tables.summarize(rows, set())
    assert "| t | 5 (error) | all |" in table
    assert "| t | all | all |" in compare_tables.summarize(rows, {"error"})
