"""Rolling-origin evaluation: forecasts from many origins of an expanding window, and tables.

References: Hyndman & Koehler (2006) for MASE; Tashman (2000) for rolling-origin evaluation.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stlab.forecasting.base import Forecaster, _as_history, _check_horizon, _check_level
from stlab.metrics import (DEFAULT_MAPE_FLOOR, interval_coverage, mae, mape, mape_label, rmse, scaled_mae,
                           seasonal_naive_scale, smape)

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
        # Missing actuals are left out; a missing forecast raises (stlab.metrics). Series without
        # a scale (constant at lag `season` in training) are left out of MASE.
        scale = np.asarray(self.scale, dtype=np.float64)
        has_scale = bool(np.isfinite(scale).any())
        out = {"MAE": mae(actuals, forecasts), "RMSE": rmse(actuals, forecasts),
               "MASE": scaled_mae(actuals, forecasts, scale) if has_scale else float("nan"),
               "sMAPE": smape(actuals, forecasts)}
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
                  mape_min_true: float = DEFAULT_MAPE_FLOOR) -> pd.DataFrame:
    """MAE, RMSE and MAPE of each model at chosen steps ahead, over all valid points.

    Missing actuals (``NaN``) are left out, and every metric averages over all valid
    (origin, node) pairs of a step at once -- never a mean of per-batch means
    (:func:`stlab.metrics.mae_mean_of_batches` shows how far that can drift).

    Args:
        results: rolling-origin results over the same origins, one per model.
        steps: steps ahead to report, ``1..horizon`` (for example 3, 6, 12 = 15, 30, 60 minutes
            of 5-minute data).
        step_label: names a step in the column header (``lambda h: f"{5 * h} min"``).
        mape_min_true: MAPE keeps only actuals of at least this (see :func:`stlab.metrics.mape`); the
            column's name states it, ``"MAPE % (|y| >= 1)"``.

    Returns:
        One row per model; columns ``(step label, metric)`` with metrics ``"MAE"``, ``"RMSE"``
        and :func:`stlab.metrics.mape_label` ``(mape_min_true)``.
    """
    if not results:
        raise ValueError("horizon_table needs at least one result")
    reference = results[0].actuals
    mape_name = mape_label(mape_min_true)
    columns: dict[tuple[str, str], list[float]] = {}
    for step in steps:
        if not 1 <= step <= results[0].horizon:
            raise ValueError(f"step {step} is outside 1..{results[0].horizon}, the evaluated horizon")
        for name in ("MAE", "RMSE", mape_name):
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
            columns[(step_label(step), mape_name)].append(mape(actual, forecast, min_true=mape_min_true))
    table = pd.DataFrame(columns, index=pd.Index([r.name for r in results], name="model"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["ahead", "metric"])
    return table


__all__ = ["RollingOriginResult", "compare", "horizon_table", "rolling_origin"]
