"""The synthetic city: reproducible, in the check-in schema, with the statistics it promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig, validate_checkins
from stlab.data.synthetic import activity_profile, category_hour_affinity

SMALL = WorldConfig(num_users=40, num_pois=120, num_days=21, seed=3)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(SMALL)


def test_same_seed_same_world_other_seed_other_world(world):
    again = SyntheticWorld(SMALL)
    pd.testing.assert_frame_equal(world.checkins, again.checkins)
    other = SyntheticWorld(WorldConfig(num_users=40, num_pois=120, num_days=21, seed=4))
    assert not world.checkins["poi_id"].equals(other.checkins["poi_id"])


def test_schema_and_city(world):
    validate_checkins(world.checkins)
    clean = world.checkins[world.dirt.to_numpy() == "clean"]
    assert NYC_BBOX.contains(clean["lat"], clean["lon"]).all()
    assert set(world.checkins["category"].unique()) <= set(world.pois["category"].astype(str))
    assert world.checkins["tz_offset_min"].isin([-300, -240]).all()


def test_dirt_rates_match_the_config():
    big = SyntheticWorld(WorldConfig(num_users=150, num_days=28, seed=1))
    counts = big.dirt.value_counts()
    clean = counts["clean"]
    for kind, rate in (("duplicate", 0.01), ("burst", 0.03), ("jump", 0.005), ("outside", 0.002)):
        expected = rate * clean
        assert abs(counts[kind] - expected) < 4 * np.sqrt(expected) + 2, (kind, counts[kind], expected)
    duplicates = big.checkins[big.dirt.to_numpy() == "duplicate"]
    assert big.checkins.duplicated(keep="first").sum() >= len(duplicates) * 0.99


def test_true_probabilities_are_distributions_and_visits_follow_them(world):
    visits = world.visits
    logp = world.next_visit_log_probs(visits["user_id"].to_numpy(), visits["timestamp"], visits["prev_poi"].to_numpy(),
                                      visits["prev_time"])
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0)
    # The visited POI is, on average, far more likely under the truth than under a uniform guess.
    chosen = logp[np.arange(len(visits)), visits["poi_id"].to_numpy()]
    assert chosen.mean() > np.log(1 / SMALL.num_pois) + 1.0
    # Realised top-1 hits of the Bayes predictor match its expected accuracy (law of large numbers).
    hits = (logp.argmax(axis=1) == visits["poi_id"].to_numpy()).mean()
    expected = world.bayes_optimal_accuracy(ks=(1,))["Acc@1"]
    assert abs(hits - expected) < 4 * np.sqrt(expected * (1 - expected) / len(visits))


def test_bayes_ceiling_grows_with_k_and_stays_below_one(world):
    ceiling = world.bayes_optimal_accuracy(ks=(1, 5, 10))
    assert 0 < ceiling["Acc@1"] < ceiling["Acc@5"] < ceiling["Acc@10"] < 1


def test_routines_are_daily_and_weekly(world):
    profile = activity_profile().reshape(7, 24)
    assert profile[:, 3].max() < profile[:, 12].min()  # 3 a.m. quieter than noon every day
    affinity = category_hour_affinity()
    office = affinity[2].reshape(7, 24)
    assert office[:5, 13].mean() > 10 * office[5:, 13].mean()  # offices empty at weekends
    local_hour = world.visits["timestamp"].dt.tz_convert(SMALL.timezone).dt.hour
    assert (local_hour.between(11, 21)).mean() > 0.5


def test_users_have_a_long_tail_and_preferences_drift(world):
    counts = world.visits["user_id"].value_counts()
    assert counts.max() > 2 * counts.median() and counts.max() > 5 * counts.min()
    drift = np.abs(np.diff(world._log_pref, axis=1)).mean()
    assert drift > 0.05


def test_region_series(world):
    series = world.region_series(grid_size=5)
    assert series.values.shape == (SMALL.num_days * 24, series.num_nodes)
    assert series.values.sum() == len(world.visits)
    assert (series.adjacency() == series.adjacency().T).all()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="num_users must be at least 1"):
        WorldConfig(num_users=0)


def test_cached_world_is_shared_per_config():
    from stlab.data import cached_world

    config = WorldConfig(num_users=20, num_pois=50, num_days=7, seed=4)
    assert cached_world(config) is cached_world(WorldConfig(num_users=20, num_pois=50, num_days=7, seed=4))
    assert cached_world(config) is not cached_world(WorldConfig(num_users=20, num_pois=50, num_days=7, seed=5))


def test_behaviour_log_mechanism_shows_in_the_data():
    from stlab.data.synthetic import simulate_behaviour_log

    events = simulate_behaviour_log(num_users=300, num_items=400, num_events=8000, seed=2)
    assert list(events.columns) == ["user_id", "item_id", "category_id", "behavior", "timestamp"]
    assert events["timestamp"].is_monotonic_increasing
    strong = events["behavior"] != "pv"
    touched_before = events.groupby(["user_id", "item_id"]).cumcount() > 0
    # Repeated touches raise the chance of a strong action (the 0.8 log(1 + touches) term).
    assert strong[touched_before].mean() > strong[~touched_before].mean()
    assert simulate_behaviour_log(num_events=50, seed=5).equals(simulate_behaviour_log(num_events=50, seed=5))
