"""Run the study from the command line (``make study`` calls ``run``).

    python -m stlab.study run [--grid default|full|reduced|smoke] [--store results/study]
                              [--executor ray|local] [--set seeds=5 --set datasets=gowalla-nyc,synthetic]
    python -m stlab.study status [--store results/study]
    python -m stlab.study publish [--store results/study]   (compact it for committing)
    python -m stlab.study grids

``run`` is resumable: kill it and run it again, and it redoes only what is missing (and retries
what failed). ``STLAB_RAY_ADDRESS=<address>`` runs the grid on a Ray cluster.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from stlab.study.grid import GRIDS, StudyGrid, get_grid
from stlab.study.runner import run_study
from stlab.study.store import DEFAULT_STORE, ResultsStore


def _override(text: str) -> tuple[str, Any]:
    """``key=value`` -> a field of :class:`StudyGrid` with its type (tuples from commas)."""
    key, sep, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(StudyGrid)}
    if not sep or key not in fields:
        raise argparse.ArgumentTypeError(f"{text!r}: use key=value with a key among {sorted(fields)}")
    default = getattr(StudyGrid(), key)
    if isinstance(default, tuple):
        return key, tuple(v for v in value.split(",") if v)
    if isinstance(default, bool):
        return key, value.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return key, int(value)
    return key, (None if value.lower() == "none" else value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stlab.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a grid into a results store (resumable)")
    run.add_argument("--grid", default="default", choices=sorted(GRIDS))
    run.add_argument("--store", type=Path, default=DEFAULT_STORE)
    run.add_argument("--executor", default="ray", choices=("ray", "local"))
    run.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                     help="replace a field of the grid, e.g. --set seeds=5 --set datasets=gowalla-nyc,synthetic")
    run.add_argument("--no-progress", action="store_true")
    status = sub.add_parser("status", help="what a results store holds")
    status.add_argument("--store", type=Path, default=DEFAULT_STORE)
    publish = sub.add_parser("publish", help="compact a store for committing: one file per folder, per-query "
                                             "values of the chosen settings' runs only")
    publish.add_argument("--store", type=Path, default=DEFAULT_STORE)
    sub.add_parser("grids", help="list the named grids and their size")
    args = parser.parse_args(argv)

    if args.command == "grids":
        for name, grid in GRIDS.items():
            print(f"{name:8s} {len(grid.cells()):4d} cells, at most {grid.num_runs():5d} runs: "
                  f"{', '.join(grid.datasets + grid.forecast_datasets)}")
        return 0
    if args.command == "publish":
        from stlab.study.report import final_runs

        store = ResultsStore(args.store)
        chosen = set(final_runs(store)["run_id"])
        print(f"{store}: compacted", store.compact(keep_queries=chosen))
        return 0
    if args.command == "status":
        store = ResultsStore(args.store)
        runs = store.runs()
        print(f"{store}: {len(runs)} finished runs, {len(store.failed())} failed")
        if len(runs):
            print(store.sql("SELECT kind, dataset, preset, count(*) AS runs, count(DISTINCT model) AS models, "
                            "round(sum(wall_seconds) / 60, 1) AS minutes FROM runs GROUP BY ALL ORDER BY ALL")
                  .to_string(index=False))
        for failure in store.failed():
            print("failed:", failure["job"]["cell"], failure["error"])
        return 0
    overrides = dict(args.overrides)
    for key in ("datasets", "forecast_datasets"):  # a reader's file, absolute: Ray workers run elsewhere
        if key in overrides:
            overrides[key] = tuple(str(Path(d).resolve()) if Path(d).is_file() else d for d in overrides[key])
    grid = get_grid(args.grid, **overrides)
    print(f"grid {grid.name!r}: {len(grid.cells())} cells, at most {grid.num_runs()} runs -> {args.store}")
    summary = run_study(grid, args.store.resolve(), executor=args.executor, progress=not args.no_progress)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
