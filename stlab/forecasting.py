"""Forecasting counts over time: simple baselines, SARIMA(X), a Poisson space-time model, and
rolling-origin evaluation.

Every forecaster has the same three calls (:class:`Forecaster`), so an evaluation loops over
models without special cases:

* ``fit(y, exog=None)`` -- learn from the history ``y`` (``[T]``, or ``[T, N]`` for ``N`` series
  where the model supports it);
* ``forecast(horizon, exog_future=None, *, level=0.9) -> Forecast`` -- the next ``horizon``
  values, with a prediction interval at ``level`` where the model provides one;
* ``update(y_new, exog_new=None)`` -- the origin moves forward: add the new observations
  cheaply (a model may refit on some updates, see :class:`SarimaForecaster`'s ``refit_every``).

Time is counted in steps (hours in the book). Seasonal positions are positions in the series
modulo the season, so a series should be complete (no skipped hours): see
:func:`hourly_bike_series` and :func:`region_hour_counts`, which build complete hourly series.

References: Box, Jenkins, Reinsel & Ljung, *Time Series Analysis* (5th ed., 2015) for SARIMA;
Hyndman & Koehler (2006) for MASE; Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice* (3rd ed.) for the baselines and their intervals.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import optimize, stats

from stlab.metrics import interval_coverage, mae, mape, rmse, seasonal_naive_scale, smape

Order = tuple[int, int, int]
SeasonalOrder = tuple[int, int, int, int]


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
        y_new = np.asarray(y_new, dtype=np.float64).reshape((-1,) + history.shape[1:])
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
            lower = np.nanquantile(needed, 0.5 - level / 2, axis=0)
            upper = np.nanquantile(needed, 0.5 + level / 2, axis=0)
        return Forecast(mean, lower, upper, level)


# --------------------------------------------------------------------------- SARIMA(X)
@contextmanager
def _quiet_sarimax() -> Iterator[None]:
    """Silence what statsmodels says about a fit that the caller inspects itself.

    ``ConvergenceWarning``: the optimiser stopped at ``maxiter``; :attr:`SarimaForecaster.converged`
    records it, and the next warm-started refit continues from there. "Non-stationary /
    non-invertible starting parameters": statsmodels then starts from zeros, which is fine.
    ``ValueWarning`` (no date index): the forecasters pass plain arrays on purpose.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, ValueWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", ValueWarning)
        warnings.filterwarnings("ignore", message="Non-stationary starting")
        warnings.filterwarnings("ignore", message="Non-invertible starting")
        warnings.filterwarnings("ignore", message="Too few observations to estimate starting parameters")
        yield


