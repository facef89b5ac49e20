"""Forecasters on hand-made and simulated series whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.data import NYC_BBOX
from stlab.forecasting import (ColumnwiseForecaster, Forecaster, HistoricalAverageForecaster, NaiveForecaster,
                               PoissonEvolutionModel, SarimaForecaster, SeasonalNaiveForecaster,
                               hourly_bike_series, ljung_box, region_hour_counts, rolling_origin, select_order,
                               simulate_sarima, stationarity_tests, synthetic_rentals)


# --------------------------------------------------------------------------- simple forecasters
def test_naive_repeats_the_last_value_and_widens_like_a_random_walk():
    y = np.array([1.0, 3.0, 2.0, 5.0])
    forecast = NaiveForecaster().fit(y).forecast(4, level=0.8)
    np.testing.assert_array_equal(forecast.mean, [5.0] * 4)
    width = forecast.upper - forecast.lower
    np.testing.assert_allclose(width / width[0], np.sqrt([1, 2, 3, 4]))


def test_seasonal_naive_repeats_the_last_season():
    y = np.arange(10.0)  # season 4: the last season is 6, 7, 8, 9
    forecast = SeasonalNaiveForecaster(season=4).fit(y).forecast(6)
    np.testing.assert_array_equal(forecast.mean, [6, 7, 8, 9, 6, 7])
    # Two series at once give the same answer per column.
    both = SeasonalNaiveForecaster(season=4).fit(np.column_stack([y, 2 * y])).forecast(6).mean
    np.testing.assert_array_equal(both[:, 1], 2 * forecast.mean)


def test_historical_average_averages_the_same_position():
    # Three weeks of a 3-step season; position 0 holds 0, 3, 6 -> mean 3.
    y = np.array([0, 10, 20, 3, 13, 23, 6, 16, 26], dtype=float)
    model = HistoricalAverageForecaster(season=3).fit(y)
    np.testing.assert_allclose(model.forecast(4).mean, [3, 13, 23, 3])
    model.update([9.0])  # the origin moves by one: next is position 1
    np.testing.assert_allclose(model.forecast(2).mean, [13, 23])


def test_update_is_the_same_as_fitting_on_everything():
    y = np.random.default_rng(0).poisson(5, 200).astype(float)
    for make in (NaiveForecaster, lambda: SeasonalNaiveForecaster(24), lambda: HistoricalAverageForecaster(24)):
        updated = make().fit(y[:150]).update(y[150:])
        refitted = make().fit(y)
        np.testing.assert_allclose(updated.forecast(30).mean, refitted.forecast(30).mean)


def test_every_model_has_the_common_interface():
    for model in (NaiveForecaster(), SeasonalNaiveForecaster(), HistoricalAverageForecaster(),
                  SarimaForecaster(), PoissonEvolutionModel(), ColumnwiseForecaster(NaiveForecaster)):
        assert isinstance(model, Forecaster)


# --------------------------------------------------------------------------- SARIMA
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
def test_stationarity_verdicts():
    rng = np.random.default_rng(7)
    noise = rng.normal(size=600)
    assert stationarity_tests(noise).loc["both", "verdict"] == "stationary"
    assert stationarity_tests(np.cumsum(noise)).loc["both", "verdict"].startswith("unit root")


def test_ljung_box_separates_noise_from_ar():
    rng = np.random.default_rng(8)
    assert (ljung_box(rng.normal(size=800), lags=[10, 20])["lb_pvalue"] > 0.01).all()
    assert (ljung_box(simulate_sarima(800, ar=(0.5,), seed=8), lags=10)["lb_pvalue"] < 1e-6).all()


# --------------------------------------------------------------------------- Poisson space-time model
def test_poisson_model_recovers_multiplicative_effects():
    rng = np.random.default_rng(9)
    index = pd.date_range("2024-01-01", periods=24 * 7 * 8, freq="h")
    how, hod = (index.day_of_week * 24 + index.hour).to_numpy(), index.hour.to_numpy()
    phi = 0.8 * np.sin(2 * np.pi * np.arange(168) / 24) + 0.4 * (np.arange(168) >= 120)
    phi -= phi.mean()
    psi = np.linspace(-1, 1, 10)
    theta = np.zeros((10, 24))
    theta[0] = 0.6 * np.cos(2 * np.pi * np.arange(24) / 24)
    theta[1] = -theta[0]
    mu = np.exp(1.5 + phi[how][:, None] + psi[None, :] + theta[:, hod].T)
    counts = pd.DataFrame(rng.poisson(mu), index=index)
    model = PoissonEvolutionModel(interaction_penalty=1.0).fit(counts)
    assert model.converged
    assert np.abs(model.psi.to_numpy() - psi).max() < 0.05
    assert np.abs(model.phi.to_numpy() - phi).mean() < 0.06
    assert np.corrcoef(model.theta.to_numpy()[:2].ravel(), theta[:2].ravel())[0, 1] > 0.95
    assert np.abs(model.theta.to_numpy()[2:]).mean() < 0.08  # regions without interaction stay near 0
    # The centred parts rebuild the rate.
    assert np.median(np.abs(model.predict(index) / mu - 1)) < 0.1
    forecast = model.forecast(24)
    assert forecast.mean.shape == (24, 10) and (forecast.lower <= forecast.mean).all()


def test_region_hour_counts_is_complete_and_in_local_time():
    times = pd.to_datetime(["2010-03-14 05:30", "2010-03-14 07:10", "2010-03-14 07:20"], utc=True)
    checkins = pd.DataFrame({"timestamp": times, "lat": [40.7, 40.7, 40.88], "lon": [-74.0, -74.0, -73.75]})
    counts = region_hour_counts(checkins, NYC_BBOX, grid_size=4, timezone="America/New_York")
    assert counts.index.freq == "h" and str(counts.index.tz) == "America/New_York"
    assert len(counts) == 3 and counts.to_numpy().sum() == 3  # 05, 06, 07 UTC; DST begins in between
    assert list(counts.index.hour) == [0, 1, 3]


def test_hourly_bike_series_fills_missing_hours():
    table = pd.DataFrame({
        "timestamp": pd.to_datetime(["2011-01-01 00:00", "2011-01-01 02:00", None]).tz_localize("America/New_York"),
        "season": 1, "yr": 0, "mnth": 1, "hr": [0, 2, 3], "holiday": 0, "weekday": 6, "workingday": 0,
        "weathersit": [1, 2, 2], "temp": [0.2, 0.3, 0.4], "atemp": 0.2, "hum": 0.5, "windspeed": 0.1,
        "casual": [1, 2, 3], "registered": [4, 5, 6], "cnt": [5, 7, 9]})
    series = hourly_bike_series(table)
    assert list(series["cnt"]) == [5, 0, 7, 9] and list(series["observed"]) == [True, False, True, True]
    assert series["temp"].iloc[1] == 0.2 and series.index.freq == "h"
    assert synthetic_rentals(14).index.freq == "h"


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
