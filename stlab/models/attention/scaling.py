"""Does bigger help? Power laws fitted to loss against model size or data size (chapter 9).

Language-model scaling studies (Kaplan et al., 2020; Hoffmann et al., 2022) found test loss
falling as a power of parameters ``N`` and data ``D``: ``L(N) ~ a N^(-alpha)``, a straight line
on log-log axes, as long as neither runs short. :func:`fit_power_law` fits that line by least
squares on the logarithms and reports how well it fits; :func:`fit_saturating_power_law` adds
the floor ``c`` that a fixed data set imposes, ``L(N) = c + a N^(-alpha)``. A curve that bends
up (larger models doing worse) fits neither, and the fit says so rather than drawing a line
through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: R^2 on log-log axes above which a power law is said to fit.
FITS_R2 = 0.9


@dataclass(frozen=True)
class PowerLawFit:
    """``y = coefficient * x ** (-exponent) + floor`` fitted to ``n`` points.

    Attributes:
        coefficient: ``a``.
        exponent: ``alpha``; positive when ``y`` falls as ``x`` grows.
        floor: ``c`` (0 for the plain power law).
        r2: coefficient of determination of ``log(y - floor)`` on ``log x``.
        n: number of points.
    """

    coefficient: float
    exponent: float
    floor: float
    r2: float
    n: int

    @property
    def fits(self) -> bool:
        """Whether the law describes the points: ``r2 >= FITS_R2`` and ``y`` falls with ``x``."""
        return bool(self.r2 >= FITS_R2 and self.exponent > 0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``a x^(-alpha) + c`` at ``x``."""
        return self.coefficient * np.asarray(x, dtype=np.float64) ** (-self.exponent) + self.floor


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(x) < 3:
        raise ValueError(f"a power law needs at least 3 points, got {len(x)}")
    if (x <= 0).any() or not np.isfinite(y).all():
        raise ValueError("x must be positive and y finite (log axes)")
    return x, y


def _log_fit(x: np.ndarray, y: np.ndarray, floor: float) -> PowerLawFit:
    lx, ly = np.log(x), np.log(y - floor)
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = ly - (intercept + slope * lx)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / total if total > 0 else 0.0
    return PowerLawFit(float(np.exp(intercept)), float(-slope), float(floor), float(r2), len(x))


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLawFit:
    """Least-squares line through ``(log x, log y)``: ``y = a x^(-alpha)``. ``y`` must be positive."""
    x, y = _check(x, y)
    if (y <= 0).any():
        raise ValueError("y must be positive to fit a power law on log axes")
    return _log_fit(x, y, 0.0)


def fit_saturating_power_law(x: np.ndarray, y: np.ndarray, *, grid: int = 200) -> PowerLawFit:
    """``y = c + a x^(-alpha)``: the floor ``c`` is searched on a grid below ``min(y)`` and the
    rest fitted on log axes for each, keeping the best ``R^2`` (a profile fit, no optimiser to
    start well). Needs ``y`` to fall with ``x`` to mean anything; check :attr:`PowerLawFit.fits`."""
    x, y = _check(x, y)
    low = min(0.0, float(y.min()) - 1.0)
    best = None
    for floor in np.linspace(low, float(y.min()), grid, endpoint=False):
        fit = _log_fit(x, y, float(floor))
        if best is None or fit.r2 > best.r2:
            best = fit
    return best


__all__ = ["FITS_R2", "PowerLawFit", "fit_power_law", "fit_saturating_power_law"]