class SarimaForecaster:
    """SARIMA(X) by statsmodels' state-space ``SARIMAX``, with a cheap rolling-origin update.

    ``phi(L) Phi(L^s) (1 - L)^d (1 - L^s)^D y_t = c + beta' x_t + theta(L) Theta(L^s) e_t``
    (Box, Jenkins, Reinsel & Ljung, 2015), fitted by exact maximum likelihood (Kalman filter).

    **The update.** When the origin moves, the fitted parameters are reused and only the Kalman
    filter runs over the new observations: ``results.extend(new)`` starts from the filter's
    predicted state at the end of the old data -- exactly where filtering the whole series
    would be -- so its forecasts equal those of ``results.append(new, refit=False)``, which
    re-filters the whole series (cost O(T) per origin instead of O(new)). ``results.apply`` would
    be wrong here: it restarts the filter from the initial state as if the new data were a
    separate series. A deterministic time trend (``"t"``, ``"ct"``) needs the clock to continue,
    so ``trend_offset`` is passed on (tested against ``append`` in ``tests/test_forecasting.py``).
    Every ``refit_every`` updates the model is refitted on the whole history, warm-started from
    the previous parameters, which takes a fraction of a cold fit.

    Weekly seasonality: ``s = 168`` makes a state vector of about 170 entries, far too slow for
    hourly data; give the daily season (``s = 24``) to SARIMA and the weekly shape as Fourier
    terms in ``exog`` (:func:`stlab.features.fourier_terms` with period 168).

    Regressors: ``exog_method="mle"`` estimates ``beta`` jointly with the ARMA parameters (exact
    maximum likelihood; each coefficient adds a dimension to the numerical optimisation, which
    with ``s = 24`` and ten or more regressors takes tens of seconds per fit). ``"ols"`` is the
    classic two-step shortcut: ``beta`` by least squares with an intercept, then SARIMA on the
    residuals, and forecasts ``x' beta`` plus the SARIMA forecast of the residual. It is
    consistent when the errors are stationary (use it with ``D = 0``), less efficient, and its
    intervals ignore the uncertainty of ``beta`` -- small when ``T`` is much larger than ``K``.

    Args:
        order: (tuple) ``(p, d, q)``.
        seasonal_order: (tuple) ``(P, D, Q, s)``; ``(0, 0, 0, 0)`` for none.
        trend: (str | None) ``"n"``, ``"c"`` (constant), ``"t"``, ``"ct"``; ``None``: ``"c"``
            when there is no differencing, else ``"n"``.
        transform: (str | None) ``"log1p"`` fits ``log(1 + y)`` and back-transforms forecasts and
            interval ends with ``expm1`` -- the point forecast is then the predictive *median*,
            which is what MAE rewards; ``None`` fits ``y`` itself.
        refit_every: (int | None) refit on every ``refit_every``-th update; ``None`` never refits.
        maxiter: (int) iterations of the optimiser (L-BFGS) per fit.
        concentrate_scale: (bool) profile the innovation variance out of the likelihood while
            searching: one parameter fewer, same optimum (the variance is then kept fixed).
        exog_method: (str) ``"mle"`` (joint) or ``"ols"`` (two-step), see above.
        name: (str | None) label in tables; default ``SARIMA(p, d, q)(P, D, Q, s)``.

    Shapes:
        ``y``: ``[T]``; ``exog``: ``[T, K]``; forecasts ``[horizon]`` (``exog_future`` ``[horizon, K]``).
    """

    def __init__(self, order: Order = (1, 0, 1), seasonal_order: SeasonalOrder = (0, 0, 0, 0), *,
                 trend: str | None = None, transform: Literal["log1p"] | None = None,
                 refit_every: int | None = None, maxiter: int = 50, concentrate_scale: bool = True,
                 exog_method: Literal["mle", "ols"] = "mle", name: str | None = None) -> None:
        if len(order) != 3 or len(seasonal_order) != 4 or min(*order, *seasonal_order) < 0:
            raise ValueError(f"order must be (p, d, q) and seasonal_order (P, D, Q, s) of non-negative "
                             f"integers, got {order} and {seasonal_order}")
        if any(seasonal_order[:3]) and seasonal_order[3] < 2:
            raise ValueError(f"a seasonal order needs a season s >= 2, got {seasonal_order}")
        if refit_every is not None and refit_every < 1:
            raise ValueError(f"refit_every must be None or >= 1, got {refit_every}")
        if transform not in (None, "log1p"):
            raise ValueError(f"transform must be None or 'log1p', got {transform!r}")
        if exog_method not in ("mle", "ols"):
            raise ValueError(f"exog_method must be 'mle' or 'ols', got {exog_method!r}")
        self.exog_method = exog_method
        self.order = tuple(int(v) for v in order)
        self.seasonal_order = tuple(int(v) for v in seasonal_order)
        differenced = self.order[1] + self.seasonal_order[1] > 0
        # With the two-step method the least-squares intercept already carries the level.
        self.trend = trend if trend is not None else ("n" if differenced or exog_method == "ols" else "c")
        self.transform = transform
        self.refit_every = refit_every
        self.maxiter = maxiter
        self.concentrate_scale = concentrate_scale
        self.name = name or f"SARIMA{self.order}{self.seasonal_order}"
        self.results: Any = None
        self.converged: bool | None = None
        self.num_updates = 0
        self.last_update_refit = False
        self._y: np.ndarray | None = None  # transformed history, for refits
        self._exog: np.ndarray | None = None
        self.beta_: np.ndarray | None = None  # two-step regression coefficients, intercept first

    # -- helpers
    @property
    def min_history(self) -> int:
        p, d, q = self.order
        P, D, Q, s = self.seasonal_order
        return max(p + d + q, s * (P + D + Q) + d + 1) + 10

    def _forward(self, y: np.ndarray) -> np.ndarray:
        if self.transform == "log1p":
            if np.nanmin(y) <= -1:
                raise ValueError("transform='log1p' needs values > -1 (counts)")
            return np.log1p(y)
        return y

    def _backward(self, y: np.ndarray) -> np.ndarray:
        return np.expm1(y) if self.transform == "log1p" else y

    @staticmethod
    def _exog_array(exog: Any, rows: int, name: str) -> np.ndarray | None:
        if exog is None:
            return None
        array = np.asarray(exog, dtype=np.float64)
        array = array.reshape(len(array), -1)
        if len(array) != rows:
            raise ValueError(f"{name} has {len(array)} rows for {rows} observations")
        return array

    def _model(self, y: np.ndarray, exog: np.ndarray | None, concentrate_scale: bool = False) -> Any:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        return SARIMAX(y, exog, order=self.order, seasonal_order=self.seasonal_order, trend=self.trend,
                       concentrate_scale=concentrate_scale)

    def _two_step(self) -> bool:
        return self.exog_method == "ols" and self._exog is not None

    def _regression(self, exog: np.ndarray) -> np.ndarray:
        """``x' beta`` of the two-step method, ``[rows]``."""
        assert self.beta_ is not None
        return self.beta_[0] + exog @ self.beta_[1:]

    def _fit(self, start_params: np.ndarray | None = None) -> None:
        assert self._y is not None
        target, exog = self._y, self._exog
        if self._two_step():
            assert exog is not None
            design = np.column_stack([np.ones(len(exog)), exog])
            self.beta_, *_ = np.linalg.lstsq(design, target, rcond=None)
            target, exog = target - self._regression(exog), None
        with _quiet_sarimax():
            if not self.concentrate_scale:
                self.results = self._model(target, exog).fit(disp=False, maxiter=self.maxiter,
                                                             start_params=start_params)
                self.converged = bool(self.results.mle_retvals.get("converged", True))
                return
            # Search without the variance (it is profiled out), then hand the variance back as an
            # ordinary parameter: an extended results object re-estimates a concentrated variance
            # from the new observations alone -- from 24 values, or none after a seasonal
            # difference eats them -- which would make every later interval wrong.
            start = None if start_params is None else start_params[:-1]  # sigma2 is SARIMAX's last parameter
            concentrated = self._model(target, exog, concentrate_scale=True).fit(
                disp=False, maxiter=self.maxiter, start_params=start)
            self.converged = bool(concentrated.mle_retvals.get("converged", True))
            full = np.r_[np.asarray(concentrated.params), concentrated.scale]
            self.results = self._model(target, exog).filter(full)

    # -- the interface
    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> SarimaForecaster:
        """Fit by maximum likelihood on ``y`` (``[T]``) with optional regressors ``exog`` (``[T, K]``)."""
        y = _as_history(y)
        if y.ndim != 1:
            raise ValueError(f"SarimaForecaster models one series [T]; got shape {y.shape} "
                             "(wrap it in ColumnwiseForecaster for several)")
        if len(y) < self.min_history:
            raise ValueError(f"{self.name} needs at least {self.min_history} training values, got {len(y)}")
        self._y = self._forward(y)
        self._exog = self._exog_array(exog, len(y), "exog")
        self.num_updates = 0
        self._fit()
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        """Forecast ``horizon`` steps past the last observation, with a ``level`` interval."""
        horizon, level = _check_horizon(horizon), _check_level(level)
        if self.results is None:
            raise RuntimeError(f"{self.name}: call fit() before forecast()")
        exog_future = self._exog_array(exog_future, horizon, "exog_future")
        if (exog_future is None) != (self._exog is None):
            raise ValueError("give exog_future exactly when the model was fitted with exog")
        shift = np.zeros(horizon)
        if self._two_step():
            assert exog_future is not None
            shift, exog_future = self._regression(exog_future), None
        prediction = self.results.get_forecast(horizon, exog=exog_future)
        mean = np.asarray(prediction.predicted_mean) + shift
        bounds = np.asarray(prediction.conf_int(alpha=1 - level)) + shift[:, None]  # [H, 2]
        return Forecast(self._backward(mean), self._backward(bounds[:, 0]), self._backward(bounds[:, 1]), level)

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> SarimaForecaster:
        """Add observations after the origin: filter them with the fitted parameters, or refit
        (warm-started) on every ``refit_every``-th update."""
        if self.results is None or self._y is None:
            raise RuntimeError(f"{self.name}: call fit() before update()")
        y_new = self._forward(np.asarray(y_new, dtype=np.float64).reshape(-1))
        exog_new = self._exog_array(exog_new, len(y_new), "exog_new")
        if (exog_new is None) != (self._exog is None):
            raise ValueError("give exog_new exactly when the model was fitted with exog")
        self._y = np.concatenate([self._y, y_new])
        if self._exog is not None:
            self._exog = np.concatenate([self._exog, exog_new])
        self.num_updates += 1
        self.last_update_refit = bool(self.refit_every) and self.num_updates % self.refit_every == 0
        if self.last_update_refit:
            self._fit(start_params=np.asarray(self.results.params))
        else:
            target, exog = y_new, exog_new
            if self._two_step():
                assert exog_new is not None
                target, exog = y_new - self._regression(exog_new), None
            with _quiet_sarimax():
                # The clock of a time trend continues from the end of the old data.
                offset = self.results.model.trend_offset + self.results.nobs
                self.results = self.results.extend(target, exog=exog, trend_offset=offset)
        return self

    @property
    def params(self) -> pd.Series:
        """Fitted parameters by name (``ar.L1``, ``ar.S.L24``, ``ma.L1``, ..., regressors as
        ``x1..`` -- or, two-step, ``ols.const, ols.x1..``)."""
        if self.results is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        params = pd.Series(np.asarray(self.results.params), index=self.results.model.param_names)
        if self._two_step() and self.beta_ is not None:
            names = ["ols.const"] + [f"ols.x{i}" for i in range(1, len(self.beta_))]
            params = pd.concat([params, pd.Series(self.beta_, index=names)])
        return params

    def residuals(self) -> np.ndarray:
        """``[T]`` one-step-ahead residuals of the last fit (on the transformed scale), with the
        first ``d + D * s`` values (not yet predictable) dropped."""
        if self.results is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        burn = self.order[1] + self.seasonal_order[1] * self.seasonal_order[3]
        return np.asarray(self.results.resid)[burn:]


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
        y_new = np.asarray(y_new, dtype=np.float64).reshape(-1, len(self.models))
        for j, model in enumerate(self.models):
            model.update(y_new[:, j], exog_new)
        return self

    @property
    def last_update_refit(self) -> bool:
        return any(getattr(m, "last_update_refit", False) for m in self.models)


