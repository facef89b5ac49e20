"""Execute the book's chapters, in parallel if asked, into the build's notebook cache before the HTML build.

``make book`` (``JOBS=4`` for four at once) runs this first; ``jupyter-book build`` then finds every chapter in
``_build/.jupyter_cache`` and only renders. Each chapter is read exactly as myst-nb reads it
(its MyST reader) and run exactly as myst-nb runs it (jupyter-cache's ``single_nb_execution``, in
the chapter's folder), so the cache entry is the one the build looks up: same code cells, same
kernel, same outputs. Chapters already cached are skipped. Each code cell's seconds are kept in the
cache record's data (``cell_seconds``; ``benchmarks/bench_book.py`` lists the slowest cells), not
in the notebook: the cache's hash covers cell metadata, and the build would not find the entry.

With ``--jobs`` above 1, each worker runs one chapter at a time with ``cores // jobs`` math threads, so
parallel chapters do not oversubscribe the CPU; the longest chapters (by their last recorded time)
start first. On two cores this gains little (the chapters' own math already uses both); on a
machine with more cores than chapters' parallelism it shortens a cold build several times
(``benchmarks/bench_book.py --jobs`` measures it).

Usage (from the repository root; ``make book JOBS=N`` does this):

    .venv/bin/python tools/execute_chapters.py --jobs 4
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def book_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def chapters() -> list[Path]:
    """The executable pages of ``_toc.yml``, in reading order, without the excluded ones."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    excluded = book_config().get("execute", {}).get("exclude_patterns", [])
    out = []
    for file in files:
        path = ROOT / Path(file).with_suffix(".md")
        relative = path.relative_to(ROOT).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) for pattern in excluded):
            continue
        if path.is_file() and "kernelspec:" in path.read_text(encoding="utf-8").split("\n---", 1)[0]:
            out.append(path)
    return out


def read_chapter(path: Path) -> nbformat.NotebookNode:
    """The notebook myst-nb builds from a MyST chapter (the reader the build uses)."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), add_source_map=True, path=str(path))


def _limit_threads(threads: int) -> None:
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def cell_seconds(notebook: nbformat.NotebookNode) -> list[tuple[float, str]]:
    """Each code cell's seconds and first line, taken out of the timing metadata nbclient recorded."""
    from datetime import datetime

    out = []
    for cell in notebook.cells:
        stamps = cell.get("metadata", {}).pop("execution", {})
        if cell.cell_type != "code":
            continue
        start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        seconds = ((datetime.fromisoformat(end.replace("Z", "+00:00"))
                    - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds() if start and end else 0.0)
        first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
        out.append((round(seconds, 3), first[:80]))
    return out


def execute(path: str, timeout: int) -> tuple[str, float, str | None, dict[str, Any]]:
    """Run one chapter in its own folder; return its path, seconds, error text and executed notebook."""
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = read_chapter(Path(path))
    result = single_nb_execution(notebook, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False,
                                 meta_override=True, record_timing=True)
    error = result.exc_string if result.err is not None else None
    return path, result.time, error, nbformat.from_dict(notebook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed at once (default 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(CACHE))
    timeout = int(book_config().get("execute", {}).get("timeout", 1800))
    previous = {Path(record.uri).name: record.data.get("execution_seconds", 0.0) for record in cache.list_cache_records()}
    todo = []
    for path in chapters():
        try:
            cache.match_cache_notebook(read_chapter(path))
        except KeyError:
            todo.append(path)
    if not todo:
        print("Every chapter is already in the notebook cache.")
        return 0
    todo.sort(key=lambda path: -previous.get(path.name, 0.0))  # longest first: the pool ends together
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    print(f"Executing {len(todo)} chapter(s), {args.jobs} at a time"
          + (f", {threads} math thread(s) each" if args.jobs > 1 else ""))
    start = time.perf_counter()
    failed = []
    # One chapter at a time keeps the libraries' own thread counts, as a plain build would.
    limits = {"initializer": _limit_threads, "initargs": (threads,)} if args.jobs > 1 else {}
    with ProcessPoolExecutor(max_workers=args.jobs, **limits) as pool:
        futures = [pool.submit(execute, str(path), timeout) for path in todo]
        for future in as_completed(futures):
            path, seconds, error, notebook = future.result()
            name = Path(path).relative_to(ROOT).as_posix()
            if error is not None:
                failed.append(name)
                print(f"FAILED   {name} after {seconds:.1f} s\n{error}", file=sys.stderr)
                continue
            # Cache entries are written here, in one process, so the cache's database sees one writer.
            stage = cache.add_nb_to_project(path, read_data={"name": "myst_nb_md", "type": "plugin"})
            timings = cell_seconds(notebook)
            cache.cache_notebook_bundle(CacheBundleIn(notebook, stage.uri,
                                                      data={"execution_seconds": seconds, "cell_seconds": timings}),
                                        check_validity=False, overwrite=True)
            print(f"executed {name} in {seconds:.1f} s")
    print(f"{len(todo) - len(failed)} chapter(s) executed in {time.perf_counter() - start:.1f} s wall"
          + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
