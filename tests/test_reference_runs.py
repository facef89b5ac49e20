"""Chapters 4 and 7 store their reference runs; later chapters get exactly those numbers back
without refitting."""

from __future__ import annotations

import numpy as np
import pytest

from stlab import reference_runs
from stlab.baselines import BaselineGrid, tuned_baselines
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.models.recurrent import RecurrentConfig
from stlab.protocol import build_task, query_ranks
from stlab.splits import temporal_split


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=7))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=4)


def test_stored_baselines_come_back_without_tuning_again(task, monkeypatch):
    grid = BaselineGrid.smoke()
    tuned = tuned_baselines(task, task.queries("val"), seed=0, grid=grid)
    stored = reference_runs.store_baselines(task, tuned, seed=0, grid=grid)
    monkeypatch.setattr(reference_runs, "tuned_baselines", lambda *a, **k: pytest.fail("tuned again"))
    again = reference_runs.baseline_runs(task, seed=0, grid=grid)
    assert [r.name for r in again] == [m.name for m in tuned.models]
    for run, model in zip(again, tuned.models):
        np.testing.assert_array_equal(run.ranks["test"], query_ranks(model, task.queries("test")))
    assert [r.name for r in stored] == [r.name for r in again]


def test_another_seed_tunes_again(task):
    grid = BaselineGrid.smoke()
    tuned = tuned_baselines(task, task.queries("val"), seed=0, grid=grid)
    reference_runs.store_baselines(task, tuned, seed=0, grid=grid)
    assert reference_runs.run_key_for_baselines(task, seed=1, grid=grid) != \
        reference_runs.run_key_for_baselines(task, seed=0, grid=grid)


def test_lstm_run_fits_once_and_ignores_progress_and_device(task):
    config = RecurrentConfig(hidden_size=8, num_epochs=1, batch_size=64, progress=False, seed=0)
    first = reference_runs.lstm_run(task, config)
    from stlab.models.torch import nextvisit

    original = nextvisit.RecurrentNextVisit.fit
    nextvisit.RecurrentNextVisit.fit = lambda *a, **k: pytest.fail("fitted again")
    try:
        again = reference_runs.lstm_run(task, RecurrentConfig(hidden_size=8, num_epochs=1, batch_size=64,
                                                               progress=True, device="cpu", seed=0))
    finally:
        nextvisit.RecurrentNextVisit.fit = original
    np.testing.assert_array_equal(first.ranks["val"], again.ranks["val"])


def test_a_stored_transformer_comes_back_without_fitting(task):
    from stlab.models.attention.config import TransformerConfig
    from stlab.models.torch.attention import TransformerNextVisit

    config = TransformerConfig(d_model=8, num_heads=2, num_layers=1, ffn_dim=16, num_epochs=1, progress=False)
    model = TransformerNextVisit(config).fit(task)
    stored = reference_runs.store_transformer(task, model, config, 1.5)
    again = reference_runs.transformer_run(task, config)
    assert again.fit_seconds == 1.5 and again.name == stored.name
    np.testing.assert_array_equal(again.ranks["test"], query_ranks(model, task.queries("test")))


def test_a_stored_transformer_model_comes_back_with_the_same_scores(task, monkeypatch):
    from stlab.models.attention.config import TransformerConfig
    from stlab.models.torch.attention import TransformerNextVisit

    config = TransformerConfig(d_model=8, num_heads=2, num_layers=1, ffn_dim=16, num_epochs=1, progress=False, seed=3)
    fitted, first = reference_runs.transformer_model(task, config)  # a miss: fitted and stored
    monkeypatch.setattr(TransformerNextVisit, "fit", lambda *a, **k: pytest.fail("fitted again"))
    model, run = reference_runs.transformer_model(task, config)
    queries = task.queries("test")
    np.testing.assert_array_equal(model.score(queries), fitted.score(queries))  # bit for bit
    np.testing.assert_array_equal(run.ranks["test"], first.ranks["test"])
    with pytest.raises(ValueError, match="do not fit this model"):
        TransformerNextVisit(config).import_weights(task, {"poi_embedding.weight": np.zeros((3, 8))})