def select_order(y: np.ndarray, orders: Sequence[Order], seasonal_orders: Sequence[SeasonalOrder] = ((0, 0, 0, 0),),
                 *, exog: np.ndarray | None = None, trend: str | None = None,
                 transform: Literal["log1p"] | None = None, criterion: Literal["aic", "bic"] = "aic",
                 maxiter: int = 50, exog_method: Literal["mle", "ols"] = "mle",
                 progress: bool = False) -> pd.DataFrame:
    """Fit every combination of ``orders`` x ``seasonal_orders`` and rank them by AIC or BIC.

    Information criteria compare likelihoods of the *same* data, so every candidate should have
    the same differencing ``(d, D)``: a differenced model's likelihood is of a different series.
    The table says so in ``differencing``; rank within one value of it.

    Args:
        y: ``[T]`` the series.
        orders: candidate ``(p, d, q)``.
        seasonal_orders: candidate ``(P, D, Q, s)``.
        exog: ``[T, K]`` regressors shared by all candidates.
        trend, transform, maxiter, exog_method: as in :class:`SarimaForecaster` (with ``"ols"``
            every candidate models the same least-squares residuals, so criteria still compare).
        criterion: ``"aic"`` or ``"bic"`` (BIC penalises parameters more, preferring smaller models).
        progress: show a progress bar.

    Returns:
        One row per candidate, best first: ``order, seasonal_order, differencing, num_params,
        aic, bic, llf, converged, seconds``.
    """
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion must be 'aic' or 'bic', got {criterion!r}")
    candidates = list(itertools.product(orders, seasonal_orders))
    if not candidates:
        raise ValueError("no candidate orders given")
    from tqdm.auto import tqdm

    rows = []
    for order, seasonal in tqdm(candidates, desc="orders", disable=not progress, leave=False):
        model = SarimaForecaster(order, seasonal, trend=trend, transform=transform, maxiter=maxiter,
                                 exog_method=exog_method)
        start = time.perf_counter()
        model.fit(y, exog)
        result = model.results
        llf = float(result.llf)
        n = int(result.nobs_effective)
        if transform == "log1p":
            # The likelihood of log(1 + y) differs from that of y by the Jacobian; adding it makes
            # criteria comparable with untransformed fits too.
            llf -= float(np.sum(np.log1p(np.asarray(y, dtype=np.float64)[-n:])))
        k = len(result.params)  # the variance included
        rows.append({"order": tuple(order), "seasonal_order": tuple(seasonal),
                     "differencing": (order[1], seasonal[1]), "num_params": k,
                     "aic": -2 * llf + 2 * k, "bic": -2 * llf + k * np.log(n), "llf": llf,
                     "converged": model.converged, "seconds": time.perf_counter() - start})
    table = pd.DataFrame(rows).sort_values(criterion, kind="stable").reset_index(drop=True)
    return table


# --------------------------------------------------------------------------- diagnostics
def stationarity_tests(y: np.ndarray, *, regression: Literal["c", "ct"] = "c", alpha: float = 0.05,
                       maxlag: int | None = None) -> pd.DataFrame:
    """ADF and KPSS tests, side by side, with a verdict in plain words.

    The two tests have opposite null hypotheses: ADF's null is a unit root (non-stationary),
    KPSS's null is stationarity. Reading them together:

    ======================  ======================  ============================================
    ADF rejects?            KPSS rejects?           verdict
    ======================  ======================  ============================================
    yes                     no                      stationary
    no                      yes                     unit root: difference the series
    yes                     yes                     conflicting: stationary around a changing level
                                                    or variance -- try differencing or a transform
    no                      no                      inconclusive: too little data to tell
    ======================  ======================  ============================================

    Args:
        y: ``[T]`` the series (NaNs dropped).
        regression: ``"c"`` (stationary around a constant) or ``"ct"`` (around a linear trend).
        alpha: significance level.
        maxlag: largest lag of the ADF regression (``None``: ``12 (T / 100)^(1/4)``, chosen by AIC).

    Returns:
        Rows ``ADF``, ``KPSS``, ``both``; columns ``statistic, p_value, lags, null, rejects_null,
        verdict``. KPSS p-values are interpolated in a table and clipped to [0.01, 0.1].
    """
    from statsmodels.tools.sm_exceptions import InterpolationWarning
    from statsmodels.tsa.stattools import adfuller, kpss

    values = np.asarray(y, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"y must be one series [T], got shape {values.shape}")
    values = values[~np.isnan(values)]
    if len(values) < 20:
        raise ValueError(f"stationarity tests need at least 20 values, got {len(values)}")
    if np.ptp(values) == 0:
        raise ValueError("the series is constant; stationarity tests are undefined")
    adf = adfuller(values, maxlag=maxlag, regression=regression, autolag="AIC", result_object=True)
    with warnings.catch_warnings():
        # KPSS reports p-values only inside its table's range (0.01..0.1) and warns when the
        # statistic falls outside; the clipped value is still the right verdict at alpha 0.05.
        warnings.simplefilter("ignore", InterpolationWarning)
        kpss_result = kpss(values, regression=regression, nlags="auto", result_object=True)
    adf_rejects, kpss_rejects = bool(adf.pvalue < alpha), bool(kpss_result.pvalue < alpha)
    combined = {(True, False): "stationary",
                (False, True): "unit root: difference the series",
                (True, True): "conflicting: try differencing or a transform",
                (False, False): "inconclusive: too little data to tell"}[(adf_rejects, kpss_rejects)]
    trend_words = "a constant" if regression == "c" else "a linear trend"
    return pd.DataFrame({
        "statistic": [adf.statistic, kpss_result.statistic, np.nan],
        "p_value": [adf.pvalue, kpss_result.pvalue, np.nan],
        "lags": [adf.lags, kpss_result.lags, np.nan],
        "null": ["unit root", f"stationary around {trend_words}", ""],
        "rejects_null": [adf_rejects, kpss_rejects, None],
        "verdict": ["stationary" if adf_rejects else "cannot reject a unit root",
                    "non-stationary" if kpss_rejects else "cannot reject stationarity", combined],
    }, index=pd.Index(["ADF", "KPSS", "both"], name="test"))


def ljung_box(residuals: np.ndarray, lags: int | Sequence[int] = (24, 48), *, model_df: int = 0,
              alpha: float = 0.05) -> pd.DataFrame:
    """Ljung--Box test that residuals are white noise up to each lag.

    Args:
        residuals: ``[T]`` one-step residuals (NaNs dropped).
        lags: a lag or lags to test at (24 and 48: one and two days of hourly data).
        model_df: ARMA parameters estimated (``p + q + P + Q``), subtracted from the degrees of freedom.
        alpha: significance level.

    Returns:
        One row per lag: ``lb_stat, lb_pvalue, verdict``.
    """
    from statsmodels.stats.diagnostic import acorr_ljungbox

    values = np.asarray(residuals, dtype=np.float64)
    values = values[~np.isnan(values)]
    lags = [lags] if isinstance(lags, (int, np.integer)) else list(lags)
    if not lags or min(lags) <= model_df or max(lags) >= len(values):
        raise ValueError(f"lags must exceed model_df = {model_df} and be below the {len(values)} residuals, got {lags}")
    table = acorr_ljungbox(values, lags=lags, model_df=model_df, return_df=True)
    table.index.name = "lag"
    table["verdict"] = np.where(table["lb_pvalue"] < alpha, "autocorrelated: structure left",
                                "no evidence against white noise")
    return table


