"""Chronological splits: sizes, cutoffs, and no evaluation event before its training cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

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
