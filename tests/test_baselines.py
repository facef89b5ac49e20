"""Every next-visit baseline fits, produces valid full rankings, and behaves as its definition says."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.baselines import (BaselineGrid, BayesUserPOI, DistancePopularity, HourPopularity, ImplicitALS, Markov,
                             Popularity, TrueProbabilities, UserFrequency, UserMarkovBlend, default_baselines,
                             tuned_baselines)
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.protocol import NotFittedError, build_task, evaluate
from stlab.splits import temporal_split


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(WorldConfig(num_users=40, num_pois=120, num_days=14, seed=3))


@pytest.fixture(scope="module")
def task(world):
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=5)


ALL = [*default_baselines(progress=False), HourPopularity(bandwidth_hours=3), Markov(max_gap_hours=12)]


@pytest.mark.parametrize("model", ALL, ids=[m.name for m in ALL])
def test_valid_rankings(model, task):
    q = task.queries("test")
    scores = model.fit(task).score(q)
    assert scores.shape == (len(q), task.num_pois)
    assert not np.isnan(scores).any() and not np.isposinf(scores).any()
    top = model.recommend(q, k=10)
    assert top.shape == (len(q), 10)
    assert all(len(set(row)) == 10 for row in top), "a POI recommended twice"
    assert ((top >= 0) & (top < task.num_pois)).all()
    # Deterministic: the same fit gives the same scores.
    assert np.array_equal(model.fit(task).score(q), scores)


def test_scoring_before_fit_is_refused(task):
    q = task.queries("test")
    for model in [*ALL, UserMarkovBlend()]:
        with pytest.raises(NotFittedError, match="not fitted"):
            type(model)().score(q)


def test_popularity_counts_training_only(task):
    model = Popularity().fit(task)
    expected = np.bincount(task.train["poi"], minlength=task.num_pois)
    assert np.array_equal(model.counts_, expected)


def test_user_frequency_ranks_visited_first(task):
    q = task.queries("test")
    scores = UserFrequency().fit(task).score(q)
    for i in range(0, len(q), 7):
        visited = set(task.train.loc[task.train["user"] == q.user[i], "poi"])
        visited |= set(q.history_poi[i][(q.history_poi[i] >= 0) & ~q.history_in_train[i]])
        if visited:
            order = np.argsort(-scores[i], kind="stable")
            assert set(order[:len(visited)]) == visited


def test_markov_rows_are_distributions(task):
    q = task.queries("test")
    probs = Markov(smoothing=2.0).fit(task).score(q)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_distance_scale_is_chosen_by_likelihood(task):
    model = DistancePopularity(scales_km=(0.5, 2.0, 8.0)).fit(task)
    assert model.scale_km_ == max(model.log_likelihood_, key=model.log_likelihood_.get)


def test_bayes_limits(task):
    q = task.queries("test")
    # Heavy smoothing makes P(u | i) flat: the ranking is the popularity prior's.
    flat = BayesUserPOI(smoothing=1e9).fit(task).score(q)
    pop = Popularity().fit(task).score(q)
    for i in range(0, len(q), 5):
        assert (np.diff(pop[i][np.argsort(-flat[i], kind="stable")]) <= 0).all()
    # Light smoothing: every POI the user visited outranks every POI they did not.
    sharp = BayesUserPOI(smoothing=1e-6).fit(task).score(q)
    visits = UserFrequency(popularity_weight=0.0).fit(task).score(q)
    for i in range(len(q)):
        if (visits[i] > 0).any() and (visits[i] == 0).any():
            assert sharp[i][visits[i] > 0].min() > sharp[i][visits[i] == 0].max()


def test_als_learns_the_training_matrix(task):
    model = ImplicitALS(factors=16, reg=0.1, alpha=10.0, iterations=8, progress=False).fit(task)
    X, Y = model.state_.user_factors, model.state_.item_factors
    visited = np.zeros((task.num_users, task.num_pois), dtype=bool)
    visited[task.train["user"], task.train["poi"]] = True
    pred = X @ Y.T
    assert pred[visited].mean() > pred[~visited].mean() + 0.5


def test_true_probabilities_beat_every_baseline(world, task):
    q = task.queries("test")
    oracle = evaluate(TrueProbabilities(world).fit(task), q)["MRR"]
    for model in default_baselines(progress=False):
        assert evaluate(model.fit(task), q)["MRR"] < oracle


def test_oracle_refuses_a_foreign_task(task):
    other = SyntheticWorld(WorldConfig(num_users=5, num_pois=10, num_days=3, seed=1))
    with pytest.raises(ValueError, match="not this world's POIs"):
        TrueProbabilities(other).fit(task)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="popularity_weight"):
        UserFrequency(popularity_weight=2.0)
    with pytest.raises(ValueError, match="smoothing"):
        Markov(smoothing=0)
    with pytest.raises(ValueError, match="factors"):
        ImplicitALS(factors=0)


def test_als_ranks_pois_unseen_in_training_last(task):
    model = ImplicitALS(factors=8, iterations=3, progress=False).fit(task)
    unseen = task.train_popularity == 0
    assert unseen.any(), "the fixture should have POIs first seen after training"
    scores = model.score(task.queries("test"))
    assert np.isneginf(scores[:, unseen]).all() and np.isfinite(scores[:, ~unseen]).all()


def test_blend_is_its_parts_at_the_ends(task):
    q = task.queries("test")
    user = UserFrequency().fit(task).score(q)
    markov = Markov(smoothing=10.0).fit(task).score(q)
    assert np.allclose(UserMarkovBlend(weight=1.0, smoothing=10.0).fit(task).score(q), user / user.sum(1, keepdims=True))
    assert np.allclose(UserMarkovBlend(weight=0.0, smoothing=10.0).fit(task).score(q), markov)
    with pytest.raises(ValueError, match="weight"):
        UserMarkovBlend(weight=1.5)


def test_tuned_baselines_choose_on_validation_only(task):
    grid = BaselineGrid(markov_smoothing=(1.0, 1000.0), bayes_smoothing=(0.01,), als_alpha=(2.0,),
                        blend_weight=(0.0, 1.0))
    tuned = tuned_baselines(task, seed=0, grid=grid)
    val = task.queries("val")
    best_markov = max((1.0, 1000.0), key=lambda a: evaluate(Markov(smoothing=a).fit(task), val)["MRR"])
    assert tuned.chosen["Markov smoothing a"] == best_markov
    assert len(tuned.models) == 9 and tuned.models[-1].name.startswith("Blend")
    assert set(tuned.fit_seconds) == {m.name for m in tuned.models}
    assert tuned["Markov (1st order)"].smoothing == best_markov
    assert len(tuned.validation) == 2 + 1 + 1 + 2
    only = tuned_baselines(task, grid=grid, include=["Popularity"])
    assert [m.name for m in only.models] == ["Popularity"]
    with pytest.raises(ValueError, match="unknown baseline"):
        tuned_baselines(task, grid=grid, include=["Oracle"])
    with pytest.raises(ValueError, match="validation queries"):
        tuned_baselines(task, task.queries("val").subset(slice(0, 0)), grid=grid)
