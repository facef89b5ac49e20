"""The forecasting interface and the simple forecasters.

:class:`Forecast` and the :class:`Forecaster` protocol that every forecaster of the book follows;
the naive, seasonal naive and historical average baselines; :class:`ColumnwiseForecaster`, one
single-series forecaster per column. See :mod:`stlab.forecasting` for the protocol.

References: Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed.) for the
baselines and their intervals.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import stats

# --------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Forecast:
    """Point forecasts and, where the model provides them, a prediction interval.

    Attributes:
        mean: ``[horizon]`` or ``[horizon, N]`` point forecasts.
        lower: same shape, lower end of the interval at ``level``, or ``None``.
        upper: same shape, upper end of the interval at ``level``, or ``None``.
        level: nominal coverage of ``[lower, upper]`` (0.9 = a central 90 % interval).
    """

    mean: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    level: float = 0.9

    @property
    def has_interval(self) -> bool:
        return self.lower is not None and self.upper is not None


@runtime_checkable
class Forecaster(Protocol):
    """What every forecaster of the book exposes (chapter 3)."""

    name: str

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> Forecaster: ...

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast: ...

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> Forecaster: ...


def _as_history(y: Any, name: str = "y") -> np.ndarray:
    """``[T]`` or ``[T, N]`` float64 copy of a series; refuses other shapes and empty input."""
    array = np.array(y, dtype=np.float64)  # a copy: forecasters append to their history
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be [T] or [T, N], got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name} is empty")
    return array


def check_new_rows(y_new: Any, num_series: int | None, name: str) -> np.ndarray:
    """Observations given to ``update``, checked against the fitted series: a float64 array.

    Args:
        y_new: the new rows.
        num_series: ``None`` when the model was fitted on one series ``[T]``; else ``N`` of ``[T, N]``.
        name: the model's name, for the message.

    Returns:
        ``[k]`` for a model fitted on ``[T]`` (``[k, 1]`` is accepted too), ``[k, N]`` otherwise
        (``[k]`` is accepted when ``N == 1``).

    Raises:
        ValueError: any other shape, naming the expected and the given one -- a silent reshape
            would scramble rows and series.
    """
    array = np.asarray(y_new, dtype=np.float64)
    if num_series is None:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(f"{name}.update: expected new rows of shape [k] like the fitted series [T], "
                             f"got shape {list(array.shape)}")
        return array
    if array.ndim == 1 and num_series == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != num_series:
        raise ValueError(f"{name}.update: expected new rows of shape [k, {num_series}] like the fitted series "
                         f"[T, {num_series}], got shape {list(array.shape)}")
    return array


def _check_horizon(horizon: int) -> int:
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def _normal_interval(mean: np.ndarray, sd: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    z = stats.norm.ppf(0.5 + level / 2)
    return mean - z * sd, mean + z * sd


class _HistoryForecaster:
    """Shared bookkeeping of the simple forecasters: the whole history, appended on update."""

    name = "history"
    min_history = 1

    def __init__(self) -> None:
        self.y_: np.ndarray | None = None

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> _HistoryForecaster:
        y = _as_history(y)
        if len(y) < self.min_history:
            raise ValueError(f"{self.name} needs at least {self.min_history} training values, got {len(y)}")
        self.y_ = y
        return self

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> _HistoryForecaster:
        history = self._history()
        y_new = check_new_rows(y_new, history.shape[1] if history.ndim == 2 else None, self.name)
        self.y_ = np.concatenate([history, y_new])
        return self

    def _history(self) -> np.ndarray:
        if self.y_ is None:
            raise RuntimeError(f"{self.name}: call fit() before forecast() or update()")
        return self.y_


# --------------------------------------------------------------------------- simple forecasters
class NaiveForecaster(_HistoryForecaster):
    """Repeat the last value: ``y_hat[T + h] = y[T]``.

    The interval assumes random-walk errors: the one-step residual standard deviation
    ``sigma`` grows as ``sigma * sqrt(h)`` (Hyndman & Athanasopoulos, section 5.5).

    Args:
        (none)

    Shapes:
        ``y``: ``[T]`` or ``[T, N]``; forecasts ``[horizon]`` or ``[horizon, N]``.
    """

    name = "naive"
    min_history = 2

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        horizon, level = _check_horizon(horizon), _check_level(level)
        y = self._history()
        steps = np.arange(1, horizon + 1).reshape((-1,) + (1,) * (y.ndim - 1))
        mean = np.repeat(y[-1:], horizon, axis=0)  # [H] or [H, N]
        sigma = np.nanstd(np.diff(y, axis=0), axis=0)
        lower, upper = _normal_interval(mean, sigma * np.sqrt(steps), level)
        return Forecast(mean, lower, upper, level)


class SeasonalNaiveForecaster(_HistoryForecaster):
    """Repeat the last season: ``y_hat[T + h] = y[T + h - m * (floor((h - 1) / m) + 1)]``.

    With ``season=24`` tomorrow repeats today; with ``season=168`` next week repeats this week.
    The interval grows with the number of whole seasons ahead, ``sigma * sqrt(k + 1)`` with
    ``k = floor((h - 1) / m)`` (Hyndman & Athanasopoulos, section 5.5).

    Args:
        season: (int) the season length ``m`` in steps (24 or 168 for hourly data).

    Shapes:
        ``y``: ``[T]`` or ``[T, N]`` with ``T >= season``; forecasts ``[horizon]`` or ``[horizon, N]``.
    """

    def __init__(self, season: int = 24) -> None:
        super().__init__()
        if season < 1:
            raise ValueError(f"season must be >= 1, got {season}")
        self.season = int(season)
        self.name = f"seasonal naive ({season})"
        self.min_history = self.season + 1  # one season to repeat, plus one to measure its error

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        horizon, level = _check_horizon(horizon), _check_level(level)
        y, m = self._history(), self.season
        steps = np.arange(1, horizon + 1)
        source = len(y) - m + (steps - 1) % m  # the same position in the last observed season
        mean = y[source]
        sigma = np.nanstd(y[m:] - y[:-m], axis=0)
        k = ((steps - 1) // m).reshape((-1,) + (1,) * (y.ndim - 1))
        lower, upper = _normal_interval(mean, sigma * np.sqrt(k + 1), level)
        return Forecast(mean, lower, upper, level)


def nanquantile_first_axis(values: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(values, q, axis=0)`` (linear method), vectorised over the other axes.

    NumPy's ``nanquantile`` handles each column in a Python-level loop when any value is
    missing, which made the historical average's intervals the slowest part of a
    rolling-origin evaluation on a large network. This sorts once and interpolates every
    column at the same time, with NumPy's own formulas, so the results are identical.
    A column with no finite value gives ``NaN``.

    Shapes:
        ``values``: ``[S, ...]``; returns ``[...]``.
    """
    values = np.asarray(values, dtype=np.float64)
    ordered = np.sort(values, axis=0)  # NaNs sort last
    count = np.sum(~np.isnan(values), axis=0)  # [...]
    virtual = (count - 1) * np.float64(q)  # NumPy's "linear" virtual index
    previous = np.floor(virtual)
    at_end = virtual >= count - 1  # q = 1, or a single value: the largest value itself
    lower_index = np.where(at_end, count - 1, previous).clip(0).astype(np.intp)
    upper_index = np.where(at_end, count - 1, previous + 1).clip(0).astype(np.intp)
    below = np.take_along_axis(ordered, lower_index[None], axis=0)[0]
    above = np.take_along_axis(ordered, upper_index[None], axis=0)[0]
    gamma = virtual - previous
    difference = above - below
    result = below + difference * gamma  # NumPy's _lerp, both branches
    result = np.where(gamma >= 0.5, above - difference * (1 - gamma), result)
    result = np.where(at_end, below, result)
    return np.where(count == 0, np.nan, result)


