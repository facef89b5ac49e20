"""Time the book: a cold build with each chapter's execution time, a cached rebuild, and optionally
a cold build with chapters executed in parallel and the test suite.

Usage (from the repository root, after `make install`):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_book.py [--jobs 2] [--tests]

The first cold build executes one chapter at a time (``JOBS=1``); ``--jobs N`` adds one with N at
once (``make book``'s default is one per core). Every chapter has one math thread either way.

A cold build starts from an empty ``_build`` and an empty data and run cache (``STLAB_CACHE`` in a
fresh temporary folder), so nothing trained earlier is reused. Each chapter's time is the one
myst-nb (or ``tools/execute_chapters.py`` with ``--jobs``) logs for it. Prints a Markdown table and
writes it to benchmarks/results/book.md. Goals: every chapter <= 120 s and a cold build <= 12 min on
the 2-core machine, a cached rebuild <= 60 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stlab.reporting import write_report

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_GOAL_S = 120.0
COLD_GOAL_S = 12 * 60.0
CACHED_GOAL_S = 60.0
# myst-nb: "<path>.md: Executed notebook in 12.21 seconds"; tools/execute_chapters.py: "executed <path>.md in 12.2 s"
EXECUTED = re.compile(r"(?:^|/)(chapters/[\w.-]+)\.md: Executed notebook in ([\d.]+) seconds|^executed (chapters/[\w.-]+)\.md in ([\d.]+) s",
                      re.MULTILINE)


def chapter_times(log: str) -> dict[str, float]:
    """Seconds per chapter from a build or execution log."""
    out = {}
    for match in EXECUTED.finditer(log):
        name = match.group(1) or match.group(3)
        out[Path(name).name] = float(match.group(2) or match.group(4))
    return out


def cold_build(env: dict[str, str], jobs: int) -> tuple[float, dict[str, float]]:
    """Seconds of `make book` from nothing, and each chapter's seconds."""
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    run_env = {**env, "STLAB_CACHE": tempfile.mkdtemp(prefix="stlab-bench-cache-")}
    start = time.perf_counter()
    subprocess.run(["make", "book", f"JOBS={jobs}"], cwd=ROOT, env=run_env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    log = (ROOT / "_build" / "book.log").read_text(encoding="utf-8", errors="replace")
    if (ROOT / "_build" / "execute.log").is_file():
        log += "\n" + (ROOT / "_build" / "execute.log").read_text(encoding="utf-8", errors="replace")
    shutil.rmtree(run_env["STLAB_CACHE"], ignore_errors=True)
    return seconds, chapter_times(log)


def slowest_cells(count: int = 3) -> list[tuple[str, float, str]]:
    """The slowest cells of every chapter, from the seconds tools/execute_chapters.py kept in the cache."""
    from jupyter_cache import get_cache

    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    out = []
    for record in cache.list_cache_records():
        timings = [(Path(record.uri).stem, float(seconds), first)
                   for seconds, first in record.data.get("cell_seconds", [])]
        out += sorted(timings, key=lambda row: -row[1])[:count]
    return sorted(out, key=lambda row: -row[1])


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def verdict(seconds: float, goal: float) -> str:
    return "yes" if seconds <= goal else "**no**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=0, help="also time a cold build with JOBS chapters at once")
    parser.add_argument("--tests", action="store_true", help="also time `make test`")
    args = parser.parse_args()
    if not os.environ.get("STLAB_DATA"):
        print("set STLAB_DATA to the folder holding the data sets (the book runs on real data)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    rows: list[tuple[str, str, str, str]] = []

    cold, chapters = cold_build(env, jobs=1)
    rows.append(("`make book`, cold (empty _build and caches)", f"{cold:.0f} s", f"<= {COLD_GOAL_S:.0f} s",
                 verdict(cold, COLD_GOAL_S)))
    cached = timed(["make", "book"], env)
    rows.append(("`make book`, cached rebuild", f"{cached:.1f} s", f"<= {CACHED_GOAL_S:.0f} s", verdict(cached, CACHED_GOAL_S)))
    for name, seconds in sorted(chapters.items()):
        rows.append((f"chapter `{name}`", f"{seconds:.1f} s", f"<= {CHAPTER_GOAL_S:.0f} s", verdict(seconds, CHAPTER_GOAL_S)))
    rows.append(("chapters, sum", f"{sum(chapters.values()):.0f} s", "", ""))
    cells = slowest_cells()
    if args.jobs > 1:
        parallel, parallel_chapters = cold_build(env, jobs=args.jobs)
        rows.append((f"`make book JOBS={args.jobs}`, cold", f"{parallel:.0f} s", f"<= {COLD_GOAL_S:.0f} s",
                     verdict(parallel, COLD_GOAL_S)))
        rows.append((f"chapters with JOBS={args.jobs}, sum of their times", f"{sum(parallel_chapters.values()):.0f} s", "", ""))
    if args.tests:
        tests = timed(["make", "test"], env)
        rows.append(("`make test`", f"{tests:.0f} s", "", ""))

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"Machine: {machine}; data: {os.environ['STLAB_DATA']}", "", "| what | measured | goal | met |",
             "|---|---|---|---|"] + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Slowest cells (cold build, one chapter at a time):", "", "| chapter | seconds | cell starts with |",
              "|---|---|---|"] + [f"| {chapter} | {seconds:.1f} | `{first}` |" for chapter, seconds, first in cells[:25]]
    table = "\n".join(lines)
    print(table)
    write_report(ROOT / "benchmarks" / "results" / "book.md", f"# Book timings\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
