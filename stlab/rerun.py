"""Rerun a chapter with new parameters (papermill), writing the executed notebook under
``_build/runs/``.

    python -m stlab.rerun 01-behaviour-logs dataset=synthetic seed=1
    make rerun CHAPTER=02-time-and-place PARAMS="dataset=synthetic smoke=true"

Values are read as YAML (``seed=1`` is an int, ``smoke=true`` a bool, ``dataset=gowalla-nyc``
a string). Parameters the chapter's ``parameters`` cell does not define are refused.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from stlab.config import env_setting

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"


def find_chapter(name: str) -> Path:
    """Resolve ``01``, ``01-behaviour-logs`` or a path to a chapter's ``.md`` file."""
    candidate = Path(name)
    if candidate.suffix == ".md" and candidate.is_file():
        return candidate.resolve()
    matches = sorted(CHAPTERS.glob(f"{name}*.md"))
    if len(matches) != 1:
        known = ", ".join(p.stem for p in sorted(CHAPTERS.glob("[0-9]*.md")))
        raise SystemExit(f"no single chapter matches {name!r}; chapters: {known}")
    return matches[0]


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"parameters are name=value pairs, got {pair!r}")
        key, value = pair.split("=", 1)
        params[key.strip()] = yaml.safe_load(value)
    return params


def parameter_names(notebook: Any) -> set[str]:
    """Names assigned in the cell tagged ``parameters``."""
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    raise SystemExit("the chapter has no cell tagged 'parameters'")


def rerun(chapter: str, params: dict[str, Any], output_dir: Path | None = None) -> Path:
    """Execute a chapter with ``params`` injected after its parameters cell; return the output path."""
    import jupytext
    import papermill

    path = find_chapter(chapter)
    notebook = jupytext.read(path)
    unknown = set(params) - parameter_names(notebook)
    if unknown:
        raise SystemExit(f"{path.stem} has no parameter(s) {sorted(unknown)}; "
                         f"it has {sorted(parameter_names(notebook))}")
    label = "-".join(f"{k}={v}" for k, v in sorted(params.items()))
    label = re.sub(r"[^A-Za-z0-9=._-]+", "_", label)
    output_dir = output_dir or ROOT / "_build" / "runs"
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{path.stem}{'-' + label if label else ''}.ipynb"
    data = env_setting("data")
    if data:  # the kernel runs inside chapters/, where a relative folder would point elsewhere
        os.environ["STLAB_DATA"] = str(Path(data).expanduser().resolve())
    papermill.execute_notebook(notebook, str(output), parameters=params, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=True)
    return output


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    output = rerun(argv[0], parse_params(argv[1:]))
    print(f"executed notebook: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
