"""Rolling-origin evaluation, its metrics and tables, and the errors of bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.forecasting import (NaiveForecaster, PoissonEvolutionModel, RollingOriginResult, SarimaForecaster,
                               SeasonalNaiveForecaster, horizon_table, rolling_origin, stationarity_tests)



# --------------------------------------------------------------------------- evaluation
def test_rolling_origin_shapes_and_metrics():
    y = pd.Series(np.tile(np.arange(24.0), 12) + 1, index=pd.date_range("2024-01-01", periods=288, freq="h"))
    result = rolling_origin(y, lambda: SeasonalNaiveForecaster(24), initial=200, horizon=24, step=12,
                            progress=False)
    assert result.forecasts.shape == (6, 24) and len(result.origins) == 6
    assert result.origins[0] == y.index[200]
    assert result.metrics()["MAE"] == 0 and result.metrics()["coverage"] == 1
    by_step = result.metrics_by_horizon()
    assert list(by_step.index) == list(range(1, 25))
    # Several series at once: one scale per series.
    two = rolling_origin(np.column_stack([y, 2 * y]), NaiveForecaster, initial=200, horizon=6, step=12,
                         progress=False)
    assert two.forecasts.shape == (7, 6, 2) and two.scale.shape == (2,)


@pytest.mark.parametrize("call, message", [
    (lambda: SeasonalNaiveForecaster(24).fit(np.ones(10)), "at least 25"),
    (lambda: NaiveForecaster().fit(np.ones(5)).forecast(0), "horizon"),
    (lambda: NaiveForecaster().fit(np.ones(5)).forecast(2, level=1.5), "level"),
    (lambda: rolling_origin(np.ones(100), NaiveForecaster, initial=20, progress=False), "too short"),
    (lambda: rolling_origin(np.arange(60.0), NaiveForecaster, initial=50, horizon=24, progress=False), "exceeds"),
    (lambda: SarimaForecaster((1, 0, 0), (1, 0, 0, 24)).fit(np.ones(30)), "at least"),
    (lambda: SarimaForecaster().fit(np.ones((100, 2))), "one series"),
    (lambda: SarimaForecaster((1, 0, 0), (1, 0, 0, 0)), "season"),
    (lambda: stationarity_tests(np.ones(50)), "constant"),
    (lambda: PoissonEvolutionModel().fit(-np.ones((48, 2))), "non-negative"),
])
def test_bad_inputs_are_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


class _Silent(NaiveForecaster):
    """Says nothing (NaN) for the last series: a metric must not reward that."""

    def forecast(self, horizon, exog_future=None, *, level=0.9):
        out = super().forecast(horizon, level=level)
        mean = out.mean.copy()
        mean[..., -1] = np.nan
        return type(out)(mean, None, None, level)


def test_a_model_that_forecasts_nan_is_refused_not_rewarded():
    y = np.column_stack([np.arange(100.0), np.arange(100.0) ** 1.5])
    result = rolling_origin(y, _Silent, initial=60, horizon=4, step=4, progress=False)
    with pytest.raises(ValueError, match="NaN or infinite"):
        result.metrics()
    with pytest.raises(ValueError, match="gave no forecast"):
        horizon_table([result], [1, 4])


def test_missing_actuals_are_left_out_of_every_metric():
    y = np.tile(np.arange(24.0) + 1, 10)
    y[233:235] = np.nan  # missing readings among the last origin's actuals
    result = rolling_origin(y, lambda: SeasonalNaiveForecaster(24), initial=200, horizon=12, step=12,
                            progress=False)
    scores = result.metrics()
    assert scores["MAE"] == 0 and scores["sMAPE"] == 0 and scores["coverage"] == 1


def test_horizon_table_names_its_mape_floor_and_leaves_small_actuals_out():
    actuals = np.array([[[0.001, 10.0]], [[50.0, 20.0]]])  # [origins, horizon, N]
    forecasts = np.array([[[40.0, 11.0]], [[45.0, 20.0]]])
    common = dict(lower=None, upper=None, level=0.9, origins=pd.Index([0, 1]), seconds=np.zeros(2),
                  refitted=np.zeros(2, bool), scale=np.ones(2), season=1)
    result = RollingOriginResult("m", forecasts, actuals, **common)
    table = horizon_table([result], [1])
    assert list(table.columns.get_level_values("metric")) == ["MAE", "RMSE", "MAPE % (|y| >= 1)"]
    assert table.iloc[0, 2] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)  # 0.001 mph left out
    table = horizon_table([result], [1], mape_min_true=15)
    assert table.columns[2] == ("1", "MAPE % (|y| >= 15)") and table.iloc[0, 2] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="min_true must be > 0"):
        horizon_table([result], [1], mape_min_true=0)
