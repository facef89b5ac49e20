"""One run of the study: fit one model with one setting and one seed, score it, measure it.

:func:`run_job` is a pure function of its :class:`Job` (and the data files): the runner calls it
in a Ray worker or in-process, and a test calls it again to check a stored run is reproduced
exactly. Data are loaded and prepared once per process (:func:`next_visit_task`,
:func:`forecast_series`). Neural models train with one CPU thread, so the numbers do not depend
on how many cores the machine has or how many runs share it.

What a run returns (:class:`RunResult`): validation and test metrics, the per-query values the
statistics need (the rank of the true POI for each test query; the mean absolute error of each
forecast origin at each reported step), the query segments (hour, seen user, return visit),
fit and wall seconds, and the peak memory of the process while it ran.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from stlab.study.grid import Cell, family

#: The cleaning thresholds of every next-visit data set in the study (chapter 4's) ...
MIN_CHECKINS = 10
#: ... except Taobao's two-hour slice, in which few items are clicked ten times before the cut.
MIN_CHECKINS_OF: dict[str, int] = {"taobao-slice": 3, "taobao-head": 3}
#: Check-ins of history per query (chapter 4's).
HISTORY_LEN = 20


@dataclass(frozen=True)
class Job:
    """One fit: a cell, one setting of its hyperparameters, one seed.

    Attributes:
        cell: what runs where, under which protocol.
        settings: the hyperparameters (one candidate of the family's space).
        seed: the model's seed (data sets are fixed: the synthetic city is always seed 0).
        epochs: maximum epochs of a neural model.
        smoke: small slices of the data (tests).
        timezone: the zone of a reader's own check-in file.
        validate: forecasting only: also score the validation period (what tuning needs; the
            other seeds of a chosen setting skip it, as it costs a second fit).
    """

    cell: Cell
    settings: dict[str, Any]
    seed: int
    epochs: int = 2
    smoke: bool = False
    timezone: str | None = None
    validate: bool = True

    def describe(self) -> dict[str, Any]:
        """The job as plain data (what identifies its run in the store)."""
        return {"cell": dataclasses.asdict(self.cell), "settings": self.settings, "seed": self.seed,
                "epochs": self.epochs, "smoke": self.smoke, "timezone": self.timezone}

    @classmethod
    def from_description(cls, described: dict[str, Any], *, validate: bool = True) -> Job:
        """The job :meth:`describe` described."""
        values = dict(described)
        return cls(cell=Cell(**values.pop("cell")), validate=validate, **values)


@dataclass
class RunResult:
    """What one run measured.

    Attributes:
        val_metrics: validation metrics (MRR, Acc@k, NDCG@k; or MAE and RMSE).
        test_metrics: the same on the test part.
        per_query: name -> ``[Q]`` per-query values on the test part (``"rank"``; or
            ``"abs_error@15 min"`` ...), aligned across models of the same data set and protocol.
        segments: name -> ``[Q]`` values to break results down by (``"hour"``, ``"user_seen"``,
            ``"returning"``); empty for forecasting.
        data_checksum: digest of the prepared data (the same for every model of a data set and protocol).
        fit_seconds, wall_seconds: the fit alone; the whole run with scoring.
        peak_memory_mb: the process's peak resident memory while the run ran.
        details: anything else worth keeping (epochs trained, queries).
    """

    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    per_query: dict[str, np.ndarray]
    segments: dict[str, np.ndarray]
    data_checksum: str
    fit_seconds: float
    wall_seconds: float
    peak_memory_mb: float
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- measuring
@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Sample this process's resident memory every 20 ms; ``out["peak_mb"]`` when the block ends."""
    import psutil

    process = psutil.Process(os.getpid())
    out = {"peak_mb": process.memory_info().rss / 2**20}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            out["peak_mb"] = max(out["peak_mb"], process.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_mb"] = max(out["peak_mb"], process.memory_info().rss / 2**20)


# --------------------------------------------------------------------------- next visit
#: Behaviour logs without places, studied as "which item next": each item is a place with no
#: coordinates (the distance rules and features see every item at one point), and the zone of
#: the service's users.
BEHAVIOUR_LOGS: dict[str, str] = {"movielens-100k": "UTC", "taobao-slice": "Asia/Shanghai", "taobao-head": "Asia/Shanghai"}


def behaviour_log(dataset: str, smoke: bool = False) -> pd.DataFrame:
    """A behaviour log of :data:`BEHAVIOUR_LOGS` in the check-in schema (``poi_id`` = the item)."""
    from stlab.data import load_movielens, load_taobao

    if dataset == "movielens-100k":
        events = load_movielens("100k").ratings[["user_id", "item_id", "timestamp"]]
    elif dataset in ("taobao-slice", "taobao-head"):
        events = load_taobao(dataset.split("-")[1])[["user_id", "item_id", "timestamp"]]
    else:
        raise ValueError(f"unknown behaviour log {dataset!r}; choose from {sorted(BEHAVIOUR_LOGS)}")
    events = events.rename(columns={"item_id": "poi_id"}).assign(lat=0.0, lon=0.0)
    if smoke:
        events = events[events["user_id"].isin(np.sort(events["user_id"].unique())[:300])]
    return events.sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True)


#: Logs too big for pandas: under the presets with one global cut in time, DuckDB cleans, k-cores
#: and splits them out of core (:mod:`stlab.outofcore`), and only the kept rows are read.
#: Name -> (registered data set, file, layout).
OUT_OF_CORE_LOGS: dict[str, tuple[str, str, str]] = {"gowalla": ("gowalla", "loc-gowalla_totalCheckins.txt", "snap")}


def _out_of_core_task(dataset: str, preset: str, cleaning: Any, timezone: str) -> Any:
    from stlab.data import fetch_file
    from stlab.outofcore import clean_and_split_duckdb
    from stlab.study.presets import get_preset, prepare_task

    registered, name, layout = OUT_OF_CORE_LOGS[dataset]
    source = fetch_file(registered, name).path
    chosen = get_preset(preset)
    with tempfile.TemporaryDirectory(prefix="stlab-outofcore-") as folder:
        parts = clean_and_split_duckdb(source, folder, cleaning, val_frac=chosen.val_frac, test_frac=chosen.test_frac,
                                       format=layout)  # type: ignore[arg-type]
        kept, split = parts.load()
    return prepare_task(kept, chosen, cleaning=cleaning, timezone=timezone, history_len=HISTORY_LEN, split=split)


@lru_cache(maxsize=4)
def next_visit_task(dataset: str, preset: str, smoke: bool = False, timezone: str | None = None) -> Any:
    """The :class:`~stlab.protocol.NextVisitTask` of ``dataset`` under ``preset`` (cached per process)."""
    from stlab.chapters import DATASET_CITY, chapter_checkins
    from stlab.cleaning import CleaningConfig
    from stlab.study.presets import get_preset, prepare_task

    threshold = 2 if smoke else MIN_CHECKINS_OF.get(dataset, MIN_CHECKINS)
    if dataset in OUT_OF_CORE_LOGS and not smoke and get_preset(preset).split == "global":
        zone, bbox = DATASET_CITY[dataset]
        cleaning = CleaningConfig(bbox=bbox, min_user_checkins=threshold, min_poi_checkins=threshold)
        return _out_of_core_task(dataset, preset, cleaning, timezone or zone)
    if dataset in BEHAVIOUR_LOGS:
        checkins, zone, bbox = behaviour_log(dataset, smoke), timezone or BEHAVIOUR_LOGS[dataset], None
    else:
        city = chapter_checkins(dataset, seed=0, smoke=smoke, timezone=timezone)
        checkins, zone, bbox = city.checkins, city.timezone, city.bbox
    cleaning = CleaningConfig(bbox=bbox, min_user_checkins=threshold, min_poi_checkins=threshold)
    return prepare_task(checkins, preset, cleaning=cleaning, timezone=zone, history_len=HISTORY_LEN)


def next_visit_model(name: str, settings: dict[str, Any], seed: int, *, epochs: int, smoke: bool = False,
                     dataset: str = "") -> Any:
    """A fresh, unfitted model of family ``name`` with ``settings`` and ``seed``."""
    from stlab import baselines as b

    family("next-visit", name)
    if name == "bayes-optimal":
        if dataset != "synthetic":
            raise ValueError(f"the Bayes-optimal model needs the true probabilities, which only the synthetic city "
                             f"has; drop 'bayes-optimal' from the models of {dataset!r}")
        from stlab.chapters import chapter_world

        return b.TrueProbabilities(chapter_world(0, smoke))
    if name == "popularity":
        return b.Popularity()
    if name == "user-frequency":
        return b.UserFrequency(**settings)
    if name == "markov":
        return b.Markov(**settings)
    if name == "bayes-user":
        return b.BayesUserPOI(**settings)
    if name == "user-markov":
        return b.UserMarkovBlend(**settings)
    if name == "als":
        return b.ImplicitALS(seed=seed, progress=False, **settings)
    if name == "lstm":
        from stlab.models.recurrent import RecurrentConfig
        from stlab.models.torch.nextvisit import RecurrentNextVisit

        return RecurrentNextVisit(RecurrentConfig(num_epochs=epochs, seed=seed, device="auto", progress=False, **settings))
    from stlab.models.attention.config import TransformerConfig
    from stlab.models.torch.attention import TransformerNextVisit

    d_model = settings["d_model"]
    return TransformerNextVisit(TransformerConfig(d_model=d_model, ffn_dim=2 * d_model, lr=settings["lr"],
                                                  num_epochs=epochs, seed=seed, device="auto", progress=False))


def _run_next_visit(job: Job) -> RunResult:
    from stlab.metrics import ranking_metrics_from_ranks
    from stlab.protocol import query_ranks, query_segments
    from stlab.runcache import task_fingerprint
    from stlab.training import cpu_threads

    cell = job.cell
    task = next_visit_task(cell.dataset, cell.preset, job.smoke, job.timezone)
    val, test = task.queries("val"), task.queries("test")
    if len(val) == 0 or len(test) == 0:
        raise ValueError(f"{cell.dataset} under {cell.preset!r}: {len(val)} validation and {len(test)} test queries; "
                         "the data set is too small for this protocol (lower the k-core thresholds or use more data)")
    start = time.perf_counter()
    with peak_memory() as memory, cpu_threads(1):
        model = next_visit_model(cell.model, job.settings, job.seed, epochs=job.epochs, smoke=job.smoke,
                                 dataset=cell.dataset)
        model.fit(task)
        fit_seconds = time.perf_counter() - start
        val_ranks, test_ranks = query_ranks(model, val), query_ranks(model, test)
        segments = query_segments(task, test)
    return RunResult(
        val_metrics=ranking_metrics_from_ranks(val_ranks), test_metrics=ranking_metrics_from_ranks(test_ranks),
        per_query={"rank": test_ranks},
        segments={"hour": test.hour.astype(np.int64), "user_seen": test.user_seen.astype(bool),
                  "returning": segments["return"].astype(bool)},
        data_checksum=task_fingerprint(task), fit_seconds=fit_seconds, wall_seconds=time.perf_counter() - start,
        peak_memory_mb=memory["peak_mb"],
        details={"epochs": len(getattr(model, "history_", [])) or None, "val_queries": len(val),
                 "test_queries": len(test), "users": task.num_users, "pois": task.num_pois})


# --------------------------------------------------------------------------- forecasting
@lru_cache(maxsize=4)
def forecast_series(dataset: str, smoke: bool = False) -> Any:
    """The network ``dataset`` (cached per process); ``"bike-sharing"`` is Capital Bikeshare's
    hourly rentals as a network of one node without edges."""
    from stlab.data.graphseries import read_graph_series
    from stlab.data.loaders import load_bike_sharing, load_graph_series
    from stlab.data.series import hourly_bike_series

    if dataset == "bike-sharing":
        hourly = hourly_bike_series(load_bike_sharing("hour"))["cnt"].astype(np.float32)
        if smoke:
            hourly = hourly.iloc[: 24 * 60]
        return read_graph_series(hourly.to_frame("rentals"), np.zeros((1, 1), dtype=np.float32),
                                 name="bike-sharing")
    return load_graph_series(dataset, seed=0, smoke=smoke)


def forecaster_factory(name: str, settings: dict[str, Any], seed: int, series: Any, setup: Any, *,
                       epochs: int) -> Any:
    """A factory of fresh forecasters of family ``name`` on ``series``."""
    from stlab.forecasting import HistoricalAverageForecaster, SeasonalNaiveForecaster
    from stlab.graph_forecasting import CausallyFilled, graph_model_config, node_lstm_config

    family("forecast", name)
    if name == "seasonal-naive":
        # A missing reading a season ago would be a missing forecast: fill the past causally first.
        return lambda: CausallyFilled(SeasonalNaiveForecaster(setup.season))
    if name == "historical-average":
        return lambda: HistoricalAverageForecaster(setup.average_season)
    if name == "lstm-per-node":
        from stlab.models.torch.forecast import TorchRecurrentForecaster

        config = dataclasses.replace(node_lstm_config(setup, seed=seed), num_epochs=epochs, **settings)
        return lambda: CausallyFilled(TorchRecurrentForecaster(config))
    from stlab.models.torch.stgraph import GraphForecaster

    adjacency = setup.adjacency_of(series)
    config = dataclasses.replace(graph_model_config(setup, name, series.num_nodes, seed=seed, num_epochs=epochs),
                                 **settings)
    return lambda: GraphForecaster(adjacency, config)


def _forecast_scores(evaluation: Any, name: str) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    setup = evaluation.setup
    result = evaluation.result(name)
    by_step = result.metrics_by_horizon()
    metrics: dict[str, float] = {}
    per_origin: dict[str, np.ndarray] = {}
    for step in setup.report_steps:
        label = setup.step_label(step)
        metrics[f"MAE@{label}"] = float(by_step.loc[step, "MAE"])
        metrics[f"RMSE@{label}"] = float(by_step.loc[step, "RMSE"])
        error = np.abs(result.forecasts[:, step - 1] - result.actuals[:, step - 1]).reshape(result.num_origins, -1)
        with np.errstate(all="ignore"):
            per_origin[f"abs_error@{label}"] = np.nanmean(error, axis=1)
    overall = result.metrics()
    metrics["MAE"], metrics["RMSE"] = float(overall["MAE"]), float(overall["RMSE"])
    return metrics, per_origin


def _run_forecast(job: Job) -> RunResult:
    from stlab.graph_forecasting import evaluate_network, network_setup
    from stlab.training import cpu_threads

    cell = job.cell
    series = forecast_series(cell.dataset, job.smoke)
    setup = network_setup(cell.dataset)
    # Validation: the same protocol on the history alone, its last test_share as the "test" part.
    history = setup.first_test_step(series.num_steps)
    val_series = dataclasses.replace(series, values=series.values[:history],
                                     timestamps=None if series.timestamps is None else series.timestamps[:history])
    start = time.perf_counter()
    with peak_memory() as memory, cpu_threads(1):
        val_eval = None
        if job.validate:
            make_val = forecaster_factory(cell.model, job.settings, job.seed, val_series, setup, epochs=job.epochs)
            val_eval = evaluate_network(val_series, setup, {cell.model: make_val}, progress=False)
        make = forecaster_factory(cell.model, job.settings, job.seed, series, setup, epochs=job.epochs)
        evaluation = evaluate_network(series, setup, {cell.model: make}, progress=False)
        fit_seconds = evaluation.seconds[cell.model]  # the fit and every rolling origin
    val_metrics = _forecast_scores(val_eval, cell.model)[0] if val_eval is not None else {}
    test_metrics, per_origin = _forecast_scores(evaluation, cell.model)
    digest = hashlib.sha256(np.ascontiguousarray(np.nan_to_num(series.values, nan=-1.0)).tobytes()).hexdigest()[:16]
    return RunResult(val_metrics=val_metrics, test_metrics=test_metrics, per_query=per_origin, segments={},
                     data_checksum=digest, fit_seconds=fit_seconds, wall_seconds=time.perf_counter() - start,
                     peak_memory_mb=memory["peak_mb"],
                     details={"origins": int(evaluation.results[0].num_origins), "nodes": series.num_nodes})


def run_job(job: Job) -> RunResult:
    """Fit, score and measure one job (see the module docstring)."""
    if job.cell.kind == "next-visit":
        return _run_next_visit(job)
    if job.cell.kind == "forecast":
        return _run_forecast(job)
    raise ValueError(f"unknown task kind {job.cell.kind!r}; use 'next-visit' or 'forecast'")


__all__ = ["BEHAVIOUR_LOGS", "HISTORY_LEN", "OUT_OF_CORE_LOGS", "Job", "behaviour_log", "MIN_CHECKINS", "RunResult", "forecast_series", "forecaster_factory",
           "next_visit_model", "next_visit_task", "peak_memory", "run_job"]