# --------------------------------------------------------------------------- simulation
def _poly_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.convolve(a, b)


def simulate_sarima(n: int, *, ar: Sequence[float] = (), ma: Sequence[float] = (), seasonal_ar: Sequence[float] = (),
                    seasonal_ma: Sequence[float] = (), season: int = 24, d: int = 0, D: int = 0,
                    mean: float = 0.0, sigma: float = 1.0, burn_in: int = 1000, seed: int = 0) -> np.ndarray:
    """Simulate ``phi(L) Phi(L^s) (1-L)^d (1-L^s)^D (y_t - mu) = theta(L) Theta(L^s) e_t``.

    Sign conventions follow statsmodels' SARIMAX (``ar=(0.6,)`` means ``y_t = 0.6 y_{t-1} + ...``;
    ``ma=(0.3,)`` means ``+ 0.3 e_{t-1}``), so fitted parameters can be compared directly. The
    recursion is a plain loop over time with NumPy dot products, independent of statsmodels.

    Args:
        n: (int) length returned.
        ar, ma: non-seasonal coefficients ``phi_1..phi_p``, ``theta_1..theta_q``.
        seasonal_ar, seasonal_ma: seasonal coefficients ``Phi_1..Phi_P``, ``Theta_1..Theta_Q``.
        season: (int) ``s``.
        d, D: (int) orders of ordinary and seasonal integration, applied after the ARMA recursion.
        mean: (float) mean ``mu`` of the stationary ARMA part.
        sigma: (float) standard deviation of the Gaussian innovations ``e_t``.
        burn_in: (int) initial values discarded so the start does not depend on zeros.
        seed: (int) seed of the innovations.

    Returns:
        ``[n]`` float64.
    """
    if n < 1 or burn_in < 0 or season < 1 or d < 0 or D < 0 or sigma < 0:
        raise ValueError("need n >= 1, burn_in >= 0, season >= 1, d >= 0, D >= 0, sigma >= 0")
    # Lag polynomials as coefficient arrays in L: phi(L) = 1 - sum phi_i L^i, theta(L) = 1 + sum theta_j L^j.
    phi = np.r_[1.0, -np.asarray(ar, dtype=np.float64)]
    big_phi = np.zeros(season * len(seasonal_ar) + 1)
    big_phi[0] = 1.0
    big_phi[season::season] = -np.asarray(seasonal_ar, dtype=np.float64)
    theta = np.r_[1.0, np.asarray(ma, dtype=np.float64)]
    big_theta = np.zeros(season * len(seasonal_ma) + 1)
    big_theta[0] = 1.0
    big_theta[season::season] = np.asarray(seasonal_ma, dtype=np.float64)
    ar_poly = _poly_multiply(phi, big_phi)        # 1 - a_1 L - a_2 L^2 - ...
    ma_poly = _poly_multiply(theta, big_theta)    # 1 + b_1 L + b_2 L^2 + ...
    a, b = -ar_poly[1:], ma_poly[1:]
    p, q = len(a), len(b)
    total = n + burn_in + d + D * season
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sigma, total + q)
    x = np.zeros(total + p)
    for t in range(total):
        past_x = x[t:t + p][::-1]            # x_{t-1}, ..., x_{t-p}
        past_e = e[t:t + q][::-1]            # e_{t-1}, ..., e_{t-q}
        x[t + p] = a @ past_x + e[t + q] + b @ past_e
    w = x[p:] + mean
    for _ in range(D):                       # seasonal integration: y_t = w_t + y_{t-s}
        w = np.concatenate([np.zeros(season), w])
        for t in range(season, len(w)):
            w[t] += w[t - season]
        w = w[season:]
    for _ in range(d):
        w = np.cumsum(w)
    return w[-n:]


