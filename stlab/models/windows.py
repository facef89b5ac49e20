"""Sliding windows, scaling and the framework-free half of the recurrent forecasters.

A recurrent forecaster of hourly counts needs the same plumbing in every framework: cut the
history into windows, scale the target and the regressors with statistics of the training part
only, split off a chronological validation part, calibrate prediction intervals on it, and keep
the history up to date as the forecast origin moves. All of that lives here, in NumPy, in
:class:`WindowedForecaster`; the PyTorch (:mod:`stlab.models.torch.forecast`) and Keras
(:mod:`stlab.models.keras.forecast`) forecasters only add a network and its training loop, so
the two differ in the framework and nothing else. Chapter 7 (Recurrent models in PyTorch) reuses
the module unchanged.

**The model** (both frameworks). From the last ``window`` hours -- the scaled target and the
step features (regressors, clock) -- an LSTM or GRU produces a summary ``h``; the forecast of
all ``horizon`` steps comes at once (*direct* multi-horizon, no feeding back of forecasts), by
a head in the style of MQ-RNN (Wen et al., 2017): a linear map turns ``h`` into one small
context vector per step ``j``, and one MLP, shared by the steps, maps ``[context_j, known
features at step j, series id]`` to the forecast of step ``j``. Output ``j`` depends on the
features of step ``j`` only, so a forecast over fewer steps than ``horizon`` is exact.

**Known in advance** at step ``j``: the regressors ``exog`` (calendar terms; weather only as a
perfect forecast, say so), the clock (:func:`clock_features`), and *seasonal lags*: the scaled
target one day and one week before the step (``seasonal_lags``), a highway from the input to
the output in the spirit of LSTNet's autoregressive component (Lai et al., 2018). The network
then learns corrections to "same hour yesterday / last week" rather than the level from scratch;
``seasonal_lags=()`` leaves a pure recurrent model.

**Several series** (``y`` of shape ``[T, N]``): one global network for all columns, each column
a separate stream of windows (scaled with its own statistics), optionally told which column it
is by a one-hot series id in the head. Twenty regions train one network.

**Three classic bugs**, each with a small helper so a chapter can show it and its fix:

1. declaring a recurrent input of one feature per step while the windows carry ``K``:
   :func:`check_sequence_input` (Keras 3 raises a shape error deep inside the cell, see
   :func:`stlab.models.keras.forecast.input_shape_demo`);
2. a scaler fitted on all columns ``[target, features]`` used to invert the predictions:
   :func:`all_columns_scaler_bug`;
3. an LSTM "never given sequences": :func:`rows_as_sequences` (one step per sample) versus
   :func:`sliding_windows`.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from stlab.forecasting import Forecast

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 168
# Validation origins needed before empirical interval quantiles mean anything: with fewer, the
# 5 % and 95 % quantiles are the extreme residuals themselves.
MIN_VALIDATION_ORIGINS = 20


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ForecasterConfig:
    """Settings of the recurrent multi-horizon forecaster, shared by PyTorch and Keras.

    The defaults are a small model that fits in 10-20 seconds on two CPU cores on two years of
    hourly data (one series; PyTorch or Keras). A window of 168 recurrent steps costs about
    0.2-0.5 ms per sample and epoch on such a CPU, so a sweep of all 16,000 windows would take
    several seconds *per epoch*; instead each epoch draws ``samples_per_epoch`` random windows
    (a fresh draw each time, so the whole history is still used), and early stopping with
    ``patience=3`` usually ends training after 6-12 such epochs. On the bike series, longer
    training (more epochs, or ``hidden_size=64``) still helped a little; the budget decided.

    Attributes:
        cell: (str) ``"lstm"`` or ``"gru"``.
        window: (int) hours of history the network reads (168: one week).
        horizon: (int) steps forecast at once; ``forecast`` may ask for fewer, never more.
        hidden_size: (int) recurrent state size.
        num_layers: (int) stacked recurrent layers.
        dropout: (float) dropout between recurrent layers and on the summary ``h``.
        context_size: (int) size of each step's context vector in the head.
        head_size: (int) hidden units of the head's shared per-step MLP.
        seasonal_lags: (tuple[int, ...]) lags (hours) of the scaled target given to the head at
            each forecast step; each must lie in ``[horizon, window]`` (observed at the origin
            and inside the window).
        clock_periods: (tuple[int, ...]) periods (hours) of sine/cosine features of the row
            position, counted from the first row given to ``fit``; for hourly rows these are the
            hour of day (24) and of week (168) up to a fixed phase, which the network absorbs.
            Across a daylight-saving switch positions drift by an hour from local time: pass
            :func:`calendar_features` in ``exog`` and ``clock_periods=()`` where that matters.
        series_id: (bool) give the head a one-hot id of the column (only when ``N > 1``).
        transform: (str | None) ``"log1p"`` models ``log(1 + y)`` of non-negative counts
            (forecasts are floored at 0); ``None`` models ``y``.
        loss: (str) ``"huber"`` (delta 1 on the standardised scale: outages and spikes do not
            dominate) or ``"mse"``.
        lr: (float) Adam learning rate.
        batch_size: (int) windows per step.
        num_epochs: (int) maximum epochs.
        patience: (int) epochs without a lower validation loss tolerated before stopping (the
            best epoch's weights are restored).
        samples_per_epoch: (int | None) training windows drawn (without replacement) per epoch;
            ``None`` uses all of them every epoch.
        validation_share: (float) the last share of the history held out, chronologically, for
            early stopping and interval calibration; 0 trains on everything for ``num_epochs``
            and gives no interval.
        max_validation_windows: (int) validation windows used (origins evenly spaced), to bound
            the cost of validating every epoch.
        max_history: (int | None) train on the last this many hours only; ``None`` uses all.
        seed: (int) seed of initialisation, dropout and window order.
        progress: (bool) progress bars; off is silent.
        device: (str) PyTorch only: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        mixed_precision: (bool) PyTorch only: autocast on CUDA (ignored on the CPU).
        num_threads: (int | None) PyTorch, and Keras on the torch backend: CPU threads while
            fitting and forecasting (restored afterwards); ``None`` keeps the process setting. On
            a shared machine whose cores are busy, 1 thread can be several times faster than 2
            (and Keras on torch, whose LSTM is a Python loop of small kernels, far more).
        name: (str | None) label in result tables; default ``"LSTM (PyTorch)"`` and the like.
    """

    cell: Literal["lstm", "gru"] = "lstm"
    window: int = 168
    horizon: int = 24
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.1
    context_size: int = 8
    head_size: int = 32
    seasonal_lags: tuple[int, ...] = (24, 168)
    clock_periods: tuple[int, ...] = (24, 168)
    series_id: bool = True
    transform: Literal["log1p"] | None = "log1p"
    loss: Literal["huber", "mse"] = "huber"
    lr: float = 3e-3
    batch_size: int = 128
    num_epochs: int = 15
    patience: int = 3
    samples_per_epoch: int | None = 4096
    validation_share: float = 0.1
    max_validation_windows: int = 1024
    max_history: int | None = None
    seed: int = 0
    progress: bool = False
    device: str = "auto"
    mixed_precision: bool = False
    num_threads: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("window", "horizon", "hidden_size", "num_layers", "context_size", "head_size", "batch_size",
                     "num_epochs", "max_validation_windows"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}; 0 switches it off")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.validation_share < 0.5:
            raise ValueError(f"validation_share must be in [0, 0.5), got {self.validation_share}; "
                             "0.1 holds out the last tenth of the history, 0 holds out nothing")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be None (all windows) or >= 1, got {self.samples_per_epoch}")
        if self.max_history is not None and self.max_history < self.window + self.horizon:
            raise ValueError(f"max_history = {self.max_history} leaves no training window of window + horizon = "
                             f"{self.window + self.horizon} hours; raise it or set None (all history)")
        object.__setattr__(self, "seasonal_lags", tuple(int(v) for v in self.seasonal_lags))
        object.__setattr__(self, "clock_periods", tuple(int(v) for v in self.clock_periods))
        for lag in self.seasonal_lags:
            if not self.horizon <= lag <= self.window:
                raise ValueError(f"seasonal lag {lag} must lie in [horizon, window] = [{self.horizon}, {self.window}]: "
                                 "a shorter lag is not yet observed at the origin for the last steps, a longer one "
                                 "is outside the window; drop it or lengthen the window")
        if any(p < 2 for p in self.clock_periods):
            raise ValueError(f"clock periods must be >= 2 hours, got {self.clock_periods}")
        if self.transform not in (None, "log1p"):
            raise ValueError(f"transform must be None or 'log1p', got {self.transform!r}")
        if self.loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be None (keep the process setting) or >= 1, got {self.num_threads}")

    def describe(self) -> dict[str, object]:
        """The settings as a plain dict (for provenance lines)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class Standardizer:
    """Per-column ``(x - mean) / scale`` with statistics of the rows it was fitted on.

    A column constant in those rows (a holiday flag in a holiday-free training part) gets
    ``scale = 1``: it is only centred, instead of dividing by zero.

    Attributes:
        mean: ``[C]`` column means.
        scale: ``[C]`` column standard deviations (1 where 0).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """Statistics of ``values`` (``[T, C]``; ``[T]`` is one column)."""
        values = np.asarray(values, dtype=np.float64)
        values = values.reshape(len(values), -1)
        if len(values) == 0:
            raise ValueError("cannot fit a scaler on zero rows")
        scale = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.scale + self.mean


@dataclass(frozen=True)
class TargetScaler:
    """The target's scaling: ``log1p`` (optional), then standardisation per series.

    Fitted on the training part of the target only; regressors have their own
    :class:`Standardizer`, and only this scaler inverts predictions (see
    :func:`all_columns_scaler_bug` for what goes wrong otherwise).

    Attributes:
        transform: ``"log1p"`` or ``None``.
        standardizer: per-series statistics of the (transformed) training target, ``[N]``.
    """

    transform: Literal["log1p"] | None
    standardizer: Standardizer

    @classmethod
    def fit(cls, y_train: np.ndarray, transform: Literal["log1p"] | None = "log1p") -> TargetScaler:
        """Fit on ``y_train`` (``[T, N]`` or ``[T]``)."""
        y_train = np.asarray(y_train, dtype=np.float64)
        if transform == "log1p" and np.min(y_train) < 0:
            raise ValueError("transform='log1p' is for non-negative counts; this target has negative values -- "
                             "use transform=None")
        return cls(transform, Standardizer.fit(np.log1p(y_train) if transform == "log1p" else y_train))

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """Original scale -> the network's scale (same shape)."""
        y = np.asarray(y, dtype=np.float64)
        return self.standardizer.transform(np.log1p(y) if self.transform == "log1p" else y)

    def to_transformed(self, z: np.ndarray) -> np.ndarray:
        """The network's scale -> the transformed (log) scale, where intervals are calibrated."""
        return self.standardizer.inverse(z)

    def from_transformed(self, v: np.ndarray) -> np.ndarray:
        """Transformed scale -> original scale; log1p forecasts are floored at 0 (counts)."""
        return np.maximum(np.expm1(v), 0.0) if self.transform == "log1p" else np.asarray(v, dtype=np.float64)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """The network's scale -> original scale."""
        return self.from_transformed(self.to_transformed(z))


def all_columns_scaler_bug(frame: pd.DataFrame, target: str, train_rows: int,
                           predictions: np.ndarray | None = None) -> pd.DataFrame:
    """Inverting predictions with a scaler fitted on all columns, against a target-only scaler.

    The bug: one ``StandardScaler`` (or min-max scaler) is fitted on the whole frame
    ``[target, features]``; since such a scaler refuses a one-column array of predictions, the
    usual workaround fits it on all values at once (``scaler.fit(frame.to_numpy().reshape(-1,
    1))``), and then ``inverse_transform(predictions)`` runs -- with the mean and spread of all
    columns pooled, not the target's. The network learnt the target on the target's own scale,
    so the inverted forecasts come out on the wrong scale. The fix: a scaler fitted on the target
    alone (features get their own), and only it inverts predictions.

    Both scalers are fitted on the first ``train_rows`` rows. The scaled predictions are, by
    default, a *perfect* forecast of the remaining rows (the truth put on the target's training
    scale), so every error in the table comes from the inversion alone: the right way recovers
    the truth exactly.

    Args:
        frame: the target and feature columns (numeric).
        target: the target column.
        train_rows: (int) rows used to fit the scalers; the rest are forecast.
        predictions: ``[rows after train_rows]`` predictions on the target's training scale;
            default the perfect forecast.

    Returns:
        Rows ``"all columns (wrong)"`` and ``"target only (right)"``; columns ``mean used``,
        ``std used``, ``mean forecast``, ``mean actual``, ``MAE``.
    """
    if target not in frame.columns:
        raise ValueError(f"target {target!r} is not a column of the frame ({list(frame.columns)})")
    if not 0 < train_rows < len(frame):
        raise ValueError(f"train_rows must be in (0, {len(frame)}), got {train_rows}")
    values = frame.to_numpy(dtype=np.float64)
    truth = frame[target].to_numpy(dtype=np.float64)[train_rows:]
    right = Standardizer.fit(frame[target].to_numpy(dtype=np.float64)[:train_rows])
    wrong = Standardizer.fit(values[:train_rows].reshape(-1, 1))  # every value of every column, pooled
    scaled = right.transform(truth[:, None])[:, 0] if predictions is None else np.asarray(predictions, dtype=np.float64)
    if scaled.shape != truth.shape:
        raise ValueError(f"predictions must have shape {truth.shape} (one per row after train_rows), got {scaled.shape}")
    rows = {}
    for label, scaler in (("all columns (wrong)", wrong), ("target only (right)", right)):
        forecast = scaler.inverse(scaled[:, None])[:, 0]
        rows[label] = {"mean used": float(scaler.mean[0]), "std used": float(scaler.scale[0]),
                       "mean forecast": float(forecast.mean()), "mean actual": float(truth.mean()),
                       "MAE": float(np.abs(forecast - truth).mean())}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- windows
def sliding_windows(values: np.ndarray, window: int, horizon: int = 1, *, target: int = 0,
                    stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut a multivariate series into (input window, next values) pairs: what an LSTM learns from.

    Sample ``s`` reads rows ``[s stride, s stride + window)`` -- all ``F`` columns -- and its
    target is column ``target`` over the ``horizon`` rows after that.

    Args:
        values: ``[T, F]`` (or ``[T]``, one column).
        window: (int) rows per input sequence.
        horizon: (int) rows of the target after each window.
        target: (int) column of the target.
        stride: (int) rows between the starts of consecutive windows.

    Returns:
        ``inputs`` ``[S, window, F]`` and ``targets`` ``[S, horizon]`` (copies), with
        ``S = (T - window - horizon) // stride + 1``.
    """
    values = np.asarray(values)
    values = values.reshape(len(values), -1)  # [T, F]
    if window < 1 or horizon < 1 or stride < 1:
        raise ValueError(f"window, horizon and stride must be >= 1, got {window}, {horizon}, {stride}")
    if not -values.shape[1] <= target < values.shape[1]:
        raise ValueError(f"target column {target} does not exist in {values.shape[1]} columns")
    if len(values) < window + horizon:
        raise ValueError(f"a window of {window} plus a horizon of {horizon} needs {window + horizon} rows, "
                         f"got {len(values)}; shorten the window or give more rows")
    starts = np.arange(0, len(values) - window - horizon + 1, stride)  # [S]
    inputs = values[starts[:, None] + np.arange(window)]  # [S, W, F]
    targets = values[starts[:, None] + window + np.arange(horizon), target]  # [S, H]
    return inputs, targets


def rows_as_sequences(values: np.ndarray) -> np.ndarray:
    """The "LSTM never given sequences" bug: every row becomes a sequence of ONE time step.

    ``values.reshape(T, 1, F)`` is what many tutorials feed an LSTM: the shapes satisfy the
    layer, training runs, and the network sees only the current row -- its memory, the reason
    for using it, is never used (the state is reset between samples). Compare
    :func:`sliding_windows`, whose samples each hold ``window`` consecutive rows.

    Returns:
        ``[T, 1, F]`` (a view when possible).
    """
    values = np.asarray(values)
    values = values.reshape(len(values), -1)  # [T, F]
    return values.reshape(len(values), 1, values.shape[1])


def check_sequence_input(x: np.ndarray, input_shape: Sequence[int]) -> None:
    """Check windows ``x`` (``[S, window, K]``) against a model's declared ``input_shape``.

    Declaring ``input_shape=(window, 1)`` -- one value per step -- while the windows carry ``K``
    features (target plus regressors) is a classic: Keras 3 then fails inside the LSTM cell
    with a matrix-shape error that never mentions ``input_shape``; code that "fixes" it by
    keeping ``x[..., :1]`` runs and silently ignores the regressors. This check says what to
    declare.

    Raises:
        ValueError: the shapes disagree; the message gives the shape to declare.
    """
    x_shape, declared = tuple(np.shape(x)), tuple(int(v) for v in input_shape)
    if len(x_shape) != 3:
        raise ValueError(f"a recurrent layer reads [samples, steps, features]; got an array of shape {x_shape} "
                         "-- build windows with sliding_windows()")
    if len(declared) != 2 or x_shape[1:] != declared:
        raise ValueError(f"the windows are {x_shape} = [samples, steps, features] but the model declares "
                         f"input_shape={declared}; declare input_shape=({x_shape[1]}, {x_shape[2]}): "
                         f"{x_shape[2]} features per step")


# --------------------------------------------------------------------------- clock
def clock_features(positions: np.ndarray, periods: Sequence[int]) -> np.ndarray:
    """``[T, 2 P]`` sine and cosine of ``2 pi position / period`` for each period, interleaved."""
    positions = np.asarray(positions, dtype=np.float64)
    columns = []
    for period in periods:
        angle = 2 * np.pi * positions / period
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=-1) if columns else np.zeros((len(positions), 0))


def calendar_features(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Calendar regressors of local hourly time stamps, known in advance.

    Hour of day and hour of week on the circle (Monday 0h = 0; equal to :func:`clock_features`
    with periods ``(24, 168)`` for consecutive hours starting on a Monday at midnight), and a
    weekend flag. Holidays and working days come from the data where it has them
    (``stlab.forecasting.hourly_bike_series``).

    Returns:
        ``[T, 5]``: ``hour_sin, hour_cos, week_sin, week_cos, weekend``, positionally aligned.
    """
    index = pd.DatetimeIndex(index)
    hour_of_week = (index.day_of_week * HOURS_PER_DAY + index.hour).to_numpy()
    clock = clock_features(hour_of_week, (HOURS_PER_DAY, HOURS_PER_WEEK))
    return pd.DataFrame({"hour_sin": clock[:, 0], "hour_cos": clock[:, 1], "week_sin": clock[:, 2],
                         "week_cos": clock[:, 3], "weekend": (index.day_of_week >= 5).astype(np.float64)})


# --------------------------------------------------------------------------- network inputs
@dataclass(frozen=True)
class WindowInputs:
    """One batch of network inputs (``B`` windows of ``W`` steps, horizon ``H``).

    Attributes:
        past: ``[B, W, 1 + G]`` float32: the scaled target, then the ``G`` step features.
        future: ``[B, H, G + L]`` float32: the step features and the ``L`` seasonal lags at each
            forecast step, or ``None`` when there are none.
        series: ``[B, N]`` float32 one-hot series id, or ``None``.
        target: ``[B, H]`` float32 scaled target, or ``None`` (a forecast).
    """

    past: np.ndarray
    future: np.ndarray | None
    series: np.ndarray | None
    target: np.ndarray | None

    def __len__(self) -> int:
        return len(self.past)

    def arrays(self) -> dict[str, np.ndarray]:
        """The inputs present, by name (``past``, ``future``, ``series``)."""
        named = {"past": self.past, "future": self.future, "series": self.series}
        return {k: v for k, v in named.items() if v is not None}


def window_inputs(z: np.ndarray, g: np.ndarray, origins: np.ndarray, columns: np.ndarray, *, window: int,
                  horizon: int, seasonal_lags: Sequence[int] = (), num_series_ids: int = 0,
                  with_target: bool = True) -> WindowInputs:
    """Gather the windows at ``origins`` (first forecast row) of series ``columns``.

    Window ``b`` reads rows ``[origins[b] - window, origins[b])`` of column ``columns[b]``;
    the same numbers as :func:`sliding_windows` on ``[z[:, j], g]`` (tested), gathered per batch so
    that no ``[S, W, F]`` copy of the whole history is ever held.

    Args:
        z: ``[T, N]`` scaled target (rows past the history may be NaN when ``with_target=False``).
        g: ``[T, G]`` scaled step features, shared by the series.
        origins: ``[B]`` int row of each window's first forecast step.
        columns: ``[B]`` int series of each window.
        window, horizon: (int) steps read and forecast.
        seasonal_lags: lags of the target given at each forecast step (each >= ``horizon``).
        num_series_ids: (int) width of the one-hot series id; 0 for none.
        with_target: (bool) also gather the target rows.

    Returns:
        :class:`WindowInputs`.
    """
    origins, columns = np.asarray(origins, dtype=np.int64), np.asarray(columns, dtype=np.int64)
    rows = origins[:, None] + np.arange(-window, 0)  # [B, W]
    ahead = origins[:, None] + np.arange(horizon)  # [B, H]
    past = np.concatenate([z[rows, columns[:, None]][..., None], g[rows]], axis=-1)  # [B, W, 1 + G]
    lags = [z[ahead - lag, columns[:, None]] for lag in seasonal_lags]  # L x [B, H], all before the origin
    future_parts = ([g[ahead]] if g.shape[1] else []) + ([np.stack(lags, axis=-1)] if lags else [])
    future = np.concatenate(future_parts, axis=-1).astype(np.float32) if future_parts else None  # [B, H, G + L]
    series = np.eye(num_series_ids, dtype=np.float32)[columns] if num_series_ids else None  # [B, N]
    target = z[ahead, columns[:, None]].astype(np.float32) if with_target else None  # [B, H]
    return WindowInputs(past.astype(np.float32), future, series, target)


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
    target scaler alone. The validation part is never used for statistics.

    **Split.** Of the (last ``max_history``) rows, the first ``1 - validation_share`` are the
    training part: training windows have their whole target inside it. Validation windows have
    their origin in the held-out last part (their inputs may reach back into the training part,
    which is the past, not a leak).

    **Intervals.** Empirical: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    validation residuals, per forecast step and series, on the transformed scale (``log1p``:
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
        self.residuals_: np.ndarray | None = None  # [V, H, N] validation residuals, transformed scale
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
        rows inside the training part) and :data:`MIN_VALIDATION_ORIGINS` validation origins."""
        cfg = self.config
        length = cfg.window + cfg.horizon
        while True:
            held_out = self._held_out(length)
            train_ok = length - held_out >= cfg.window + cfg.horizon
            val_ok = cfg.validation_share == 0 or held_out - cfg.horizon + 1 >= MIN_VALIDATION_ORIGINS
            if train_ok and val_ok:
                return length
            length += 1

    def _held_out(self, length: int) -> int:
        return round(self.config.validation_share * length)

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
            raise ValueError(f"{self.name} needs at least {needed} hours for window={cfg.window}, horizon={cfg.horizon} "
                             f"and validation_share={cfg.validation_share} (one training window and "
                             f"{MIN_VALIDATION_ORIGINS} validation origins); got {len(values)} -- give more history, "
                             "or shorten window / horizon")
        total = len(values)
        train_end = total - self._held_out(total)
        self.target_scaler_ = TargetScaler.fit(values[:train_end], cfg.transform)
        self.exog_scaler_ = None if exog_values is None else Standardizer.fit(exog_values[:train_end])
        self._z = self.target_scaler_.to_model(values).astype(np.float32)  # [T, N]
        self._g = self._features(exog_values, self._offset + np.arange(total))  # [T, G]
        n = values.shape[1]
        train_origins = np.arange(cfg.window, train_end - cfg.horizon + 1)
        val_origins = np.arange(max(train_end, cfg.window), total - cfg.horizon + 1)
        # Evenly spaced origins bound the cost of validating; at least MIN_VALIDATION_ORIGINS of them.
        keep = min(len(val_origins), max(MIN_VALIDATION_ORIGINS, cfg.max_validation_windows // n))
        val_origins = val_origins[np.unique(np.linspace(0, len(val_origins) - 1, keep).round().astype(np.int64))]
        self.train_samples_ = _grid(train_origins, n)  # [S, 2] (origin, column)
        self.validation_samples_ = _grid(val_origins, n) if cfg.validation_share > 0 else np.zeros((0, 2), np.int64)
        self._build()
        self.history_ = self._train()
        self.residuals_ = self._validation_residuals()
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
        values = _as_matrix(y_new, "y_new")
        if self._one_d or n == 1:
            values = values.reshape(-1, 1)
        if values.shape[1] != n:
            raise ValueError(f"y_new must have {n} columns like the fitted y, got shape {list(values.shape)}")
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

    def _validation_residuals(self) -> np.ndarray | None:
        """``[V, H, N]`` residuals (truth minus forecast) of the validation windows on the
        transformed scale, with the best weights."""
        if len(self.validation_samples_) == 0:
            return None
        assert self.target_scaler_ is not None and self._z is not None
        cfg = self.config
        predicted = np.concatenate([self._predict(batch) for batch in self.batches(self.validation_samples_)])
        origins, columns = self.validation_samples_[:, 0], self.validation_samples_[:, 1]
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


def _grid(origins: np.ndarray, num_series: int) -> np.ndarray:
    """``[len(origins) * N, 2]`` (origin, column) pairs, origin-major."""
    return np.stack([np.repeat(origins, num_series), np.tile(np.arange(num_series), len(origins))], axis=1).astype(
        np.int64)


__all__ = [
    "HOURS_PER_DAY", "HOURS_PER_WEEK", "MIN_VALIDATION_ORIGINS", "ForecasterConfig", "Standardizer", "TargetScaler",
    "WindowInputs", "WindowedForecaster", "all_columns_scaler_bug", "calendar_features", "check_sequence_input",
    "clock_features", "rows_as_sequences", "sliding_windows", "window_inputs",
]
