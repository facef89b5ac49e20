"""Features against independent computations, and a check that none looks into the future."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.features import (cyclic_encode, fourier_terms, geohash, grid_cells, haversine_km, keyword_categories,
                            previous_event_features, rolling_counts, spatiotemporal_features, time_features)


def test_haversine_against_spherical_law_of_cosines():
    lat1, lon1, lat2, lon2 = 40.6413, -73.7781, 33.9416, -118.4085  # JFK, LAX
    r = 6371.0088
    phi1, phi2, dl = map(math.radians, (lat1, lat2, lon2 - lon1))
    expected = r * math.acos(math.sin(phi1) * math.sin(phi2) + math.cos(phi1) * math.cos(phi2) * math.cos(dl))
    assert haversine_km(lat1, lon1, lat2, lon2) == pytest.approx(expected, rel=1e-9)
    assert haversine_km(0, 0, 0, 1) == pytest.approx(2 * math.pi * r / 360, rel=1e-12)


def test_geohash_known_values():
    # Reference values from the geohash definition (Wikipedia's worked example and geohash.org).
    assert geohash(np.array([57.64911]), np.array([10.40744]), 11)[0] == "u4pruydqqvj"
    assert geohash(np.array([42.605]), np.array([-5.603]), 5)[0] == "ezs42"
    with pytest.raises(ValueError):
        geohash(np.array([0.0]), np.array([0.0]), 13)


def test_cyclic_encoding_puts_midnight_next_to_eleven_pm():
    s, c = cyclic_encode(np.array([23.0, 0.0, 12.0]), 24)
    near = np.hypot(s[0] - s[1], c[0] - c[1])
    far = np.hypot(s[1] - s[2], c[1] - c[2])
    assert near < 0.3 and far == pytest.approx(2.0)


def test_fourier_terms_are_orthogonal_over_a_period():
    terms = fourier_terms(np.arange(168), 168, 3).to_numpy()
    gram = terms.T @ terms / 168
    assert np.allclose(gram, 0.5 * np.eye(6), atol=1e-12)


def test_grid_cells_edges_and_outside():
    cells = grid_cells(np.array([NYC_BBOX.lat_min, NYC_BBOX.lat_max, 0.0]),
                       np.array([NYC_BBOX.lon_min, NYC_BBOX.lon_max, 0.0]), NYC_BBOX, 4)
    assert cells.tolist() == [0, 15, -1]


def test_time_features_use_local_time():
    ts = pd.Series(pd.to_datetime(["2010-07-05T16:30:00Z"], utc=True))  # 12:30 in New York (EDT)
    features = time_features(ts, "America/New_York")
    assert features.loc[0, "hour"] == 12.5 and features.loc[0, "dayofweek"] == 0


def test_previous_event_features():
    frame = pd.DataFrame({"user_id": [1, 1, 2], "poi_id": [5, 5, 6], "lat": [40.0, 40.0, 41.0], "lon": [-74.0, -73.0, -74.0],
                          "timestamp": pd.to_datetime(["2010-01-01T00:00Z", "2010-01-01T01:00Z", "2010-01-01T02:00Z"], utc=True)})
    prev = previous_event_features(frame)
    assert np.isnan(prev.loc[0, "dt_prev_s"]) and prev.loc[1, "dt_prev_s"] == 3600 and np.isnan(prev.loc[2, "dist_prev_km"])
    assert prev.loc[1, "dist_prev_km"] == pytest.approx(haversine_km(40, -74, 40, -73))
    assert prev["same_poi_as_prev"].tolist() == [False, True, False]


def test_unsorted_input_is_refused():
    frame = pd.DataFrame({"user_id": [1, 1], "poi_id": [1, 2], "lat": [40.0, 40.0], "lon": [-74.0, -74.0],
                          "timestamp": pd.to_datetime(["2010-01-02T00:00Z", "2010-01-01T00:00Z"], utc=True)})
    with pytest.raises(ValueError, match="sorted by time"):
        previous_event_features(frame)


def test_rolling_counts_exclude_the_event_itself():
    frame = pd.DataFrame({"user_id": [1, 1, 1], "poi_id": [1, 2, 3], "lat": [40.0] * 3, "lon": [-74.0] * 3,
                          "timestamp": pd.to_datetime(["2010-01-01", "2010-01-03", "2010-01-09"], utc=True)})
    counts = rolling_counts(frame, ["7D"])
    assert counts["events_past_7D"].tolist() == [0, 1, 1]


def test_no_feature_depends_on_later_events():
    world = SyntheticWorld(WorldConfig(num_users=15, num_pois=60, num_days=14, seed=2))
    checkins = world.checkins
    cutoff = checkins["timestamp"].quantile(0.6)
    past = checkins[checkins["timestamp"] <= cutoff]
    full = spatiotemporal_features(checkins, timezone="America/New_York", bbox=NYC_BBOX)
    truncated = spatiotemporal_features(past, timezone="America/New_York", bbox=NYC_BBOX)
    pd.testing.assert_frame_equal(full.loc[past.index], truncated)


def test_keyword_categories():
    names = pd.Series(["Starbucks", "Penn Station", "Joe's Pizza", "Bryant Park", "Somewhere"])
    assert keyword_categories(names).tolist() == ["Coffee", "Transit", "Food", "Park", "Other"]


def test_behaviour_features_use_strictly_earlier_events():
    from stlab.data.synthetic import simulate_behaviour_log
    from stlab.features import behaviour_features

    events = simulate_behaviour_log(num_users=50, num_items=80, num_events=600, seed=1)
    features, label = behaviour_features(events)
    assert len(features) == len(label) == len(events)
    assert set(np.unique(label)) <= {0, 1}
    # Deleting everything from some time on must not change the features before it.
    cut = features["timestamp"].iloc[400]
    early, _ = behaviour_features(events[events["timestamp"] < cut])
    pd.testing.assert_frame_equal(early, features[features["timestamp"] < cut].reset_index(drop=True))
    # The first event of every user has no past.
    first = ~events.sort_values("timestamp", kind="stable").duplicated("user_id").to_numpy()
    assert (features.loc[first, "user_events_before"] == 0).all()


def test_behaviour_features_ignore_same_second_events():
    from stlab.features import behaviour_features

    t = pd.Timestamp("2017-11-26 01:00", tz="UTC")
    events = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [5, 5, 5], "category_id": [9, 9, 9],
                           "behavior": ["cart", "pv", "pv"], "timestamp": [t, t, t + pd.Timedelta(seconds=1)]})
    features, label = behaviour_features(events)
    assert features["user_item_events_before"].tolist() == pytest.approx(np.log1p([0, 0, 2]))
    assert label.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="lacks column"):
        behaviour_features(events.drop(columns="category_id"))


def test_clock_features_are_the_cyclic_encoding_of_each_period():
    from stlab.features import HOURS_PER_DAY, HOURS_PER_WEEK, clock_features
    from stlab.models import windows
    from stlab.models.recurrent import HOURS_PER_WEEK as recurrent_week

    assert (HOURS_PER_DAY, HOURS_PER_WEEK) == (24, 168) and recurrent_week is HOURS_PER_WEEK
    positions = np.arange(200)
    clock = clock_features(positions, (HOURS_PER_DAY, HOURS_PER_WEEK))
    assert clock.shape == (200, 4)
    day_sin, day_cos = cyclic_encode(positions, 24)
    np.testing.assert_array_equal(clock[:, 0], day_sin)
    np.testing.assert_array_equal(clock[:, 1], day_cos)
    np.testing.assert_allclose(clock[24, :2], clock[0, :2], atol=1e-12)  # a day later: the same time of day
    np.testing.assert_allclose(clock[168], clock[0], atol=1e-12)  # a week later: the same hour of the week
    assert clock_features(positions, ()).shape == (200, 0)
    assert windows.clock_features is clock_features  # one implementation for every forecaster


def test_previous_event_features_with_string_ids():
    """A reader's ids may be strings: comparing with the previous row must not give a missing value."""
    import pandas as pd

    from stlab.features import previous_event_features, same_as_previous

    frame = pd.DataFrame({"user_id": pd.array(["u1", "u1", "u2"], dtype="string"),
                          "poi_id": pd.array(["p1", "p1", "p1"], dtype="string"),
                          "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00"], utc=True),
                          "lat": [48.85, 48.86, 48.85], "lon": [2.35, 2.35, 2.35]})
    assert same_as_previous(frame["user_id"]).tolist() == [False, True, False]
    features = previous_event_features(frame)
    assert features["same_poi_as_prev"].tolist() == [False, True, False]
    assert features["dt_prev_s"].isna().tolist() == [True, False, True]


