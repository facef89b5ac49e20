"""Windows and step features: cutting a series into (window, next values) pairs, the clock and
calendar inputs, the batches of network inputs, and the causal filling of gaps that a window
cannot skip (:func:`fill_causal`, used by the graph forecasters of chapter 11).

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stlab.features import HOURS_PER_DAY, HOURS_PER_WEEK, clock_features


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


# --------------------------------------------------------------------------- clock

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


def fill_causal(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Fill ``NaN`` with the node's last earlier reading, or ``fallback[node]`` before its first.

    Only the past is used, so filled inputs never carry future information.

    Shapes:
        ``values``: ``[T, N]``; ``fallback``: ``[N]``; output ``[T, N]``.
    """
    frame = pd.DataFrame(values).ffill()
    return frame.fillna(pd.Series(np.asarray(fallback), index=frame.columns)).to_numpy(dtype=np.float32)


__all__ = ["HOURS_PER_DAY", "HOURS_PER_WEEK", "WindowInputs", "calendar_features", "clock_features", "fill_causal",
           "sliding_windows", "window_inputs"]
