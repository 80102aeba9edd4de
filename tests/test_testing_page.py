"""docs/testing-your-sampler.md: its test file runs, and passes, under pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "testing-your-sampler.md"


def test_the_test_file_on_the_page_passes(tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    test_file = tmp_path / "test_my_sampler.py"
    test_file.write_text(block)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
