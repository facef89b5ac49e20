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
    assert np.isnan(mape(np.zeros(3), np.ones(3)))


def test_mean_of_batch_means_differs_from_the_mean_over_valid_points():
    from stlab.metrics import mae, mae_mean_of_batches

    actual = np.array([[1.0, np.nan, np.nan], [1.0, 1.0, 1.0]])  # batch 1 holds 1 valid point, batch 2 three
    forecast = np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert mae(actual, forecast) == pytest.approx(2 / 4)
    assert mae_mean_of_batches(actual, forecast, batch_size=1) == pytest.approx((2 + 0) / 2)
    assert mae_mean_of_batches(actual, forecast, batch_size=2) == pytest.approx(mae(actual, forecast))
    with pytest.raises(ValueError, match="batch_size"):
        mae_mean_of_batches(actual, forecast, 0)
