"""Ranking, classification and forecast metrics against hand computations and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from stlab.metrics import (binary_classification_metrics, forecast_metrics, interval_coverage, mae, mase,
                           ranking_metrics, rmse, smape, target_ranks, top_k)


def test_ranks_by_hand():
    scores = np.array([[0.1, 0.9, 0.5, 0.3],
                       [0.4, 0.1, 0.2, 0.3],
                       [0.2, 0.2, 0.2, 0.2]])
    # row 0: target 2 has one better (0.9) -> rank 2; row 1: target 0 is best -> 1;
    # row 2: all tied -> pessimistic rank 4.
    assert target_ranks(scores, np.array([2, 0, 1])).tolist() == [2, 1, 4]


def test_metrics_by_hand():
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.1, 0.2, 0.3]])
    out = ranking_metrics(scores, np.array([2, 0]), ks=(1, 2))
    assert out["Acc@1"] == pytest.approx(0.5)
    assert out["Acc@2"] == pytest.approx(1.0)
    assert out["NDCG@2"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert out["NDCG@1"] == pytest.approx(0.5)
    assert out["MRR"] == pytest.approx((0.5 + 1) / 2)


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 30))
    targets = rng.integers(0, 30, 50)
    relevance = np.zeros_like(scores)
    relevance[np.arange(50), targets] = 1
    ours = ranking_metrics(scores, targets, ks=(5, 10))
    for k in (5, 10):
        assert ours[f"NDCG@{k}"] == pytest.approx(skm.ndcg_score(relevance, scores, k=k))
        assert ours[f"Acc@{k}"] == pytest.approx(skm.top_k_accuracy_score(targets, scores, k=k, labels=range(30)))


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=(103, 17)).astype(float)  # many ties
    targets = rng.integers(0, 17, 103)
    assert np.array_equal(target_ranks(scores, targets, chunk_size=7), target_ranks(scores, targets))


def test_minus_inf_ranks_last_and_nan_is_rejected():
    scores = np.array([[-np.inf, 1.0, 2.0]])
    assert target_ranks(scores, np.array([0]))[0] == 3
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="index the 2 candidates"):
        target_ranks(np.array([[0.0, 1.0]]), np.array([2]))


def test_top_k_is_sorted_and_consistent_with_ranks():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(20, 40))
    best = top_k(scores, 5)
    assert np.array_equal(best, np.argsort(-scores, axis=1)[:, :5])
    ranks = target_ranks(scores, best[:, 0])
    assert (ranks == 1).all()
    assert top_k(scores[:, :3], 10).shape == (20, 3)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.2
    score = np.clip(0.3 * y + rng.random(500) * 0.8, 0, 1)
    score[:50] = 0.5  # ties for the AUC
    ours = binary_classification_metrics(y, score, threshold=0.5)
    pred = score >= 0.5
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert ours["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert np.isnan(binary_classification_metrics(np.ones(3), np.ones(3))["roc_auc"])


def test_forecast_metrics_by_hand_and_sklearn():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    f = np.array([1.5, 2.0, 2.0, 6.0])
    assert mae(y, f) == pytest.approx(skm.mean_absolute_error(y, f))
    assert rmse(y, f) == pytest.approx(np.sqrt(skm.mean_squared_error(y, f)))
    assert smape(np.array([0.0, 2.0]), np.array([0.0, 1.0])) == pytest.approx(100 * (0 + 2 / 3) / 2)
    train = np.array([1.0, 3.0, 1.0, 3.0, 2.0])  # lag-2 naive errors: 0, 0, 1 -> scale 1/3
    assert mase(y, f, train, season=2) == pytest.approx(mae(y, f) * 3)
    assert set(forecast_metrics(y, f, train, 2)) == {"MAE", "RMSE", "MASE", "sMAPE"}
    assert interval_coverage(y, y - 1, np.array([2.0, 3.0, 2.5, 4.5])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="more than season"):
        mase(y, f, train[:2], season=2)
    with pytest.raises(ValueError, match="differ in shape"):
        mae(y, f[:2])


def test_mape_skips_missing_and_small_actuals():
    from stlab.metrics import mape

    actual = np.array([10.0, 0.0, np.nan, 4.0])
    forecast = np.array([8.0, 1.0, 5.0, 5.0])
    assert mape(actual, forecast) == pytest.approx(100 * (0.2 + 0.25) / 2)  # the zero and the NaN left out
    assert mape(actual, forecast, min_true=5) == pytest.approx(20.0)
    assert mape(actual, forecast, min_true=4) == pytest.approx(100 * (0.2 + 0.25) / 2)  # "at least": 4 is kept
    with pytest.raises(ValueError, match="min_true=1"):
        mape(np.zeros(3), np.ones(3))


def test_mape_has_a_default_floor_that_tiny_actuals_cannot_blow_up():
    from stlab.metrics import DEFAULT_MAPE_FLOOR, mape, mape_label

    actual = np.array([1e-12, 0.4, 50.0, 60.0])  # failed detectors reading almost 0 mph
    forecast = np.array([55.0, 55.0, 45.0, 60.0])
    assert DEFAULT_MAPE_FLOOR == 1.0
    assert mape(actual, forecast) == pytest.approx(100 * (0.1 + 0.0) / 2)  # below 1 mph left out
    assert mape_label() == "MAPE % (|y| >= 1)" and mape_label(2.5) == "MAPE % (|y| >= 2.5)"
    for floor in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="min_true must be > 0"):
            mape(actual, forecast, min_true=floor)


@pytest.mark.parametrize("metric", ["mae", "rmse", "smape", "mape"])
def test_a_missing_forecast_raises_and_a_missing_actual_is_left_out(metric):
    import stlab.metrics as m

    fn = getattr(m, metric)
    actual = np.array([2.0, 4.0, np.nan, 8.0])
    forecast = np.array([3.0, 4.0, 1.0, 6.0])
    assert fn(actual, forecast) == pytest.approx(fn(actual[[0, 1, 3]], forecast[[0, 1, 3]]))
    for hole in (np.nan, np.inf):
        silent = forecast.copy()
        silent[3] = hole  # no forecast where the truth is 8: must not score better than 6
        with pytest.raises(ValueError, match="NaN or infinite at 1 of the 3 points"):
            fn(actual, silent)
    with pytest.raises(ValueError, match="no finite actual"):
        fn(np.full(3, np.nan), np.ones(3))
    with pytest.raises(ValueError, match="differ in shape"):
        fn(actual, forecast[:2])


def test_smape_does_not_count_a_missing_pair_as_perfect():
    actual = np.array([0.0, 2.0, np.nan])
    forecast = np.array([0.0, 1.0, np.nan])
    assert smape(actual, forecast) == pytest.approx(100 * (0 + 2 / 3) / 2)  # 0/0 perfect; the NaN pair left out
    with pytest.raises(ValueError, match="NaN or infinite"):
        smape(np.array([0.0, 2.0]), np.array([np.nan, 1.0]))


def test_mase_and_scaled_mae_mask_on_actuals_and_scales():
    from stlab.metrics import scaled_mae, seasonal_naive_scale

    train = np.array([1.0, 3.0, np.nan, 3.0, 2.0, 4.0])
    # pairs (t, t - 2): (nan, 1) (3, 3) (2, nan) (4, 3) -> finite errors 0 and 1 -> scale 0.5
    assert seasonal_naive_scale(train, 2) == pytest.approx(0.5)
    y = np.array([[1.0, 2.0], [np.nan, 4.0]])
    f = np.array([[2.0, 2.0], [0.0, 5.0]])
    assert scaled_mae(y, f, np.array([2.0, np.nan])) == pytest.approx(0.5)  # column 2 has no scale
    assert mase(y[:, 0], f[:, 0], train, 2) == pytest.approx(1 / 0.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        scaled_mae(y, np.where(np.isnan(y), 0.0, np.nan), 1.0)
    with pytest.raises(ValueError, match="finite, positive scale"):
        scaled_mae(y, f, np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="no pair of finite values"):
        seasonal_naive_scale(np.array([1.0, np.nan, np.nan, 2.0]), 2)
    with pytest.raises(ValueError, match="constant at lag"):
        seasonal_naive_scale(np.ones(5), 2)
    with pytest.raises(ValueError, match="season must be a positive integer"):
        seasonal_naive_scale(np.ones(5), 0)


def test_interval_coverage_masks_actuals_and_refuses_missing_ends():
    y = np.array([1.0, 2.0, np.nan, 4.0])
    lower = np.array([0.0, 2.5, np.nan, -np.inf])  # an open lower end is allowed
    upper = np.array([2.0, 3.0, np.nan, 5.0])
    assert interval_coverage(y, lower, upper) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="upper is NaN at 1 points"):
        interval_coverage(y, lower, np.array([2.0, np.nan, 1.0, 5.0]))
    with pytest.raises(ValueError, match="lower > upper"):
        interval_coverage(y, upper, lower.clip(-1))
    with pytest.raises(ValueError, match="differ in shape"):
        interval_coverage(y, lower[:2], upper)
    with pytest.raises(ValueError, match="no finite actual"):
        interval_coverage(np.full(2, np.nan), np.zeros(2), np.ones(2))


def test_mean_of_batch_means_differs_from_the_mean_over_valid_points():
    from stlab.metrics import mae, mae_mean_of_batches

    actual = np.array([[1.0, np.nan, np.nan], [1.0, 1.0, 1.0]])  # batch 1 holds 1 valid point, batch 2 three
    forecast = np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert mae(actual, forecast) == pytest.approx(2 / 4)
    assert mae_mean_of_batches(actual, forecast, batch_size=1) == pytest.approx((2 + 0) / 2)
    assert mae_mean_of_batches(actual, forecast, batch_size=2) == pytest.approx(mae(actual, forecast))
    with pytest.raises(ValueError, match="batch_size"):
        mae_mean_of_batches(actual, forecast, 0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        mae_mean_of_batches(actual, np.full_like(forecast, np.nan), 1)


def test_bootstrap_interval_covers_the_mean_at_its_level():
    from stlab.metrics import bootstrap_interval

    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        sample = rng.exponential(1.0, size=200)  # true mean 1
        _, low, high = bootstrap_interval(sample, num_resamples=500, seed=trial)
        covered += low <= 1.0 <= high
    assert 0.90 <= covered / 200 <= 0.99
    mean, low, high = bootstrap_interval(np.full(10, 3.0))
    assert mean == low == high == 3.0
    with pytest.raises(ValueError):
        bootstrap_interval(np.array([]))


def test_top_k_breaks_ties_by_lower_index_like_a_stable_sort():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 40)).astype(float)  # many ties at every boundary
    scores[5, 7] = np.nan  # NaN ranks last
    expected = np.argsort(np.where(np.isnan(scores), np.inf, -scores), axis=1, kind="stable")
    for k in (1, 3, 10, 39, 40, 60):
        np.testing.assert_array_equal(top_k(scores, k), expected[:, :min(k, 40)])
    np.testing.assert_array_equal(top_k(np.array([[1.0] + [0.5] * 30]), 5), [[0, 1, 2, 3, 4]])
