"""Chronological splits: sizes, cutoffs, and no evaluation event before its training cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import SyntheticWorld, WorldConfig
from stlab.splits import Split, assert_no_leakage, per_user_split, temporal_split


@pytest.fixture(scope="module")
def checkins() -> pd.DataFrame:
    return SyntheticWorld(WorldConfig(num_users=50, num_pois=100, num_days=21, seed=5)).checkins


def test_temporal_split_has_one_global_cutoff(checkins):
    split = temporal_split(checkins, val_frac=0.1, test_frac=0.2)
    assert_no_leakage(split)
    assert split.train["timestamp"].max() < split.val["timestamp"].min() <= split.val["timestamp"].max() < split.test["timestamp"].min()
    assert len(split.train) + len(split.val) + len(split.test) == len(checkins)
    assert abs(len(split.test) / len(checkins) - 0.2) < 0.01


def test_explicit_cutoffs(checkins):
    split = temporal_split(checkins, train_end="2010-03-10", val_end="2010-03-15")
    assert (split.train["timestamp"] < pd.Timestamp("2010-03-10", tz="UTC")).all()
    assert (split.test["timestamp"] >= pd.Timestamp("2010-03-15", tz="UTC")).all()
    with pytest.raises(ValueError, match="before train_end"):
        temporal_split(checkins, train_end="2010-03-15", val_end="2010-03-10")


def test_per_user_split_keeps_each_users_future_out(checkins):
    split = per_user_split(checkins, val_frac=0.1, test_frac=0.2)
    assert_no_leakage(split)
    last_train = split.train.groupby("user_id")["timestamp"].max()
    first_test = split.test.groupby("user_id")["timestamp"].min()
    assert (first_test >= last_train.reindex(first_test.index)).all()
    assert len(split.train) + len(split.val) + len(split.test) == len(checkins)


def test_leakage_is_detected(checkins):
    good = temporal_split(checkins)
    leaked = Split(train=good.train, val=good.val, test=pd.concat([good.test, good.train.head(3)]),
                   train_end=good.train_end, val_end=good.val_end, protocol="temporal")
    with pytest.raises(AssertionError, match="precede their cutoff"):
        assert_no_leakage(leaked)


def test_bad_fractions(checkins):
    with pytest.raises(ValueError, match="val_frac"):
        temporal_split(checkins, val_frac=0.5, test_frac=0.6)


def test_empty_table_is_a_clear_error(checkins):
    for split in (temporal_split, per_user_split):
        with pytest.raises(ValueError, match="empty check-in table"):
            split(checkins.iloc[:0])


# --------------------------------------------------------------------------- leak-free k-core

def _log(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "poi_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["lat"], frame["lon"] = 40.7, -74.0
    return frame


def _hand_made_log():
    """Ten days; days 1-7 train, day 8 validates, days 9-10 test (by the explicit cutoffs below).

    Users 1 and 2 visit POIs A and B in training (3 each: in a 3-core). POI X has two training
    visits (user 1), below the threshold of 3.
    """
    rows = []
    for user in (1, 2):
        for day in (1, 2, 3):
            rows += [(user, "A", f"2024-01-0{day}T1{user}:00Z"), (user, "B", f"2024-01-0{day}T1{user + 2}:00Z")]
    rows += [(1, "X", "2024-01-04T10:00Z"), (1, "X", "2024-01-05T10:00Z")]
    rows += [(1, "A", "2024-01-09T10:00Z"), (2, "B", "2024-01-09T11:00Z")]
    return rows


def _split(frame, kcore_on):
    from stlab.cleaning import CleaningConfig
    from stlab.splits import clean_and_split

    config = CleaningConfig(min_user_checkins=3, min_poi_checkins=3, repeat_window_s=0, max_speed_kmh=1e9)
    kept, split, report = clean_and_split(frame, config, kcore_on=kcore_on,
                                           train_end="2024-01-08", val_end="2024-01-09")
    return kept, split, report


def test_whole_log_kcore_lets_the_test_period_decide_training():
    """A user active only in the test period visits X three times: under the old order (k-core over
    the whole log) X's training events now survive, so training depends on the test period."""
    base = _log(_hand_made_log())
    newcomer = _log(_hand_made_log() + [(9, "X", f"2024-01-10T1{h}:00Z") for h in range(3)]
                    + [(9, "A", "2024-01-10T15:00Z")])
    leaky = [_split(frame, "whole-log")[1].train for frame in (base, newcomer)]
    assert "X" not in set(leaky[0]["poi_id"]) and "X" in set(leaky[1]["poi_id"])
    clean = [_split(frame, "train")[1].train for frame in (base, newcomer)]
    pd.testing.assert_frame_equal(clean[0].reset_index(drop=True), clean[1].reset_index(drop=True))
    assert "X" not in set(clean[1]["poi_id"])