class HistoricalAverageForecaster(_HistoryForecaster):
    """Mean of all training values at the same seasonal position (for example hour of week).

    The interval is empirical: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    past values at that position, so it needs no distributional assumption (and ignores trends).

    Args:
        season: (int) the season length in steps; 168 averages by hour of week.

    Shapes:
        ``y``: ``[T]`` or ``[T, N]`` with ``T >= season``; forecasts ``[horizon]`` or ``[horizon, N]``.
    """

    def __init__(self, season: int = 168) -> None:
        super().__init__()
        if season < 1:
            raise ValueError(f"season must be >= 1, got {season}")
        self.season = int(season)
        self.name = f"historical average ({season})"
        self.min_history = self.season

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        horizon, level = _check_horizon(horizon), _check_level(level)
        y, m = self._history(), self.season
        # Pad the history to whole seasons with NaN so it folds into [num_seasons, m, ...].
        pad = (-len(y)) % m
        padded = np.concatenate([np.full((pad,) + y.shape[1:], np.nan), y])
        folded = padded.reshape((-1, m) + y.shape[1:])  # [S, m] or [S, m, N]
        positions = (len(padded) + np.arange(horizon)) % m
        needed = folded[:, positions]  # only the forecast positions: quantiles are costly
        with warnings.catch_warnings():
            # A position never observed (NaN everywhere) is a genuine gap; keep its NaN quietly.
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(needed, axis=0)
            lower = nanquantile_first_axis(needed, 0.5 - level / 2)
            upper = nanquantile_first_axis(needed, 0.5 + level / 2)
        return Forecast(mean, lower, upper, level)


class ColumnwiseForecaster:
    """One forecaster per column of a ``[T, N]`` matrix, built by ``make_forecaster()``.

    Args:
        make_forecaster: (callable) returns a fresh single-series forecaster.
        name: (str | None) label; default the first forecaster's name.

    Shapes:
        ``y``: ``[T, N]``; ``exog`` (shared by all columns): ``[T, K]``; forecasts ``[horizon, N]``.
    """

    def __init__(self, make_forecaster: Callable[[], Forecaster], name: str | None = None) -> None:
        self.make_forecaster = make_forecaster
        self.models: list[Forecaster] = []
        self.name = name or make_forecaster().name

    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> ColumnwiseForecaster:
        y = _as_history(y)
        if y.ndim != 2:
            raise ValueError(f"ColumnwiseForecaster needs [T, N], got shape {y.shape}")
        self.models = [self.make_forecaster().fit(y[:, j], exog) for j in range(y.shape[1])]
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        parts = [m.forecast(horizon, exog_future, level=level) for m in self.models]
        mean = np.column_stack([p.mean for p in parts])
        if all(p.has_interval for p in parts):
            return Forecast(mean, np.column_stack([p.lower for p in parts]),
                            np.column_stack([p.upper for p in parts]), level)
        return Forecast(mean, None, None, level)

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> ColumnwiseForecaster:
        if not self.models:
            raise RuntimeError(f"{self.name}: call fit() before update()")
        y_new = check_new_rows(y_new, len(self.models), self.name)
        for j, model in enumerate(self.models):
            model.update(y_new[:, j], exog_new)
        return self

    @property
    def last_update_refit(self) -> bool:
        return any(getattr(m, "last_update_refit", False) for m in self.models)


__all__ = ["ColumnwiseForecaster", "Forecast", "Forecaster", "HistoricalAverageForecaster", "NaiveForecaster",
           "SeasonalNaiveForecaster", "check_new_rows"]
