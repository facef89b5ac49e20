"""Load test of the recommendation service on loopback, and a crash under load.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_serve.py [--data synthetic] [--smoke] [--requests 2000] \
        [--seconds 30] [--concurrency 4] [--kill-events 300]

Part 1 starts ``python -m stlab.serve`` in a subprocess on a free loopback port, with a new event
log in a temporary folder, and loads each endpoint in turn: ``--concurrency`` threads, each with
its own keep-alive ``httpx.Client``, send requests until ``--requests`` have been sent in all or
``--seconds`` have passed, whichever comes first (after 20 warm-up requests per thread that are
not counted). A ``/recommend`` asks for the top 10 of a random user (seven in ten known, the rest
never seen: the cold-start path) at a random time and place in the city; an ``/events`` posts
one check-in of a random known user at a random POI of the catalogue, with its own
``event_id``. Latency is the round trip the client measures. An error is any answer but 200, or
no answer.

Part 2 crashes the service under load: the threads post check-ins one at a time; once
``--kill-events`` have been acknowledged the service is killed with SIGKILL (in-flight requests
then fail), restarted on the same log, and the log is read back. "Lost" counts acknowledged
check-ins missing from the log after the restart (the service's promise: always 0); "in flight"
counts check-ins stored whose acknowledgement never reached the client (the client cannot tell;
a retry with the same ``event_id`` is not counted twice).

Prints Markdown tables and writes them to benchmarks/results/serve.md. Exits with status 1 if an
acknowledged check-in was lost.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 20  # requests per thread before timing
# Requests are drawn in a week after the synthetic city's log ends (the times only set the hour).
START = np.datetime64("2010-04-26T00:00:00")


@dataclass(frozen=True)
class Catalogue:
    """What the load generator draws from: known user ids, POI ids and the city's box."""

    users: list[Any]
    pois: list[Any]
    lat: tuple[float, float]
    lon: tuple[float, float]


def catalogue(args: argparse.Namespace) -> Catalogue:
    """The service's own catalogue, built in this process the same way (the build is seeded)."""
    from stlab.serve import build_recommender, load_service_data

    model = build_recommender(load_service_data(args.data, smoke=args.smoke, seed=args.seed, timezone=args.timezone))
    return Catalogue(users=model.user_ids, pois=model.poi_ids,
                     lat=(float(model.poi_lat.min()), float(model.poi_lat.max())),
                     lon=(float(model.poi_lon.min()), float(model.poi_lon.max())))


def random_time(rng: np.random.Generator) -> str:
    seconds = int(rng.integers(0, 7 * 24 * 3600))
    return f"{START + np.timedelta64(seconds, 's')}-04:00"


def recommend_body(rng: np.random.Generator, n: int, cat: Catalogue) -> tuple[str, Any]:
    user = cat.users[int(rng.integers(len(cat.users)))] if rng.random() < 0.7 else f"visitor-{n}"
    return "/recommend", {"user": user, "time": random_time(rng), "k": 10,
                          "lat": float(rng.uniform(*cat.lat)), "lon": float(rng.uniform(*cat.lon))}


def event_body(rng: np.random.Generator, n: int, cat: Catalogue, prefix: str = "load") -> tuple[str, Any]:
    return "/events", {"user": cat.users[int(rng.integers(len(cat.users)))],
                       "poi": cat.pois[int(rng.integers(len(cat.pois)))], "time": random_time(rng),
                       "event_id": f"{prefix}-{n}"}


def load(url: str, make: Callable[[np.random.Generator, int], tuple[str, Any]], *, total: int, seconds: float,
         concurrency: int, seed: int) -> dict[str, float | int]:
    """Send ``total`` requests (or for ``seconds``) from ``concurrency`` threads; summarise."""
    lock = threading.Lock()
    sent = [0]
    latencies: list[float] = []
    errors = [0]
    warm = threading.Barrier(concurrency + 1)
    go = threading.Event()
    deadline = [0.0]

    def worker(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=url, timeout=30.0) as http:
            for w in range(WARM_UP):
                path, body = make(rng, -(index * WARM_UP + w) - 1)
                http.post(path, json=body)
            warm.wait()
            go.wait()
            while True:
                with lock:
                    if sent[0] >= total or time.perf_counter() > deadline[0]:
                        break
                    sent[0] += 1
                    n = sent[0]
                path, body = make(rng, n)
                start = time.perf_counter()
                try:
                    ok = http.post(path, json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - start)
                failed += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    warm.wait()
    start = time.perf_counter()
    deadline[0] = start + seconds
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "errors": errors[0], "seconds": elapsed, "requests/s": len(ms) / elapsed,
            "p50 ms": float(np.percentile(ms, 50)), "p90 ms": float(np.percentile(ms, 90)),
            "p99 ms": float(np.percentile(ms, 99)), "max ms": float(ms.max())}


