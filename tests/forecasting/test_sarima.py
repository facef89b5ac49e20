"""SARIMA(X), order selection and the simulator on series of known structure."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.forecasting import SarimaForecaster, rolling_origin, select_order, simulate_sarima



def test_simulator_matches_its_definition():
    # AR(1) x seasonal AR(1)_4: y_t = 0.5 y_{t-1} + 0.4 y_{t-4} - 0.2 y_{t-5} + e_t.
    y = simulate_sarima(5000, ar=(0.5,), seasonal_ar=(0.4,), season=4, seed=3)
    X = np.column_stack([y[4:-1], y[1:-4], y[:-5]])
    coef, *_ = np.linalg.lstsq(X, y[5:], rcond=None)
    np.testing.assert_allclose(coef, [0.5, 0.4, -0.2], atol=0.04)
    walk = simulate_sarima(100, d=1, sigma=0.0, mean=1.0, burn_in=0)
    np.testing.assert_allclose(np.diff(walk), 1.0)


def test_sarima_recovers_seasonal_ar_coefficients():
    y = simulate_sarima(3000, ar=(0.6,), seasonal_ar=(0.5,), season=24, seed=1)
    params = SarimaForecaster((1, 0, 0), (1, 0, 0, 24), trend="n").fit(y).params
    # Standard errors are about sqrt((1 - phi^2) / n) ~ 0.015; 0.06 is four of them.
    assert params["ar.L1"] == pytest.approx(0.6, abs=0.06)
    assert params["ar.S.L24"] == pytest.approx(0.5, abs=0.06)


def test_extend_update_forecasts_like_append_even_with_a_time_trend():
    y = simulate_sarima(360, ar=(0.5,), ma=(0.3,), seed=2) + 0.02 * np.arange(360)
    model = SarimaForecaster((1, 0, 1), trend="ct").fit(y[:300])
    appended = model.results.append(y[300:], refit=False)
    model.update(y[300:330]).update(y[330:])
    np.testing.assert_allclose(model.forecast(12).mean, appended.forecast(12), rtol=1e-8, atol=1e-8)


def test_extend_keeps_the_variance_after_a_seasonal_difference():
    # An update shorter than the season used to leave no data to estimate a concentrated variance.
    y = simulate_sarima(400, ar=(0.5,), seasonal_ma=(-0.5,), season=12, D=1, seed=3)
    model = SarimaForecaster((1, 0, 0), (0, 1, 1, 12)).fit(y[:380])
    appended = model.results.append(y[380:], refit=False)
    model.update(y[380:392]).update(y[392:])
    forecast = model.forecast(6, level=0.9)
    reference = appended.get_forecast(6).conf_int(alpha=0.1)
    np.testing.assert_allclose(forecast.lower, reference[:, 0], rtol=1e-6)
    np.testing.assert_allclose(forecast.upper, reference[:, 1], rtol=1e-6)


def test_two_step_regression_forecasts_the_regressor():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(700, 1))
    y = 10 + 3 * x[:, 0] + simulate_sarima(700, ar=(0.5,), sigma=0.5, seed=4)
    model = SarimaForecaster((1, 0, 0), exog_method="ols").fit(y[:680], x[:680])
    assert model.params["ols.x1"] == pytest.approx(3.0, abs=0.1)
    forecast = model.forecast(20, x[680:])
    assert np.mean(np.abs(forecast.mean - y[680:])) < 1.0
    assert np.mean((y[680:] >= forecast.lower) & (y[680:] <= forecast.upper)) >= 0.7


def test_refit_every_origin_and_reuse_agree_on_a_stable_process():
    y = simulate_sarima(900, ar=(0.7,), seasonal_ar=(0.4,), season=6, mean=5.0, seed=5)
    every = rolling_origin(y, lambda: SarimaForecaster((1, 0, 0), (1, 0, 0, 6), refit_every=1), initial=700,
                           horizon=12, step=24, progress=False)
    reuse = rolling_origin(y, lambda: SarimaForecaster((1, 0, 0), (1, 0, 0, 6), refit_every=None), initial=700,
                           horizon=12, step=24, progress=False)
    assert every.refitted.all() and not reuse.refitted[1:].any()
    # Parameters re-estimated on 200 more values move a little; forecasts barely.
    assert np.abs(every.forecasts - reuse.forecasts).max() < 0.15 * y.std()
    assert np.abs(every.forecasts - reuse.forecasts).mean() < 0.03 * y.std()
    assert every.metrics()["MAE"] == pytest.approx(reuse.metrics()["MAE"], rel=0.02)


def test_select_order_ranks_the_true_order_first():
    y = simulate_sarima(1500, ar=(0.7,), seasonal_ar=(0.5,), season=12, seed=6)
    table = select_order(y, [(1, 0, 0), (0, 0, 1)], [(0, 0, 0, 0), (1, 0, 0, 12)], trend="n")
    assert len(table) == 4 and table["aic"].is_monotonic_increasing
    assert (table.loc[0, "order"], table.loc[0, "seasonal_order"]) == ((1, 0, 0), (1, 0, 0, 12))


# --------------------------------------------------------------------------- diagnostics
