"""The behaviour-type Transformer learns a signal carried by earlier actions, is seeded, and
never lets a later action change an earlier event's prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.features import behaviour_sequences
from stlab.metrics import binary_classification_metrics
from stlab.models.torch.behaviour import BehaviourConfig, BehaviourTransformer


def _log(num_users: int = 80, events_per_user: int = 30, seed: int = 0) -> pd.DataFrame:
    """Users who put an item in the cart buy it on the next touch; others only view."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        t = pd.Timestamp("2017-11-25", tz="UTC") + pd.Timedelta(minutes=int(rng.integers(0, 600)))
        carted: set[int] = set()
        for _ in range(events_per_user):
            item = int(rng.integers(0, 5))
            behaviour = "buy" if item in carted else ("cart" if rng.random() < 0.15 else "pv")
            if behaviour == "cart":
                carted.add(item)
            rows.append((user, item, item // 2, behaviour, t))
            t += pd.Timedelta(minutes=int(rng.integers(1, 30)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "behavior", "timestamp"])


def test_learns_what_earlier_actions_say_and_is_seeded():
    seqs = behaviour_sequences(_log(num_users=50, events_per_user=24), history_len=8)
    train = np.asarray(pd.Series(seqs.timestamp) < pd.Series(seqs.timestamp).quantile(0.7))
    config = BehaviourConfig(d_model=16, num_layers=1, ffn_dim=32, num_epochs=6, seed=3)
    model = BehaviourTransformer(config).fit(seqs, train)
    scores = model.predict_proba(seqs, ~train)
    assert binary_classification_metrics(seqs.label[~train], scores)["roc_auc"] > 0.65  # chance is 0.5
    again = BehaviourTransformer(config).fit(seqs, train).predict_proba(seqs, ~train)
    np.testing.assert_array_equal(scores, again)
    assert model.history_[-1] < model.history_[0]


def test_a_later_action_does_not_change_an_earlier_prediction():
    log = _log(num_users=10)
    seqs = behaviour_sequences(log, history_len=6)
    model = BehaviourTransformer(BehaviourConfig(d_model=8, num_layers=2, ffn_dim=16, num_epochs=1)).fit(
        seqs, np.ones(len(seqs), bool))
    cutoff = log["timestamp"].sort_values().iloc[len(log) // 2]
    early = behaviour_sequences(log[log["timestamp"] <= cutoff], history_len=6)
    np.testing.assert_allclose(model.predict_proba(seqs, np.arange(len(early))),
                               model.predict_proba(early, np.arange(len(early))), rtol=1e-6)


def test_max_steps_bounds_training_and_unfitted_use_is_refused():
    seqs = behaviour_sequences(_log(num_users=20), history_len=5)
    model = BehaviourTransformer(BehaviourConfig(d_model=8, num_layers=1, ffn_dim=16, num_epochs=50,
                                                 batch_size=16, max_steps=3))
    model.fit(seqs, np.ones(len(seqs), bool))
    assert len(model.history_) == 1
    with pytest.raises(RuntimeError, match="not fitted"):
        BehaviourTransformer().predict_proba(seqs, np.arange(3))
