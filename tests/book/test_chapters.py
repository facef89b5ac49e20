"""Every chapter executes, in smoke mode, through nbval -- on the synthetic city, so no data or
network is needed. The notebooks are made from the MyST text in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
# Pages without code (the references, the course guide, how the book is built) have nothing to execute.
CHAPTERS = [c for c in CHAPTERS if "```{code-cell}" in c.read_text()]
SMOKE = {"dataset": "synthetic", "smoke": True, "seed": 0}


def smoke_notebook(chapter: Path, folder: Path, parameters: dict | None = None) -> Path:
    """The chapter as .ipynb with smoke parameters (or ``parameters``) injected as papermill would."""
    import jupytext
    import nbformat
    from papermill.parameterize import parameterize_notebook

    notebook = jupytext.read(chapter)
    for cell in notebook.cells:  # papermill expects every cell to carry a tags list
        cell.metadata.setdefault("tags", [])
    notebook.metadata.setdefault("papermill", nbformat.NotebookNode())
    has_parameters = any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    if has_parameters:
        notebook = parameterize_notebook(notebook, SMOKE if parameters is None else parameters)
    target = folder / f"{chapter.stem}.ipynb"
    nbformat.write(notebook, target)
    return target


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_executes(chapter, tmp_path):
    # Chapters include files relative to themselves; keep the folder layout.
    (tmp_path / "_admonition").symlink_to(ROOT / "chapters" / "_admonition")
    notebook = smoke_notebook(chapter, tmp_path)
    env = {**os.environ, "STLAB_DATASET": "synthetic", "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    execute_with_nbval(notebook, env, timeout=600)


def execute_with_nbval(notebook: Path, env: dict[str, str], *, timeout: int) -> None:
    """Run every cell of ``notebook`` through nbval in a fresh process, in its own folder; fail on any error."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-o", "addopts=", str(notebook)],
        cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
