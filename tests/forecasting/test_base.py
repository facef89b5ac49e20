"""The interface and the simple forecasters on hand-made series whose answers are known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stlab.forecasting import (ColumnwiseForecaster, Forecaster, HistoricalAverageForecaster, NaiveForecaster,
                               PoissonEvolutionModel, SarimaForecaster, SeasonalNaiveForecaster, check_new_rows)
from stlab.forecasting.base import nanquantile_first_axis



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


def test_vectorised_nanquantile_equals_numpys_exactly():
    # Random shapes, missing shares from none to all, ties, one value, q at both ends.
    rng = np.random.default_rng(7)
    for _ in range(500):
        shape = (int(rng.integers(1, 12)),) + tuple(rng.integers(1, 5, size=rng.integers(0, 3)))
        values = np.round(rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e3]), int(rng.integers(0, 4)))
        values[rng.random(shape) < rng.random()] = np.nan
        q = float(rng.choice([0.0, 0.05, 0.5, 0.95, 1.0, rng.random()]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            expected = np.nanquantile(values, q, axis=0)
        np.testing.assert_array_equal(nanquantile_first_axis(values, q), expected)


def test_historical_average_interval_is_the_empirical_quantile_of_its_position():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(24 * 10, 3))
    y[rng.random(y.shape) < 0.2] = np.nan
    forecast = HistoricalAverageForecaster(24).fit(y).forecast(5, level=0.8)
    folded = y.reshape(10, 24, 3)[:, :5]  # the next five positions, every day
    np.testing.assert_allclose(forecast.lower, np.nanquantile(folded, 0.1, axis=0))
    np.testing.assert_allclose(forecast.upper, np.nanquantile(folded, 0.9, axis=0))


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


# --------------------------------------------------------------------------- update checks its input
@pytest.mark.parametrize("make, y, bad", [
    (NaiveForecaster, np.ones(10), np.ones((3, 2))),
    (lambda: SeasonalNaiveForecaster(4), np.ones((12, 3)), np.ones((2, 4))),
    (lambda: HistoricalAverageForecaster(4), np.ones((12, 3)), np.ones(6)),
    (lambda: ColumnwiseForecaster(NaiveForecaster), np.ones((10, 3)), np.ones((2, 2))),
    (lambda: SarimaForecaster((1, 0, 0)), np.random.default_rng(0).normal(size=60), np.ones((2, 2))),
    (PoissonEvolutionModel, np.ones((48, 2)), np.ones((3, 3))),
])
def test_update_refuses_new_rows_of_another_shape(make, y, bad):
    model = make().fit(y)
    with pytest.raises(ValueError, match=r"expected new rows of shape \[k.*got shape"):
        model.update(bad)


def test_update_accepts_what_rolling_origin_gives():
    assert NaiveForecaster().fit(np.ones(5)).update(np.ones((2, 1))).y_.shape == (7,)
    assert NaiveForecaster().fit(np.ones((5, 1))).update(np.ones(2)).y_.shape == (7, 1)
    assert check_new_rows([1.0, 2.0], None, "m").shape == (2,)
    with pytest.raises(ValueError, match=r"\[k, 3\].*got shape \[3\]"):
        check_new_rows(np.ones(3), 3, "m")


def test_columnwise_update_before_fit_is_refused():
    with pytest.raises(RuntimeError, match="fit"):
        ColumnwiseForecaster(NaiveForecaster).update(np.ones((2, 2)))


def test_every_public_name_is_importable_from_the_package():
    import stlab.forecasting as forecasting
    from stlab.data import series

    for name in forecasting.__all__:
        assert getattr(forecasting, name) is not None, name
    # The series builders moved to the data layer; the old import path still reaches them.
    assert forecasting.hourly_bike_series is series.hourly_bike_series
    with pytest.raises(AttributeError):
        forecasting.no_such_name  # noqa: B018
