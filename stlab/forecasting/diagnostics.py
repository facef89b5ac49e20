"""Diagnostics of a series and of a model's residuals: ADF and KPSS side by side, Ljung-Box.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

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


__all__ = ["ljung_box", "stationarity_tests"]
