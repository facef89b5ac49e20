"""The run cache returns exactly what was computed, recomputes on any change, and never
serves a file that fails its checksum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stlab.baselines import Popularity
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.protocol import build_task, query_ranks, ranks_table, results_table
from stlab.runcache import RankedRun, cached_run, run_key, task_fingerprint
from stlab.splits import temporal_split


@pytest.fixture(scope="module")
def small_task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=5))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=4)


def _compute(task, calls):
    def compute() -> RankedRun:
        calls.append(1)
        model = Popularity().fit(task)
        return RankedRun(model.name, {p: query_ranks(model, task.queries(p)) for p in ("val", "test")}, 0.1,
                         {"note": "popularity"})
    return compute


def test_a_second_call_is_served_from_the_cache(small_task, tmp_path):
    calls: list[int] = []
    first = cached_run(small_task, {"model": "popularity"}, _compute(small_task, calls), root=tmp_path)
    second = cached_run(small_task, {"model": "popularity"}, _compute(small_task, calls), root=tmp_path)
    assert len(calls) == 1
    assert second.name == first.name and second.details == {"note": "popularity"}
    for part in ("val", "test"):
        np.testing.assert_array_equal(first.ranks[part], second.ranks[part])


def test_other_settings_or_a_corrupted_file_recompute(small_task, tmp_path):
    calls: list[int] = []
    cached_run(small_task, {"model": "popularity"}, _compute(small_task, calls), root=tmp_path)
    cached_run(small_task, {"model": "popularity", "seed": 1}, _compute(small_task, calls), root=tmp_path)
    assert len(calls) == 2
    data = tmp_path / "runs" / f"{run_key(small_task, {'model': 'popularity'})}.npz"
    data.write_bytes(data.read_bytes()[:-7] + b"garbage")
    cached_run(small_task, {"model": "popularity"}, _compute(small_task, calls), root=tmp_path)
    assert len(calls) == 3


def test_a_run_must_rank_every_query(small_task, tmp_path):
    def short() -> RankedRun:
        return RankedRun("x", {"val": np.ones(1, np.int64), "test": np.ones(1, np.int64)}, 0.0)

    with pytest.raises(ValueError, match="ranks for all"):
        cached_run(small_task, {"model": "x"}, short, root=tmp_path)


def test_the_task_fingerprint_sees_the_split(small_task):
    moved = small_task.events.copy()
    moved.loc[moved.index[0], "part"] = 2
    other = dataclasses.replace(small_task, events=moved)
    assert task_fingerprint(other) != task_fingerprint(small_task)


def test_ranks_table_equals_results_table(small_task):
    model = Popularity().fit(small_task)
    test = small_task.queries("test")
    expected = results_table([model], test)
    from_ranks = ranks_table({model.name: query_ranks(model, test)}, test)
    assert expected.equals(from_ranks)


def test_a_group_stored_elsewhere_is_found_again(small_task, tmp_path):
    from stlab.runcache import cached_runs, store_runs

    runs = [_compute(small_task, [])(), RankedRun("second", {p: np.ones(len(small_task.queries(p)), np.int64)
                                                             for p in ("val", "test")}, 2.0)]
    store_runs(small_task, {"group": 1}, runs, root=tmp_path)
    again = cached_runs(small_task, {"group": 1}, lambda: pytest.fail("recomputed"), root=tmp_path)
    assert [r.name for r in again] == [r.name for r in runs] and again[1].fit_seconds == 2.0
    np.testing.assert_array_equal(again[0].ranks["test"], runs[0].ranks["test"])


# --------------------------------------------------------------------------- forecasting runs
def _evaluate(y, exog, calls):
    from stlab.forecasting import HistoricalAverageForecaster, rolling_origin

    def compute():
        calls.append(1)
        result = rolling_origin(y, lambda: HistoricalAverageForecaster(24), initial=24 * 7, horizon=12, step=12,
                                exog=exog, progress=False)
        return result, {"fit_seconds": 0.5}
    return compute


@pytest.mark.parametrize("tz", [None, "America/New_York", "positions"])
def test_a_rolling_origin_evaluation_comes_back_exactly(tmp_path, tz):
    import pandas as pd

    from stlab.runcache import cached_forecast

    rng = np.random.default_rng(0)
    values = rng.poisson(5, 24 * 10).astype(float)
    y = values if tz == "positions" else pd.Series(values, index=pd.date_range("2024-03-01", periods=240,
                                                                                freq="h", tz=tz))
    exog = pd.DataFrame({"flag": np.arange(240) % 2.0})
    calls: list[int] = []
    first, details = cached_forecast(y, exog, {"model": "average"}, _evaluate(y, exog, calls), root=tmp_path)
    second, again = cached_forecast(y, exog, {"model": "average"}, _evaluate(y, exog, calls), root=tmp_path)
    assert len(calls) == 1 and details == again == {"fit_seconds": 0.5}
    for name in ("forecasts", "actuals", "lower", "upper", "seconds", "refitted", "scale"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.origins.equals(first.origins) and second.origins.dtype == first.origins.dtype
    assert (second.name, second.level, second.season) == (first.name, first.level, first.season)
    # Another series, other regressors or other settings are other entries.
    for other_y, other_exog, settings in ((values[::-1].copy(), exog, {"model": "average"}),
                                          (y, exog * 2, {"model": "average"}), (y, exog, {"model": "x"})):
        cached_forecast(other_y, other_exog, settings, _evaluate(other_y, other_exog, calls), root=tmp_path)
    assert len(calls) == 4


def test_a_corrupted_forecast_is_recomputed(tmp_path):
    from stlab.runcache import cached_forecast

    y = np.random.default_rng(1).poisson(5, 240).astype(float)
    calls: list[int] = []
    cached_forecast(y, None, {"model": "average"}, _evaluate(y, None, calls), root=tmp_path)
    (data,) = (tmp_path / "runs").glob("*.forecast.npz")
    data.write_bytes(data.read_bytes()[:-7] + b"garbage")
    result, _ = cached_forecast(y, None, {"model": "average"}, _evaluate(y, None, calls), root=tmp_path)
    assert len(calls) == 2 and result.num_origins == 6
