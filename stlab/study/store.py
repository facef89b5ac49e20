"""The study's results store: one Parquet file per finished run, queried with DuckDB.

Layout under the store's folder::

    runs/<run id>.parquet       one row: what ran, its provenance and its metrics
    queries/<run id>.parquet    the run's per-query values on the test part (for paired statistics)
    failed/<run id>.json        a run that raised: the job and the traceback (removed once it succeeds)
    grid-<name>.json            each grid that wrote here, as plain data (several grids may share a store)

:meth:`ResultsStore.compact` merges the files into one part per folder (``part-<digest>.parquet``),
optionally keeping the per-query values of some runs only: the form the book's store is
committed in.

A run is *finished* when its ``runs/`` file exists. Both files are written to a temporary name in
the same folder and renamed (the per-query file first), so a run killed midway leaves no file a
reader could take for a finished run; a rerun of the grid skips finished runs and retries failed
ones. The run id joins the cell's key and a digest of the whole job (settings, seed, epochs), so
a changed setting is a new run, never a silent overwrite.

Provenance of every run: the git commit (and whether the tree had uncommitted changes), a
checksum of the prepared data, the job's digest, package versions, the machine, wall and fit
seconds, peak memory, the settings and the grid's name.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stlab.study.grid import settings_hash
from stlab.study.jobs import Job, RunResult

#: Where ``make study`` writes, and what the book's chapter 12 reads (committed with its provenance).
DEFAULT_STORE = Path(__file__).resolve().parents[2] / "results" / "study"
#: Name prefix of the merged files of a compacted store (:meth:`ResultsStore.compact`).
PART_PREFIX = "part-"
#: Packages whose versions every run records.
RECORDED_PACKAGES = ("numpy", "pandas", "scipy", "torch", "ray", "duckdb", "pyarrow")


def run_id(job: Job) -> str:
    """The store's name of ``job``'s run: the cell's key and a digest of the whole job."""
    return f"{job.cell.key}__s{job.seed}__{settings_hash(job.describe())}"


