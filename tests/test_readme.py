"""The README's tour runs as written, and its test command is the one CI runs."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_tour_runs():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python tour"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    marker = text.index("<!-- test-command -->")
    command = re.search(r"```bash\n(.*?)\n```", text[marker:], flags=re.S).group(1)
    assert "pytest" in command and "ruff check" in command
    ci = (README.parent / ".ci" / "run").read_text()
    assert "test-command" in ci and "torch==2.13.0" in ci


def test_every_figure_the_readme_names_is_committed():
    text = README.read_text()
    named = set(re.findall(r"figures/[\w./-]+\.(?:png|md|csv|json)", text))
    assert named
    missing = sorted(p for p in named if not (README.parent / p).is_file())
    assert not missing, missing