def test_later_events_follow_the_training_core():
    frame = _log(_hand_made_log() + [(2, "X", "2024-01-10T09:00Z"),  # X is not in the training core
                                     (3, "A", "2024-01-02T08:00Z"),  # user 3: one training event, not in the core
                                     (3, "A", "2024-01-10T08:00Z"),  # ... so their test event goes too
                                     (7, "A", "2024-01-10T07:00Z"), (7, "B", "2024-01-10T08:00Z"),  # new user: kept
                                     (7, "Z", "2024-01-10T09:00Z")])  # POI first seen in the test period: removed
    kept, split, report = _split(frame, "train")
    later = pd.concat([split.val, split.test])
    assert set(split.train["poi_id"]) == {"A", "B"} and set(split.train["user_id"]) == {1, 2}
    assert set(later["poi_id"]) <= {"A", "B"}
    assert 3 not in set(kept["user_id"]) and 7 in set(later["user_id"])
    assert set(later.loc[later["user_id"] == 7, "poi_id"]) == {"A", "B"}
    assert len(kept) == len(split.train) + len(split.val) + len(split.test)
    assert_no_leakage(split)
    assert report.loc["later events at POIs outside the training core", "removed"] == 2  # (2, X) and (7, Z)


def test_clean_and_split_refuses_an_empty_core():
    from stlab.cleaning import CleaningConfig
    from stlab.splits import clean_and_split

    with pytest.raises(ValueError, match="no training events survive"):
        clean_and_split(_log(_hand_made_log()), CleaningConfig(min_user_checkins=100))


def _small_split():
    from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig

    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=60, num_days=12, seed=2))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return checkins, temporal_split(checkins, val_frac=0.1, test_frac=0.2)


def test_recent_training_keeps_the_latest_share_and_the_later_parts():
    from stlab.protocol import build_task
    from stlab.splits import recent_training

    _, split = _small_split()
    checkins, half = recent_training(split, 0.5)
    assert abs(len(half.train) - len(split.train) / 2) <= split.train["timestamp"].duplicated().sum() + 1
    assert half.train["timestamp"].min() >= split.train["timestamp"].median() - pd.Timedelta(seconds=1)
    assert half.val.equals(split.val) and half.test.equals(split.test)
    build_task(checkins, half)  # a consistent log and split
    with pytest.raises(ValueError, match="fraction"):
        recent_training(split, 0.0)


def test_hold_out_pois_removes_only_training_visits_of_new_places():
    from stlab.protocol import build_task
    from stlab.splits import hold_out_pois

    _, split = _small_split()
    checkins, held, new = hold_out_pois(split, 0.2, seed=1)
    assert len(new) > 0
    assert not held.train["poi_id"].isin(new).any()
    assert pd.concat([held.val, held.test])["poi_id"].isin(new).any()
    kept = split.train[~split.train["poi_id"].isin(new)]
    assert len(held.train) == len(kept)
    again = hold_out_pois(split, 0.2, seed=1)[2]
    np.testing.assert_array_equal(new, again)  # seeded
    task = build_task(checkins, held)
    assert set(task.pois["poi_id"]) >= set(new)  # new places are candidates
