"""Each cleaning rule on a hand-made log whose right answer is known."""

from __future__ import annotations

import pandas as pd

from stlab.cleaning import (CleaningConfig, clean_checkins, drop_exact_duplicates, drop_impossible_speeds,
                            drop_outside, drop_rapid_repeats, k_core)
from stlab.data import NYC_BBOX


def log(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "poi_id", "timestamp", "lat", "lon"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def test_exact_duplicates():
    frame = log([(1, 1, "2010-01-01T10:00Z", 40.7, -74.0)] * 3 + [(1, 2, "2010-01-01T11:00Z", 40.7, -74.0)])
    assert len(drop_exact_duplicates(frame)) == 2


def test_outside():
    frame = log([(1, 1, "2010-01-01T10:00Z", 40.7, -74.0), (1, 2, "2010-01-01T11:00Z", 51.5, -0.1)])
    assert drop_outside(frame, NYC_BBOX)["poi_id"].tolist() == [1]


def test_rapid_repeats_only_same_user_same_poi():
    frame = log([(1, 1, "2010-01-01T10:00:00Z", 40.7, -74.0), (1, 1, "2010-01-01T10:02:00Z", 40.7, -74.0),
                 (1, 1, "2010-01-01T10:30:00Z", 40.7, -74.0), (2, 1, "2010-01-01T10:01:00Z", 40.7, -74.0)])
    kept = drop_rapid_repeats(frame, 300)
    assert len(kept) == 3 and kept["user_id"].tolist() == [1, 1, 2]


def test_impossible_speed_drops_the_jump_not_its_neighbours():
    # A in Manhattan, J in Staten Island 90 s later (~25 km: 1000 km/h), B back in Manhattan 3 h later.
    frame = log([(1, 1, "2010-01-01T10:00:00Z", 40.75, -73.99), (1, 2, "2010-01-01T10:01:30Z", 40.58, -74.15),
                 (1, 3, "2010-01-01T13:00:00Z", 40.76, -73.98)])
    assert drop_impossible_speeds(frame, 300)["poi_id"].tolist() == [1, 3]


def test_k_core_iterates():
    # POI 9 has 2 visits; removing it leaves user 2 with 1 check-in, so user 2 goes too.
    rows = [(1, p, f"2010-01-0{p}T10:00Z", 40.7, -74.0) for p in (1, 2)] * 2
    rows += [(3, p, f"2010-01-0{p}T12:00Z", 40.7, -74.0) for p in (1, 2)]
    rows += [(2, 9, "2010-01-05T10:00Z", 40.7, -74.0), (2, 9, "2010-01-06T10:00Z", 40.7, -74.0),
             (2, 1, "2010-01-07T10:00Z", 40.7, -74.0)]
    out = k_core(log(rows), min_user_checkins=2, min_poi_checkins=3)
    assert set(out["user_id"]) == {1, 3} and set(out["poi_id"]) == {1, 2}


def test_clean_checkins_reports_every_rule():
    frame = log([(1, 1, "2010-01-01T10:00Z", 40.7, -74.0)] * 2 + [(1, 2, "2010-01-01T12:00Z", 40.71, -74.0)])
    cleaned, report = clean_checkins(frame, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=1, min_poi_checkins=1))
    assert len(report) == 5 and report["removed"].sum() == len(frame) - len(cleaned) == 1
    assert report.loc["exact duplicates", "removed"] == 1
