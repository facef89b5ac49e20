"""Execute the book's chapters, in parallel if asked, into the build's notebook cache before the HTML build.

``make book`` (``JOBS=4`` for four at once) runs this first; ``jupyter-book build`` then finds every chapter in
``_build/.jupyter_cache`` and only renders. Each chapter is read exactly as myst-nb reads it
(its MyST reader) and run exactly as myst-nb runs it (jupyter-cache's ``single_nb_execution``, in
the chapter's folder), so the cache entry is the one the build looks up: same code cells, same
kernel, same outputs. Chapters already cached are skipped. Each code cell's seconds are kept in the
cache record's data (``cell_seconds``; ``benchmarks/bench_book.py`` lists the slowest cells), not
in the notebook: the cache's hash covers cell metadata, and the build would not find the entry.

Every chapter runs with ``--threads`` math threads (default 1: PyTorch, TensorFlow, BLAS), whatever
the number of jobs or of cores, so that a chapter's numbers do not depend on the machine's core
count or on how many chapters run at once (libraries sum in another order with more threads, which
moves the last digits). ``--jobs`` chapters run at once (``make book`` uses one per core, at most
four). A chapter that reads another's entries in the run cache (:data:`READS_FROM`, see
``stlab.reference_runs``) starts after that one has finished, so that it reads instead of training
again; otherwise the longest chapters (by their last recorded time) start first.

Usage (from the repository root; ``make book JOBS=N THREADS=M`` does this):

    .venv/bin/python tools/execute_chapters.py --jobs 2 --threads 1
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")

#: Chapters that read what an earlier chapter stored in the run cache (stlab.reference_runs), by
#: file stem: they start once those have finished. Run before them, they would train the same
#: models again and get the same numbers, only later.
READS_FROM: dict[str, tuple[str, ...]] = {
    "06-recurrent-keras": ("04-next-visit-baselines",),
    "07-recurrent-pytorch": ("04-next-visit-baselines", "06-recurrent-keras"),
    "08-self-attention": ("04-next-visit-baselines", "07-recurrent-pytorch"),
    "09-pretrained-models": ("04-next-visit-baselines", "08-self-attention"),
    "14-testing-and-running": ("08-self-attention",),
}


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


def _record(cache: Any, future: Future, failed: list[str], bundle: Any) -> None:
    """Store a finished chapter in the notebook cache (or report its failure)."""
    path, seconds, error, notebook = future.result()
    name = Path(path).relative_to(ROOT).as_posix()
    if error is not None:
        failed.append(name)
        print(f"FAILED   {name} after {seconds:.1f} s\n{error}", file=sys.stderr, flush=True)
        return
    # Cache entries are written here, in one process, so the cache's database sees one writer.
    stage = cache.add_nb_to_project(path, read_data={"name": "myst_nb_md", "type": "plugin"})
    cache.cache_notebook_bundle(bundle(notebook, stage.uri, data={"execution_seconds": seconds,
                                                                  "cell_seconds": cell_seconds(notebook)}),
                                check_validity=False, overwrite=True)
    print(f"executed {name} in {seconds:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed at once (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="math threads of each chapter (default 1, whatever --jobs and the core count)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be at least 1")

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
    print(f"Executing {len(todo)} chapter(s), {args.jobs} at a time, {args.threads} math thread(s) each")
    start = time.perf_counter()
    failed: list[str] = []
    unfinished = {path.stem for path in todo}

    def ready(path: Path) -> bool:
        return not unfinished.intersection(READS_FROM.get(path.stem, ()))

    pending, running = list(todo), {}  # type: ignore[var-annotated]
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_limit_threads, initargs=(args.threads,)) as pool:
        while pending or running:
            while pending and len(running) < args.jobs:
                chosen = next((path for path in pending if ready(path)), None)
                if chosen is None:
                    if running:
                        break  # wait for the chapter it reads from
                    chosen = pending[0]
                pending.remove(chosen)
                running[pool.submit(execute, str(chosen), timeout)] = chosen
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                unfinished.discard(running.pop(future).stem)
                _record(cache, future, failed, CacheBundleIn)
    print(f"{len(todo) - len(failed)} chapter(s) executed in {time.perf_counter() - start:.1f} s wall"
          + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
