"""The Keras 3 recurrent forecaster: protocol, shapes, update, reproducibility, learning, errors,
and what Keras does with a wrong ``input_shape``."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from stlab.forecasting import Forecaster  # noqa: E402
from stlab.models.keras.forecast import KerasRecurrentForecaster, build_forecast_network, input_shape_demo  # noqa: E402
from stlab.models.windows import ForecasterConfig  # noqa: E402

TINY = ForecasterConfig(window=48, horizon=24, hidden_size=16, context_size=4, head_size=16, seasonal_lags=(24, 48),
                        num_epochs=2, samples_per_epoch=256, batch_size=64, max_validation_windows=128,
                        validation_share=0.2)  # its earlier half early-stops, its later half calibrates
# No clock and no seasonal lags: the phase of the day can only come from reading the window.
PURE = ForecasterConfig(window=48, horizon=24, hidden_size=16, context_size=4, head_size=16, seasonal_lags=(),
                        clock_periods=(), num_epochs=5, samples_per_epoch=256, batch_size=32, lr=1e-2,
                        max_validation_windows=128, validation_share=0.2)


def daily_counts(num_hours: int, num_series: int = 1, seed: int = 0) -> np.ndarray:
    """``[T, N]`` Poisson counts around a strong daily cycle (amplitude 75 % of the level)."""
    t = np.arange(num_hours)[:, None]
    level = 20.0 * (1 + np.arange(num_series))
    return np.random.default_rng(seed).poisson(level * (1 + 0.75 * np.sin(2 * np.pi * t / 24))).astype(float)


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return daily_counts(24 * 40, 3)


@pytest.fixture(scope="module")
def pure(series):
    y = series[:, 0]
    model = KerasRecurrentForecaster(PURE).fit(y[:-72])
    return model, y, model.forecast(24)  # the first forecast, kept for the reproducibility test


@pytest.fixture(scope="module")
def panel(series):
    exog = np.column_stack([np.arange(len(series)) % 24 >= 12, np.random.default_rng(1).normal(size=len(series))])
    return KerasRecurrentForecaster(TINY).fit(series[:-48], exog[:-48]), series, exog


def test_protocol_and_shapes(pure, panel):
    model, _, _ = pure
    assert isinstance(model, Forecaster) and model.name == "LSTM (Keras)"
    one = model.forecast(24)
    assert one.mean.shape == one.lower.shape == one.upper.shape == (24,)
    assert (one.lower <= one.mean).all() and (one.mean <= one.upper).all() and (one.lower >= 0).all()
    multi, _, exog = panel
    many = multi.forecast(12, exog[-48:-36])
    assert many.mean.shape == many.lower.shape == (12, 3)
    assert set(multi.model_.input) == {"past", "future", "series"}
    assert many.mean.mean(axis=0)[2] > many.mean.mean(axis=0)[0]


def test_learns_the_daily_cycle_from_the_window(pure):
    """A real learning check: without clock or lags, beating a constant needs the LSTM to read the phase."""
    model, y, _ = pure
    forecasts = np.concatenate([model.forecast(24).mean, model.update(y[-72:-48]).forecast(24).mean])
    truth = y[-72:-24]
    constant = np.abs(y[:-72].mean() - truth).mean()
    assert np.abs(forecasts - truth).mean() < 0.6 * constant
    assert model.history_["validation"].min() < model.history_["validation"].iloc[0]


def test_update_moves_the_origin_without_refitting(panel):
    model, series, exog = panel
    weights = [w.copy() for w in model.model_.get_weights()]
    before = model.forecast(24, exog[-48:-24]).mean
    history = model._z.copy(), model._g.copy()  # the scaled history at this origin
    model.update(series[-48:-36], exog[-48:-36]).update(series[-36:-24], exog[-36:-24])
    after = model.forecast(24, exog[-24:]).mean
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.model_.get_weights()))
    assert not np.allclose(before, after) and model.last_update_refit is False
    model._z, model._g = history  # back to the origin, then one update of 24 hours
    assert np.array_equal(model.update(series[-48:-24], exog[-48:-24]).forecast(24, exog[-24:]).mean, after)


def test_reproducible_on_the_cpu_and_checkpoint(pure, tmp_path):
    _, y, first = pure
    path = tmp_path / "best.weights.h5"
    again = KerasRecurrentForecaster(PURE, checkpoint=path).fit(y[:-72])
    second = again.forecast(24)
    assert np.array_equal(first.mean, second.mean) and np.array_equal(first.lower, second.lower)
    net = build_forecast_network(again.num_step_features, again.num_future_features, 0, PURE)
    net.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), again.model_.get_weights()))


def test_network_inputs_follow_the_data():
    bare = build_forecast_network(1, 0, 0, ForecasterConfig(window=24, horizon=6, seasonal_lags=(), num_layers=2))
    assert set(bare.input) == {"past"} and tuple(bare.output.shape) == (None, 6)


def test_wrong_input_shape_fails_or_is_silently_misused():
    table = input_shape_demo(window=12, num_features=3, samples=4)
    assert not table.loc[0, "outcome"].startswith("runs")  # (12, 1) declared, 3 features fed: an error
    assert table.loc[1, "outcome"] == "runs" and table.loc[1, "features used"] == "1 of 3"  # the silent "fix"
    assert table.loc[2, "outcome"] == "runs" and table.loc[2, "features used"] == "3 of 3"


def test_errors_name_the_fix(series):
    y = series[:, 0]
    with pytest.raises(ValueError, match="give more history"):
        KerasRecurrentForecaster(TINY).fit(y[:200])
    with pytest.raises(ValueError, match="fill the gaps"):
        KerasRecurrentForecaster(TINY).fit(np.where(np.arange(len(y)) == 5, np.nan, y))
    with pytest.raises(ValueError, match="one row of regressors per hour"):
        KerasRecurrentForecaster(TINY).fit(y, np.zeros((10, 2)))
