"""Cleaning and splitting a large log: pandas in memory against DuckDB out of core.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_outofcore.py [--events 10000000] [--memory-limit 2GB,500MB] [--threads N]

Generates, once, a synthetic check-in log of ``--events`` rows in a city (users who mostly stay in
a home district, POIs with skewed popularity, a year of time stamps) with the problems the cleaning
rules look for: exact duplicates (1 %), repeats within minutes (2 %), jumps too fast to travel
(0.1 %) and points outside the city (0.5 %), shuffled. It is written in chunks to a Parquet file
under ``<STLAB_CACHE>/bench`` and reused by later runs.

Then, each in a fresh Python process, one after the other:

* **pandas** -- ``pd.read_parquet`` and ``stlab.splits.clean_and_split`` (k-core on training events);
* **DuckDB** -- ``stlab.outofcore.clean_and_split_duckdb`` on the same file, writing the parts as Parquet,
  once per memory limit in ``--memory-limit`` (beyond it DuckDB spills to disk).

Both use ``CleaningConfig(bbox=NYC_BBOX)`` (k-core 10/10). Seconds are measured inside the process
(from before reading the file to the result, without the interpreter's start); peak memory is the
process's maximum resident set (``getrusage``). The two must keep the same rows in each part; the
script exits with status 1 otherwise. Prints a Markdown table and writes it to
benchmarks/results/outofcore.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1_000_000  # rows generated and written at a time
NOISE = {"duplicates": 0.01, "repeats": 0.02, "jumps": 0.001, "outside": 0.005}
DISTRICTS = 200
EVENTS_PER_USER = 50
EVENTS_PER_POI = 100


def _chunk(rng: np.random.Generator, rows: int, first_user: int, poi_lat: np.ndarray, poi_lon: np.ndarray,
           centre_lat: np.ndarray, centre_lon: np.ndarray) -> dict[str, np.ndarray]:
    """``rows`` shuffled check-ins of new users, noise included."""
    base = int(rows / (1 + sum(NOISE.values()))) + 100  # a little more than needed, cut below
    users = max(1, base // EVENTS_PER_USER)
    activity = np.cumsum(rng.lognormal(0.0, 1.0, users))
    user = first_user + np.searchsorted(activity, rng.uniform(0, activity[-1], base))
    home = rng.integers(0, DISTRICTS, users)[user - first_user]
    district = np.where(rng.random(base) < 0.9, home, rng.integers(0, DISTRICTS, base))
    per_district = len(poi_lat) // DISTRICTS
    poi = district + DISTRICTS * (per_district * rng.random(base) ** 3).astype(np.int64)
    start = np.datetime64("2010-01-01T00:00:00", "s").astype(np.int64)
    t = start + rng.integers(0, 365 * 86400, base)
    lat, lon = poi_lat[poi], poi_lon[poi]
    parts = [(user, poi, t, lat, lon)]

    def copy(share: float) -> tuple[np.ndarray, ...]:
        i = rng.integers(0, base, int(base * share))
        return user[i], poi[i], t[i].copy(), lat[i].copy(), lon[i].copy()

    parts.append(copy(NOISE["duplicates"]))
    u, p, tt, a, o = copy(NOISE["repeats"])
    parts.append((u, p, tt + rng.integers(1, 600, len(tt)), a, o))
    u, p, tt, a, o = copy(NOISE["jumps"])  # minutes later at another district's centre
    far = rng.integers(0, DISTRICTS, len(tt))
    parts.append((u, p, tt + rng.integers(10, 120, len(tt)), centre_lat[far], centre_lon[far]))
    u, p, tt, a, o = copy(NOISE["outside"])
    parts.append((u, p, tt, a + 1.0, o))
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    keep = rng.permutation(len(columns[0]))[:rows]
    return dict(zip(("user_id", "poi_id", "timestamp", "lat", "lon"), (c[keep] for c in columns), strict=True))


def generate(path: Path, events: int, seed: int) -> None:
    """Write the synthetic log to ``path`` in chunks of ``CHUNK`` rows (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stlab.data import NYC_BBOX
    from stlab.data.fetch import atomic_path

    rng = np.random.default_rng(seed)
    box = NYC_BBOX
    centre_lat = rng.uniform(box.lat_min + 0.05, box.lat_max - 0.05, DISTRICTS)
    centre_lon = rng.uniform(box.lon_min + 0.05, box.lon_max - 0.05, DISTRICTS)
    n_pois = max(DISTRICTS, events // EVENTS_PER_POI) // DISTRICTS * DISTRICTS
    district = np.arange(n_pois) % DISTRICTS
    poi_lat = np.clip(centre_lat[district] + rng.normal(0, 0.01, n_pois), box.lat_min, box.lat_max)
    poi_lon = np.clip(centre_lon[district] + rng.normal(0, 0.01, n_pois), box.lon_min, box.lon_max)
    schema = pa.schema([("user_id", pa.int64()), ("poi_id", pa.int64()), ("timestamp", pa.timestamp("us", tz="UTC")),
                        ("lat", pa.float64()), ("lon", pa.float64())])
    with atomic_path(path) as temporary, pq.ParquetWriter(temporary, schema) as writer:
        written, first_user = 0, 0
        while written < events:
            rows = min(CHUNK, events - written)
            chunk = _chunk(rng, rows, first_user, poi_lat, poi_lon, centre_lat, centre_lon)
            chunk["timestamp"] = chunk["timestamp"] * 1_000_000  # seconds to microseconds
            writer.write_table(pa.table(chunk, schema=schema))
            written += rows
            first_user = int(chunk["user_id"].max()) + 1
            print(f"  generated {written:,} / {events:,}", file=sys.stderr, flush=True)


def child(which: str, data: Path, out: Path, memory_limit: str, threads: int | None) -> None:
    """Run one path in this process; print its measurements as one JSON line."""
    import pandas as pd

    from stlab.cleaning import CleaningConfig
    from stlab.data import NYC_BBOX

    config = CleaningConfig(bbox=NYC_BBOX)
    start = time.perf_counter()
    if which == "pandas":
        from stlab.splits import clean_and_split

        kept, split, _ = clean_and_split(pd.read_parquet(data), config)
        rows = {"kept": len(kept), "train": len(split.train), "val": len(split.val), "test": len(split.test)}
    else:
        from stlab.outofcore import clean_and_split_duckdb

        result = clean_and_split_duckdb(data, out, config, memory_limit=memory_limit, threads=threads)
        rows = {name: result.rows[name] for name in ("kept", "train", "val", "test")}
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"seconds": seconds, "peak_gb": peak_kb / 2**20, **rows}))


