"""The documentation stays honest: a short README, measured tables that name their source,
figures that exist, and no pointers to design notes outside the repository.

The site itself is built (``mkdocs build --strict``) by the README's test command; these
checks are the ones a strict build cannot make.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

MAX_README_LINES = 300
FIGURE_PATH = re.compile(r"figures/[\w./-]+?\.(?:png|svg|csv|json|md|log)\b")
FIGURE_DIR = re.compile(r"(?<![\w.])figures/[\w/-]+/(?![\w*])")
CSV_PATH = re.compile(r"figures/[\w./-]+?\.csv\b")
DATA_PATH = re.compile(r"(?:figures|odebench)/[\w./-]+?\.(?:csv|json)\b")
# A cell that starts with a decimal or scientific number is a measurement ("1.03 [1.00,
# 1.06]", "8.74e-05", "**+8.2**"); integers (orders, NFE rules) and prose do not count.
MEASURED_CELL = re.compile(r"^[*+\s-]*\d+(?:\.\d+|(?:\.\d+)?e[-+]?\d+)")
COMMAND = re.compile(r"`(?:odebench |python (?:scripts|benchmarks)/)[^`]+`")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _tables(text: str) -> list[tuple[int, list[str]]]:
    """(index of the line after the table, the table's lines) for every Markdown table."""
    lines, tables, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i].startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            tables.append((i, lines[start:i]))
        else:
            i += 1
    return tables


def _is_measured(table: list[str]) -> bool:
    body = table[2:]  # header and separator first
    cells = (c.strip() for row in body for c in row.strip().strip("|").split("|"))
    return any(MEASURED_CELL.match(c) for c in cells)


def _paragraph_after(text: str, end: int) -> str:
    lines = text.split("\n")[end:]
    while lines and not lines[0].strip():
        lines.pop(0)
    out = []
    for line in lines:
        if not line.strip():
            break
        out.append(line)
    return "\n".join(out)


def test_the_helpers_see_a_measured_table_and_its_source():
    """The checks below only mean something if the table detector works."""
    text = "x\n\n| a | b |\n|---|---|\n| ddim | 1.03 [1.00, 1.06] |\n\nSource: `figures/x.csv`.\n"
    ((end, table),) = _tables(text)
    assert _is_measured(table)
    assert _paragraph_after(text, end).startswith("Source:")
    assert not _is_measured(["| a | b |", "|---|---|", "| ddim | 1 |", "| f-pndm | N+9 |"])
    assert _is_measured(["| a |", "|---|", "| **+8.2** |"])


def test_the_readme_is_a_front_door():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def test_the_test_command_builds_the_site_strictly_outside_the_repository():
    text = README.read_text()
    marker = text.index("<!-- test-command -->")
    command = re.search(r"```bash\n(.*?)\n```", text[marker:], flags=re.S).group(1)
    assert "mkdocs build --strict" in command
    site_dir = re.search(r"--site-dir\s+(\S+)", command)
    ignored = (ROOT / ".gitignore").read_text().split()
    assert (site_dir and Path(site_dir.group(1)).is_absolute()) or "/site/" in ignored


def test_the_site_configuration_names_what_exists():
    config = (ROOT / "mkdocs.yml").read_text()
    for hook in re.findall(r"^\s+-\s+(\S+\.py)\s*$", config, flags=re.M):
        assert (ROOT / hook).is_file(), hook
    for page in re.findall(r":\s+(\S+\.md)\s*$|^\s+-\s+(\S+\.md)\s*$", config, flags=re.M):
        name = page[0] or page[1]
        assert (DOCS / name).is_file(), name


def test_the_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
    assert links, "the README links to no docs page"
    missing = sorted(p for p in set(links) if not (ROOT / p).is_file())
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: _relative(p))
def test_every_figures_path_a_page_names_exists(page):
    text = page.read_text()
    missing = sorted(p for p in set(FIGURE_PATH.findall(text)) if not (ROOT / p).is_file())
    missing += sorted(d for d in set(FIGURE_DIR.findall(text)) if not (ROOT / d).is_dir())
    assert not missing, f"{_relative(page)} names {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: _relative(p))
def test_every_measured_table_names_its_source(page):
    text = page.read_text()
    measured = [(end, t) for end, t in _tables(text) if _is_measured(t)]
    if not measured:
        return
    csvs = [p for p in set(CSV_PATH.findall(text)) if (ROOT / p).is_file()]
    assert csvs, f"{_relative(page)} shows measured tables but names no committed figures/*.csv"
    for end, table in measured:
        source = _paragraph_after(text, end)
        where = f"{_relative(page)}, the table starting {table[0][:60]!r}"
        assert source.startswith("Source:"), f"{where}: no 'Source:' line after it"
        data = [p for p in DATA_PATH.findall(source) if (ROOT / p).is_file()]
        assert data, f"{where}: its Source line names no committed data file"
        assert COMMAND.search(source), f"{where}: its Source line names no command"


def test_every_study_page_says_what_is_reproducible():
    studies = sorted((DOCS / "studies").glob("*.md"))
    assert studies
    for page in studies:
        assert "\n## Reproducibility\n" in page.read_text(), _relative(page)


#: Pages whose python blocks a test of their own executes.
EXECUTED_PAGES = {
    "adding-a-solver.md": "tests/test_adding_a_solver.py",
    "testing-your-sampler.md": "tests/test_testing_page.py",
}


def test_python_blocks_in_the_docs_are_the_readme_tour():
    """test_readme runs every python block of the README; a page may only repeat one, unless
    a test of its own runs the page (EXECUTED_PAGES)."""
    tour = README.read_text()
    for name, runner in EXECUTED_PAGES.items():
        assert (ROOT / runner).is_file() and name in (ROOT / runner).read_text()
    for page in PAGES:
        if _relative(page).removeprefix("docs/") in EXECUTED_PAGES:
            continue
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S):
            assert block in tour, f"{_relative(page)} has a python block the tests do not run"


SKIP_DIRS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "build",
    "dist",
    "site",
    "results",
    "out",
    ".odebench-cache",
    ".cache",
    ".whl",
}
BINARY = {".png", ".safetensors", ".pt", ".pth", ".npz", ".npy", ".pkl", ".gz", ".zip"}
OUTSIDE = re.compile(rb"shared/(?:DESIGN|PAPER)\.md|\.\./shared\b|/work/shared\b")


def test_nothing_points_to_design_notes_outside_the_repository():
    """The design notes live in docs/design/; the repository is self-contained."""
    offenders = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        if not path.is_file() or path.suffix in BINARY or path == Path(__file__).resolve():
            continue
        if OUTSIDE.search(path.read_bytes()):
            offenders.append(_relative(path))
    assert not offenders, offenders
