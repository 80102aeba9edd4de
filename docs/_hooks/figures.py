"""mkdocs hook: serve the repository's committed ``figures/`` folder as ``/figures/``.

The studies write their tables and figures to ``figures/`` at the repository root, and the
pages under ``docs/`` show them. mkdocs only publishes files inside ``docs_dir``; rather than
keep a copy (or a symlink, which not every checkout preserves), this hook adds every figure
and data file of ``figures/`` to the site's file collection at build time. A page links to
them as ``figures/...`` relative to the site root (``../figures/...`` from a sub-folder), and
``mkdocs build --strict`` then checks each such link like any other.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "figures"
# Markdown tables under figures/ are data, not pages: they are named, not served.
SERVED = {".png", ".svg", ".csv", ".json", ".log", ".txt"}


def on_files(files: Files, config) -> Files:
    for path in sorted(FIGURES.rglob("*")):
        if not path.is_file() or path.suffix not in SERVED:
            continue
        uri = path.relative_to(ROOT).as_posix()
        if files.get_file_from_path(uri) is None:
            files.append(
                File(
                    uri,
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files


def on_serve(server, config, builder):
    server.watch(str(FIGURES))
    return server
