"""Run a :class:`~stlab.study.grid.StudyGrid` into a :class:`~stlab.study.store.ResultsStore`.

Two phases, each a flat list of jobs:

1. **Search.** Every candidate setting of every cell is fitted with seed 0 and scored on
   validation (and on test, stored but never used to choose).
2. **Seeds.** Each cell's setting with the best validation score (MRR for next visit, MAE over
   every reported step for forecasting) runs with the remaining seeds.

Jobs whose run is already in the store are skipped, so a killed study resumes where it stopped;
failed jobs are recorded and retried on the next run, and the summary says how many of each.

Executors: ``"ray"`` schedules the jobs as Ray Tune trials (one CPU each, a GPU for neural
models when the cluster has one) on the local machine's cores, or on the cluster at
``ray_address`` (``STLAB_RAY_ADDRESS``; Ray ships this process's copy of ``stlab`` to the
workers, whose machines need its dependencies installed and the store on a shared path). ``"local"`` runs them one after another in this process (tests, the chapter's
reduced grid). Both give the same numbers: every job is a pure function of its description.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from stlab.study.grid import Cell, StudyGrid, family
from stlab.study.jobs import Job, run_job
from stlab.study.store import ResultsStore, git_commit, run_id

Executor = Literal["ray", "local"]
#: Environment variables passed on to Ray workers (data folder, cache, quiet TensorFlow).
_FORWARDED_ENV = ("STLAB_DATA", "STLAB_CACHE", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")


@dataclass
class StudySummary:
    """What one call of :func:`run_study` did.

    Attributes:
        skipped: runs already in the store.
        finished: runs finished now.
        failed: runs that raised now (kept under ``failed/`` and retried next time).
        retried: runs that had failed before and were tried again.
        seconds: wall time of the call.
    """

    skipped: int = 0
    finished: int = 0
    failed: int = 0
    retried: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.finished} runs finished, {self.skipped} already in the store (skipped), "
                f"{self.failed} failed, {self.retried} earlier failures retried; {self.seconds:.0f} s")
        if self.failures:
            text += "\nfailed: " + "; ".join(self.failures)
        return text


def _job(grid: StudyGrid, cell: Cell, settings: dict[str, Any], seed: int, *, validate: bool = True) -> Job:
    from stlab.chapters import DATASET_CITY
    from stlab.study.jobs import BEHAVIOUR_LOGS

    epochs = grid.epochs if cell.kind == "next-visit" else grid.forecast_epochs
    # The grid's zone is that of a reader's own file; registered data sets keep their own.
    own_file = cell.kind == "next-visit" and cell.dataset not in DATASET_CITY and cell.dataset not in BEHAVIOUR_LOGS
    return Job(cell=cell, settings=settings, seed=seed, epochs=epochs, smoke=grid.smoke,
               timezone=grid.timezone if own_file else None, validate=validate)


def search_jobs(grid: StudyGrid) -> list[Job]:
    """Phase 1: every candidate setting of every cell, seed 0."""
    return [_job(grid, cell, settings, 0) for cell in grid.cells() for settings in grid.candidates_of(cell)]


def selection_score(kind: str, val_metrics: dict[str, float]) -> float:
    """The validation number settings are chosen by, higher = better: MRR, or minus the MAE."""
    if kind == "next-visit":
        return float(val_metrics["MRR"])
    return -float(val_metrics["MAE"])


def chosen_settings(store: ResultsStore, grid: StudyGrid) -> dict[Cell, dict[str, Any]]:
    """Each cell's best setting by validation among its seed-0 candidates in the store (ties: the
    first candidate in the grid's order)."""
    runs = store.runs()
    chosen: dict[Cell, dict[str, Any]] = {}
    if runs.empty:
        return chosen
    by_id = runs.set_index("run_id")
    for cell in grid.cells():
        best: tuple[float, dict[str, Any]] | None = None
        for settings in grid.candidates_of(cell):
            rid = run_id(_job(grid, cell, settings, 0))
            if rid not in by_id.index:
                continue
            row = by_id.loc[rid]
            metrics = {k[4:]: row[k] for k in by_id.columns if k.startswith("val_") and pd.notna(row[k])}
            score = selection_score(cell.kind, metrics)
            if best is None or score > best[0]:
                best = (score, settings)
        if best is not None:
            chosen[cell] = best[1]
    return chosen


def seed_jobs(grid: StudyGrid, chosen: dict[Cell, dict[str, Any]]) -> list[Job]:
    """Phase 2: the chosen setting of each cell with seeds 1, 2, ..."""
    return [_job(grid, cell, settings, seed, validate=False) for cell, settings in chosen.items()
            for seed in grid.seeds_of(cell) if seed > 0]


# --------------------------------------------------------------------------- executors
def _run_and_store(described: dict[str, Any], root: str, grid_name: str, validate: bool,
                   commit: str | None = None) -> dict[str, Any]:
    """Run one job and store it (or its failure); what a worker executes."""
    job = Job.from_description(described, validate=validate)
    store = ResultsStore(root)
    try:
        result = run_job(job)
    except Exception as error:  # noqa: BLE001 -- every failure is recorded and retried later
        store.record_failure(job, error)
        return {"ok": 0.0, "score": float("nan"), "error": repr(error)}
    store.save(job, result, grid=grid_name, commit=commit)
    return {"ok": 1.0, "score": selection_score(job.cell.kind, result.val_metrics) if result.val_metrics else 0.0}