@pytest.mark.slow
def test_a_stored_keras_lstm_comes_back_and_equals_a_fresh_fit(task, monkeypatch):
    """Chapter 6 stores its Keras LSTM; chapter 7 reads it back: same ranks as fitting again."""
    keras_nextvisit = pytest.importorskip("stlab.models.keras.nextvisit")
    config = RecurrentConfig(hidden_size=8, num_epochs=1, batch_size=64, progress=False, seed=0)
    model = keras_nextvisit.RecurrentNextVisit(config).fit(task)
    stored = reference_runs.store_keras_recurrent(task, model, fit_seconds=1.0)
    assert stored.details["epochs"] == len(model.history_)
    fresh = reference_runs._keras_run(keras_nextvisit.RecurrentNextVisit(config).fit(task), task, 1.0)
    np.testing.assert_array_equal(stored.ranks["test"], fresh.ranks["test"])  # deterministic on a CPU
    monkeypatch.setattr(keras_nextvisit.RecurrentNextVisit, "fit", lambda *a, **k: pytest.fail("fitted again"))
    again = reference_runs.keras_recurrent_run(task, RecurrentConfig(hidden_size=8, num_epochs=1, batch_size=64,
                                                                      progress=True, seed=0))
    np.testing.assert_array_equal(again.ranks["val"], stored.ranks["val"])
    assert again.details == stored.details
    other = RecurrentConfig(hidden_size=16, num_epochs=1, batch_size=64, progress=False, seed=0)
    assert reference_runs.keras_recurrent_settings(other, "tensorflow") != \
        reference_runs.keras_recurrent_settings(config, "tensorflow")


@pytest.mark.slow
def test_a_stored_keras_forecast_comes_back_and_equals_a_fresh_evaluation(monkeypatch):
    """Chapter 6 stores its Keras forecaster's evaluation; chapter 7 reads it back: the same
    forecasts as evaluating again."""
    import pandas as pd

    keras_forecast = pytest.importorskip("stlab.models.keras.forecast")
    from stlab.forecasting import rolling_origin
    from stlab.models.windows import ForecasterConfig

    rng = np.random.default_rng(3)
    hours = pd.date_range("2024-01-01", periods=24 * 35, freq="h")
    y = pd.Series(rng.poisson(20 + 10 * np.sin(np.arange(len(hours)) * 2 * np.pi / 24)), index=hours).astype(float)
    calendar = pd.DataFrame({"workingday": (hours.dayofweek < 5).astype(float)}, index=hours)
    config = ForecasterConfig(window=48, horizon=12, hidden_size=8, num_epochs=1, samples_per_epoch=64,
                              seasonal_lags=(24,), clock_periods=(24,), seed=0)
    fitted = []

    def make():
        fitted.append(keras_forecast.KerasRecurrentForecaster(config))
        return fitted[-1]

    initial = len(y) - 3 * 24
    result = rolling_origin(y, make, initial=initial, horizon=12, exog=calendar, progress=False)
    reference_runs.store_keras_forecast(y, calendar, config, result, fitted[0], initial=initial, horizon=12)
    monkeypatch.setattr(keras_forecast.KerasRecurrentForecaster, "fit", lambda *a, **k: pytest.fail("fitted again"))
    again, details = reference_runs.keras_forecast_run(y, calendar, config, initial=initial, horizon=12)
    np.testing.assert_array_equal(again.forecasts, result.forecasts)
    np.testing.assert_array_equal(again.lower, result.lower)
    assert again.origins.equals(result.origins)
    assert details == {"fit_seconds": fitted[0].fit_seconds_, "epochs": len(fitted[0].history_)}
    monkeypatch.undo()
    fresh, _ = reference_runs.keras_forecast_run(y, calendar, config, initial=initial, horizon=12, step=12)
    np.testing.assert_array_equal(fresh.forecasts[::2], result.forecasts)  # another step: evaluated again
