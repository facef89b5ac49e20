"""Rerun a chapter with new parameters (papermill), writing the executed notebook under
``_build/runs/``.

    python -m stlab.rerun 1 dataset=synthetic seed=1
    make rerun CHAPTER=1 PARAMS="dataset=synthetic seed=1"
    make rerun CHAPTER=09 PARAMS="learning_rates=(0.01,0.02) smoke=True"

A chapter is named by its number (``1``, ``01`` and ``10`` are chapters 1, 1 and 10), by the start
of its file name (``02-time``, ``time-and-place``), or by a path to its ``.md`` file.

Values are read as Python literals first (``seed=1`` an int, ``lr=1e-3`` a float,
``arima_nodes=None``, ``learning_rates=(0.01,0.02)`` a tuple, ``smoke=True`` a bool; ``true`` and
``false`` are accepted too), else as plain text (``dataset=gowalla-nyc``, ``dataset=my.csv``).
Each value is then checked against the type in its line of the chapter's ``parameters`` cell
(``seed = 0  # (int) meaning``) before anything runs; an int is accepted where a float is
expected. Parameters the cell does not define are refused.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from stlab.config import PROJECT_ROOT, env_setting

#: Where ``make rerun`` puts its ``PARAMS`` (read when no parameter is given on the command line).
PARAMS_ENV = "STLAB_RERUN_PARAMS"

ROOT = PROJECT_ROOT
CHAPTERS = ROOT / "chapters"
_TYPE_COMMENT = re.compile(r"#\s*\(([^)]*)\)")
_PLAIN_WORDS = {"true": True, "false": False, "none": None, "null": None}


def find_chapter(name: str, chapters: Path | None = None) -> Path:
    """Resolve ``1``, ``01``, ``10``, ``01-behaviour-logs``, ``behaviour`` or a path to a chapter's ``.md``."""
    chapters = chapters or CHAPTERS
    candidate = Path(name)
    if candidate.suffix == ".md" and candidate.is_file():
        return candidate.resolve()
    every = sorted(chapters.glob("*.md"))
    if name.isdigit():  # by number: "1" and "01" are chapter 1, never chapter 10 or 11
        matches = [p for p in every if re.match(r"\d+", p.stem) and int(re.match(r"\d+", p.stem)[0]) == int(name)]
    else:
        stem = candidate.name.removesuffix(".md")
        exact = [p for p in every if p.stem == stem]
        matches = exact or [p for p in every if p.stem.startswith(stem)
                            or re.sub(r"^\d+-", "", p.stem).startswith(stem)]
    if len(matches) != 1:
        known = ", ".join(p.stem for p in every if p.stem[:1].isdigit())
        found = f" (it matches {', '.join(p.stem for p in matches)})" if matches else ""
        raise SystemExit(f"no single chapter matches {name!r}{found}; chapters: {known}")
    return matches[0]


def parse_value(text: str) -> Any:
    """A Python literal if ``text`` is one (``1e-3``, ``None``, ``(1, 2)``), else the text itself."""
    text = text.strip()
    if text.lower() in _PLAIN_WORDS:
        return _PLAIN_WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_params(pairs: list[str], types: dict[str, str | None] | None = None,
                 chapter: str = "the chapter") -> dict[str, Any]:
    """Parse ``name=value`` pairs; with ``types``, check each value (see :func:`check_params`).

    A value that parsed as a literal of the wrong type, where the parameter takes text, is kept
    as the text typed (``dataset=2024`` stays ``"2024"`` for a ``(str)`` parameter).
    """
    params: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"parameters are name=value pairs, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip()
        params[key], raw[key] = parse_value(value), value.strip()
    if types is not None:
        for key, value in params.items():
            declared = types.get(key)
            if declared and not _matches(value, declared) and _matches(raw[key], declared):
                params[key] = raw[key]
        params = check_params(params, types, chapter=chapter)
    return params


def _parameters_cell(notebook: Any) -> str:
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise SystemExit("the chapter has no cell tagged 'parameters'")


def parameter_types(source: str) -> dict[str, str | None]:
    """Each name assigned in a parameters cell, with the type of its ``# (type) meaning`` comment."""
    lines = source.splitlines()
    types: dict[str, str | None] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        comment = _TYPE_COMMENT.search(lines[node.end_lineno - 1]) if node.end_lineno else None
        for target in targets:
            if isinstance(target, ast.Name):
                types[target.id] = comment.group(1).strip() if comment else None
    return types


def parameter_names(notebook: Any) -> set[str]:
    """Names assigned in the cell tagged ``parameters``."""
    return set(parameter_types(_parameters_cell(notebook)))