@cache
def git_commit(root: str | None = None) -> str:
    """``<commit>`` of the project's checkout, with ``+dirty`` when tracked files have changes;
    ``"unknown"`` outside a git checkout."""
    where = root or str(Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


@cache
def environment() -> dict[str, str]:
    """Package versions and the machine, as recorded with every run."""
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    try:
        versions["stlab"] = metadata.version("stlab")
    except metadata.PackageNotFoundError:
        versions["stlab"] = "source"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    try:
        import torch

        if torch.cuda.is_available():
            machine += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return {"packages": json.dumps(versions, sort_keys=True), "machine": machine}


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(temporary path)``, then rename the temporary file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsStore:
    """A folder of finished runs (see the module docstring).

    Args:
        root: the store's folder (created when the first run is written).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # ------------------------------------------------------------------ writing
    def _paths(self, rid: str) -> tuple[Path, Path, Path]:
        return self.root / "runs" / f"{rid}.parquet", self.root / "queries" / f"{rid}.parquet", \
            self.root / "failed" / f"{rid}.json"

    def has(self, job: Job) -> bool:
        """Whether ``job`` has a finished run here."""
        rid = run_id(job)
        return self._paths(rid)[0].exists() or rid in self._compacted_ids()

    def finished_ids(self) -> set[str]:
        """The ids of every finished run (one file each, or in a compacted part)."""
        folder = self.root / "runs"
        single = {p.stem for p in folder.glob("*.parquet") if not p.name.startswith(PART_PREFIX)} \
            if folder.exists() else set()
        return single | self._compacted_ids()

    def _compacted_ids(self) -> set[str]:
        parts = sorted((self.root / "runs").glob(f"{PART_PREFIX}*.parquet")) if (self.root / "runs").exists() else []
        ids: set[str] = set()
        for part in parts:
            ids.update(pd.read_parquet(part, columns=["run_id"])["run_id"])
        return ids

    def save(self, job: Job, result: RunResult, *, grid: str = "", commit: str | None = None) -> str:
        """Store a finished run; returns its id. The per-query file is written before the run
        row, each atomically, so a run row always has its queries. ``commit`` is the code's
        commit as the process that started the study saw it (default: this checkout's)."""
        rid = run_id(job)
        run_path, query_path, failed_path = self._paths(rid)
        per_query = {name: np.asarray(values) for name, values in {**result.per_query, **result.segments}.items()}
        lengths = {len(v) for v in per_query.values()}
        if len(lengths) > 1:
            raise ValueError(f"{rid}: per-query arrays differ in length: { {k: len(v) for k, v in per_query.items()} }")
        queries = pd.DataFrame(per_query)
        queries.insert(0, "query", np.arange(len(queries), dtype=np.int64))
        _atomic_write(query_path, lambda p: queries.to_parquet(p, index=False))
        row: dict[str, Any] = {
            "run_id": rid, "kind": job.cell.kind, "dataset": job.cell.dataset, "preset": job.cell.preset,
            "model": job.cell.model, "seed": job.seed, "settings": json.dumps(job.settings, sort_keys=True),
            "settings_id": settings_hash(job.settings), "config_hash": settings_hash(job.describe()),
            "epochs": job.epochs, "smoke": job.smoke, "grid": grid, "git_commit": commit or git_commit(),
            "data_checksum": result.data_checksum, "fit_seconds": result.fit_seconds,
            "wall_seconds": result.wall_seconds, "peak_memory_mb": result.peak_memory_mb,
            "num_queries": len(queries), "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "details": json.dumps(result.details, sort_keys=True, default=str), **environment(),
        }
        row.update({f"val_{k}": float(v) for k, v in result.val_metrics.items()})
        row.update({f"test_{k}": float(v) for k, v in result.test_metrics.items()})
        _atomic_write(run_path, lambda p: pd.DataFrame([row]).to_parquet(p, index=False))
        failed_path.unlink(missing_ok=True)
        return rid

    def record_failure(self, job: Job, error: BaseException) -> str:
        """Keep a failed run's job and traceback (a rerun retries it)."""
        rid = run_id(job)
        text = json.dumps({"job": job.describe(), "error": repr(error),
                           "traceback": "".join(traceback.format_exception(error)),
                           "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1, default=str)
        _atomic_write(self._paths(rid)[2], lambda p: p.write_text(text))
        return rid

    # ------------------------------------------------------------------ reading
    def failed(self) -> list[dict[str, Any]]:
        """The failed runs not yet retried successfully (job, error, traceback)."""
        folder = self.root / "failed"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def sql(self, query: str) -> pd.DataFrame:
        """Run a DuckDB query in which the view ``runs`` holds every finished run."""
        import duckdb

        files = sorted((self.root / "runs").glob("*.parquet")) if (self.root / "runs").exists() else []
        connection = duckdb.connect()
        try:
            if files:
                pattern = str(self.root / "runs" / "*.parquet").replace("'", "''")
                connection.execute(f"CREATE VIEW runs AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)")
            else:
                connection.execute("CREATE VIEW runs AS SELECT NULL::VARCHAR AS run_id WHERE false")
            return connection.execute(query).df()
        finally:
            connection.close()

    def runs(self) -> pd.DataFrame:
        """Every finished run, one row each (empty when the store is)."""
        # A compaction killed before it removed the single files leaves a run twice: keep one.
        return self.sql("SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY run_id) = 1 ORDER BY run_id")

    def query_values(self, run_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
        """The per-query values of the given runs, by run id."""
        out: dict[str, pd.DataFrame] = {}
        missing = []
        for rid in run_ids:
            path = self._paths(rid)[1]
            if path.exists():
                out[rid] = pd.read_parquet(path)
            else:
                missing.append(rid)
        parts = sorted((self.root / "queries").glob(f"{PART_PREFIX}*.parquet")) if missing else []
        for part in parts:
            table = pd.read_parquet(part, filters=[("run_id", "in", missing)])
            for rid, rows in table.groupby("run_id", sort=False):
                rows = rows.drop(columns="run_id").dropna(axis="columns", how="all").reset_index(drop=True)
                out[str(rid)] = rows.astype({c: "int64" for c in ("query", "rank", "hour") if c in rows})
        lost = [rid for rid in missing if rid not in out]
        if lost:
            raise FileNotFoundError(f"{self.root}: no per-query values of {lost[:3]}{' ...' if len(lost) > 3 else ''}; "
                                    "the store is incomplete. Rerun the study (it redoes only what is missing).")
        return {rid: out[rid] for rid in run_ids}

    def compact(self, keep_queries: set[str] | None = None) -> dict[str, int]:
        """Merge every run's files into one Parquet part for the runs and one for their queries
        (what a store committed with a book should be: a few files, not thousands).

        Args:
            keep_queries: run ids whose per-query values are kept (for example the chosen
                settings' runs, which every table uses); ``None`` keeps all.

        The parts are written (atomically) before the single files are removed; the store stays
        readable and resumable, and a compaction killed midway leaves every run readable.
        """
        runs = self.runs()
        ids = runs["run_id"].tolist()
        kept = [rid for rid in ids if keep_queries is None or rid in keep_queries]
        queries = self.query_values(kept)
        long = pd.concat([q.assign(run_id=rid) for rid, q in queries.items()], ignore_index=True) if queries else \
            pd.DataFrame({"run_id": pd.Series(dtype="string")})
        tag = settings_hash({"runs": ids, "queries": kept})
        old = [p for folder in ("runs", "queries") for p in (self.root / folder).glob("*.parquet")]
        # One query part per data set keeps every file small enough to commit and diff.
        dataset_of = runs.set_index("run_id")["dataset"]
        written = []
        for number, (_, rows) in enumerate(long.groupby(long["run_id"].map(dataset_of), sort=True)):
            written.append(self.root / "queries" / f"{PART_PREFIX}{tag}-{number}.parquet")
            _atomic_write(written[-1], lambda p, rows=rows: rows.to_parquet(p, index=False, compression="zstd"))
        written.append(self.root / "runs" / f"{PART_PREFIX}{tag}.parquet")
        _atomic_write(written[-1], lambda p: runs.to_parquet(p, index=False, compression="zstd"))
        for path in set(old) - set(written):
            path.unlink()
        return {"runs": len(ids), "runs with queries": len(kept)}

    def __len__(self) -> int:
        return len(self.finished_ids())


__all__ = ["DEFAULT_STORE", "PART_PREFIX", "RECORDED_PACKAGES", "ResultsStore", "environment", "git_commit", "run_id"]