def _behaviour_log() -> pd.DataFrame:
    stamps = pd.to_datetime(["2017-11-25 10:00", "2017-11-25 10:05", "2017-11-25 10:05", "2017-11-25 10:09",
                             "2017-11-25 10:01", "2017-11-25 10:30"], utc=True)
    return pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2], "item_id": [7, 8, 7, 7, 7, 9],
                         "category_id": [70, 70, 70, 70, 70, 90],
                         "behavior": ["pv", "cart", "pv", "buy", "fav", "pv"], "timestamp": stamps})


def test_behaviour_sequences_hold_strictly_earlier_events_of_the_same_user():
    from stlab.features import BEHAVIOUR_CODES, behaviour_sequences

    seqs = behaviour_sequences(_behaviour_log(), history_len=3)
    # Sorted by time: u1 10:00 pv, u2 10:01 fav, u1 10:05 cart, u1 10:05 pv, u1 10:09 buy, u2 10:30 pv.
    pv, cart, fav = (BEHAVIOUR_CODES[b] for b in ("pv", "cart", "fav"))
    expected = [[0, 0, 0], [0, 0, 0], [0, 0, pv], [0, 0, pv], [pv, cart, pv], [0, 0, fav]]
    np.testing.assert_array_equal(seqs.behaviour, expected)
    np.testing.assert_array_equal(seqs.label, [0, 1, 1, 0, 1, 0])
    # Row 4 (u1's buy of item 7 at 10:09): history items 7, 8, 7.
    np.testing.assert_array_equal(seqs.same_item[4], [1, 0, 1])
    np.testing.assert_array_equal(seqs.same_category[5], [0, 0, 0])
    np.testing.assert_allclose(seqs.log_gap[4], np.log1p([540, 240, 240]), rtol=1e-6)
    assert (seqs.log_gap[seqs.behaviour == 0] == 0).all()


def test_behaviour_sequences_do_not_change_when_later_events_are_removed():
    from stlab.features import behaviour_sequences

    log = _behaviour_log()
    full = behaviour_sequences(log, history_len=4)
    early = behaviour_sequences(log[log["timestamp"] <= "2017-11-25 10:05Z"], history_len=4)
    n = len(early)
    np.testing.assert_array_equal(full.behaviour[:n], early.behaviour)
    np.testing.assert_array_equal(full.same_item[:n], early.same_item)


def test_behaviour_sequences_refuse_unknown_behaviours():
    from stlab.features import behaviour_sequences

    log = _behaviour_log().assign(behavior=["pv", "like", "pv", "buy", "fav", "pv"])
    with pytest.raises(ValueError, match="unknown behaviour"):
        behaviour_sequences(log)
