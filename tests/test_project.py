"""The project's own files: pinned installs agree, chapters are text without outputs, the
table of contents lists what exists, and every chapter has the book's shape."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.md"))


def _pins(lines):
    return {re.split(r"==", l.strip(), maxsplit=1)[0].lower(): l.strip().split("==")[1]
            for l in lines if "==" in l and not l.strip().startswith("#")}


def test_requirements_and_environment_agree():
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == requirements
    assert requirements["torch"] == "2.13.0"
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().splitlines()


def test_no_notebook_with_outputs_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert not [f for f in tracked if f.endswith(".ipynb")], "chapters are MyST text; do not commit .ipynb files"
    for chapter in CHAPTERS:
        text = chapter.read_text()
        assert "outputs" not in text.split("---")[1], chapter


def test_toc_lists_existing_files_only():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for name in files:
        assert (ROOT / f"{name}.md").exists(), name
    listed = {f for f in files if f.startswith("chapters/")}
    assert {f"chapters/{c.stem}" for c in CHAPTERS} <= listed


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_shape(chapter):
    import jupytext

    text = chapter.read_text()
    notebook = jupytext.read(chapter)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for name in ("dataset", "seed", "smoke"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), name
    for heading in ("## Overview", "## Summary", "## Exercises", ":::{admonition} In this chapter"):
        assert heading in text, heading
    assert re.match(r"^---\n.*?---\n\n\(ch:[a-z-]+\)=\n# ", text, re.S), "label then title"
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)", text)
    solutions = re.findall(r"````\{solution-start\} (\S+)", text)
    assert exercises and exercises == solutions


#: Characters of code that fit a code cell of the built page at a 1280-pixel-wide window
#: (the book's stylesheet sets the code font so that they do; make test-browser checks it).
MAX_CODE_WIDTH = 88


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_code_fits_the_page(chapter):
    import jupytext

    wide = [f"cell {number}: {line}" for number, cell in enumerate(jupytext.read(chapter).cells)
            if cell.cell_type == "code" for line in cell.source.splitlines() if len(line) > MAX_CODE_WIDTH]
    assert not wide, (f"{len(wide)} code line(s) over {MAX_CODE_WIDTH} characters "
                      f"(ruff format --line-length {MAX_CODE_WIDTH}, then split strings): {wide[:5]}")


MAX_MODULE_LINES = 700


def test_no_module_is_too_long_to_read():
    """A module longer than this mixes concerns; split it by what it is about."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "stlab").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_layers_hold():
    """The import-linter contracts in pyproject.toml (also run by `make test` before pytest)."""
    import shutil
    import sys

    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (make install installs it)")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_parallel_execution_knows_which_chapter_reads_which():
    """A chapter that reads another's run-cache entries (stlab.reference_runs) must start after it
    in a parallel build (tools/execute_chapters.py), or it trains the same models again."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_chapters", ROOT / "tools" / "execute_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    producers = {"baseline_runs(": "04-next-visit-baselines", "keras_recurrent_run(": "06-recurrent-keras",
                 "keras_forecast_run(": "06-recurrent-keras", "lstm_run(": "07-recurrent-pytorch",
                 "transformer_model(": "08-self-attention", "transformer_run(": "08-self-attention"}
    stems = {path.stem for path in CHAPTERS}
    for path in CHAPTERS:
        text = path.read_text(encoding="utf-8")
        needed = {stem for call, stem in producers.items() if call in text and stem != path.stem}
        assert needed <= set(module.READS_FROM.get(path.stem, ())), (path.stem, needed)
    for reader, sources in module.READS_FROM.items():
        assert {reader, *sources} <= stems, (reader, sources)
