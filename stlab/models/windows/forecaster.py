"""The framework-free half of the recurrent forecasters: :class:`WindowedForecaster`.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from stlab.forecasting import Forecast, check_new_rows
from stlab.models.windows.config import MIN_EARLY_STOPPING_ORIGINS, MIN_VALIDATION_ORIGINS, ForecasterConfig
from stlab.models.windows.inputs import WindowInputs, clock_features, window_inputs
from stlab.models.windows.scaling import Standardizer, TargetScaler


# --------------------------------------------------------------------------- the forecaster
def _as_matrix(values: Any, name: str) -> np.ndarray:
    """``[T, C]`` float64 copy of an array, Series or DataFrame (``[T]`` becomes one column)."""
    if isinstance(values, (pd.Series, pd.DataFrame)):
        values = values.to_numpy()
    array = np.array(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be [T] or [T, columns], got shape {array.shape}")
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values (first at rows {rows[:5].tolist()}); "
                         "a recurrent window cannot skip them -- fill the gaps first (hourly_bike_series and "
                         "region_hour_counts give complete, zero-filled hours) or cut the series after them")


class WindowedForecaster:
    """A direct multi-horizon recurrent forecaster, minus the network (see the module docstring).

    Follows :class:`stlab.forecasting.Forecaster`: ``fit`` trains the network once; ``update``
    appends observations without refitting (the origin moves, the weights stay), so a
    rolling-origin evaluation costs one fit plus cheap forecasts; ``forecast`` reads the latest
    ``window`` hours.

    **Scaling.** The target is ``log1p``-transformed and standardised per series with the
    statistics of the training part only (:class:`TargetScaler`); regressors get their own
    :class:`Standardizer`, also fitted on the training part; predictions are inverted by the
    target scaler alone. The held-out part is never used for statistics.

    **Split.** Of the (last ``max_history``) rows, the first ``1 - validation_share`` are the
    training part: training windows have their whole target inside it. The held-out rest is cut
    in two, by time: a validation part for early stopping (windows whose whole target lies in
    it), then the last ``calibration_share`` of it, a calibration part for the intervals. Inputs
    may reach back into earlier parts, which is the past, not a leak.

    **Intervals.** Empirical: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    residuals of the calibration windows -- which neither trained the weights nor chose the
    epoch, so they are not flattered by early stopping -- per forecast step and series, on the transformed scale (``log1p``:
    there the spread is roughly constant across levels, so an interval calibrated in a quiet
    hour still fits a busy one), added to the forecast there and transformed back. They cover
    the noise and the model's own error on recent data, not the drift of the weights.

    Subclasses implement :meth:`_build`, :meth:`_train` and :meth:`_predict`.

    Args:
        config: :class:`ForecasterConfig` (defaults if ``None``).

    Shapes:
        ``y``: ``[T]`` or ``[T, N]``; ``exog``: ``[T, K]`` shared by the series; forecasts
        ``[horizon]`` or ``[horizon, N]`` (``exog_future`` ``[horizon, K]``).
    """

    framework = "NumPy"

    def __init__(self, config: ForecasterConfig | None = None) -> None:
        self.config = config or ForecasterConfig()
        self.name = self.config.name or f"{self.config.cell.upper()} ({self.framework})"
        self.last_update_refit = False
        self.target_scaler_: TargetScaler | None = None
        self.exog_scaler_: Standardizer | None = None
        self.residuals_: np.ndarray | None = None  # [V, H, N] calibration residuals, transformed scale
        self.history_: pd.DataFrame | None = None  # one row per epoch
        self.fit_seconds_: float = math.nan
        self._z: np.ndarray | None = None  # [T, N] scaled target
        self._g: np.ndarray | None = None  # [T, G] scaled step features
        self._num_exog = 0
        self._offset = 0  # rows before the kept history, so the clock continues from fit's first row
        self._one_d = False

    # -- sizes
    @property
    def num_series(self) -> int:
        self._check_fitted()
        assert self._z is not None
        return int(self._z.shape[1])

    @property
    def num_series_ids(self) -> int:
        """Width of the one-hot series id (0 without one)."""
        return self.num_series if self.config.series_id and self.num_series > 1 else 0

    @property
    def num_step_features(self) -> int:
        """``1 + G``: the target and the step features."""
        assert self._g is not None
        return 1 + self._g.shape[1]

    @property
    def num_future_features(self) -> int:
        """``G + L``: step features and seasonal lags at each forecast step (0: no future input)."""
        assert self._g is not None
        return self._g.shape[1] + len(self.config.seasonal_lags)

    def min_history(self) -> int:
        """The shortest ``y`` that ``fit`` accepts: one training window (``window + horizon``
        rows inside the training part), :data:`MIN_EARLY_STOPPING_ORIGINS` validation origins and,
        when intervals are calibrated, :data:`MIN_VALIDATION_ORIGINS` calibration origins."""
        cfg = self.config
        length = cfg.window + cfg.horizon
        while True:
            held_out = self._held_out(length)
            calibration = self._calibration_rows(held_out)
            train_ok = length - held_out >= cfg.window + cfg.horizon
            val_ok = cfg.validation_share == 0 or held_out - calibration - cfg.horizon + 1 >= MIN_EARLY_STOPPING_ORIGINS
            cal_ok = calibration == 0 or calibration - cfg.horizon + 1 >= MIN_VALIDATION_ORIGINS
            if train_ok and val_ok and cal_ok:
                return length
            length += 1

    def _held_out(self, length: int) -> int:
        return round(self.config.validation_share * length)

    def _calibration_rows(self, held_out: int) -> int:
        return round(self.config.calibration_share * held_out) if self.config.validation_share > 0 else 0

    # -- features
    def _features(self, exog: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
        """``[rows, G]`` float32 scaled regressors and clock features at ``positions``."""
        parts = []
        if exog is not None:
            assert self.exog_scaler_ is not None
            parts.append(self.exog_scaler_.transform(exog))
        parts.append(clock_features(positions, self.config.clock_periods))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _exog_rows(self, exog: Any, rows: int, name: str) -> np.ndarray | None:
        """Checked ``[rows, K]`` regressors, or ``None``; the fix is in every message."""
        fitted_with = self._num_exog > 0
        if exog is None:
            if fitted_with:
                raise ValueError(f"{self.name} was fitted with {self._num_exog} regressors, so {name} must give them "
                                 f"for these {rows} rows ([{rows}, {self._num_exog}])")
            return None
        if not fitted_with:
            raise ValueError(f"{self.name} was fitted without regressors; pass {name}=None, or refit with exog")
        array = _as_matrix(exog, name)
        if array.shape != (rows, self._num_exog):
            raise ValueError(f"{name} must have shape [{rows}, {self._num_exog}] (rows x regressors as in fit), "
                             f"got {list(array.shape)}")
        _check_finite(array, name)
        return array

    # -- the interface
    def fit(self, y: np.ndarray, exog: np.ndarray | None = None) -> WindowedForecaster:
        """Scale, cut windows and train the network once (early stopping on the validation part).

        Args:
            y: ``[T]`` or ``[T, N]`` complete hourly values (no NaN).
            exog: ``[T, K]`` regressors known in advance, or ``None``.
        """
        start = time.perf_counter()
        cfg = self.config
        self._one_d = np.ndim(y) == 1
        values = _as_matrix(y, "y")
        _check_finite(values, "y")
        self._num_exog = 0
        exog_values = None
        if exog is not None:
            exog_values = _as_matrix(exog, "exog")
            if len(exog_values) != len(values):
                raise ValueError(f"exog has {len(exog_values)} rows for {len(values)} values of y; give one row of "
                                 "regressors per hour")
            _check_finite(exog_values, "exog")
            self._num_exog = exog_values.shape[1]
        self._offset = 0
        if cfg.max_history is not None and len(values) > cfg.max_history:
            self._offset = len(values) - cfg.max_history
            values = values[self._offset:]
            exog_values = None if exog_values is None else exog_values[self._offset:]
        needed = self.min_history()
        if len(values) < needed:
            raise ValueError(f"{self.name} needs at least {needed} hours for window={cfg.window}, horizon={cfg.horizon}"
                             f", validation_share={cfg.validation_share} and calibration_share={cfg.calibration_share} "
                             f"(one training window, {MIN_EARLY_STOPPING_ORIGINS} validation and, with intervals, "
                             f"{MIN_VALIDATION_ORIGINS} calibration origins); got {len(values)} -- give more history, or shorten window / horizon")
        total = len(values)
        train_end = total - self._held_out(total)
        self.target_scaler_ = TargetScaler.fit(values[:train_end], cfg.transform)
        self.exog_scaler_ = None if exog_values is None else Standardizer.fit(exog_values[:train_end])
        self._z = self.target_scaler_.to_model(values).astype(np.float32)  # [T, N]
        self._g = self._features(exog_values, self._offset + np.arange(total))  # [T, G]
        n = values.shape[1]
        train_origins = np.arange(cfg.window, train_end - cfg.horizon + 1)
        calibration_start = total - self._calibration_rows(total - train_end)
        # Validation windows end before the calibration part: early stopping never sees its targets.
        val_origins = np.arange(max(train_end, cfg.window), calibration_start - cfg.horizon + 1)
        cal_origins = np.arange(calibration_start, total - cfg.horizon + 1) if calibration_start < total else []
        self.train_samples_ = _grid(train_origins, n)  # [S, 2] (origin, column)
        none = np.zeros((0, 2), np.int64)
        self.validation_samples_ = _grid(_evenly(val_origins, cfg, n), n) if cfg.validation_share > 0 else none
        self.calibration_samples_ = _grid(_evenly(np.asarray(cal_origins, np.int64), cfg, n), n) if len(cal_origins) else none
        self._build()
        self.history_ = self._train()
        self.residuals_ = self._calibration_residuals()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def forecast(self, horizon: int, exog_future: np.ndarray | None = None, *, level: float = 0.9) -> Forecast:
        """The next ``horizon`` values after the latest observation, with an empirical interval.

        Args:
            horizon: (int) ``1..config.horizon`` steps.
            exog_future: ``[horizon, K]`` regressors of the forecast steps (when fitted with exog).
            level: (float) nominal coverage of the interval.
        """
        self._check_fitted()
        cfg = self.config
        if int(horizon) != horizon or not 1 <= horizon <= cfg.horizon:
            raise ValueError(f"horizon must be an integer in [1, {cfg.horizon}] for this direct model, got "
                             f"{horizon!r}; for longer forecasts set ForecasterConfig(horizon=...) and refit")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        horizon = int(horizon)
        exog_future = self._exog_rows(exog_future, horizon, "exog_future")
        if exog_future is not None and horizon < cfg.horizon:
            # Output j depends on the features of step j only, so padding the unused steps with
            # the last row changes nothing that is returned.
            exog_future = np.concatenate([exog_future, np.repeat(exog_future[-1:], cfg.horizon - horizon, axis=0)])
        assert self._z is not None and self._g is not None and self.target_scaler_ is not None
        total, n = self._z.shape
        future_g = self._features(exog_future, self._offset + total + np.arange(cfg.horizon))
        z = np.concatenate([self._z[-cfg.window:], np.full((cfg.horizon, n), np.nan, np.float32)])
        g = np.concatenate([self._g[-cfg.window:], future_g])
        batch = window_inputs(z, g, np.full(n, cfg.window), np.arange(n), window=cfg.window, horizon=cfg.horizon,
                              seasonal_lags=cfg.seasonal_lags, num_series_ids=self.num_series_ids, with_target=False)
        predicted = self.target_scaler_.to_transformed(self._predict(batch).T)[:horizon]  # [horizon, N]
        mean = self.target_scaler_.from_transformed(predicted)
        lower = upper = None
        if self.residuals_ is not None:
            low, high = np.quantile(self.residuals_[:, :horizon], [(1 - level) / 2, (1 + level) / 2], axis=0)
            lower = self.target_scaler_.from_transformed(predicted + low)
            upper = self.target_scaler_.from_transformed(predicted + high)
        if self._one_d:
            mean, lower, upper = (None if a is None else a[:, 0] for a in (mean, lower, upper))
        return Forecast(mean, lower, upper, level)

    def update(self, y_new: np.ndarray, exog_new: np.ndarray | None = None) -> WindowedForecaster:
        """Append observations after the origin; the network is not retrained."""
        self._check_fitted()
        assert self._z is not None and self._g is not None and self.target_scaler_ is not None
        n = self._z.shape[1]
        if isinstance(y_new, (pd.Series, pd.DataFrame)):
            y_new = y_new.to_numpy()
        values = check_new_rows(y_new, None if self._one_d else n, self.name).reshape(-1, n)
        _check_finite(values, "y_new")
        if self.config.transform == "log1p" and values.min() < 0:
            raise ValueError("y_new has negative values but the model uses transform='log1p' (counts); "
                             "refit with transform=None")
        exog_new = self._exog_rows(exog_new, len(values), "exog_new")
        positions = self._offset + len(self._z) + np.arange(len(values))
        self._z = np.concatenate([self._z, self.target_scaler_.to_model(values).astype(np.float32)])
        self._g = np.concatenate([self._g, self._features(exog_new, positions)])
        self.last_update_refit = False
        return self

    # -- training helpers for the subclasses
    def batches(self, samples: np.ndarray, *, shuffle_seed: int | None = None,
                batch_size: int | None = None) -> Iterator[WindowInputs]:
        """Batches of :class:`WindowInputs` over ``samples`` (``[S, 2]`` origin, column), in order
        or shuffled by a generator seeded with ``shuffle_seed``."""
        assert self._z is not None and self._g is not None
        cfg = self.config
        if shuffle_seed is not None:
            samples = samples[np.random.default_rng(shuffle_seed).permutation(len(samples))]
        size = batch_size or cfg.batch_size
        for begin in range(0, len(samples), size):
            chunk = samples[begin:begin + size]
            yield window_inputs(self._z, self._g, chunk[:, 0], chunk[:, 1], window=cfg.window, horizon=cfg.horizon,
                                seasonal_lags=cfg.seasonal_lags, num_series_ids=self.num_series_ids)

    def epoch_samples(self, epoch: int) -> np.ndarray:
        """``[S, 2]`` the training windows of an epoch, shuffled: all of them, or a random
        ``samples_per_epoch`` (a fresh draw each epoch, seeded by ``seed`` and ``epoch``)."""
        cfg = self.config
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.train_samples_))
        if cfg.samples_per_epoch is not None:
            order = order[:cfg.samples_per_epoch]
        return self.train_samples_[order]

    def steps_per_epoch(self) -> int:
        size = len(self.train_samples_) if self.config.samples_per_epoch is None else min(
            self.config.samples_per_epoch, len(self.train_samples_))
        return math.ceil(size / self.config.batch_size)

    def _calibration_residuals(self) -> np.ndarray | None:
        """``[V, H, N]`` residuals (truth minus forecast) of the calibration windows on the
        transformed scale, with the best weights."""
        if len(self.calibration_samples_) == 0:
            return None
        assert self.target_scaler_ is not None and self._z is not None
        cfg = self.config
        predicted = np.concatenate([self._predict(batch) for batch in self.batches(self.calibration_samples_)])
        origins, columns = self.calibration_samples_[:, 0], self.calibration_samples_[:, 1]
        truth = self._z[origins[:, None] + np.arange(cfg.horizon), columns[:, None]]  # [S, H]
        # On the transformed scale a difference of standardised values is multiplied by the scale.
        residual = (truth - predicted) * self.target_scaler_.standardizer.scale[columns][:, None]  # [S, H]
        n = self._z.shape[1]
        return residual.reshape(-1, n, cfg.horizon).transpose(0, 2, 1)  # samples are origin-major

    def _check_fitted(self) -> None:
        if self._z is None:
            raise RuntimeError(f"{self.name}: call fit() before forecast() or update()")

    # -- what a framework provides
    def _build(self) -> None:
        """Create the network for ``num_step_features``, ``num_future_features`` and ``num_series_ids``."""
        raise NotImplementedError

    def _train(self) -> pd.DataFrame:
        """Train on :meth:`epoch_samples` batches; early-stop on ``validation_samples_`` (when there
        are any) with the best weights restored. Returns one row per epoch."""
        raise NotImplementedError

    def _predict(self, batch: WindowInputs) -> np.ndarray:
        """``[B, H]`` float64 forecasts on the network's (scaled) scale, in inference mode."""
        raise NotImplementedError


def _evenly(origins: np.ndarray, config: ForecasterConfig, num_series: int) -> np.ndarray:
    """Evenly spaced origins, to bound the cost of validating: at most ``max_validation_windows``
    windows in all, but at least :data:`MIN_VALIDATION_ORIGINS` origins (all of them, if fewer)."""
    keep = min(len(origins), max(MIN_VALIDATION_ORIGINS, config.max_validation_windows // num_series))
    return origins[np.unique(np.linspace(0, len(origins) - 1, keep).round().astype(np.int64))]


def _grid(origins: np.ndarray, num_series: int) -> np.ndarray:
    """``[len(origins) * N, 2]`` (origin, column) pairs, origin-major."""
    return np.stack([np.repeat(origins, num_series), np.tile(np.arange(num_series), len(origins))], axis=1).astype(
        np.int64)


__all__ = ["WindowedForecaster"]