def crash_under_load(service: Any, cat: Catalogue, *, kill_after: int, concurrency: int, seed: int) -> dict[str, Any]:
    """Post check-ins from ``concurrency`` threads, SIGKILL the service after ``kill_after``
    acknowledgements, restart it and compare the log with what was acknowledged."""
    acknowledged: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def poster(index: int) -> None:
        rng = np.random.default_rng([seed, 1000 + index])
        with httpx.Client(base_url=service.url, timeout=10.0) as http:
            n = 0
            while True:
                path, body = event_body(rng, n, cat, prefix=f"crash-{index}")
                n += 1
                try:
                    response = http.post(path, json=body)
                except httpx.HTTPError:
                    return  # the service is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.add(body["event_id"])
                        if len(acknowledged) >= kill_after:
                            enough.set()

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    if not enough.wait(timeout=120):
        raise RuntimeError(f"fewer than {kill_after} check-ins acknowledged in 120 s; see {service.log_path}")
    service.kill()
    for thread in threads:
        thread.join()
    start = time.perf_counter()
    service.restart()
    restart_seconds = time.perf_counter() - start
    health = service.health()
    with sqlite3.connect(f"file:{service.db}?mode=ro", uri=True) as log:
        stored = {row[0] for row in log.execute("SELECT event_id FROM events WHERE event_id LIKE 'crash-%'")}
    return {"acknowledged": len(acknowledged), "stored after restart": len(stored),
            "lost (acknowledged, not stored)": len(acknowledged - stored),
            "in flight (stored, not acknowledged)": len(stored - acknowledged),
            "log replayed at restart": health["events_replayed"], "log size": health["events_stored"],
            "restart to healthy s": restart_seconds}




def machine() -> str:
    from importlib.metadata import version

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() \
        else platform.machine()
    return (f"{model}, {os.cpu_count()} CPU cores, {platform.system()}, Python {platform.python_version()}; "
            f"fastapi {version('fastapi')}, uvicorn {version('uvicorn')}, httpx {version('httpx')}, "
            f"SQLite {sqlite3.sqlite_version}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="what the service is built on (see python -m stlab.serve -h)")
    parser.add_argument("--smoke", action="store_true", help="the small synthetic city")
    parser.add_argument("--timezone", help="the city's zone (for data other than 'synthetic')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per endpoint")
    parser.add_argument("--seconds", type=float, default=30.0, help="at most this long per endpoint")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--kill-events", type=int, default=300, help="acknowledged check-ins before the SIGKILL")
    args = parser.parse_args()
    if min(args.requests, args.concurrency, args.kill_events) < 1 or args.seconds <= 0:
        parser.error("--requests, --concurrency, --kill-events and --seconds must be positive")

    from stlab.reporting import markdown_table, write_report
    from stlab.serve import run_in_background

    load_before = os.getloadavg()[0]
    cat = catalogue(args)
    with tempfile.TemporaryDirectory(prefix="stlab-bench-serve-") as scratch:
        db = Path(scratch) / "events.sqlite"
        start = time.perf_counter()
        service = run_in_background(args.data, db, smoke=args.smoke, seed=args.seed, timezone=args.timezone)
        startup = time.perf_counter() - start
        try:
            health = service.health()
            print(f"service up in {startup:.1f} s: {health['users']:,} users, {health['pois']:,} POIs, "
                  f"{health['events_learned']:,} check-ins learned", file=sys.stderr)
            rows = []
            for endpoint, make in (("POST /recommend", lambda rng, n: recommend_body(rng, n, cat)),
                                   ("POST /events", lambda rng, n: event_body(rng, n, cat))):
                print(f"loading {endpoint} ...", file=sys.stderr, flush=True)
                rows.append({"endpoint": endpoint, **load(service.url, make, total=args.requests, seconds=args.seconds,
                                                          concurrency=args.concurrency, seed=args.seed)})
            print("posting check-ins, then kill -9 ...", file=sys.stderr, flush=True)
            crash = crash_under_load(service, cat, kill_after=args.kill_events, concurrency=args.concurrency,
                                     seed=args.seed)
        finally:
            service.stop()
    load_after = os.getloadavg()[0]

    text = "\n\n".join([
        "# Recommendation service: load and crash",
        "Written by `benchmarks/bench_serve.py`.",
        f"Machine: {machine()}. Service: `python -m stlab.serve --data {args.data}"
        + (" --smoke" if args.smoke else "") + f"` ({health['users']:,} users, {health['pois']:,} POIs, "
        f"{health['events_learned']:,} check-ins learned at start; up in {startup:.1f} s), one uvicorn process on "
        f"loopback, SQLite log with WAL and synchronous=FULL. Clients: {args.concurrency} threads with keep-alive "
        f"connections, {args.requests:,} timed requests per endpoint (at most {args.seconds:g} s) after "
        f"{WARM_UP} warm-up requests per thread. Load average (1 min) {load_before:.1f} before, {load_after:.1f} "
        f"after. Command: `python benchmarks/bench_serve.py --data {args.data}" + (" --smoke" if args.smoke else "")
        + (f" --timezone {args.timezone}" if args.timezone else "") + f" --requests {args.requests} --seconds "
        f"{args.seconds:g} --concurrency {args.concurrency} --kill-events {args.kill_events}`.",
        "## Load (round trip measured by the client)\n\n" + markdown_table(rows, significant=3),
        f"## kill -9 under load ({args.concurrency} threads posting single check-ins; SIGKILL after "
        f"{args.kill_events} acknowledged; restart on the same log)\n\n" + markdown_table([crash], significant=3),
    ])
    print(text)
    write_report(ROOT / "benchmarks" / "results" / "serve.md", text + "\n")
    return 1 if crash["lost (acknowledged, not stored)"] else 0


if __name__ == "__main__":
    sys.exit(main())
