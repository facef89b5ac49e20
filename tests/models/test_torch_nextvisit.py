"""The recurrent next-POI model: one-epoch smoke test, valid rankings, reproducible on the CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from stlab.cleaning import CleaningConfig, clean_checkins  # noqa: E402
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig  # noqa: E402
from stlab.models.torch_nextvisit import (RecurrentConfig, RecurrentNextVisit, encode_queries,  # noqa: E402
                                          local_hour_of_week)
from stlab.protocol import build_task  # noqa: E402
from stlab.splits import temporal_split  # noqa: E402


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3, min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


def test_local_hour_of_week():
    t = pd.Timestamp("2024-07-01 13:30", tz="America/New_York")  # a Monday
    seconds = np.array([[t.value // 10**9, (t + pd.Timedelta(days=6, hours=2)).value // 10**9]])
    assert local_hour_of_week(seconds, "America/New_York").tolist() == [[13, 6 * 24 + 15]]


def test_encoding_shapes_and_padding(task):
    q = task.queries("test")
    poi, how, cont, target_how, target_gap, target = encode_queries(task, q)
    assert poi.shape == how.shape == (len(q), 6) and cont.shape == (len(q), 6, 2)
    assert (poi[q.history_poi < 0] == 0).all() and (poi[q.history_poi >= 0] > 0).all()
    assert ((how >= 0) & (how < 168)).all() and ((target_how >= 0) & (target_how < 168)).all()
    assert (cont >= 0).all() and (target_gap >= 0).all()
    assert np.array_equal(target.numpy(), q.target)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_epoch_fits_scores_and_repeats(task, cell):
    config = RecurrentConfig(cell=cell, poi_dim=8, time_dim=4, hidden_size=16, num_epochs=1, batch_size=64,
                             device="cpu", progress=False)
    q = task.queries("test")
    first = RecurrentNextVisit(config).fit(task)
    scores = first.score(q)
    assert scores.shape == (len(q), task.num_pois) and np.isfinite(scores).all()
    top = first.recommend(q, k=5)
    assert all(len(set(row)) == 5 for row in top)
    assert len(first.history_) == 1 and "validation" in first.history_
    again = RecurrentNextVisit(config).fit(task).score(q)
    np.testing.assert_array_equal(scores, again)