# --------------------------------------------------------------------------- the Poisson space-time model
def _clock(timestamps: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Hour of week (Monday 0h = 0) and hour of day of local time stamps."""
    index = pd.DatetimeIndex(timestamps)
    return (index.day_of_week * 24 + index.hour).to_numpy(), index.hour.to_numpy()


class PoissonEvolutionModel:
    """Space-time evolution of counts, ``f(t, x) = phi(t) psi(x) + theta(t, x)``, as a log-linear
    Poisson model.

    For the count ``y[t, x]`` of region ``x`` in hour ``t``::

        y[t, x] ~ Poisson(mu[t, x]),
        log mu[t, x] = b + phi[w(t)] + psi[x] + theta[x, h(t)]

    with ``w(t)`` the hour of week and ``h(t)`` the hour of day (local time). Taking logs turns
    the multiplicative separable part ``Phi(t) Psi(x)`` into a sum, ``log Phi(t) = b + phi[w(t)]``
    and ``log Psi(x) = psi[x]``: how busy the city is at this hour times how busy this region
    is overall. ``theta[x, h]`` is what that product misses -- a region whose daily rhythm differs
    from the city's (offices busy at noon, bars at midnight). It multiplies the separable rate
    by ``exp(theta)``; in counts, the additive ``theta(t, x)`` of ``f`` is
    ``Phi(t) Psi(x) (exp(theta[x, h(t)]) - 1)``.

    The interaction has ``N x 24`` parameters for ``T x N`` counts, so it is shrunk towards zero
    by a Gaussian prior ``theta ~ N(0, 1 / interaction_penalty)`` (an L2 penalty on the
    log-likelihood summed over counts): a region's hour keeps its own rhythm only when it has
    seen enough counts to support it. ``phi`` and ``psi`` get a tiny penalty that only settles
    the ties between them. Fitted by L-BFGS on the penalised log-likelihood with its exact
    gradient; after fitting, effects are centred (``phi`` and ``psi`` average 0, each row and
    column of ``theta`` averages 0) with the means moved to ``b`` -- predictions are unchanged.

    Forecasts depend on the clock only (no recent level), so a refit after an origin moves is
    warm-started from the previous parameters and takes a few iterations.

    Args:
        interaction_penalty: (float) prior precision of ``theta`` (larger: closer to separable).
        main_penalty: (float) prior precision of ``phi`` and ``psi`` (nearly flat).
        start: (pd.Timestamp | None) local time of the first row when ``fit`` gets no time
            stamps; ``None`` counts the first row as Monday 0h.
        freq: (str) step between rows for ``forecast`` and for ``start``.
        maxiter: (int) L-BFGS iterations per fit.

    Shapes:
        ``y``: ``[T, N]`` counts (NaN where unobserved); ``timestamps``: ``[T]`` local times;
        ``phi``: ``[168]``; ``psi``: ``[N]``; ``theta``: ``[N, 24]``; forecasts ``[horizon, N]``.
    """

    name = "Poisson phi psi theta"

    def __init__(self, interaction_penalty: float = 5.0, main_penalty: float = 1e-3, *,
                 start: pd.Timestamp | None = None, freq: str = "h", maxiter: int = 500) -> None:
        if interaction_penalty < 0 or main_penalty < 0:
            raise ValueError("penalties must be non-negative")
        self.interaction_penalty = float(interaction_penalty)
        self.main_penalty = float(main_penalty)
        self.start = start
        self.freq = freq
        self.maxiter = maxiter
        self.y_: np.ndarray | None = None
        self.timestamps_: pd.DatetimeIndex | None = None
        self.intercept_: float = 0.0
        self.phi_ = np.zeros(168)
        self.psi_ = np.zeros(0)
        self.theta_ = np.zeros((0, 24))
        self.columns_: pd.Index | None = None
        self.converged: bool | None = None

    # -- clock
    def _default_index(self, rows: int) -> pd.DatetimeIndex:
        start = self.start if self.start is not None else pd.Timestamp("2001-01-01")  # a Monday
        return pd.date_range(start, periods=rows, freq=self.freq)

    # -- the objective
    def _unpack(self, params: np.ndarray, n: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        return params[0], params[1:169], params[169:169 + n], params[169 + n:].reshape(n, 24)

    def _log_rate(self, b: float, phi: np.ndarray, psi: np.ndarray, theta: np.ndarray, how: np.ndarray,
                  hod: np.ndarray) -> np.ndarray:
        return b + phi[how][:, None] + psi[None, :] + theta[:, hod].T  # [T, N]

    def _objective(self, params: np.ndarray, y: np.ndarray, observed: np.ndarray, how: np.ndarray,
                   hod: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
        n = y.shape[1]
        b, phi, psi, theta = self._unpack(params, n)
        eta = self._log_rate(b, phi, psi, theta, how, hod)      # [T, N]
        mu = np.exp(np.minimum(eta, 30.0))                      # cap: exp(30) counts is never a real rate
        nll = float(np.sum(np.where(observed, mu - y * eta, 0.0)))
        r = np.where(observed, mu - y, 0.0)                     # d nll / d eta, [T, N]
        lam_m, lam_i = self.main_penalty, self.interaction_penalty
        penalty = 0.5 * lam_m * (phi @ phi + psi @ psi) + 0.5 * lam_i * float(np.sum(theta**2))
        grad = np.empty_like(params)
        grad[0] = r.sum()
        grad[1:169] = np.bincount(how, weights=r.sum(axis=1), minlength=168) + lam_m * phi
        grad[169:169 + n] = r.sum(axis=0) + lam_m * psi
        grad_theta = np.zeros((24, n))
        np.add.at(grad_theta, hod, r)                           # [24, N]
        grad[169 + n:] = (grad_theta.T + lam_i * theta).ravel()
        # Dividing by the number of counts keeps L-BFGS's tolerances meaningful at any data size.
        return (nll + penalty) / scale, grad / scale

    # -- the interface
    def fit(self, y: np.ndarray | pd.DataFrame, exog: np.ndarray | None = None, *,
            timestamps: pd.DatetimeIndex | None = None) -> PoissonEvolutionModel:
        """Fit on counts ``y`` (``[T, N]``; a DataFrame's DatetimeIndex gives the time stamps).

        Args:
            y: counts per hour (rows) and region (columns).
            exog: not used (the clock is the only input); accepted for the common interface.
            timestamps: ``[T]`` local times of the rows; default the DataFrame's index, else
                ``start`` and ``freq``.
        """
        if isinstance(y, pd.DataFrame):
            self.columns_ = y.columns
            if timestamps is None and isinstance(y.index, pd.DatetimeIndex):
                timestamps = y.index
        values = _as_history(y)
        if values.ndim == 1:
            values = values[:, None]
        if np.nanmin(values) < 0:
            raise ValueError("Poisson counts must be non-negative")
        if len(values) < 24:
            raise ValueError(f"need at least 24 rows (one of each hour of day), got {len(values)}")
        timestamps = self._default_index(len(values)) if timestamps is None else pd.DatetimeIndex(timestamps)
        if len(timestamps) != len(values):
            raise ValueError(f"{len(timestamps)} time stamps for {len(values)} rows")
        if self.columns_ is None or len(self.columns_) != values.shape[1]:
            self.columns_ = pd.RangeIndex(values.shape[1])
        self.y_, self.timestamps_ = values, timestamps
        self._optimise(warm=False)
        return self

    def _optimise(self, warm: bool) -> None:
        assert self.y_ is not None and self.timestamps_ is not None
        y = self.y_
        n = y.shape[1]
        observed = ~np.isnan(y)
        y0 = np.where(observed, y, 0.0)
        how, hod = _clock(self.timestamps_)
        if warm and len(self.psi_) == n:
            x0 = np.concatenate([[self.intercept_], self.phi_, self.psi_, self.theta_.ravel()])
        else:
            mean = max(float(np.nanmean(y)), 1e-3)
            x0 = np.zeros(1 + 168 + n + 24 * n)
            x0[0] = np.log(mean)
        result = optimize.minimize(self._objective, x0, args=(y0, observed, how, hod, max(observed.sum(), 1)),
                                   jac=True, method="L-BFGS-B", options={"maxiter": self.maxiter})
        self.converged = bool(result.success)
        b, phi, psi, theta = self._unpack(result.x, n)
        self._set_centred(b, phi.copy(), psi.copy(), theta.copy())

    def _set_centred(self, b: float, phi: np.ndarray, psi: np.ndarray, theta: np.ndarray) -> None:
        """Move means into ``b`` so each effect is read as a deviation; predictions are unchanged."""
        row = theta.mean(axis=1, keepdims=True)          # [N, 1]: a region's level, belongs to psi
        psi += row[:, 0]
        theta -= row
        col = theta.mean(axis=0)                         # [24]: a city-wide hour of day, belongs to phi
        phi += col[np.arange(168) % 24]
        theta -= col[None, :]
        b += phi.mean() + psi.mean()
        self.intercept_, self.phi_, self.psi_, self.theta_ = b, phi - phi.mean(), psi - psi.mean(), theta

    def predict(self, timestamps: pd.DatetimeIndex) -> np.ndarray:
        """``[len(timestamps), N]`` expected counts ``mu`` at the given local times."""
        if self.y_ is None:
            raise RuntimeError("call fit() before predict()")
        how, hod = _clock(pd.DatetimeIndex(timestamps))
        return np.exp(self._log_rate(self.intercept_, self.phi_, self.psi_, self.theta_, how, hod))

    def future_index(self, horizon: int) -> pd.DatetimeIndex:
        """The ``horizon`` time stamps after the last fitted row."""
        assert self.timestamps_ is not None
        step = pd.tseries.frequencies.to_offset(self.freq)
        return pd.date_range(self.timestamps_[-1] + step, periods=horizon, freq=self.freq)

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        """Expected counts for the next ``horizon`` rows; the interval holds the central ``level``
        of a Poisson with that mean (parameter uncertainty and overdispersion ignored)."""
        horizon, level = _check_horizon(horizon), _check_level(level)
        mu = self.predict(self.future_index(horizon))     # [H, N]
        lower = stats.poisson.ppf(0.5 - level / 2, mu)
        upper = stats.poisson.ppf(0.5 + level / 2, mu)
        return Forecast(mu, lower, upper, level)

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> PoissonEvolutionModel:
        """Append rows that follow the last fitted one and refit, warm-started."""
        if self.y_ is None or self.timestamps_ is None:
            raise RuntimeError("call fit() before update()")
        y_new = np.asarray(y_new, dtype=np.float64).reshape(-1, self.y_.shape[1])
        self.timestamps_ = self.timestamps_.append(self.future_index(len(y_new)))
        self.y_ = np.concatenate([self.y_, y_new])
        self._optimise(warm=True)
        return self

    # -- the three parts, for plotting
    @property
    def phi(self) -> pd.Series:
        """``[168]`` log time effect by hour of week (Monday 0h = 0), centred."""
        return pd.Series(self.phi_, index=pd.RangeIndex(168, name="hour_of_week"), name="phi")

    @property
    def psi(self) -> pd.Series:
        """``[N]`` log place effect by region, centred: ``exp(psi)`` is a region's volume relative
        to the average region."""
        return pd.Series(self.psi_, index=self.columns_, name="psi")

    @property
    def theta(self) -> pd.DataFrame:
        """``[N, 24]`` log interaction (region x hour of day), double-centred."""
        return pd.DataFrame(self.theta_, index=self.columns_, columns=pd.RangeIndex(24, name="hour"))

    @property
    def baseline(self) -> float:
        """``exp(b)``: the expected count of an average region in an average hour (geometric)."""
        return float(np.exp(self.intercept_))


# --------------------------------------------------------------------------- rolling origin
@dataclass
class RollingOriginResult:
    """Forecasts from many origins of an expanding window, and what they cost.

    Attributes:
        name: the forecaster's name.
        forecasts: ``[num_origins, horizon]`` (or ``[num_origins, horizon, N]``) point forecasts.
        actuals: same shape, the observed values.
        lower, upper: same shape interval ends, or ``None``.
        level: nominal interval coverage.
        origins: ``[num_origins]`` the origin of each forecast: the time (or position) of its first
            forecast step; the model has seen everything before it.
        seconds: ``[num_origins]`` seconds spent bringing the model to each origin (a fit at the
            first, an update afterwards).
        refitted: ``[num_origins]`` whether that step refitted the parameters.
        scale: ``[N]`` (or scalar) in-sample MAE of the seasonal naive forecast on the first
            training window -- MASE's denominator.
        season: the season of that seasonal naive forecast.
    """

    name: str
    forecasts: np.ndarray
    actuals: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    level: float
    origins: pd.Index
    seconds: np.ndarray
    refitted: np.ndarray
    scale: np.ndarray
    season: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_origins(self) -> int:
        return int(self.forecasts.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.forecasts.shape[1])

    def _scores(self, forecasts: np.ndarray, actuals: np.ndarray, lower: np.ndarray | None,
                upper: np.ndarray | None) -> dict[str, float]:
        scale = self.scale if forecasts.ndim == 2 else self.scale.reshape((1,) * (forecasts.ndim - 1) + (-1,))
        scaled = np.abs(actuals - forecasts) / scale
        scaled = scaled[np.isfinite(scaled)]  # series without a scale are left out
        out = {"MAE": mae(actuals, forecasts), "RMSE": rmse(actuals, forecasts),
               "MASE": float(scaled.mean()) if scaled.size else float("nan"), "sMAPE": smape(actuals, forecasts)}
        out["coverage"] = (interval_coverage(actuals, lower, upper) if lower is not None and upper is not None
                           else float("nan"))
        return out

    def metrics(self) -> pd.Series:
        """MAE, RMSE, MASE, sMAPE (%) and interval coverage over all origins, steps (and series)."""
        return pd.Series(self._scores(self.forecasts, self.actuals, self.lower, self.upper), name=self.name)

    def metrics_by_horizon(self) -> pd.DataFrame:
        """The same metrics for each step ahead ``1..horizon`` (rows)."""
        rows = []
        for h in range(self.horizon):
            rows.append(self._scores(self.forecasts[:, h], self.actuals[:, h],
                                     None if self.lower is None else self.lower[:, h],
                                     None if self.upper is None else self.upper[:, h]))
        return pd.DataFrame(rows, index=pd.RangeIndex(1, self.horizon + 1, name="step"))

    def select(self, columns: Sequence[int] | np.ndarray) -> RollingOriginResult:
        """The same evaluation restricted to some series (positions along the last axis)."""
        if self.forecasts.ndim != 3:
            raise ValueError("select() needs a result over several series [origins, horizon, N]")
        columns = np.asarray(columns)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[..., columns]

        return dataclasses.replace(self, forecasts=self.forecasts[..., columns], actuals=self.actuals[..., columns],
                                   lower=pick(self.lower), upper=pick(self.upper), scale=self.scale[columns])

    def cost(self) -> pd.Series:
        """Seconds: the first fit, mean per later origin, and total; number of refits."""
        later = self.seconds[1:]
        return pd.Series({"first fit s": float(self.seconds[0]),
                          "mean per origin s": float(later.mean()) if len(later) else float("nan"),
                          "total s": float(self.seconds.sum()), "refits": int(self.refitted[1:].sum())},
                         name=self.name)


def _scale_or_nan(column: np.ndarray, season: int) -> float:
    try:
        return seasonal_naive_scale(column, season)
    except ValueError:  # constant at lag `season`: MASE undefined for this series
        return float("nan")


def rolling_origin(y: np.ndarray | pd.Series | pd.DataFrame, make_forecaster: Callable[[], Forecaster], initial: int,
                   horizon: int = 24, step: int = 24, exog: np.ndarray | pd.DataFrame | None = None,
                   level: float = 0.9, progress: bool = True, *, season: int = 24,
                   max_origins: int | None = None) -> RollingOriginResult:
    """Evaluate a forecaster from many origins of an expanding window.

    The model is fitted on ``y[:initial]`` and forecasts ``y[initial:initial + horizon]``; then
    the origin moves ``step`` values on, the model receives those values through ``update``
    (cheap, or a refit -- the forecaster's policy), and forecasts again; until fewer than
    ``horizon`` values remain. Every forecast uses only values before its origin; regressors in
    ``exog`` are used up to the forecast steps, as if known in advance (calendar terms are;
    weather is then a perfect forecast -- say so when reporting).

    MASE divides by the in-sample MAE of the seasonal naive forecast with period ``season`` on
    ``y[:initial]`` (Hyndman & Koehler, 2006), fixed over all origins so that every origin and
    model is scaled alike; for hourly data the book uses ``season=24`` (yesterday's same hour).

    Args:
        y: ``[T]`` or ``[T, N]`` series; a pandas index labels the origins.
        make_forecaster: returns a fresh, unfitted forecaster.
        initial: (int) length of the first training window.
        horizon: (int) steps forecast from each origin.
        step: (int) how far the origin moves between forecasts.
        exog: ``[T, K]`` regressors aligned with ``y``, or ``None``.
        level: (float) nominal coverage of the prediction intervals.
        progress: (bool) show a tqdm progress bar.
        season: (int) the seasonal naive period of MASE's scale.
        max_origins: (int | None) keep only the first this many origins.

    Returns:
        A :class:`RollingOriginResult`; ``.metrics()`` and ``.metrics_by_horizon()`` score it.

    Shapes:
        forecasts, actuals, lower, upper: ``[num_origins, horizon]`` or ``[num_origins, horizon, N]``.
    """
    horizon, level = _check_horizon(horizon), _check_level(level)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    index = y.index if isinstance(y, (pd.Series, pd.DataFrame)) else None
    values = _as_history(y.to_numpy() if index is not None else y)
    total = len(values)
    if initial <= season:
        raise ValueError(f"initial = {initial} training values is too short: MASE's seasonal naive "
                         f"scale needs more than season = {season}")
    if initial + horizon > total:
        raise ValueError(f"initial + horizon = {initial + horizon} exceeds the {total} values: no origin to evaluate")
    exog_values = None
    if exog is not None:
        exog_values = np.asarray(exog.to_numpy() if isinstance(exog, pd.DataFrame) else exog, dtype=np.float64)
        exog_values = exog_values.reshape(len(exog_values), -1)
        if len(exog_values) != total:
            raise ValueError(f"exog has {len(exog_values)} rows for {total} values of y")
    starts = list(range(initial, total - horizon + 1, step))
    if max_origins is not None:
        starts = starts[:max_origins]
    train = values[:initial].reshape(initial, -1)  # [initial, N]
    # A series constant at lag `season` in training has no scale; it is left out of MASE (NaN).
    scale = np.array([_scale_or_nan(train[:, j], season) for j in range(train.shape[1])])
    scale = scale[0] if values.ndim == 1 else scale

    from tqdm.auto import tqdm

    model = make_forecaster()
    shape = (len(starts), horizon) + values.shape[1:]
    forecasts, actuals = np.empty(shape), np.empty(shape)
    lower, upper = np.full(shape, np.nan), np.full(shape, np.nan)
    has_interval = True
    seconds, refitted = np.empty(len(starts)), np.zeros(len(starts), dtype=bool)
    for i, origin in enumerate(tqdm(starts, desc=getattr(model, "name", "origins"), disable=not progress,
                                    leave=False)):
        begin = time.perf_counter()
        if i == 0:
            model.fit(values[:origin], None if exog_values is None else exog_values[:origin])
            refitted[i] = True
        else:
            previous = starts[i - 1]
            model.update(values[previous:origin], None if exog_values is None else exog_values[previous:origin])
            refitted[i] = bool(getattr(model, "last_update_refit", False))
        seconds[i] = time.perf_counter() - begin
        future = None if exog_values is None else exog_values[origin:origin + horizon]
        result = model.forecast(horizon, future, level=level)
        forecasts[i] = np.asarray(result.mean).reshape(shape[1:])
        actuals[i] = values[origin:origin + horizon]
        if result.has_interval:
            lower[i] = np.asarray(result.lower).reshape(shape[1:])
            upper[i] = np.asarray(result.upper).reshape(shape[1:])
        else:
            has_interval = False
    origins = index[starts] if index is not None else pd.Index(starts, name="position")
    return RollingOriginResult(
        name=getattr(model, "name", type(model).__name__), forecasts=forecasts, actuals=actuals,
        lower=lower if has_interval else None, upper=upper if has_interval else None, level=level,
        origins=origins, seconds=seconds, refitted=refitted, scale=scale, season=season)


def compare(results: Sequence[RollingOriginResult]) -> pd.DataFrame:
    """One row of metrics per evaluated model, in the order given."""
    return pd.DataFrame([r.metrics() for r in results])


def horizon_table(results: Sequence[RollingOriginResult], steps: Sequence[int], *, step_label: Callable[[int], str] = str,
                  mape_min_true: float = 0.0) -> pd.DataFrame:
    """MAE, RMSE and MAPE of each model at chosen steps ahead, over all valid points.

    Missing actuals (``NaN``) are left out, and every metric averages over all valid
    (origin, node) pairs of a step at once -- never a mean of per-batch means
    (:func:`stlab.metrics.mae_mean_of_batches` shows how far that can drift).

    Args:
        results: rolling-origin results over the same origins, one per model.
        steps: steps ahead to report, ``1..horizon`` (for example 3, 6, 12 = 15, 30, 60 minutes
            of 5-minute data).
        step_label: names a step in the column header (``lambda h: f"{5 * h} min"``).
        mape_min_true: MAPE keeps only non-zero actuals of at least this (see :func:`stlab.metrics.mape`).

    Returns:
        One row per model; columns ``(step label, metric)``.
    """
    if not results:
        raise ValueError("horizon_table needs at least one result")
    reference = results[0].actuals
    columns: dict[tuple[str, str], list[float]] = {}
    for step in steps:
        if not 1 <= step <= results[0].horizon:
            raise ValueError(f"step {step} is outside 1..{results[0].horizon}, the evaluated horizon")
        for name in ("MAE", "RMSE", "MAPE %"):
            columns[(step_label(step), name)] = []
    for result in results:
        if result.actuals.shape != reference.shape or not np.array_equal(np.isnan(result.actuals), np.isnan(reference)):
            raise ValueError(f"{result.name} was evaluated on other points than {results[0].name}; "
                             "compare models on the same origins, horizon and missing-value mask")
        gaps = np.isfinite(result.actuals) & ~np.isfinite(result.forecasts)
        if gaps.any():
            raise ValueError(f"{result.name} gave no forecast (NaN) at {int(gaps.sum())} observed points, which every "
                             "metric would silently skip; feed it filled inputs (stlab.graph_forecasting."
                             "CausallyFilled) or fix the model")
        for step in steps:
            actual, forecast = result.actuals[:, step - 1], result.forecasts[:, step - 1]
            columns[(step_label(step), "MAE")].append(mae(actual, forecast))
            columns[(step_label(step), "RMSE")].append(rmse(actual, forecast))
            columns[(step_label(step), "MAPE %")].append(mape(actual, forecast, min_true=mape_min_true))
    table = pd.DataFrame(columns, index=pd.Index([r.name for r in results], name="model"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["ahead", "metric"])
    return table


# --------------------------------------------------------------------------- series builders
def region_hour_counts(checkins: pd.DataFrame, bbox: Any, *, grid_size: int = 10, timezone: str = "UTC",
                       start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Check-ins per grid cell and hour: a complete hourly ``[T, N]`` table in local time.

    Cells come from :func:`stlab.features.grid_cells` (``grid_size`` x ``grid_size`` over
    ``bbox``); check-ins outside the box are dropped. Every hour from ``start`` to ``end`` is a
    row, zero when nothing happened, so seasonal positions line up; hours are real hours, so a
    daylight-saving day has 23 or 25 rows.

    Args:
        checkins: the check-in schema (``timestamp`` in UTC, ``lat``, ``lon``).
        bbox: the city's box (:class:`stlab.data.BBox`).
        grid_size: (int) cells per side.
        timezone: (str) local zone of the index.
        start, end: (str | Timestamp | None) first and last local hour kept (inclusive, floored
            to the hour); default the first and last check-in.

    Returns:
        Counts (int64) indexed by a local-time hourly DatetimeIndex with ``freq="h"``; columns are
        the cell ids that hold at least one check-in in the range, ascending.
    """
    from stlab.features import grid_cells

    cells = grid_cells(checkins["lat"], checkins["lon"], bbox, grid_size)
    hours = pd.DatetimeIndex(checkins["timestamp"]).tz_convert("UTC").floor("h")
    first = hours.min() if start is None else _local_hour(start, timezone)
    last = hours.max() if end is None else _local_hour(end, timezone)
    index = pd.date_range(first, last, freq="h")  # in UTC: real consecutive hours across DST
    keep = (cells >= 0) & (hours >= first) & (hours <= last)
    counts = (pd.DataFrame({"hour": hours[keep], "cell": cells[keep]}).groupby(["hour", "cell"]).size()
              .unstack(fill_value=0).reindex(index, fill_value=0))
    counts.index = index.tz_convert(timezone)
    counts.index.freq = "h"
    counts.columns.name = "region"
    return counts.astype(np.int64)


def _local_hour(value: str | pd.Timestamp, timezone: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(timezone) if stamp.tzinfo is None else stamp
    return stamp.tz_convert("UTC").floor("h")


def hourly_bike_series(table: pd.DataFrame) -> pd.DataFrame:
    """Capital Bikeshare's hourly table on a complete hourly clock, missing hours filled.

    The original file has one row per local *clock* hour with rentals: each day has hours
    0..23 (daylight saving is ignored by the file), and 165 of the 17,544 hours are absent. The
    data set's description says hours without rentals are left out; most absent hours are
    single night hours, and a few long gaps are outages (for example the storm of 29-30 October
    2012), for which 0 rentals is also what the system recorded. So:

    * counts (``cnt, casual, registered``) of absent hours are 0;
    * weather (``temp, atemp, hum, windspeed, weathersit``) is carried forward from the last
      observed hour (the weather did not stop);
    * calendar columns (``holiday, workingday, weekday, season, yr, mnth, hr``) are recomputed
      from the date or taken from the same day.

    Args:
        table: :func:`stlab.data.load_bike_sharing` ``("hour")``.

    Returns:
        One row per clock hour, indexed by a naive local DatetimeIndex with ``freq="h"``; column
        ``observed`` marks rows present in the original file.
    """
    stamps = pd.DatetimeIndex(table["timestamp"]).tz_localize(None)
    # The loader cannot place the repeated autumn hour on the UTC axis (NaT); on the clock it is
    # hour ``hr`` of the same day as the row before it.
    day = pd.Series(stamps.normalize(), index=table.index).ffill()
    clock = pd.DatetimeIndex(day + pd.to_timedelta(table["hr"], unit="h"))
    frame = table.drop(columns="timestamp").set_index(clock)
    frame = frame[~frame.index.duplicated()]
    full = pd.date_range(frame.index.min(), frame.index.max(), freq="h")
    out = frame.reindex(full)
    out["observed"] = out["cnt"].notna()
    for column in ("cnt", "casual", "registered"):
        out[column] = out[column].fillna(0).astype(np.int64)
    for column in ("temp", "atemp", "hum", "windspeed", "weathersit"):
        out[column] = out[column].ffill()
    date = out.index.normalize()
    for column in ("holiday", "workingday", "season"):
        out[column] = out[column].groupby(date).transform(lambda s: s.ffill().bfill())
    out["weathersit"] = out["weathersit"].astype(np.int64)
    out["hr"], out["mnth"], out["yr"] = out.index.hour, out.index.month, out.index.year - out.index.year.min()
    # The original codes weekday 0 = Sunday.
    out["weekday"] = (out.index.day_of_week + 1) % 7
    for column in ("holiday", "workingday", "season"):
        out[column] = out[column].astype(np.int64)
    out.index.name = "timestamp"
    out.index.freq = "h"
    return out


def bike_regressors(frame: pd.DataFrame, *, weekly_order: int = 3, daily_order: int = 8) -> pd.DataFrame:
    """Regressors of the chapter's SARIMAX model of hourly rentals.

    Weekly Fourier terms (the weekly season that SARIMA with ``s = 24`` cannot hold); one daily
    Fourier profile for working days and another for the other days (so that "yesterday" need
    not carry the switch between a commuting day and a weekend or holiday); temperature,
    humidity, bad weather (``weathersit >= 3``: rain or snow), the holiday and working-day flags.

    Args:
        frame: :func:`hourly_bike_series` or :func:`synthetic_rentals` rows (hourly index).
        weekly_order: (int) harmonics of period 168 h.
        daily_order: (int) harmonics of period 24 h, per kind of day.

    Returns:
        ``[T, 2 weekly_order + 4 daily_order + 5]`` float columns, positionally aligned with ``frame``.
    """
    from stlab.features import fourier_terms

    clock = pd.DatetimeIndex(frame.index)
    week = fourier_terms((clock.day_of_week * 24 + clock.hour).to_numpy(), 168, weekly_order, "week")
    daily = fourier_terms(clock.hour.to_numpy(), 24, daily_order, "day")
    working = frame["workingday"].to_numpy(dtype=np.float64)
    weather = pd.DataFrame({"temp": frame["temp"].to_numpy(), "hum": frame["hum"].to_numpy(),
                            "bad_weather": (frame["weathersit"] >= 3).to_numpy(),
                            "holiday": frame["holiday"].to_numpy(), "workingday": working}).astype(np.float64)
    return pd.concat([week, daily.mul(working, axis=0).add_prefix("work_"),
                      daily.mul(1 - working, axis=0).add_prefix("off_"), weather], axis=1)


def synthetic_rentals(num_days: int = 140, *, start: str = "2012-01-02", seed: int = 0) -> pd.DataFrame:
    """A stand-in for the hourly bike-sharing table, with known structure, for offline runs.

    ``log(1 + cnt)`` = weekday / weekend daily profile + temperature effect + an AR(1) x
    seasonal AR(1)_24 disturbance (:func:`simulate_sarima`); temperature is a daily cycle plus a
    slow random walk; ``holiday`` marks one Monday in four weeks as a weekend-like day.

    Returns:
        The columns of :func:`hourly_bike_series` (``cnt, temp, hum, holiday, workingday,
        weathersit, hr, weekday, observed``) on a naive hourly index with ``freq="h"``.
    """
    if num_days < 14:
        raise ValueError(f"num_days must be at least 14, got {num_days}")
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=num_days * 24, freq="h")
    hour = index.hour.to_numpy().astype(float)
    dow = index.day_of_week.to_numpy()
    day_number = (index.normalize() - index[0].normalize()).days.to_numpy()
    holiday = ((dow == 0) & (day_number % 28 == 0) & (day_number > 0)).astype(np.int64)
    weekend_like = (dow >= 5) | (holiday == 1)

    def bump(centre: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((hour - centre) / width) ** 2)

    commute = 1.6 * bump(8, 1.0) + 2.0 * bump(17.5, 1.3) + 0.8 * bump(12.5, 2.0)
    leisure = 1.9 * bump(14, 3.0)
    profile = 2.2 + np.where(weekend_like, leisure, commute) + 1.2 * np.sin(np.pi * np.clip(hour - 5, 0, 18) / 18)
    slow = np.cumsum(rng.normal(0, 0.15, num_days))[day_number]
    temp = np.clip(0.5 + 0.15 * np.sin(2 * np.pi * (hour - 9) / 24) + 0.1 * slow, 0.02, 1.0)
    hum = np.clip(0.6 - 0.2 * (temp - 0.5) + rng.normal(0, 0.05, len(index)), 0, 1)
    noise = simulate_sarima(len(index), ar=(0.6,), seasonal_ar=(0.3,), season=24, sigma=0.2, seed=seed + 1)
    log_count = profile + 1.5 * (temp - 0.5) + noise
    cnt = rng.poisson(np.expm1(np.clip(log_count, 0, None)))
    out = pd.DataFrame({"cnt": cnt.astype(np.int64), "temp": temp, "hum": hum, "holiday": holiday,
                        "workingday": (~weekend_like).astype(np.int64), "weathersit": np.ones(len(index), np.int64),
                        "hr": index.hour, "weekday": (dow + 1) % 7, "observed": True}, index=index)
    out.index.name = "timestamp"
    out.index.freq = "h"
    return out


__all__ = [
    "ColumnwiseForecaster", "Forecast", "Forecaster", "HistoricalAverageForecaster", "NaiveForecaster",
    "PoissonEvolutionModel", "RollingOriginResult", "SarimaForecaster", "SeasonalNaiveForecaster", "bike_regressors",
    "compare", "horizon_table",
    "hourly_bike_series", "ljung_box", "region_hour_counts", "rolling_origin", "select_order", "simulate_sarima",
    "stationarity_tests", "synthetic_rentals",
]
