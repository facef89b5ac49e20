"""Time the book: cold build, each chapter's execution and peak memory, cached rebuild, tests.

Usage (from the repository root, after `make install`):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_book.py [--skip-tests]

Prints a Markdown table and writes it to benchmarks/results/book.md. Goals: each chapter
<= 60 s, the whole book <= 10 min cold, a cached rebuild <= 60 s, `make test` <= 5 min.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stlab.reporting import write_report

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]-*.md"))

MEASURE_CHAPTER = """
import resource, sys, time
from pathlib import Path
from stlab.rerun import rerun
start = time.perf_counter()
rerun(sys.argv[1], {}, output_dir=Path(sys.argv[2]))
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{seconds:.2f} {peak_mib:.0f}")
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("STLAB_DATA"):
        print("set STLAB_DATA to the folder holding the data sets (the book runs on real data)", file=sys.stderr)
        return 2
    python = str(ROOT / ".venv" / "bin" / "python")
    env = {**os.environ, "STLAB_CACHE": tempfile.mkdtemp(prefix="stlab-bench-cache-")}
    rows: list[tuple[str, str, str]] = []

    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    rows.append(("`make book`, cold (empty _build and data cache)", f"{timed(['make', 'book'], env):.1f} s", "<= 600 s"))
    rows.append(("`make book`, cached rebuild", f"{timed(['make', 'book'], env):.1f} s", "<= 60 s"))
    with tempfile.TemporaryDirectory() as out:
        for chapter in CHAPTERS:
            result = subprocess.run([python, "-c", MEASURE_CHAPTER, chapter, out], cwd=ROOT, env=env,
                                    check=True, capture_output=True, text=True)
            seconds, peak = result.stdout.split()[-2:]
            rows.append((f"chapter `{chapter}` (papermill, default parameters)", f"{float(seconds):.1f} s, peak {peak} MiB",
                         "<= 60 s"))
    if not args.skip_tests:
        rows.append(("`make test`", f"{timed(['make', 'test'], env):.1f} s", "<= 300 s"))

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"Machine: {machine}; data: {os.environ['STLAB_DATA']}", "", "| what | measured | goal |",
             "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    table = "\n".join(lines)
    print(table)
    write_report(ROOT / "benchmarks" / "results" / "book.md", f"# Book timings\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
