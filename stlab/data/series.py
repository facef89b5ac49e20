"""Complete, regular series built from raw tables: hourly counts per region, hourly bike rentals.

A seasonal model indexes seasons by position in the series, so a series must be complete (no
skipped hours): these builders put every hour on the clock and fill what the raw data leaves out,
each saying how. :func:`simulate_sarima` draws a SARIMA series of known structure and
:func:`synthetic_rentals` an offline stand-in of the bike table (``stlab.forecasting`` re-exports
the simulator beside the models it checks).

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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


__all__ = ["bike_regressors", "hourly_bike_series", "region_hour_counts", "simulate_sarima", "synthetic_rentals"]
