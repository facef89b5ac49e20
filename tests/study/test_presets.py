"""The protocol presets, pinned on a tiny hand-made log whose queries are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.cleaning import CleaningConfig
from stlab.splits import leave_last_out
from stlab.study.presets import PRESETS, ProtocolPreset, get_preset, prepare_task, trajectory_ids

POIS = {"A": (40.70, -74.00), "B": (40.71, -74.00), "C": (40.72, -74.00)}
# (user, hours after the origin, POI). Gaps of more than 24 h cut trajectories:
# user 1: [0 1 2] [30 31] [60 61 62] [90 91];  user 2: [0.5 1.5] [40 41 42] [70 71] [95 96 97]
LOG = ([(1, h, p) for h, p in zip([0, 1, 2, 30, 31, 60, 61, 62, 90, 91], "ABCABCABCA")]
       + [(2, h, p) for h, p in zip([0.5, 1.5, 40, 41, 42, 70, 71, 95, 96, 97], "BCABCABCAB")])
#: No row rule or k-core removes anything from this log: presets differ only in split and queries.
KEEP_ALL = CleaningConfig(min_user_checkins=1, min_poi_checkins=1)


def hand_made_log() -> pd.DataFrame:
    origin = pd.Timestamp("2020-01-01", tz="UTC")
    return pd.DataFrame({
        "user_id": [u for u, _, _ in LOG], "poi_id": [p for _, _, p in LOG],
        "timestamp": [origin + pd.Timedelta(hours=h) for _, h, _ in LOG],
        "lat": [POIS[p][0] for _, _, p in LOG], "lon": [POIS[p][1] for _, _, p in LOG],
    })


def asked(preset: str, part: str) -> list[tuple[int, float, str]]:
    """The (user id, hours, target POI id) of every query of ``part``."""
    task = prepare_task(hand_made_log(), preset, cleaning=KEEP_ALL)
    q = task.queries(part)
    origin = pd.Timestamp("2020-01-01", tz="UTC").timestamp()
    return [(int(task.user_ids[u]), (t - origin) / 3600, str(task.pois["poi_id"].iloc[p]))
            for u, t, p in zip(q.user, q.time, q.target)]


def test_book_preset_asks_every_later_check_in():
    # 20 events in time: 0 .5 1 1.5 2 30 31 40 41 42 60 61 62 70 | 71 90 | 91 95 96 97. The first
    # 70 % (14) train, the next 10 % (2) validate, the last 20 % (4) test; queries by user, then time.
    assert asked("book", "val") == [(1, 90, "C"), (2, 71, "B")]
    assert asked("book", "test") == [(1, 91, "A"), (2, 95, "C"), (2, 96, "A"), (2, 97, "B")]


def test_getnext_preset_asks_the_last_check_in_of_each_later_trajectory():
    # 80/10/10 in time: 16 events train, then 91 (u1) and 95 (u2) validate, 96 and 97 (u2) test.
    # Only the last check-in of a trajectory is asked: 91 ends [90 91]; 95 does not end [95 96 97].
    assert asked("getnext", "val") == [(1, 91, "A")]
    assert asked("getnext", "test") == [(2, 97, "B")]


def test_getnext_trains_on_every_position():
    task = prepare_task(hand_made_log(), "getnext", cleaning=KEEP_ALL)
    assert len(task.queries("train")) == 16 - 2  # each user's first check-in has no history


def test_flashback_preset_asks_each_users_last_fifth():
    # Ten check-ins per user: the first 7 train, the 8th validates, the last 2 (20 %) test.
    assert asked("flashback", "val") == [(1, 62, "B"), (2, 95, "C")]
    assert asked("flashback", "test") == [(1, 90, "C"), (1, 91, "A"), (2, 96, "A"), (2, 97, "B")]


def test_stan_preset_holds_out_each_users_last_check_in():
    assert asked("stan", "val") == [(1, 90, "C"), (2, 96, "A")]
    assert asked("stan", "test") == [(1, 91, "A"), (2, 97, "B")]


def test_getnext_drops_users_unseen_in_training():
    log = hand_made_log()
    late = pd.DataFrame({"user_id": [3, 3], "poi_id": ["A", "B"],
                         "timestamp": [pd.Timestamp("2020-01-04 23:00", tz="UTC"), pd.Timestamp("2020-01-05 00:30", tz="UTC")],
                         "lat": [40.70, 40.71], "lon": [-74.0, -74.0]})
    task = prepare_task(pd.concat([log, late], ignore_index=True), "getnext", cleaning=KEEP_ALL)
    assert 3 not in set(task.user_ids)
    assert task.queries("val").user_seen.all() and task.queries("test").user_seen.all()
    book = prepare_task(pd.concat([log, late], ignore_index=True), "book", cleaning=KEEP_ALL)
    assert not book.queries("test").user_seen.all()  # the book keeps new users as cold-start queries


def test_trajectories_break_at_gaps_longer_than_the_limit():
    events = pd.DataFrame({"user": [0, 0, 0, 0, 1], "time": [0, 3600, 3600 + 86400, 3600 + 86401 + 86400, 0]})
    assert trajectory_ids(events, 24).tolist() == [0, 0, 0, 1, 2]


def test_every_preset_gives_a_task_every_model_can_use():
    for name in PRESETS:
        task = prepare_task(hand_made_log(), name, cleaning=KEEP_ALL)
        for part in ("train", "val", "test"):
            q = task.queries(part)
            assert np.all(q.history_poi[:, -1] >= 0)  # every query has a previous check-in


def test_leave_last_out_keeps_short_users_in_training():
    log = hand_made_log()
    short = log[log["user_id"] == 1].head(2).assign(user_id=9)
    split = leave_last_out(pd.concat([log, short]), 1, 1, min_train=1)
    assert (split.train["user_id"] == 9).sum() == 2 and 9 not in set(split.test["user_id"])


def test_unknown_preset_and_inconsistent_preset_are_refused():
    with pytest.raises(ValueError, match="unknown protocol preset 'gowalla'"):
        get_preset("gowalla")
    with pytest.raises(ValueError, match="needs trajectory_gap_hours"):
        ProtocolPreset("getnext", "global", 0.1, 0.1, last_of_trajectory=True)


def test_a_split_made_out_of_core_gives_the_same_task(tmp_path):
    from stlab.outofcore import clean_and_split_duckdb

    log = hand_made_log()
    log["poi_id"] = log["poi_id"].map({"A": 1, "B": 2, "C": 3})
    path = tmp_path / "log.parquet"
    log.to_parquet(path, index=False)
    for name in ("book", "getnext"):
        preset = PRESETS[name]
        parts = clean_and_split_duckdb(path, tmp_path / name, KEEP_ALL, val_frac=preset.val_frac,
                                       test_frac=preset.test_frac)
        kept, split = parts.load()
        outside = prepare_task(kept, name, cleaning=KEEP_ALL, split=split)
        inside = prepare_task(log, name, cleaning=KEEP_ALL)
        for part in ("train", "val", "test"):
            a, b = outside.queries(part), inside.queries(part)
            np.testing.assert_array_equal(a.target, b.target)
            np.testing.assert_array_equal(a.time, b.time)
            np.testing.assert_array_equal(a.history_poi, b.history_poi)
