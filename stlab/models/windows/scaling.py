"""Scaling with statistics of the training part only: per-column standardisation, and the
target's ``log1p`` + standardisation whose inverse turns network outputs into forecasts.

:class:`Standardizer` is the book's one scaler: it ignores missing values (``NaN``), so the
recurrent forecasters (complete series) and the graph forecasters (readings with gaps,
:mod:`stlab.models.torch.stgraph`) scale alike.

Introduced in chapter 6 (Recurrent models in Keras).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

# A column whose spread is at most this is treated as constant: scaled by 1, only centred.
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class Standardizer:
    """Per-column ``(x - mean) / scale`` with statistics of the rows it was fitted on.

    A column constant in those rows (a holiday flag in a holiday-free training part) gets
    ``scale = 1``: it is only centred, instead of dividing by zero. Missing values (``NaN``) are
    left out of the statistics and stay ``NaN`` when transformed.

    Attributes:
        mean: ``[C]`` column means.
        scale: ``[C]`` column standard deviations (1 where 0).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        """Statistics of ``values`` (``[T, C]``; ``[T]`` is one column), ignoring ``NaN``.

        A column with no finite value gets ``mean = 0, scale = 1``; one whose spread is at most
        :data:`MIN_SCALE` gets ``scale = 1``.
        """
        values = np.asarray(values, dtype=np.float64)
        values = values.reshape(len(values), -1)
        if len(values) == 0:
            raise ValueError("cannot fit a scaler on zero rows")
        if np.isfinite(values).all():
            mean, scale = values.mean(axis=0), values.std(axis=0)
        else:  # readings with gaps: statistics of the observed values of each column
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: mean 0, scale 1 below
                mean = np.nan_to_num(np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=0))
                scale = np.nan_to_num(np.nanstd(np.where(np.isfinite(values), values, np.nan), axis=0))
        return cls(mean, np.where(scale > MIN_SCALE, scale, 1.0))

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


__all__ = ["MIN_SCALE", "Standardizer", "TargetScaler"]