def _execute_local(jobs: Sequence[Job], store: ResultsStore, grid_name: str, progress: bool,
                   commit: str) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    return [_run_and_store(job.describe(), str(store.root), grid_name, job.validate, commit)
            for job in tqdm(jobs, desc="study runs", disable=not progress)]


def _ray_trainable(config: dict[str, Any]) -> None:
    """A Ray Tune trial: one job."""
    from ray import tune

    tune.report(_run_and_store(config["job"], config["root"], config["grid"], config["validate"], config["commit"]))


def _init_ray(address: str | None) -> None:
    import ray

    import stlab

    if ray.is_initialized():
        return
    env = {name: os.environ[name] for name in _FORWARDED_ENV if name in os.environ}
    env["OMP_NUM_THREADS"] = "1"
    # Workers import the driver's own copy of the package (shipped by Ray), not whatever copy
    # their machine or path holds: the runs are made by the code whose commit they record.
    runtime_env = {"env_vars": env, "py_modules": [str(Path(stlab.__file__).parent)]}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env, log_to_driver=False,
                 configure_logging=False)


def _execute_ray(jobs: Sequence[Job], store: ResultsStore, grid_name: str, progress: bool,
                 address: str | None, phase: str, commit: str) -> list[dict[str, Any]]:
    import ray
    from ray import tune
    from tqdm.auto import tqdm

    _init_ray(address)
    has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    neural = {run_id(j): family(j.cell.kind, j.cell.model).neural for j in jobs}

    def resources(config: dict[str, Any]) -> dict[str, float]:
        wants_gpu = has_gpu and neural[run_id(Job.from_description(config["job"]))]
        return {"cpu": 1, "gpu": 1 if wants_gpu else 0}

    bar = tqdm(total=len(jobs), desc=f"study runs ({phase}, Ray)", disable=not progress)

    class _Progress(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            bar.update(1)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            bar.update(1)

    # The other seeds of a chosen setting skip the forecast's validation fit: one flag per phase.
    space = {"job": tune.grid_search([j.describe() for j in jobs]), "root": str(store.root.resolve()),
             "grid": grid_name, "validate": phase == "search", "commit": commit}
    tuner = tune.Tuner(
        tune.with_resources(_ray_trainable, resources),
        param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(name=f"study-{phase}", storage_path=str((store.root / "ray").resolve()),
                                  verbose=0, callbacks=[_Progress()], log_to_file=True),
    )
    results = tuner.fit()
    bar.close()
    return [dict(r.metrics or {}) for r in results]


def run_study(grid: StudyGrid, store: ResultsStore | str | Path, *, executor: Executor = "ray",
              ray_address: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> StudySummary:
    """Run every job of ``grid`` that the store does not hold yet (see the module docstring).

    Args:
        grid: what to run.
        store: where finished runs go (a folder or a :class:`ResultsStore`).
        executor: ``"ray"`` (Ray Tune; the local cores, or the cluster at ``ray_address``) or
            ``"local"`` (in this process, one job after another).
        ray_address: a Ray cluster's address; default ``STLAB_RAY_ADDRESS``, else a local Ray.
        progress: progress bars.
        log: where the summary lines go.
    """
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    if executor not in ("ray", "local"):
        raise ValueError(f"executor must be 'ray' or 'local', got {executor!r}")
    ray_address = ray_address or os.environ.get("STLAB_RAY_ADDRESS") or None
    start = time.perf_counter()
    summary = StudySummary()
    store.root.mkdir(parents=True, exist_ok=True)
    # One file per grid: several grids may fill one store (make study, then GRID=others).
    (store.root / f"grid-{grid.name}.json").write_text(json.dumps(grid.describe(), indent=1, default=str))
    earlier_failures = {run_id(Job.from_description(f["job"])) for f in store.failed()}
    commit = git_commit()  # of the code this process runs, recorded with every run it makes
    for phase in ("search", "seeds"):
        jobs = search_jobs(grid) if phase == "search" else seed_jobs(grid, chosen_settings(store, grid))
        finished = store.finished_ids()
        todo = [j for j in jobs if run_id(j) not in finished]
        summary.skipped += len(jobs) - len(todo)
        summary.retried += sum(run_id(j) in earlier_failures for j in todo)
        log(f"{phase}: {len(jobs)} runs, {len(jobs) - len(todo)} already in the store, {len(todo)} to run")
        if not todo:
            continue
        if executor == "ray":
            outcomes = _execute_ray(todo, store, grid.name, progress, ray_address, phase, commit)
        else:
            outcomes = _execute_local(todo, store, grid.name, progress, commit)
        finished = store.finished_ids()
        for job in todo:
            if run_id(job) in finished:
                summary.finished += 1
            else:
                summary.failed += 1
                summary.failures.append(run_id(job))
        del outcomes
    summary.seconds = time.perf_counter() - start
    log(str(summary))
    return summary


__all__ = ["Executor", "StudySummary", "chosen_settings", "run_study", "search_jobs", "seed_jobs", "selection_score"]
