"""Windows, scaling, the three classic bugs, and the framework-free forecaster plumbing.

The plumbing is tested through a network-free subclass whose "network" returns the seasonal
lag it is given: its forecasts must then equal :class:`SeasonalNaiveForecaster` exactly, which
checks windows, lags, scaling and the inverse transform end to end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from stlab.forecasting import Forecaster, SeasonalNaiveForecaster, rolling_origin
from stlab.models.windows import (
    MIN_EARLY_STOPPING_ORIGINS,
    MIN_VALIDATION_ORIGINS,
    ForecasterConfig,
    Standardizer,
    TargetScaler,
    WindowedForecaster,
    WindowInputs,
    all_columns_scaler_bug,
    calendar_features,
    check_sequence_input,
    clock_features,
    rows_as_sequences,
    sliding_windows,
    window_inputs,
)


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("stride", "target"), [(1, 0), (3, 1), (5, -1)])
def test_sliding_windows_match_a_loop(stride, target):
    values = np.arange(40 * 3, dtype=float).reshape(40, 3) ** 1.5
    window, horizon = 7, 4
    inputs, targets = sliding_windows(values, window, horizon, target=target, stride=stride)
    expected_x, expected_y = [], []
    for start in range(0, len(values) - window - horizon + 1, stride):
        expected_x.append(values[start:start + window])
        expected_y.append(values[start + window:start + window + horizon, target])
    assert inputs.shape == (len(expected_x), window, 3) and targets.shape == (len(expected_x), horizon)
    assert np.array_equal(inputs, np.array(expected_x)) and np.array_equal(targets, np.array(expected_y))


def test_sliding_windows_of_one_series_and_errors():
    inputs, targets = sliding_windows(np.arange(10.0), 3, 2)
    assert inputs.shape == (6, 3, 1) and targets.tolist()[0] == [3.0, 4.0]
    with pytest.raises(ValueError, match="shorten the window"):
        sliding_windows(np.arange(4.0), 3, 2)
    with pytest.raises(ValueError, match="target column 2"):
        sliding_windows(np.zeros((10, 2)), 3, target=2)


def test_rows_as_sequences_gives_one_step_per_sample():
    values = np.random.default_rng(0).normal(size=(50, 4))
    wrong = rows_as_sequences(values)
    right, _ = sliding_windows(values, 24)
    assert wrong.shape == (50, 1, 4) and np.array_equal(wrong[:, 0], values)  # each sample: one hour
    assert right.shape == (26, 24, 4) and np.array_equal(right[1, -1], values[24])  # each sample: 24 hours


def test_check_sequence_input_names_the_shape_to_declare():
    x = np.zeros((8, 24, 5))
    check_sequence_input(x, (24, 5))
    with pytest.raises(ValueError, match=r"declare input_shape=\(24, 5\)"):
        check_sequence_input(x, (24, 1))
    with pytest.raises(ValueError, match="sliding_windows"):
        check_sequence_input(np.zeros((8, 5)), (24, 5))


# --------------------------------------------------------------------------- scaling
def test_standardizer_round_trip_and_constant_columns():
    values = np.column_stack([np.linspace(0, 10, 30), np.full(30, 3.0)])
    scaler = Standardizer.fit(values)
    scaled = scaler.transform(values)
    assert np.allclose(scaled[:, 0].mean(), 0) and np.allclose(scaled[:, 0].std(), 1)
    assert scaler.scale[1] == 1.0 and np.allclose(scaled[:, 1], 0)  # a constant column is only centred
    assert np.allclose(scaler.inverse(scaled), values)


def test_standardizer_ignores_missing_values():
    values = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0 + 1e-9], [np.nan, np.nan, 5.0]])
    scaler = Standardizer.fit(values)
    assert np.allclose(scaler.mean, [2.0, 0.0, 5.0]) and np.allclose(scaler.scale, [1.0, 1.0, 1.0])
    scaled = scaler.transform(values)
    assert np.isnan(scaled[2, 0]) and np.allclose(scaled[:2, 0], [-1.0, 1.0])
    # Without gaps, the same statistics as numpy's mean and standard deviation.
    complete = np.random.default_rng(0).normal(size=(50, 3))
    fitted = Standardizer.fit(complete)
    assert np.array_equal(fitted.mean, complete.mean(axis=0)) and np.array_equal(fitted.scale, complete.std(axis=0))


def test_target_scaler_uses_the_training_rows_only():
    y = np.random.default_rng(1).poisson(30, size=(200, 2)).astype(float)
    y[150:] *= 10  # a changed level after the training rows must not move the statistics
    scaler = TargetScaler.fit(y[:150], "log1p")
    assert np.allclose(scaler.standardizer.mean, np.log1p(y[:150]).mean(axis=0))
    assert np.allclose(scaler.standardizer.scale, np.log1p(y[:150]).std(axis=0))
    assert np.allclose(scaler.inverse(scaler.to_model(y)), y)
    plain = TargetScaler.fit(y[:150] - 50, None)
    assert np.allclose(plain.inverse(plain.to_model(y - 50)), y - 50)
    with pytest.raises(ValueError, match="transform=None"):
        TargetScaler.fit(y - 100, "log1p")


def test_all_columns_scaler_bug_gives_the_wrong_scale_and_the_fix_the_right_one():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"cnt": rng.poisson(200, 300).astype(float), "temp": rng.uniform(0, 1, 300),
                          "hum": rng.uniform(0, 1, 300)})
    table = all_columns_scaler_bug(frame, "cnt", train_rows=240)
    wrong, right = table.loc["all columns (wrong)"], table.loc["target only (right)"]
    assert right["MAE"] < 1e-9 and np.isclose(right["mean forecast"], right["mean actual"])
    assert wrong["MAE"] > 50  # pooled statistics of counts and fractions: far off the counts' scale
    assert wrong["std used"] > right["std used"]
    with pytest.raises(ValueError, match="predictions must have shape"):
        all_columns_scaler_bug(frame, "cnt", 240, predictions=np.zeros(5))
    with pytest.raises(ValueError, match="not a column"):
        all_columns_scaler_bug(frame, "count", 240)


# --------------------------------------------------------------------------- clock and inputs
def test_calendar_features_equal_the_clock_from_a_monday():
    index = pd.date_range("2024-01-01", periods=24 * 9, freq="h")  # 2024-01-01 is a Monday
    calendar = calendar_features(index)
    assert np.allclose(calendar.iloc[:, :4].to_numpy(), clock_features(np.arange(len(index)), (24, 168)))
    assert calendar["weekend"].to_numpy().reshape(9, 24)[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert clock_features(np.arange(5), ()).shape == (5, 0)


def test_window_inputs_match_sliding_windows_and_lags():
    rng = np.random.default_rng(3)
    z, g = rng.normal(size=(100, 2)), rng.normal(size=(100, 3))
    window, horizon = 30, 6
    origins, columns = np.array([30, 57, 94, 41]), np.array([0, 1, 1, 0])
    batch = window_inputs(z, g, origins, columns, window=window, horizon=horizon, seasonal_lags=(6, 24),
                          num_series_ids=2)
    assert batch.past.shape == (4, window, 4) and batch.future.shape == (4, horizon, 3 + 2)
    for b, (t, j) in enumerate(zip(origins, columns)):
        x, y = sliding_windows(np.column_stack([z[:, j], g]), window, horizon)
        assert np.allclose(batch.past[b], x[t - window]) and np.allclose(batch.target[b], y[t - window])
        assert np.allclose(batch.future[b, :, :3], g[t:t + horizon])
        assert np.allclose(batch.future[b, :, 3], z[t - 6:t, j]) and np.allclose(batch.future[b, :, 4], z[t - 24:t - 18, j])
        assert batch.series[b].tolist() == [float(j == 0), float(j == 1)]
    bare = window_inputs(z, np.zeros((100, 0)), origins, columns, window=window, horizon=horizon)
    assert bare.future is None and bare.series is None and set(bare.arrays()) == {"past"}


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="'lstm' or 'gru'"):
        ForecasterConfig(cell="rnn")
    with pytest.raises(ValueError, match=r"lie in \[horizon, window\]"):
        ForecasterConfig(window=48, seasonal_lags=(168,))
    with pytest.raises(ValueError, match="validation_share"):
        ForecasterConfig(validation_share=0.7)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        ForecasterConfig(hidden_size=0)
    with pytest.raises(ValueError, match="raise it or set None"):
        ForecasterConfig(max_history=100)


# --------------------------------------------------------------------------- the plumbing, network-free
class SeasonalLagForecaster(WindowedForecaster):
    """The "network" returns its first seasonal lag: a seasonal naive forecast, through all the plumbing."""

    framework = "test"

    def _build(self) -> None:
        self.built = True

    def _train(self) -> pd.DataFrame:
        self.train_batches = [len(b) for b in self.batches(self.epoch_samples(0))]
        return pd.DataFrame({"train loss": [0.0]})

    def _predict(self, batch: WindowInputs) -> np.ndarray:
        assert batch.target is None or batch.target.shape == batch.past.shape[:1] + (self.config.horizon,)
        return batch.future[..., self.num_future_features - len(self.config.seasonal_lags)].astype(np.float64)


# A fifth held out: its earlier half for early stopping, its later half for calibrating the intervals.
CONFIG = ForecasterConfig(window=48, horizon=24, seasonal_lags=(24, 48), samples_per_epoch=100, batch_size=32,
                          validation_share=0.2)


def _counts(num_hours: int, num_series: int = 1, seed: int = 0) -> np.ndarray:
    t = np.arange(num_hours)[:, None]
    rate = (5 + 3 * np.arange(num_series)) * (1.5 + np.sin(2 * np.pi * t / 24))
    return np.random.default_rng(seed).poisson(rate).astype(float)  # [T, N]


@pytest.mark.parametrize("num_series", [1, 3])
def test_plumbing_reproduces_seasonal_naive_through_updates(num_series):
    y = _counts(24 * 25, num_series)
    y = y[:, 0] if num_series == 1 else y
    model, reference = SeasonalLagForecaster(CONFIG), SeasonalNaiveForecaster(24)
    assert isinstance(model, Forecaster)
    model.fit(y[:500]), reference.fit(y[:500])
    for begin in (500, 524, 537):
        ours, theirs = model.forecast(24), reference.forecast(24)
        assert ours.mean.shape == theirs.mean.shape == y[:24].shape
        assert np.allclose(ours.mean, theirs.mean, atol=1e-3)
        assert (ours.lower <= ours.mean + 1e-9).all() and (ours.mean <= ours.upper + 1e-9).all()
        end = begin + (24 if begin != 524 else 13)
        model.update(y[begin:end]), reference.update(y[begin:end])
    assert model.last_update_refit is False and model.train_batches == [32, 32, 32, 4]


def test_scalers_are_fitted_on_the_training_part_only():
    y = _counts(24 * 25, 2)
    y[-48:] *= 5  # inside the validation part
    model = SeasonalLagForecaster(CONFIG).fit(y)
    train_end = len(y) - round(CONFIG.validation_share * len(y))
    assert np.allclose(model.target_scaler_.standardizer.mean, np.log1p(y[:train_end]).mean(axis=0))
    assert model.train_samples_[:, 0].max() + CONFIG.horizon <= train_end  # training targets stay in training
    assert model.validation_samples_[:, 0].min() >= train_end
    assert model.residuals_.shape[1:] == (24, 2) and model.residuals_.shape[0] >= MIN_VALIDATION_ORIGINS


def test_intervals_are_calibrated_on_a_tail_that_early_stopping_never_sees():
    y = _counts(24 * 25, 2)
    model = SeasonalLagForecaster(CONFIG).fit(y)
    held_out = round(CONFIG.validation_share * len(y))
    calibration_start = len(y) - round(CONFIG.calibration_share * held_out)
    # Validation windows (early stopping) end before the calibration part begins.
    assert model.validation_samples_[:, 0].max() + CONFIG.horizon <= calibration_start
    assert model.calibration_samples_[:, 0].min() >= calibration_start
    assert len(np.unique(model.validation_samples_[:, 0])) >= MIN_EARLY_STOPPING_ORIGINS
    assert len(model.residuals_) == len(np.unique(model.calibration_samples_[:, 0]))
    # The residuals come from the calibration windows: changing the truth there changes them.
    changed = y.copy()
    changed[calibration_start + 30:] += 50
    other = SeasonalLagForecaster(CONFIG).fit(changed)
    assert not np.allclose(other.residuals_, model.residuals_)
    assert np.array_equal(other.validation_samples_, model.validation_samples_)
    # No calibration part: no interval, and early stopping uses the whole held-out part.
    plain = SeasonalLagForecaster(dataclasses.replace(CONFIG, calibration_share=0.0)).fit(y)
    assert plain.residuals_ is None and plain.forecast(24).lower is None
    assert plain.validation_samples_[:, 0].max() == len(y) - CONFIG.horizon
    with pytest.raises(ValueError, match="calibration_share"):
        ForecasterConfig(calibration_share=1.0)


def test_exog_truncated_horizons_and_rolling_origin():
    y = _counts(24 * 25)[:, 0]
    exog = np.column_stack([np.arange(len(y)) % 24 < 12, np.cos(np.arange(len(y)))])
    model = SeasonalLagForecaster(CONFIG).fit(y[:500], exog[:500])
    full, short = model.forecast(24, exog[500:524]), model.forecast(10, exog[500:510])
    assert short.mean.shape == (10,) and np.allclose(short.mean, full.mean[:10])
    result = rolling_origin(y, lambda: SeasonalLagForecaster(CONFIG), initial=500, exog=exog, progress=False)
    naive = rolling_origin(y, lambda: SeasonalNaiveForecaster(24), initial=500, progress=False)
    assert np.allclose(result.forecasts, naive.forecasts, atol=1e-3)
    assert 0 <= result.metrics()["coverage"] <= 1


def test_errors_name_the_fix():
    y = _counts(24 * 25)[:, 0]
    model = SeasonalLagForecaster(CONFIG)
    with pytest.raises(RuntimeError, match="call fit"):
        model.forecast(24)
    with pytest.raises(ValueError, match="needs at least .* give more history"):
        model.fit(y[:100])
    with_gap = y.copy()
    with_gap[30] = np.nan
    with pytest.raises(ValueError, match="fill the gaps"):
        model.fit(with_gap)
    with pytest.raises(ValueError, match="one row of regressors per hour"):
        model.fit(y, np.zeros((len(y) - 1, 2)))
    with pytest.raises(ValueError, match="transform=None"):
        model.fit(y - 10)
    model.fit(y, np.zeros((len(y), 2)))
    with pytest.raises(ValueError, match="must give them"):
        model.forecast(24)
    with pytest.raises(ValueError, match=r"shape \[24, 2\]"):
        model.forecast(24, np.zeros((24, 3)))
    with pytest.raises(ValueError, match=r"ForecasterConfig\(horizon=...\) and refit"):
        model.forecast(48, np.zeros((48, 2)))
    with pytest.raises(ValueError, match="fill the gaps"):
        model.update([np.nan], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="exog_new must have shape"):
        model.update([3.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="fitted without regressors"):
        SeasonalLagForecaster(CONFIG).fit(y).forecast(24, np.zeros((24, 2)))
    with pytest.raises(ValueError, match=r"expected new rows of shape \[k, 3\].*got shape \[2, 2\]"):
        SeasonalLagForecaster(CONFIG).fit(_counts(24 * 25, 3)).update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected new rows of shape \[k\].*got shape \[2, 3\]"):
        SeasonalLagForecaster(CONFIG).fit(y).update(np.zeros((2, 3)))
