"""The study's experiment grid as typed data: models x data sets x protocol presets x seeds.

A :class:`StudyGrid` names what runs; :meth:`StudyGrid.cells` lists the *cells* (one model on one
data set under one protocol), each of which is tuned on validation and then run with every seed.
Each model family has a search space (:data:`NEXT_VISIT_MODELS`, :data:`FORECAST_MODELS`);
every family gets the **same budget** of candidate settings (``trials``): the whole grid of its
space when that is no larger, else ``trials`` settings drawn from it with a fixed seed
(:func:`candidates`). Settings are chosen by validation MRR (next visit) or validation MAE
(forecasting) of seed 0 -- never by a test number.

Named grids (:data:`GRIDS`): ``default`` (what ``make study`` runs on a laptop in under an hour:
the two real check-in logs and LOS-LOOP, without the neural models on Foursquare NYC), ``large``
(those neural cells: the LSTM and the Transformer on Foursquare NYC under GETNext's and STAN's
protocols, about another hour on two cores), ``others`` (the synthetic city with its Bayes-optimal
ceiling, MovieLens and Taobao as next-item logs, bike sharing, the bus network and the simulated
road network, with the models that fit in seconds), ``full`` (every registered data set and model,
for bigger machines and clusters); ``reduced`` is what the study chapter runs when no results
store exists, and ``smoke`` what the tests run.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

TaskKind = Literal["next-visit", "forecast"]


@dataclass(frozen=True)
class ModelFamily:
    """A model family of the study: what it is called and what is searched.

    Attributes:
        name: (str) the family's key in the grid (``"markov"``).
        label: (str) the name tables show.
        space: (dict[str, tuple]) each hyperparameter's candidate values.
        neural: (bool) trained by gradient descent: gets ``neural_seeds`` seeds and a GPU if any.
        chapter: (int) the chapter that derives it.
    """

    name: str
    label: str
    space: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    neural: bool = False
    chapter: int = 4


NEXT_VISIT_MODELS: dict[str, ModelFamily] = {f.name: f for f in (
    # The synthetic city's true next-visit probabilities: the ceiling no model can pass (synthetic only).
    ModelFamily("bayes-optimal", "Bayes-optimal (true probabilities)"),
    ModelFamily("popularity", "Popularity"),
    ModelFamily("user-frequency", "User frequency", {"popularity_weight": (0.1, 0.5, 0.9)}),
    ModelFamily("markov", "Markov (1st order)", {"smoothing": (1.0, 100.0, 1000.0)}),
    ModelFamily("bayes-user", "Bayesian user model", {"smoothing": (0.001, 0.01, 0.1)}),
    ModelFamily("user-markov", "User + Markov blend", {"weight": (0.25, 0.5, 0.75, 0.9), "smoothing": (1.0, 100.0)}),
    ModelFamily("als", "Implicit ALS", {"alpha": (1.0, 2.0, 5.0), "factors": (32, 64)}),
    ModelFamily("lstm", "LSTM", {"hidden_size": (32, 64, 128), "lr": (2e-3, 5e-3)}, neural=True, chapter=7),
    ModelFamily("transformer", "Space-time Transformer", {"d_model": (32, 64, 128), "lr": (2e-3, 5e-3)},
                neural=True, chapter=8),
)}

FORECAST_MODELS: dict[str, ModelFamily] = {f.name: f for f in (
    ModelFamily("seasonal-naive", "Seasonal naive", chapter=3),
    ModelFamily("historical-average", "Historical average", chapter=3),
    ModelFamily("lstm-per-node", "LSTM per node", {"hidden_size": (32, 64)}, neural=True, chapter=11),
    ModelFamily("tgcn", "T-GCN", {"hidden_size": (32, 64)}, neural=True, chapter=11),
    ModelFamily("stgcn", "STGCN", {"hidden_size": (32, 64)}, neural=True, chapter=11),
)}

#: Taobao's two-hour slice is registered too, but after a k-core it keeps a few dozen users and
#: no GETNext test query; the first 4,321 lines (43 users' whole histories) serve instead.
NEXT_VISIT_DATASETS = ("gowalla-nyc", "foursquare-nyc-stan", "synthetic", "movielens-100k", "taobao-head")
FORECAST_DATASETS = ("los-loop", "montevideo-bus", "bike-sharing", "synthetic")
#: Forecasting data sets that are one series, not a network: graph models do not apply.
SINGLE_SERIES = ("bike-sharing",)
GRAPH_MODELS = ("tgcn", "stgcn")
PRESET_NAMES = ("book", "getnext", "flashback", "stan")


def family(kind: TaskKind, name: str) -> ModelFamily:
    """The registered family ``name`` of ``kind`` (a clear error lists the known ones)."""
    registry = NEXT_VISIT_MODELS if kind == "next-visit" else FORECAST_MODELS
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} model {name!r}; choose from {sorted(registry)}") from None


def candidates(space: Mapping[str, tuple[Any, ...]], trials: int, *, search: Literal["grid", "random"] = "grid",
               seed: int = 0) -> list[dict[str, Any]]:
    """The settings tried for one family: at most ``trials`` points of ``space``.

    With ``search="grid"`` the first ``trials`` points of the grid in a fixed shuffled order (all of
    them when the grid is no larger); with ``"random"`` a seeded draw of ``trials`` distinct points.
    Either way every family gets the same budget, and the same call gives the same list.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    names = sorted(space)
    grid = [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]
    if len(grid) <= trials:
        return grid
    rng = np.random.default_rng(seed if search == "random" else 0)
    picked = rng.choice(len(grid), size=trials, replace=False)
    return [grid[i] for i in (picked if search == "random" else sorted(picked))]


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable digest of a JSON-able mapping (hyperparameters, a cell's configuration)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Cell:
    """One model on one data set under one protocol.

    Attributes:
        kind: ``"next-visit"`` or ``"forecast"``.
        dataset: the data set's name (or the path of the reader's check-in file).
        preset: the protocol preset (``"rolling-origin"`` for forecasting).
        model: the model family's name.
    """

    kind: TaskKind
    dataset: str
    preset: str
    model: str

    @property
    def key(self) -> str:
        """A readable, file-safe identifier."""
        dataset = self.dataset.replace("/", "_").replace(".", "_")
        return f"{self.kind}__{dataset}__{self.preset}__{self.model}"


@dataclass(frozen=True)
class StudyGrid:
    """What the study runs.

    Attributes:
        name: (str) the grid's name, recorded with every run.
        datasets: (tuple[str, ...]) next-visit data sets.
        presets: (tuple[str, ...]) protocol presets (:mod:`stlab.study.presets`).
        models: (tuple[str, ...]) next-visit model families.
        forecast_datasets: (tuple[str, ...]) forecasting networks.
        forecast_models: (tuple[str, ...]) forecasting model families.
        seeds: (int) seeds of every model that is not neural (at least 3 for a study).
        neural_seeds: (int) seeds of every neural model (at least 5 for a study).
        trials: (int) candidate settings per family, the same for every family.
        search: (str) ``"grid"`` or ``"random"`` (see :func:`candidates`).
        epochs: (int) maximum epochs of every neural next-visit model (early stopping on validation).
        forecast_epochs: (int) maximum epochs of every neural forecaster.
        smoke: (bool) small slices of every data set (tests).
        skip: (tuple[str, ...]) next-visit cells left out of the grid, as ``"dataset:preset"`` (every
            model) or ``"dataset:preset:model"``.
        timezone: (str | None) the zone of a reader's check-in file (registered data sets keep theirs).
    """

    name: str = "default"
    datasets: tuple[str, ...] = ("gowalla-nyc", "foursquare-nyc-stan")
    presets: tuple[str, ...] = PRESET_NAMES
    models: tuple[str, ...] = ("popularity", "user-frequency", "markov", "user-markov", "als", "lstm", "transformer")
    forecast_datasets: tuple[str, ...] = ("los-loop",)
    forecast_models: tuple[str, ...] = ("seasonal-naive", "historical-average", "lstm-per-node", "stgcn")
    seeds: int = 3
    neural_seeds: int = 5
    trials: int = 3
    search: Literal["grid", "random"] = "grid"
    epochs: int = 2
    forecast_epochs: int = 8
    smoke: bool = False
    skip: tuple[str, ...] = ()
    timezone: str | None = None

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.neural_seeds < 1:
            raise ValueError("seeds and neural_seeds must be at least 1")
        if self.search not in ("grid", "random"):
            raise ValueError(f"search must be 'grid' or 'random', got {self.search!r}")
        from stlab.study.presets import PRESETS

        for preset in self.presets:
            if preset not in PRESETS:
                raise ValueError(f"unknown protocol preset {preset!r}; choose from {sorted(PRESETS)}")
        for name in self.models:
            family("next-visit", name)
        for name in self.forecast_models:
            family("forecast", name)

    def cells(self) -> list[Cell]:
        """Every cell, next-visit first, in a fixed order."""
        out = [Cell("next-visit", d, p, m) for d in self.datasets for p in self.presets for m in self.models
               if f"{d}:{p}" not in self.skip and f"{d}:{p}:{m}" not in self.skip
               and (m != "bayes-optimal" or d == "synthetic")]
        out += [Cell("forecast", d, "rolling-origin", m) for d in self.forecast_datasets for m in self.forecast_models
                if not (d in SINGLE_SERIES and m in GRAPH_MODELS)]
        return out

    def seeds_of(self, cell: Cell) -> tuple[int, ...]:
        """The seeds a cell runs with."""
        return tuple(range(self.neural_seeds if family(cell.kind, cell.model).neural else self.seeds))

    def candidates_of(self, cell: Cell) -> list[dict[str, Any]]:
        """The settings tried on validation for a cell (the same budget for every family)."""
        space = family(cell.kind, cell.model).space
        return candidates(space, self.trials, search=self.search, seed=0)

    def describe(self) -> dict[str, Any]:
        """The grid as plain data (recorded with the store)."""
        return asdict(self)

    def num_runs(self) -> int:
        """Fits the grid needs at most: every candidate at seed 0, then the other seeds of the chosen one."""
        return sum(len(self.candidates_of(c)) + len(self.seeds_of(c)) - 1 for c in self.cells())


# Foursquare NYC is the largest log: the book's grids run it under the two protocols whose published
# numbers are on this very file (STAN) or this city (GETNext); the full grid runs all four. Its neural
# cells alone take about an hour on two cores, so they form their own grid. A run's identity is what it
# computes, not the grid that asked for it: ``default`` and ``large`` together make exactly the runs
# that ``default`` made before the split.
_FOURSQUARE_NEURAL = tuple(f"foursquare-nyc-stan:{preset}:{model}" for preset in ("getnext", "stan")
                           for model in ("lstm", "transformer"))

GRIDS: dict[str, StudyGrid] = {
    "default": StudyGrid(skip=("foursquare-nyc-stan:book", "foursquare-nyc-stan:flashback") + _FOURSQUARE_NEURAL),
    "large": StudyGrid(name="large", datasets=("foursquare-nyc-stan",), presets=("getnext", "stan"),
                       models=("lstm", "transformer"), forecast_datasets=(), forecast_models=()),
    "full": StudyGrid(name="full", datasets=NEXT_VISIT_DATASETS, models=tuple(NEXT_VISIT_MODELS),
                      forecast_datasets=FORECAST_DATASETS, forecast_models=tuple(FORECAST_MODELS), trials=4,
                      search="random", epochs=5, forecast_epochs=20),
    # The other logs and series of the book, with the models that fit in minutes each.
    "others": StudyGrid(name="others", datasets=("synthetic", "movielens-100k", "taobao-head"),
                        models=("bayes-optimal", "popularity", "user-frequency", "markov", "user-markov", "als"),
                        forecast_datasets=("bike-sharing", "montevideo-bus", "synthetic"),
                        forecast_models=("seasonal-naive", "historical-average")),
    "reduced": StudyGrid(name="reduced", datasets=("gowalla-nyc", "synthetic"), presets=("book", "stan"),
                         models=("bayes-optimal", "popularity", "user-frequency", "markov", "user-markov"), forecast_datasets=(),
                         forecast_models=(), seeds=1, neural_seeds=1, trials=2),
    "smoke": StudyGrid(name="smoke", datasets=("synthetic",), presets=("book", "stan"),
                       models=("popularity", "markov", "lstm"), forecast_datasets=("synthetic",),
                       forecast_models=("historical-average",), seeds=2, neural_seeds=2, trials=2, epochs=1,
                       forecast_epochs=1, smoke=True),
}


def get_grid(name: str, **overrides: Any) -> StudyGrid:
    """A named grid, with fields replaced by ``overrides`` (``get_grid("default", seeds=5)``)."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; choose from {sorted(GRIDS)} (GRID=full for every data set and model)")
    values = {**asdict(GRIDS[name]), **overrides}
    return StudyGrid(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


__all__ = ["Cell", "FORECAST_DATASETS", "GRAPH_MODELS", "SINGLE_SERIES", "FORECAST_MODELS", "GRIDS", "ModelFamily", "NEXT_VISIT_DATASETS",
           "NEXT_VISIT_MODELS", "PRESET_NAMES", "StudyGrid", "TaskKind", "candidates", "family", "get_grid",
           "settings_hash"]
