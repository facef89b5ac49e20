"""The next-visit task: encoding, queries built from the past only, and streamed evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.baselines import Popularity
from stlab.protocol import build_task, evaluate, query_ranks, results_table
from stlab.splits import per_user_split, temporal_split


def _log() -> pd.DataFrame:
    t0 = pd.Timestamp("2020-01-06 08:00", tz="UTC")
    rows = [  # user, poi, hours after t0
        (1, 10, 0), (1, 11, 1), (1, 10, 5), (1, 12, 30), (1, 10, 40),
        (2, 11, 2), (2, 11, 3), (2, 12, 35), (2, 10, 41),
        (3, 12, 36), (3, 11, 42),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "poi_id", "h"])
    frame["timestamp"] = t0 + pd.to_timedelta(frame.pop("h"), unit="h")
    frame["lat"] = 40.7 + 0.01 * (frame["poi_id"] - 10)
    frame["lon"] = -74.0
    return frame.sort_values(["user_id", "timestamp"], ignore_index=True)


def test_queries_hold_only_the_past():
    log = _log()
    split = temporal_split(log, val_frac=0.0, test_frac=0.3)
    task = build_task(log, split, timezone="America/New_York", history_len=3)
    assert task.num_pois == 3 and task.num_users == 3
    q = task.queries("test")
    # Test events (from 36 h on): user 1 at 40 h, user 2 at 41 h, user 3 at 36 h and 42 h; user
    # 3's 36 h event is its first check-in (no history), so not a query.
    assert len(q) == 3
    assert (q.history_time.max(axis=1) < q.time).all()
    for i in range(len(q)):
        valid = q.history_poi[i] >= 0
        times = q.history_time[i][valid]
        assert np.all(np.diff(times) >= 0), "history is oldest first"
    user3 = np.flatnonzero(q.user == 2)[0]
    assert q.history_poi[user3].tolist() == [-1, -1, 2]  # its only earlier check-in (POI 12)
    assert not q.user_seen[user3]
    assert not q.history_in_train[user3].any()
    # User 1's previous check-in before 40 h is POI 12 at 30 h, a training event.
    u1 = np.flatnonzero(q.user == 0)[0]
    assert q.prev_poi[u1] == 2 and q.history_in_train[u1, -1]
    assert q.hour[u1] == (pd.Timestamp("2020-01-06 08:00", tz="UTC") + pd.Timedelta(hours=40)).tz_convert(
        "America/New_York").hour


def test_evaluate_streams_and_matches_one_batch():
    log = _log()
    task = build_task(log, per_user_split(log, val_frac=0.0, test_frac=0.4), history_len=2)
    q = task.queries("test")
    model = Popularity().fit(task)
    assert np.array_equal(query_ranks(model, q, batch_size=1), query_ranks(model, q, batch_size=100))
    out = evaluate(model, q, ks=(1, 3))
    assert out["Acc@3"] == 1.0  # three candidates
    assert model.recommend(q, k=2, batch_size=1).shape == (len(q), 2)
    table = results_table([model], q, ks=(1,))
    assert list(table.index) == ["Popularity"]


def test_bad_inputs_are_named():
    log = _log()
    split = temporal_split(log, val_frac=0.0, test_frac=0.3)
    with pytest.raises(ValueError, match="history_len"):
        build_task(log, split, history_len=0)
    with pytest.raises(ValueError, match="split the same cleaned table"):
        build_task(log.iloc[:-1], split)
    with pytest.raises(ValueError, match="part must be"):
        build_task(log, split).queries("future")  # type: ignore[arg-type]


def test_prior_visit_counts_never_count_the_target_or_the_future():
    from stlab.baselines import UserFrequency
    from stlab.protocol import prior_visit_counts

    log = _log()
    task = build_task(log, temporal_split(log, val_frac=0.0, test_frac=0.3), history_len=2)
    train_q = task.queries("train")
    counts = prior_visit_counts(task, train_q)
    for i in range(len(train_q)):
        user_events = task.events[(task.events["user"] == train_q.user[i]) & (task.events["time"] < train_q.time[i])]
        expected = np.bincount(user_events["poi"], minlength=task.num_pois)
        assert np.array_equal(counts[i], expected)
    test_q = task.queries("test")
    freq = UserFrequency(popularity_weight=0.0).fit(task).score(test_q)
    assert np.array_equal(prior_visit_counts(task, test_q), freq)


def test_prior_transition_counts_only_count_earlier_training_moves():
    from stlab.baselines import Markov
    from stlab.protocol import prior_transition_counts

    log = _log()
    task = build_task(log, temporal_split(log, val_frac=0.0, test_frac=0.3), history_len=2)
    train = task.train
    same = train["user"].to_numpy()[1:] == train["user"].to_numpy()[:-1]
    moves = pd.DataFrame({"source": train["poi"].to_numpy()[:-1][same], "dest": train["poi"].to_numpy()[1:][same],
                          "arrival": train["time"].to_numpy()[1:][same]})
    for part in ("train", "test"):
        q = task.queries(part)
        counts = prior_transition_counts(task, q)
        for i in range(len(q)):  # a loop over moves, independent of the vectorised search
            earlier = moves[(moves["source"] == q.prev_poi[i]) & (moves["arrival"] < q.time[i])]
            assert np.array_equal(counts[i], np.bincount(earlier["dest"], minlength=task.num_pois))
    # Test queries see every training move, as the Markov baseline does.
    test_q = task.queries("test")
    markov = Markov(smoothing=1e-12).fit(task).score(test_q)
    counts = prior_transition_counts(task, test_q)
    rows = counts.sum(1) > 0
    np.testing.assert_allclose(markov[rows], counts[rows] / counts[rows].sum(1, keepdims=True), atol=1e-9)
    # A training query never counts its own move.
    train_q = task.queries("train")
    own = prior_transition_counts(task, train_q)[np.arange(len(train_q)), train_q.target]
    full = np.array([((moves["source"] == p) & (moves["dest"] == t)).sum() for p, t in zip(train_q.prev_poi, train_q.target)])
    assert len(train_q) and (own < full).all()


def test_query_segments_split_return_from_explore_by_the_users_own_past():
    from stlab.protocol import query_segments

    log = _log()
    task = build_task(log, temporal_split(log, val_frac=0.0, test_frac=0.3), timezone="America/New_York",
                      history_len=3)
    q = task.queries("test")
    segments = query_segments(task, q)
    ev = task.events
    for i in range(len(q)):
        earlier = ev[(ev["user"] == q.user[i]) & (ev["time"] < q.time[i])]["poi"]
        assert segments["return"][i] == (q.target[i] in set(earlier))
    assert (segments["return"] ^ segments["explore"]).all()
    np.testing.assert_array_equal(segments["seen users"], q.user_seen)
