"""``odebench audit`` through its own add_parser / run (before odebench/cli.py wires it)."""

import argparse
import sys

import pytest

from odebench.audit import cli


def parse(argv):
    parser = argparse.ArgumentParser(prog="odebench")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    return parser.parse_args(argv)


def test_cli_prints_the_card_and_writes_csv_card_and_figure(tmp_path, capsys):
    pytest.importorskip("diffusers")
    args = parse(
        [
            "audit",
            "diffusers:DDIMScheduler",
            "--config",
            '{"timestep_spacing": "trailing", "clip_sample": false}',
            "--steps",
            "10,20,40",
            "--n-samples",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    cli.run(args)
    out = capsys.readouterr().out
    assert "end time" in out and "float64" in out and "vs odebench" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    stem = "DDIMScheduler_clip_sample_false_timestep_spacing_trailing"
    assert names == [f"{stem}.csv", f"{stem}.png", f"{stem}_card.txt"]
    lines = (tmp_path / f"{stem}.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("sampler,steps,")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diffusers:NoSuchScheduler"], "has no scheduler class"),
        (["diffusers:DDIMScheduler", "--config", "{bad"], "not valid JSON"),
        (["diffusers:DDIMScheduler", "--config", "[1]"], "must be a JSON object"),
        (["torchsde:Foo"], "unknown sampler package"),
        (["diffusers:DDIMScheduler", "--schedule", "linear"], "discrete table"),
    ],
)
def test_bad_input_is_a_one_line_value_error(argv, message, tmp_path):
    pytest.importorskip("diffusers")
    args = parse(["audit", *argv, "--steps", "10,20,40", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=message) as info:
        cli.run(args)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_diffusers_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    args = parse(
        ["audit", "diffusers:DDIMScheduler", "--steps", "10,20,40", "--out", str(tmp_path)]
    )
    with pytest.raises(ValueError, match="needs diffusers: pip install"):
        cli.run(args)


def test_a_failing_figure_leaves_no_partial_file(monkeypatch, tmp_path):
    pytest.importorskip("diffusers")
    from odebench.audit import report

    def broken(rep, path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "plot", broken)
    args = parse(
        [
            "audit",
            "diffusers:DDIMScheduler",
            "--steps",
            "10,20,40",
            "--n-samples",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    with pytest.raises(RuntimeError, match="disk full"):
        cli.run(args)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".png" or p.name.startswith(".")]


def test_bad_steps_are_refused_by_the_parser():
    with pytest.raises(SystemExit):
        parse(["audit", "diffusers:DDIMScheduler", "--steps", "10,x"])
    with pytest.raises(SystemExit):
        parse(["audit", "diffusers:DDIMScheduler", "--steps", "10,20"])


def test_the_audit_study_kind_runs_and_summarizes(tmp_path):
    pytest.importorskip("diffusers")
    import odebench.kinds.audit  # noqa: F401  (registers the kind)
    from odebench.study import parse_study, run_study

    spec = parse_study(
        {
            "study": {"name": "audit-test", "kind": "audit"},
            "grid": {
                "sampler": ['DDIMScheduler {"clip_sample": false}', "EulerDiscreteScheduler"],
                "steps": [10, 20, 40],
            },
            "options": {"n_samples": 4, "probe_steps": 10},
        }
    )
    result = run_study(spec, out=tmp_path, progress=False)
    import pandas as pd

    summary = pd.read_csv(result.summary_csv)
    assert list(summary["sampler"]) == [
        'DDIMScheduler {"clip_sample": false}',
        "EulerDiscreteScheduler",
    ]
    assert summary["nominal"].tolist() == [1, 1]
    table = (tmp_path / "audit_table.md").read_text()
    assert table.count("\n") == 4 and "`EulerDiscreteScheduler`" in table
    assert (tmp_path / "audit_errors.png").stat().st_size > 1000


def test_counterfactuals_flag_names_what_was_tried_on_the_card(tmp_path, capsys):
    pytest.importorskip("diffusers")
    argv = ["audit", "diffusers:DPMSolverMultistepScheduler", "--steps", "10,20,40,80"]
    args = parse([*argv, "--n-samples", "4", "--out", str(tmp_path), "--counterfactuals"])
    cli.run(args)
    out = capsys.readouterr().out
    assert "counterfactuals" in out and "float64-state" in out
    card = next(tmp_path.glob("*_card.txt")).read_text()
    assert "counterfactuals" in card


def test_counterfactuals_multiply_the_estimate(capsys):
    base = ["audit", "diffusers:DDIMScheduler", "--steps", "10,20,40", "--estimate"]
    cli.run(parse(base))
    plain = capsys.readouterr().out
    cli.run(parse([*base, "--counterfactuals"]))
    probed = capsys.readouterr().out
    assert plain.startswith("estimate:") and probed.startswith("estimate:") and plain != probed
