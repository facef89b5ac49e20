"""Forecasting counts over time: simple baselines, SARIMA(X), a Poisson space-time model, and
rolling-origin evaluation.

Every forecaster has the same three calls (:class:`Forecaster`), so an evaluation loops over
models without special cases:

* ``fit(y, exog=None)`` -- learn from the history ``y`` (``[T]``, or ``[T, N]`` for ``N`` series
  where the model supports it);
* ``forecast(horizon, exog_future=None, *, level=0.9) -> Forecast`` -- the next ``horizon``
  values, with a prediction interval at ``level`` where the model provides one;
* ``update(y_new, exog_new=None)`` -- the origin moves forward: add the new observations
  cheaply (a model may refit on some updates, see :class:`SarimaForecaster`'s ``refit_every``).
  Every ``update`` checks the shape of what it is given against the fitted series.

Time is counted in steps (hours in the book). Seasonal positions are positions in the series
modulo the season, so a series should be complete (no skipped hours): see
:func:`stlab.data.series.hourly_bike_series` and :func:`stlab.data.series.region_hour_counts`,
which build complete hourly series.

The modules, by concern:

* :mod:`stlab.forecasting.base` -- :class:`Forecast`, the :class:`Forecaster` protocol, the naive,
  seasonal naive and historical average forecasters, :class:`ColumnwiseForecaster`;
* :mod:`stlab.forecasting.sarima` -- :class:`SarimaForecaster`, :func:`select_order`,
  :func:`simulate_sarima`;
* :mod:`stlab.forecasting.diagnostics` -- :func:`stationarity_tests`, :func:`ljung_box`;
* :mod:`stlab.forecasting.poisson` -- :class:`PoissonEvolutionModel`;
* :mod:`stlab.forecasting.evaluation` -- :func:`rolling_origin`, :class:`RollingOriginResult`,
  :func:`compare`, :func:`horizon_table`.

Every public name is importable from ``stlab.forecasting`` itself. The series builders and the
SARIMA simulator live in the data layer, :mod:`stlab.data.series`; ``from stlab.forecasting
import hourly_bike_series`` (and the other builders) still works, but new code imports them from
there.

References: Box, Jenkins, Reinsel & Ljung, *Time Series Analysis* (5th ed., 2015) for SARIMA;
Hyndman & Koehler (2006) for MASE; Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice* (3rd ed.) for the baselines and their intervals.

Introduced in chapter 3 (Counting behaviour over time).
"""

from __future__ import annotations

from stlab.data.series import bike_regressors, hourly_bike_series, region_hour_counts, synthetic_rentals
from stlab.forecasting.base import (ColumnwiseForecaster, Forecast, Forecaster, HistoricalAverageForecaster,
                                    NaiveForecaster, SeasonalNaiveForecaster, check_new_rows)
from stlab.forecasting.diagnostics import ljung_box, stationarity_tests
from stlab.forecasting.evaluation import RollingOriginResult, compare, horizon_table, rolling_origin
from stlab.forecasting.poisson import PoissonEvolutionModel
from stlab.forecasting.sarima import Order, SarimaForecaster, SeasonalOrder, select_order, simulate_sarima

__all__ = [
    "ColumnwiseForecaster", "Forecast", "Forecaster", "HistoricalAverageForecaster", "NaiveForecaster", "Order",
    "PoissonEvolutionModel", "RollingOriginResult", "SarimaForecaster", "SeasonalNaiveForecaster", "SeasonalOrder",
    "bike_regressors", "check_new_rows", "compare", "horizon_table", "hourly_bike_series", "ljung_box", "region_hour_counts",
    "rolling_origin", "select_order", "simulate_sarima", "stationarity_tests", "synthetic_rentals",
]