def _matches(value: Any, declared: str) -> bool:
    """Whether ``value`` is of the type written as ``declared`` (``int``, ``str | None``, ``tuple[float, ...]``)."""
    try:
        node = ast.parse(declared, mode="eval").body
    except SyntaxError:
        return True  # not a type we can read: leave it to the chapter
    return _check(value, node)


def _check(value: Any, node: ast.expr) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _check(value, node.left) or _check(value, node.right)
    if isinstance(node, ast.Constant) and node.value is None:
        return value is None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        container = node.value.id
        if not _check(value, node.value):
            return False
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if container == "tuple":
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return all(_check(v, args[0]) for v in value)
            return len(args) == len(value) and all(_check(v, a) for v, a in zip(value, args))
        if container in ("list", "set", "frozenset"):
            return all(_check(v, args[0]) for v in value)
        if container == "dict" and len(args) == 2:
            return all(_check(k, args[0]) and _check(v, args[1]) for k, v in value.items())
        return True
    if not isinstance(node, ast.Name):
        return True
    name = node.id
    if name == "None":
        return value is None
    if name == "bool":
        return isinstance(value, bool)
    if name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    kinds = {"str": str, "tuple": tuple, "list": list, "dict": dict, "set": set, "frozenset": frozenset}
    return isinstance(value, kinds[name]) if name in kinds else True


def check_params(params: dict[str, Any], types: dict[str, str | None], chapter: str = "the chapter") -> dict[str, Any]:
    """Refuse unknown names and values that are not of their declared type; ints become floats where floats are due.

    Raises:
        SystemExit: naming the parameter, its expected type and the value given.
    """
    unknown = set(params) - set(types)
    if unknown:
        raise SystemExit(f"{chapter} has no parameter(s) {sorted(unknown)}; it has {sorted(types)}")
    checked = dict(params)
    for name, value in params.items():
        declared = types[name]
        if declared is None:
            continue
        if not _matches(value, declared):
            raise SystemExit(f"parameter {name} of {chapter} expects ({declared}), got {value!r} "
                             f"({type(value).__name__})")
        words = set(re.findall(r"\w+", declared))
        if isinstance(value, int) and not isinstance(value, bool) and "float" in words and "int" not in words:
            checked[name] = float(value)
    return checked


def _papermill_value(value: Any) -> Any:
    """``value`` as papermill can inject it: tuples (at any depth) become lists, which chapters
    accept wherever they take a tuple (they iterate over it or convert it)."""
    if isinstance(value, (tuple, list)):
        return [_papermill_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _papermill_value(item) for key, item in value.items()}
    return value


def rerun(chapter: str, params: dict[str, Any], output_dir: Path | None = None) -> Path:
    """Execute a chapter with ``params`` injected after its parameters cell; return the output path.

    ``params`` are checked against the parameters cell (names and declared types) first.
    """
    import jupytext

    path = find_chapter(chapter)
    notebook = jupytext.read(path)
    params = check_params(params, parameter_types(_parameters_cell(notebook)), chapter=path.stem)
    return _execute(path, notebook, params, output_dir)


def _execute(path: Path, notebook: Any, params: dict[str, Any], output_dir: Path | None) -> Path:
    import papermill

    label = "-".join(f"{k}={v}" for k, v in sorted(params.items()))
    label = re.sub(r"[^A-Za-z0-9=._-]+", "_", label)
    output_dir = output_dir or ROOT / "_build" / "runs"
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{path.stem}{'-' + label if label else ''}.ipynb"
    data = env_setting("data")
    if data:  # the kernel runs inside chapters/, where a relative folder would point elsewhere
        os.environ["STLAB_DATA"] = str(Path(data).expanduser().resolve())
    # papermill writes a tuple as the text of the tuple; a list is written as a list literal.
    injected = {name: _papermill_value(value) for name, value in params.items()}
    papermill.execute_notebook(notebook, str(output), parameters=injected, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=True)
    return output


def main(argv: list[str] | None = None) -> int:
    import jupytext

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and os.environ.get(PARAMS_ENV):
        # `make rerun` hands PARAMS over in the environment: values such as (16,64) would be
        # shell syntax on a command line. Split like a shell would, quotes and all.
        argv = [argv[0], *shlex.split(os.environ[PARAMS_ENV])]
    if not argv:
        print(__doc__)
        return 2
    path = find_chapter(argv[0])
    notebook = jupytext.read(path)
    types = parameter_types(_parameters_cell(notebook))
    params = parse_params(argv[1:], types, chapter=path.stem)
    # Chapters run inside chapters/: a path the reader gave relative to where they are is made
    # absolute here, while it still means what they meant.
    params = {name: str(Path(value).resolve()) if isinstance(value, str) and os.sep in value and Path(value).exists()
              else value for name, value in params.items()}
    output = _execute(path, notebook, params, None)
    print(f"executed notebook: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
