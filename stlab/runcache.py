"""Train once, reuse everywhere: a checksum-verified cache of evaluated next-visit runs.

Several chapters compare a new model with the same reference models -- chapter 4's tuned
baselines, chapter 7's LSTM -- on the same task. Retraining them in every chapter would cost
minutes and give the same numbers (training is seeded and deterministic on a CPU). A *run* is
what a comparison needs from a model: the rank of the true POI for every validation and test
query, the fit time, and a few details (chosen hyperparameters). :func:`cached_run` stores it
under a key that covers everything the numbers depend on:

* the task (:func:`task_fingerprint`: every event's user, POI, time and part, the POI table,
  the history length and the time zone);
* the model's settings, as a JSON-able mapping given by the caller;
* the package's code (:func:`code_fingerprint`: every ``stlab`` source file), so that any
  change to the code retrains rather than serving numbers the current code would not produce.

Files are ``<cache>/runs/<key>.npz`` (arrays only, read with ``allow_pickle=False``) and a JSON
sidecar with the ``.npz`` file's sha256, both written through a temporary file and a rename.
A model that a later chapter needs itself (not only its ranks) can also keep its weights
(:func:`save_weights`, :func:`load_weights`: ``<key>.weights.npz``, the same safeguards).
The checksum is verified on every use; a mismatch logs a warning and recomputes.

Forecasting chapters share work the same way: :func:`cached_forecast` keeps a rolling-origin
evaluation (:class:`stlab.forecasting.RollingOriginResult`) under a key over the series, its
regressors, the evaluation's and the model's settings, and the code (``<key>.forecast.npz``).

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stlab.config import cache_dir
from stlab.data.fetch import atomic_path, file_digest
from stlab.protocol import NextVisitTask

log = logging.getLogger(__name__)

#: Version of the file layout; part of every key.
RUN_CACHE_FORMAT = 1


@dataclass(frozen=True)
class RankedRun:
    """What a comparison needs from one fitted model.

    Attributes:
        name: the model's display name.
        ranks: part (``"val"``, ``"test"``) -> ``[Q]`` int64 rank of the true POI (1 = first).
        fit_seconds: wall time of ``fit`` (on the machine that computed the run).
        details: JSON-able facts about the run (chosen hyperparameters, epochs, ...).
    """

    name: str
    ranks: dict[str, np.ndarray]
    fit_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def task_fingerprint(task: NextVisitTask) -> str:
    """sha256 of everything about ``task`` that a model's ranks depend on."""
    h = hashlib.sha256()
    for column in ("user", "poi", "time", "part"):
        h.update(np.ascontiguousarray(task.events[column].to_numpy(dtype=np.int64)).tobytes())
    h.update(pd.util.hash_pandas_object(task.pois[["lat", "lon"]], index=True).to_numpy().tobytes())
    h.update(f"{task.history_len}|{task.timezone}|{task.num_users}".encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over every ``.py`` file of the installed ``stlab`` package (paths and contents)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def run_key(task: NextVisitTask, settings: Mapping[str, Any]) -> str:
    """The cache key of a run: task, settings, code and format."""
    payload = json.dumps({"task": task_fingerprint(task), "settings": settings, "code": code_fingerprint(),
                          "format": RUN_CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _paths(key: str, root: Path) -> tuple[Path, Path]:
    folder = root / "runs"
    return folder / f"{key}.npz", folder / f"{key}.json"


def _write_entry(data_path: Path, meta_path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` to an ``.npz`` file, then ``meta`` with that file's sha256 to its JSON
    sidecar; each through a temporary file and a rename."""
    # A file object: np.savez would append ".npz" to a bare name.
    with atomic_path(data_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps({**meta, "sha256": file_digest(data_path)}, indent=1, default=str))


def _read_entry(data_path: Path, meta_path: Path, what: str,
                build: Callable[[dict[str, Any], Any], Any]) -> Any:
    """``build(meta, arrays)`` for an entry whose ``.npz`` file matches its sidecar's sha256, or
    ``None`` (logged) when it is absent, fails the checksum or is unreadable. Arrays only:
    ``allow_pickle=False``."""
    if not (data_path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if file_digest(data_path) != meta["sha256"]:
            log.warning("%s %s fails its checksum; recomputing", what, data_path.name)
            return None
        with np.load(data_path, allow_pickle=False) as arrays:
            return build(meta, arrays)
    except (OSError, ValueError, KeyError) as err:
        log.warning("%s %s is unreadable (%s); recomputing", what, data_path.name, err)
        return None


def load_runs(key: str, root: Path | None = None) -> list[RankedRun] | None:
    """The runs stored under ``key``, or ``None`` if absent or failing their checksum."""
    def build(meta: dict[str, Any], arrays: Any) -> list[RankedRun]:
        return [RankedRun(name=m["name"], fit_seconds=float(m["fit_seconds"]), details=m.get("details", {}),
                          ranks={part: arrays[f"{i}:{part}"].astype(np.int64) for part in m["parts"]})
                for i, m in enumerate(meta["runs"])]

    return _read_entry(*_paths(key, root or cache_dir()), "cached run", build)


def save_runs(key: str, runs: Sequence[RankedRun], root: Path | None = None) -> None:
    """Store ``runs`` under ``key`` (arrays, then the sidecar; each atomically)."""
    arrays = {f"{i}:{part}": np.asarray(r, dtype=np.int64) for i, run in enumerate(runs) for part, r in run.ranks.items()}
    meta = {"runs": [{"name": run.name, "parts": sorted(run.ranks), "fit_seconds": run.fit_seconds,
                      "details": run.details} for run in runs]}
    _write_entry(*_paths(key, root or cache_dir()), arrays, meta)


def _check_complete(task: NextVisitTask, runs: Sequence[RankedRun]) -> None:
    expected = {"val": len(task.queries("val")), "test": len(task.queries("test"))}
    for run in runs:
        for part, count in expected.items():
            if part not in run.ranks or len(run.ranks[part]) != count:
                raise ValueError(f"{run.name}: a run must hold ranks for all {count} {part!r} queries; got "
                                 f"{len(run.ranks.get(part, []))}")


def cached_runs(task: NextVisitTask, settings: Mapping[str, Any], compute: Callable[[], Sequence[RankedRun]], *,
                root: Path | None = None, use_cache: bool = True) -> list[RankedRun]:
    """The runs for ``settings`` on ``task``: from the cache when a verified copy exists, else
    ``compute()`` (which fits the models and ranks the queries), stored for next time.

    Args:
        settings: JSON-able description of the models and their training (name, config, seed,
            grid...): two calls share a cache entry only if these are equal.
        compute: called on a miss; returns runs with the ranks of the task's ``"val"`` and
            ``"test"`` queries (a group, e.g. every tuned baseline, is stored as one entry).
        use_cache: ``False`` always computes (and refreshes the entry).
    """
    key = run_key(task, settings)
    if use_cache:
        runs = load_runs(key, root)
        if runs is not None:
            return runs
    runs = list(compute())
    _check_complete(task, runs)
    save_runs(key, runs, root)
    return runs


def cached_run(task: NextVisitTask, settings: Mapping[str, Any], compute: Callable[[], RankedRun], *,
               root: Path | None = None, use_cache: bool = True) -> RankedRun:
    """:func:`cached_runs` for a single model."""
    return cached_runs(task, settings, lambda: [compute()], root=root, use_cache=use_cache)[0]


def store_runs(task: NextVisitTask, settings: Mapping[str, Any], runs: Sequence[RankedRun], *,
               root: Path | None = None) -> None:
    """Store runs computed elsewhere (a chapter that needs the fitted model itself) so that a
    later :func:`cached_runs` with the same ``settings`` finds them."""
    _check_complete(task, runs)
    save_runs(run_key(task, settings), runs, root)


def _weights_paths(key: str, root: Path) -> tuple[Path, Path]:
    folder = root / "runs"
    return folder / f"{key}.weights.npz", folder / f"{key}.weights.json"


def save_weights(key: str, arrays: Mapping[str, np.ndarray], root: Path | None = None) -> None:
    """Store a fitted model's weights (named arrays, e.g. a state dict as NumPy) under ``key``,
    so that a later chapter can use the model itself, not only its ranks. Arrays only (no
    pickle), with a sha256 sidecar; each file written atomically."""
    _write_entry(*_weights_paths(key, root or cache_dir()),
                 {name: np.asarray(value) for name, value in arrays.items()}, {"names": sorted(arrays)})


def load_weights(key: str, root: Path | None = None) -> dict[str, np.ndarray] | None:
    """The weights stored under ``key``, or ``None`` if absent or failing their checksum."""
    return _read_entry(*_weights_paths(key, root or cache_dir()), "cached weights",
                       lambda meta, arrays: {name: arrays[name] for name in meta["names"]})


# --------------------------------------------------------------------------- forecasting runs
def series_fingerprint(y: Any, exog: Any = None) -> str:
    """sha256 of a series (values and index) and of its regressors, for :func:`forecast_key`."""
    h = hashlib.sha256()
    for part in (y, exog):
        if part is None:
            h.update(b"none")
            continue
        if isinstance(part, (pd.Series, pd.DataFrame)):
            h.update(pd.util.hash_pandas_object(part.index).to_numpy().tobytes())
            names = part.columns if isinstance(part, pd.DataFrame) else [part.name]
            h.update(json.dumps([str(c) for c in names]).encode())
            part = part.to_numpy()
        values = np.ascontiguousarray(np.asarray(part, dtype=np.float64))
        h.update(str(values.shape).encode())
        h.update(values.tobytes())
    return h.hexdigest()


def forecast_key(y: Any, exog: Any, settings: Mapping[str, Any]) -> str:
    """The cache key of a rolling-origin evaluation: series, regressors, settings, code, format."""
    payload = json.dumps({"series": series_fingerprint(y, exog), "settings": settings, "code": code_fingerprint(),
                          "format": RUN_CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _forecast_paths(key: str, root: Path) -> tuple[Path, Path]:
    folder = root / "runs"
    return folder / f"{key}.forecast.npz", folder / f"{key}.forecast.json"


_FORECAST_ARRAYS = ("forecasts", "actuals", "lower", "upper", "seconds", "refitted", "scale")


def save_forecast(key: str, result: Any, details: Mapping[str, Any] | None = None, root: Path | None = None) -> None:
    """Store a :class:`~stlab.forecasting.RollingOriginResult` (and JSON-able ``details``, such as
    the fit time) under ``key``: its arrays in an ``.npz``, the rest in a JSON sidecar with the
    arrays' sha256; each written atomically. Results with ``extra`` entries are not cached."""
    if result.extra:
        raise ValueError(f"{result.name}: a result with extra entries ({sorted(result.extra)}) cannot be cached")
    data_path, meta_path = _forecast_paths(key, root or cache_dir())
    origins = result.origins
    timed = isinstance(origins, pd.DatetimeIndex)
    arrays = {name: np.asarray(getattr(result, name)) for name in _FORECAST_ARRAYS if getattr(result, name) is not None}
    arrays["origins"] = np.asarray(origins.asi8 if timed else origins.to_numpy(), dtype=np.int64)
    meta = {"name": result.name, "level": result.level, "season": result.season, "arrays": sorted(arrays),
            "origins": {"datetime": timed, "tz": str(origins.tz) if timed and origins.tz else None,
                        "unit": origins.unit if timed else None, "name": origins.name},
            "details": dict(details or {})}
    _write_entry(data_path, meta_path, arrays, meta)


def load_forecast(key: str, root: Path | None = None) -> tuple[Any, dict[str, Any]] | None:
    """The result and details stored under ``key``, or ``None`` if absent or failing their checksum."""
    from stlab.forecasting.evaluation import RollingOriginResult  # forecasting only when a forecast is read

    def build(meta: dict[str, Any], stored: Any) -> tuple[Any, dict[str, Any]]:
        arrays = {name: stored[name] for name in meta["arrays"]}
        kind = meta["origins"]
        stamps = arrays.pop("origins")
        if kind["datetime"]:  # int64 counts of the index's own unit since the epoch, in UTC
            origins = pd.DatetimeIndex(stamps.astype(f"datetime64[{kind['unit']}]"), name=kind["name"])
            if kind["tz"]:
                origins = origins.tz_localize("UTC").tz_convert(kind["tz"])
        else:
            origins = pd.Index(stamps, name=kind["name"])
        scale = arrays["scale"]
        result = RollingOriginResult(
            name=meta["name"], forecasts=arrays["forecasts"], actuals=arrays["actuals"],
            lower=arrays.get("lower"), upper=arrays.get("upper"), level=float(meta["level"]), origins=origins,
            seconds=arrays["seconds"], refitted=arrays["refitted"].astype(bool),
            scale=scale[()] if scale.ndim == 0 else scale, season=int(meta["season"]))
        return result, meta["details"]

    return _read_entry(*_forecast_paths(key, root or cache_dir()), "cached forecast", build)


def cached_forecast(y: Any, exog: Any, settings: Mapping[str, Any],
                    compute: Callable[[], tuple[Any, Mapping[str, Any]]], *, root: Path | None = None,
                    use_cache: bool = True) -> tuple[Any, dict[str, Any]]:
    """A rolling-origin evaluation of ``y`` (with regressors ``exog``) under ``settings``: from the
    cache when a verified copy exists, else ``compute()`` -- which returns the result and
    JSON-able details -- stored for next time.

    Args:
        settings: JSON-able description of the model and of the evaluation (initial window,
            horizon, step...): two calls share an entry only if these are equal.
        use_cache: ``False`` always computes (and refreshes the entry).
    """
    key = forecast_key(y, exog, settings)
    if use_cache:
        found = load_forecast(key, root)
        if found is not None:
            return found
    result, details = compute()
    save_forecast(key, result, details, root)
    return result, dict(details)


__all__ = ["RUN_CACHE_FORMAT", "RankedRun", "cached_forecast", "cached_run", "cached_runs", "code_fingerprint",
           "forecast_key", "load_forecast", "load_runs", "load_weights", "run_key", "save_forecast", "save_runs",
           "save_weights", "series_fingerprint", "store_runs", "task_fingerprint"]
