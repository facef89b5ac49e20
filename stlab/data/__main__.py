"""Command line for the data layer.

    python -m stlab.data list                 the registry, one line per file
    python -m stlab.data fetch --all          fetch and verify every data set that can be reached
    python -m stlab.data fetch NAME [NAME..]  the same for some data sets
    python -m stlab.data check-book --dataset DATASET
                                              can the book run? (used by ``make book``)
"""

from __future__ import annotations

import argparse
import sys

from stlab.data.errors import ChecksumError, DataError, DataNotFoundError
from stlab.data.fetch import fetch_file
from stlab.data.registry import REGISTRY

#: Files the book's chapters read when they run on real data (by data set).
BOOK_FILES: dict[str, list[str]] = {
    "gowalla-nyc": ["gowalla_events_nyc_bbox.tsv.gz", "gowalla_venues_nyc.tsv"],
    "taobao-userbehavior": ["UserBehavior_head.csv", "UserBehavior_flink_timesorted_slice.csv"],
    "movielens-100k": ["u.data", "u.user", "u.item", "u.genre"],
    "uci-bike-sharing": ["hour.csv"],
}


def _list() -> int:
    for ds in REGISTRY.values():
        for f in ds.files:
            where = "manual" if f.manual else ("local only" if f.url is None else "download")
            print(f"{ds.name:22s} {f.name:42s} {where:10s} {(f.sha256 or '(recorded on first download)')[:16]}")
    return 0


def _fetch(names: list[str]) -> int:
    failures = 0
    for name in names:
        ds = REGISTRY[name]
        for f in ds.files:
            if f.manual:
                print(f"  skip  {name}/{f.name}: download by hand from {f.url}")
                continue
            try:
                resolved = fetch_file(ds, f.name)
                print(f"  ok    {name}/{f.name}  ({resolved.source}: {resolved.path})")
            except DataNotFoundError:
                print(f"  --    {name}/{f.name}: not reachable here")
            except ChecksumError as err:
                failures += 1
                print(f"  FAIL  {name}/{f.name}: {err}")
    return 1 if failures else 0


def _check_book(dataset: str) -> int:
    if dataset == "synthetic":
        print("Building the book on the synthetic city (no data files needed).")
        return 0
    missing, errors = [], []
    for name, files in BOOK_FILES.items():
        for filename in files:
            try:
                fetch_file(name, filename, progress=False)
            except DataNotFoundError:
                if name == "gowalla-nyc" and filename.startswith("gowalla_events"):
                    try:  # the loader can cut NYC from the worldwide file instead
                        fetch_file("gowalla", "loc-gowalla_totalCheckins.txt", progress=False)
                        continue
                    except DataNotFoundError:
                        pass
                missing.append(f"{name}/{filename}")
            except DataError as err:
                errors.append(str(err))
    if errors:
        print("\n\n".join(errors), file=sys.stderr)
        return 1
    if missing:
        print(
            "The book's chapters run on real data, and these files were neither found nor downloadable:\n"
            + "".join(f"  - {m}\n" for m in missing)
            + "Two ways forward:\n"
            "  1. name a folder holding the data sets (as <folder>/<data set>/<file>):\n"
            "         make book STLAB_DATA=/path/to/data        (for example STLAB_DATA=../shared/data)\n"
            "  2. build the whole book offline on the simulated city:\n"
            "         make book DATASET=synthetic\n"
            "Nothing was executed.",
            file=sys.stderr,
        )
        return 2
    print("All data the book needs is present and verified.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stlab.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    fetch_p = sub.add_parser("fetch")
    fetch_p.add_argument("names", nargs="*")
    fetch_p.add_argument("--all", action="store_true")
    check = sub.add_parser("check-book")
    check.add_argument("--dataset", default="")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    if args.command == "fetch":
        names = list(REGISTRY) if args.all else args.names
        unknown = [n for n in names if n not in REGISTRY]
        if unknown or not names:
            parser.error(f"name data sets from {sorted(REGISTRY)} or pass --all")
        return _fetch(names)
    return _check_book(args.dataset or "")


if __name__ == "__main__":
    sys.exit(main())