def run_child(which: str, data: Path, out: Path, memory_limit: str, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", which, "--data", str(data), "--out", str(out),
               "--memory-limit", memory_limit] + (["--threads", str(args.threads)] if args.threads else [])
    print(f"running {which} {memory_limit if which == 'duckdb' else ''}...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"stopped after {args.timeout:,} s"}
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        why = "killed (out of memory?)" if done.returncode < 0 else tail
        return {"failed": f"exit status {done.returncode}: {why}"}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": wall}


def machine() -> str:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")), platform.machine()) if cpuinfo.exists() else platform.machine()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{model}, {os.cpu_count()} CPU cores, {ram:.0f} GiB RAM, {platform.system()}, Python "
            f"{platform.python_version()}; pandas {version('pandas')}, DuckDB {version('duckdb')}, "
            f"pyarrow {version('pyarrow')}, numpy {version('numpy')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="rows of the synthetic log")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit", default="2GB,500MB", help="DuckDB's memory limits, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB's threads (default: all cores)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds before a path is stopped")
    parser.add_argument("--child", choices=("pandas", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.memory_limit, args.threads)
        return 0
    if args.events < 1000:
        parser.error("--events must be at least 1000")

    from stlab.config import cache_dir
    from stlab.reporting import markdown_table, write_report

    data = cache_dir() / "bench" / f"outofcore-{args.events}-seed{args.seed}.parquet"
    if not data.is_file():
        print(f"writing {data} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        generate(data, args.events, args.seed)
        print(f"  {time.perf_counter() - start:.0f} s, {data.stat().st_size / 2**20:.0f} MiB", file=sys.stderr)
    load_before = os.getloadavg()[0]
    limits = [limit.strip() for limit in args.memory_limit.split(",") if limit.strip()] or ["2GB"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="stlab-bench-outofcore-") as scratch:
        results["pandas: read_parquet + clean_and_split"] = run_child("pandas", data, Path(scratch) / "pandas", "", args)
        for limit in limits:
            results[f"DuckDB: clean_and_split_duckdb, memory limit {limit}"] = run_child(
                "duckdb", data, Path(scratch) / f"duckdb-{limit}", limit, args)
    load_after = os.getloadavg()[0]

    rows = []
    for name, r in results.items():
        ok = "failed" not in r
        rows.append({"path": name, "events": args.events, "seconds": r["seconds"] if ok else None,
                     "rows/s": round(args.events / r["seconds"]) if ok else None,
                     "peak memory GB": r["peak_gb"] if ok else None, "kept rows": r["kept"] if ok else None,
                     "train / val / test": f"{r['train']:,} / {r['val']:,} / {r['test']:,}" if ok else r["failed"]})
    counts = {tuple(r.get(k) for k in ("kept", "train", "val", "test")) for r in results.values()}
    finished = all("failed" not in r for r in results.values())
    same = finished and len(counts) == 1
    verdict = ("Every run keeps the same rows in each part." if same else
               "The runs DISAGREE on the rows kept." if finished else "Not every run finished; nothing to compare.")
    text = "\n\n".join([
        "# Cleaning and splitting a large log: pandas in memory, DuckDB out of core",
        "Written by `benchmarks/bench_outofcore.py`.",
        f"Machine: {machine()}. Load average (1 min) {load_before:.1f} before, {load_after:.1f} after. "
        f"Data: a synthetic log of {args.events:,} check-ins (seed {args.seed}; about 1 % exact duplicates, 2 % "
        "repeats, 0.1 % jumps too fast to travel, 0.5 % outside the city), read from one Parquet file. Both paths: "
        "`CleaningConfig(bbox=NYC_BBOX)` (repeats within 300 s, 300 km/h, k-core 10/10 on training events), "
        "cutoffs at 70 % and 90 % of the events. Each path runs in a fresh process; seconds from before reading "
        "the file to the result (DuckDB's include writing the three parts); peak memory is the process's maximum "
        f"resident set. Command: `python benchmarks/bench_outofcore.py --events {args.events} --memory-limit "
        f"{','.join(limits)}" + (f" --threads {args.threads}" if args.threads else "") + "`.",
        markdown_table(rows, significant=3),
        verdict,
    ] + ([f"Other work shared the machine (load average up to {max(load_before, load_after):.1f} on "
          f"{os.cpu_count()} cores): the seconds of every run are inflated and noisy; peak memory is not."]
         if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) else []))
    print(text)
    write_report(ROOT / "benchmarks" / "results" / "outofcore.md", text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
