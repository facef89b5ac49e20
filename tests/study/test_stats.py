"""The study's statistics against hand computations, scipy, statsmodels and simulations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from stlab.metrics import bootstrap_interval, ranking_metrics_from_ranks
from stlab.study import stats
from stlab.study.stats import (bootstrap_intervals, holm, paired_difference, pairwise_comparisons,
                               per_query_metrics, seed_average, seed_spread, segment_masks, segment_table)

# --------------------------------------------------------------------------- per-query metrics


def test_per_query_metrics_by_hand():
    ranks = np.array([[1, 3, 12],
                      [2, 3, 1]])  # 2 seeds x 3 queries
    out = per_query_metrics(ranks, ks=(1, 5))
    assert list(out) == ["Acc@1", "Acc@5", "NDCG@1", "NDCG@5", "MRR"]
    np.testing.assert_allclose(out["Acc@1"], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(out["Acc@5"], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(out["NDCG@5"], [(1 + 1 / np.log2(3)) / 2, 1 / np.log2(4), 0.5])
    np.testing.assert_allclose(out["MRR"], [(1 + 0.5) / 2, 1 / 3, (1 / 12 + 1) / 2])


def test_per_query_means_equal_ranking_metrics_averaged_over_seeds():
    rng = np.random.default_rng(0)
    ranks = rng.geometric(0.08, size=(4, 500))  # 4 seeds x 500 queries, ranks >= 1
    ks = (1, 5, 10, 20)
    ours = per_query_metrics(ranks, ks)
    per_seed = [ranking_metrics_from_ranks(row, ks) for row in ranks]
    assert list(ours) == list(per_seed[0])
    for name, values in ours.items():
        assert values.shape == (500,)
        assert values.mean() == pytest.approx(np.mean([m[name] for m in per_seed]), rel=1e-12)


def test_one_seed_may_be_given_as_a_vector():
    ranks = np.array([1, 4, 30])
    one = per_query_metrics(ranks)
    two = per_query_metrics(ranks[None, :])
    assert list(one) == ["Acc@1", "Acc@5", "Acc@10", "NDCG@1", "NDCG@5", "NDCG@10", "MRR"]
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    np.testing.assert_array_equal(seed_average(np.array([[1.0, 2.0], [3.0, 6.0]])), [2.0, 4.0])


@pytest.mark.parametrize("ranks, message", [
    (np.array([[0, 1, 2]]), ">= 1"),
    (np.array([[1.0, np.nan]]), ">= 1"),
    (np.zeros((2, 0)), "empty"),
    (np.ones((2, 2, 2)), r"\[S, Q\]"),
])
def test_per_query_metrics_rejects_bad_ranks(ranks, message):
    with pytest.raises(ValueError, match=message):
        per_query_metrics(ranks)


def test_per_query_metrics_rejects_bad_ks():
    with pytest.raises(ValueError, match="ks"):
        per_query_metrics(np.array([1, 2]), ks=(0, 5))
    with pytest.raises(ValueError, match="ks"):
        per_query_metrics(np.array([1, 2]), ks=())

# --------------------------------------------------------------------------- bootstrap intervals


def test_each_interval_equals_the_metrics_bootstrap_interval():
    rng = np.random.default_rng(1)
    values = {"Acc@10": (rng.random(300) < 0.3).astype(float), "MRR": rng.random(300) ** 3}
    table = bootstrap_intervals(values, level=0.9, num_resamples=700, seed=5)
    assert list(table.index) == ["Acc@10", "MRR"] and list(table.columns) == ["point", "low", "high"]
    for name, v in values.items():
        assert tuple(table.loc[name]) == pytest.approx(bootstrap_interval(v, level=0.9, num_resamples=700, seed=5),
                                                       rel=1e-12)


def test_metrics_share_the_resampled_queries():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    # y is an exact affine map of x: with shared resamples its interval is the mapped interval.
    table = bootstrap_intervals({"x": x, "y": 3 * x + 1}, num_resamples=500, seed=3)
    assert table.loc["y", "low"] == pytest.approx(3 * table.loc["x", "low"] + 1)
    assert table.loc["y", "high"] == pytest.approx(3 * table.loc["x", "high"] + 1)


def test_bootstrap_is_deterministic_and_the_seed_matters():
    rng = np.random.default_rng(3)
    values = {"a": rng.random(150), "b": rng.random(150)}
    first = bootstrap_intervals(values, num_resamples=300, seed=7)
    pd.testing.assert_frame_equal(first, bootstrap_intervals(values, num_resamples=300, seed=7))
    assert not first.equals(bootstrap_intervals(values, num_resamples=300, seed=8))


def test_block_size_does_not_change_the_result(monkeypatch):
    values = {"a": np.random.default_rng(4).random(1000)}
    wide = bootstrap_intervals(values, num_resamples=600, seed=1)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 3 * 1000 + 17)  # blocks of 3 resamples
    pd.testing.assert_frame_equal(wide, bootstrap_intervals(values, num_resamples=600, seed=1))


def test_intervals_cover_a_known_mean_at_about_their_level():
    rng = np.random.default_rng(10)
    hits = 0
    for trial in range(200):
        sample = rng.exponential(1.0, size=80)  # skewed, true mean 1
        row = bootstrap_intervals({"m": sample}, num_resamples=400, seed=trial).loc["m"]
        hits += row["low"] <= 1.0 <= row["high"]
    assert 0.90 <= hits / 200 <= 0.99


def test_bootstrap_intervals_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(11)
    sample = rng.gamma(2.0, size=400)
    ours = bootstrap_intervals({"m": sample}, num_resamples=4000, seed=0).loc["m"]
    theirs = sps.bootstrap((sample,), np.mean, method="percentile", n_resamples=4000,
                           random_state=np.random.default_rng(1)).confidence_interval
    width = ours["high"] - ours["low"]
    assert ours["low"] == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours["high"] == pytest.approx(theirs.high, abs=0.05 * width)


@pytest.mark.parametrize("kwargs, message", [
    ({"level": 95}, "level"), ({"level": 0.0}, "level"), ({"level": 1.0}, "level"),
    ({"num_resamples": 0}, "num_resamples"),
])
def test_bootstrap_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals({"a": np.ones(5)}, **kwargs)
    with pytest.raises(ValueError, match=message):
        paired_difference(np.ones(5), np.zeros(5), **kwargs)


def test_bootstrap_rejects_bad_values():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_intervals({})
    with pytest.raises(ValueError, match="empty"):
        bootstrap_intervals({"a": np.array([])})
    with pytest.raises(ValueError, match="same queries"):
        bootstrap_intervals({"a": np.ones(5), "b": np.ones(6)})
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_intervals({"a": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match=r"\[Q\]"):
        bootstrap_intervals({"a": np.ones((2, 5))})

# --------------------------------------------------------------------------- paired differences


def test_paired_interval_is_the_bootstrap_interval_of_the_differences():
    rng = np.random.default_rng(20)
    a, b = rng.random(250), rng.random(250)
    out = paired_difference(a, b, level=0.9, num_resamples=900, seed=4)
    assert set(out) == {"difference", "low", "high", "p_value"}
    point, low, high = bootstrap_interval(a - b, level=0.9, num_resamples=900, seed=4)
    assert (out["difference"], out["low"], out["high"]) == pytest.approx((point, low, high), rel=1e-12)


def test_paired_interval_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(21)
    shared = rng.normal(size=500)  # query difficulty both models share
    a, b = shared + rng.normal(0.1, 0.3, 500), shared + rng.normal(0.0, 0.3, 500)
    ours = paired_difference(a, b, num_resamples=4000, seed=0)
    theirs = sps.bootstrap((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True, vectorized=True,
                           method="percentile", n_resamples=4000,
                           random_state=np.random.default_rng(2)).confidence_interval
    width = ours["high"] - ours["low"]
    assert ours["low"] == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours["high"] == pytest.approx(theirs.high, abs=0.05 * width)
    # Pairing removes the shared difficulty: the interval is far narrower than an unpaired one.
    assert width < 0.5 * 2 * 1.96 * np.sqrt((a.var() + b.var()) / 500)


def _sign_flip_p_value(diff: np.ndarray, num_flips: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(num_flips, len(diff)))
    null = (signs * diff).mean(axis=1)
    return float((np.sum(np.abs(null) >= abs(diff.mean())) + 1) / (num_flips + 1))


@pytest.mark.parametrize("data_seed", [0, 1, 3, 4, 6])  # t-test p-values from 0.02 to 0.46
def test_paired_p_value_agrees_with_the_t_test_and_a_sign_flip_test(data_seed):
    rng = np.random.default_rng(data_seed)
    shared = rng.exponential(1.0, 2000)
    a, b = shared + rng.normal(0.06, 1.0, 2000), shared + rng.normal(0.0, 1.0, 2000)
    ours = paired_difference(a, b, num_resamples=4000, seed=1)["p_value"]
    t_test = sps.ttest_rel(a, b).pvalue
    flips = _sign_flip_p_value(a - b, 4000, seed=2)
    assert ours == pytest.approx(t_test, abs=0.01 + 0.1 * t_test)
    assert ours == pytest.approx(flips, abs=0.01 + 0.1 * flips)


def test_p_value_by_construction():
    # Every resampled difference is positive: p is the floor 2 / (R + 1).
    out = paired_difference(np.full(30, 2.0), np.ones(30), num_resamples=999, seed=0)
    assert out["difference"] == 1.0 and out["low"] == out["high"] == 1.0
    assert out["p_value"] == pytest.approx(2 / 1000)
    # No difference at all: every resample is exactly 0 and counts on both sides.
    same = paired_difference(np.arange(10.0), np.arange(10.0), num_resamples=200, seed=0)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}
    # Swapping the models flips the sign and keeps the p-value.
    rng = np.random.default_rng(5)
    a, b = rng.random(100), rng.random(100)
    ab, ba = paired_difference(a, b, seed=3), paired_difference(b, a, seed=3)
    assert ab["difference"] == pytest.approx(-ba["difference"])
    assert (ab["low"], ab["high"]) == pytest.approx((-ba["high"], -ba["low"]))
    assert ab["p_value"] == pytest.approx(ba["p_value"])


def test_p_value_is_about_uniform_under_the_null():
    rng = np.random.default_rng(40)
    p = [paired_difference(rng.normal(size=60), rng.normal(size=60), num_resamples=400, seed=i)["p_value"]
         for i in range(200)]
    assert 0.01 <= np.mean(np.array(p) < 0.05) <= 0.11
    assert 0.4 <= np.mean(p) <= 0.6


def test_paired_difference_is_deterministic_and_checks_shapes():
    rng = np.random.default_rng(6)
    a, b = rng.random(80), rng.random(80)
    assert paired_difference(a, b, seed=9) == paired_difference(a, b, seed=9)
    with pytest.raises(ValueError, match="same queries"):
        paired_difference(a, b[:-1])
    with pytest.raises(ValueError, match="empty"):
        paired_difference(np.array([]), np.array([]))

# --------------------------------------------------------------------------- Holm


@pytest.mark.parametrize("p", [
    [0.01], [0.01, 0.04, 0.03, 0.20], [0.5, 0.5, 0.5], [0.0, 1.0, 0.02, 0.02, 0.3],
    list(np.random.default_rng(7).random(25) ** 3),
])
def test_holm_matches_statsmodels(p):
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4 * 0.01, 3 * 0.03, max(0.09, 2 * 0.04), max(.., 0.2)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.20]), [0.04, 0.09, 0.09, 0.20])
    assert holm([0.3, 0.6]).tolist() == [0.6, 0.6]  # 2 * 0.3, then max(0.6, 0.6)
    assert holm([0.8, 0.9]).max() == 1.0


def test_holm_rejects_bad_input():
    for bad in ([], [0.1, 1.2], [-0.1], [np.nan]):
        with pytest.raises(ValueError, match="p_values"):
            holm(bad)

# --------------------------------------------------------------------------- pairwise comparisons


def _models(q: int = 600, seed: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    hard = rng.random(q)
    return {"popular": (hard + rng.normal(0, 0.2, q) < 0.3).astype(float),
            "markov": (hard + rng.normal(0, 0.2, q) < 0.45).astype(float),
            "gru": (hard + rng.normal(0, 0.2, q) < 0.5).astype(float),
            "twin": (hard + rng.normal(0, 0.2, q) < 0.5).astype(float)}


def test_pairwise_comparisons_against_the_best():
    values = _models()
    table = pairwise_comparisons(values, num_resamples=800, seed=2)
    best = max(values, key=lambda m: values[m].mean())
    assert set(table.index) == set(values) - {best} and (table["reference"] == best).all()
    assert list(table.columns) == ["reference", "mean", "difference", "low", "high", "p_value", "p_holm",
                                   "significant"]
    for model, row in table.iterrows():
        single = paired_difference(values[model], values[best], num_resamples=800, seed=2)
        assert row[["difference", "low", "high", "p_value"]].tolist() == pytest.approx(list(single.values()))
        assert row["mean"] == pytest.approx(values[model].mean())
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p_value"], method="holm")[1])
    assert (table["significant"] == (table["p_holm"] < 0.05)).all()
    assert table.loc["popular", "significant"] and table.loc["popular", "difference"] < 0
    pd.testing.assert_frame_equal(table, pairwise_comparisons(values, num_resamples=800, seed=2))


def test_pairwise_comparisons_for_errors_and_a_given_reference():
    rng = np.random.default_rng(60)
    errors = {"naive": rng.gamma(2.0, 1.0, 300), "sarima": rng.gamma(2.0, 0.8, 300), "gru": rng.gamma(2.0, 0.9, 300)}
    low_best = pairwise_comparisons(errors, higher_is_better=False, num_resamples=300)
    assert (low_best["reference"] == min(errors, key=lambda m: errors[m].mean())).all()
    given = pairwise_comparisons(errors, reference="naive", num_resamples=300)
    assert list(given.index) == ["sarima", "gru"]
    with pytest.raises(ValueError, match="reference 'lstm'"):
        pairwise_comparisons(errors, reference="lstm")
    with pytest.raises(ValueError, match="at least two models"):
        pairwise_comparisons({"naive": errors["naive"]})
    with pytest.raises(ValueError, match="alpha"):
        pairwise_comparisons(errors, alpha=5)

# --------------------------------------------------------------------------- seeds and segments


def test_seed_spread():
    out = seed_spread(np.array([0.30, 0.32, 0.31, 0.35]))
    assert out == pytest.approx({"mean": 0.32, "sd": np.std([0.30, 0.32, 0.31, 0.35], ddof=1), "min": 0.30,
                                 "max": 0.35})
    assert np.isnan(seed_spread(np.array([0.3]))["sd"])
    with pytest.raises(ValueError, match="empty"):
        seed_spread(np.array([]))


def test_segment_masks():
    hour = np.array([0, 5, 6, 11, 12, 17, 18, 23])
    seen = np.array([True, False] * 4)
    masks = segment_masks(hour, user_seen=seen, returning=~seen)
    assert list(masks) == ["all", "night", "morning", "afternoon", "evening", "seen users", "unseen users",
                           "return", "explore"]
    for band, expected in zip(["night", "morning", "afternoon", "evening"], range(4)):
        np.testing.assert_array_equal(np.flatnonzero(masks[band]), [2 * expected, 2 * expected + 1])
    bands = np.vstack([masks[b] for b in ("night", "morning", "afternoon", "evening")])
    assert (bands.sum(axis=0) == 1).all()  # every query in exactly one band
    np.testing.assert_array_equal(masks["unseen users"], ~seen)
    np.testing.assert_array_equal(masks["explore"], seen)
    assert list(segment_masks(hour)) == ["all", "night", "morning", "afternoon", "evening"]


@pytest.mark.parametrize("hour, kwargs, message", [
    (np.array([0, 24]), {}, "0..23"),
    (np.array([-1, 3]), {}, "0..23"),
    (np.array([1.5, 3.0]), {}, "whole hours"),
    (np.array([], dtype=int), {}, "non-empty"),
    (np.array([1, 2]), {"user_seen": np.array([True])}, "user_seen"),
    (np.array([1, 2]), {"returning": np.array([0, 1])}, "boolean"),
])
def test_segment_masks_rejects_bad_input(hour, kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment_masks(hour, **kwargs)


def test_segment_table_by_hand():
    values = {"a": np.array([1.0, 0.0, 1.0, 0.0]), "b": np.array([0.0, 0.0, 1.0, 1.0])}
    masks = {"all": np.ones(4, bool), "first two": np.array([True, True, False, False]), "none": np.zeros(4, bool)}
    table = segment_table(values, masks)
    assert list(table.index) == ["queries", "a", "b"] and list(table.columns) == ["all", "first two", "none"]
    assert table.loc["queries"].tolist() == [4, 2, 0]
    assert table.loc["a", "first two"] == 0.5 and table.loc["b", "first two"] == 0.0
    assert table.loc["b", "all"] == 0.5 and table[["none"]].iloc[1:].isna().all().all()
    with pytest.raises(ValueError, match="masks"):
        segment_table(values, {"x": np.ones(3, bool)})
    with pytest.raises(ValueError, match="masks"):
        segment_table(values, {})
    with pytest.raises(ValueError, match="rename"):
        segment_table({"queries": np.ones(4)}, masks)
