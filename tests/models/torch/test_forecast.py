"""The PyTorch recurrent forecaster: protocol, shapes, update, reproducibility, learning, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stlab.forecasting import Forecaster, rolling_origin  # noqa: E402
from stlab.models.torch.forecast import RecurrentForecastNet, TorchRecurrentForecaster  # noqa: E402
from stlab.models.windows import ForecasterConfig  # noqa: E402
from stlab.training import load_checkpoint  # noqa: E402

# Tiny and quick; one thread, because the test machine's cores are shared.
TINY = ForecasterConfig(window=48, horizon=24, hidden_size=16, context_size=4, head_size=16, seasonal_lags=(24, 48),
                        num_epochs=3, samples_per_epoch=256, batch_size=64, max_validation_windows=128, num_threads=1,
                        validation_share=0.2)  # its earlier half early-stops, its later half calibrates
# No clock and no seasonal lags: the phase of the day can only come from reading the window.
PURE = ForecasterConfig(window=48, horizon=24, hidden_size=16, context_size=4, head_size=16, seasonal_lags=(),
                        clock_periods=(), num_epochs=5, samples_per_epoch=256, batch_size=32, lr=1e-2,
                        max_validation_windows=128, num_threads=1,
                        validation_share=0.2)  # its earlier half early-stops, its later half calibrates


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
    return TorchRecurrentForecaster(PURE).fit(y[:-72]), y


@pytest.fixture(scope="module")
def panel(series):
    exog = np.column_stack([np.arange(len(series)) % 24 >= 12, np.random.default_rng(1).normal(size=len(series))])
    return TorchRecurrentForecaster(TINY).fit(series[:-48], exog[:-48]), series, exog


def test_protocol_and_shapes(pure, panel):
    model, _ = pure
    assert isinstance(model, Forecaster) and model.name == "LSTM (PyTorch)"
    one = model.forecast(24)
    assert one.mean.shape == one.lower.shape == one.upper.shape == (24,)
    assert (one.lower <= one.mean).all() and (one.mean <= one.upper).all() and (one.lower >= 0).all()
    multi, _, exog = panel
    many = multi.forecast(12, exog[-48:-36])
    assert many.mean.shape == many.lower.shape == (12, 3)
    assert multi.num_series_ids == 3 and isinstance(multi.net_, RecurrentForecastNet)
    # One global network: the busier series get larger forecasts through their own scaling.
    assert many.mean.mean(axis=0)[2] > many.mean.mean(axis=0)[0]


def test_learns_the_daily_cycle_from_the_window(pure):
    """A real learning check: without clock or lags, beating a constant needs the LSTM to read the phase."""
    model, y = pure
    forecasts = np.concatenate([model.forecast(24).mean, model.update(y[-72:-48]).forecast(24).mean])
    model.update(y[-48:-24])
    truth = y[-72:-24]
    constant = np.abs(y[:-72].mean() - truth).mean()
    assert np.abs(forecasts - truth).mean() < 0.6 * constant
    assert model.history_["validation"].iloc[-1] < model.history_["validation"].iloc[0]


def test_update_moves_the_origin_without_refitting(panel):
    model, series, exog = panel
    weights = {k: v.clone() for k, v in model.net_.state_dict().items()}
    before = model.forecast(24, exog[-48:-24]).mean
    twin = copy.deepcopy(model)
    model.update(series[-48:-36], exog[-48:-36]).update(series[-36:-24], exog[-36:-24])
    after = model.forecast(24, exog[-24:]).mean
    assert all(torch.equal(weights[k], v) for k, v in model.net_.state_dict().items())
    assert not np.allclose(before, after) and model.last_update_refit is False
    # Two updates of 12 hours equal one of 24: only the history changes.
    assert np.array_equal(twin.update(series[-48:-24], exog[-48:-24]).forecast(24, exog[-24:]).mean, after)


def test_reproducible_on_the_cpu_and_checkpoint_reloads(tmp_path, series):
    y = series[:600, 1]
    first = TorchRecurrentForecaster(TINY).fit(y)
    second = TorchRecurrentForecaster(TINY, checkpoint=tmp_path / "best.pt").fit(y)
    a, b = first.forecast(24), second.forecast(24)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.upper, b.upper)
    net = RecurrentForecastNet(second.num_step_features, second.num_future_features, 0, TINY)
    metadata = load_checkpoint(tmp_path / "best.pt", net)
    assert metadata["epoch"] == second.history_["validation"].idxmin()
    assert all(torch.equal(v, second.net_.state_dict()[k]) for k, v in net.state_dict().items())


def test_rolling_origin_and_errors(series):
    y = series[:, 0]
    with pytest.raises(ValueError, match="give more history"):
        TorchRecurrentForecaster(TINY).fit(y[:200])
    gap = y.copy()
    gap[10] = np.nan
    with pytest.raises(ValueError, match="fill the gaps"):
        TorchRecurrentForecaster(TINY).fit(gap)
    with pytest.raises(ValueError, match="one row of regressors per hour"):
        TorchRecurrentForecaster(TINY).fit(y, np.zeros((10, 2)))
    config = ForecasterConfig(**{**TINY.describe(), "num_epochs": 1, "validation_share": 0.0})
    result = rolling_origin(y[:600], lambda: TorchRecurrentForecaster(config), initial=528, progress=False)
    assert result.forecasts.shape == (3, 24) and result.lower is None  # no validation part: no interval
