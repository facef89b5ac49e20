"""SARIMA(X) forecasting, order selection and simulation.

:class:`SarimaForecaster` wraps statsmodels' state-space ``SARIMAX`` in the book's forecasting
interface with a cheap rolling-origin update; :func:`select_order` ranks candidate orders by AIC
or BIC; :func:`simulate_sarima` (defined with the other series builders in :mod:`stlab.data.series`, and
importable from here) draws a series of known structure with a plain NumPy recursion.

References: Box, Jenkins, Reinsel & Ljung, *Time Series Analysis* (5th ed., 2015).

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd

from stlab.data.series import simulate_sarima
from stlab.forecasting.base import Forecast, _as_history, _check_horizon, _check_level, check_new_rows

Order = tuple[int, int, int]
SeasonalOrder = tuple[int, int, int, int]


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
        y_new = self._forward(check_new_rows(y_new, None, self.name))
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


__all__ = ["Order", "SarimaForecaster", "SeasonalOrder", "select_order", "simulate_sarima"]
