"""The Poisson space-time model of counts, ``f(t, x) = phi(t) psi(x) + theta(t, x)``.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from stlab.forecasting.base import Forecast, _as_history, _check_horizon, _check_level, check_new_rows

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
        y_new = check_new_rows(y_new, self.y_.shape[1], self.name)
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


__all__ = ["PoissonEvolutionModel"]
