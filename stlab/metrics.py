"""Evaluation metrics: ranking metrics for the next visit, error metrics for forecasts.

Ranking metrics (chapter 4) take a score matrix ``[num_queries, num_items]`` -- every candidate
scored for every query, the book's *full ranking* protocol -- and the index of the item that
actually came next. Ties are broken pessimistically (a tied item ranks ahead of the target), so a
model that scores everything equally gets the worst rank, never a lucky one. Matrices are
processed in chunks, so memory stays bounded however many queries there are.

Forecast metrics (chapter 3) compare predicted and observed values; MASE scales the error by
the in-sample error of the seasonal naive forecast, so 1.0 means "as good as repeating last
season" on the training data (Hyndman & Koehler, 2006).

Introduced in chapters 3 (Counting behaviour over time) and 4 (Predicting the next visit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------- ranking

#: Default cut-offs of the ranking metrics.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)


def target_ranks(scores: np.ndarray, targets: np.ndarray, *, chunk_size: int = 2048) -> np.ndarray:
    """1-based rank of each target among all candidates (pessimistic on ties).

    Args:
        scores: ``[num_queries, num_items]`` higher is better; ``-inf`` removes a candidate.
        targets: ``[num_queries]`` index of the true next item for each query.
        chunk_size: queries handled at once (memory is ``chunk_size x num_items`` booleans).

    Returns:
        ``[num_queries]`` int64 ranks: 1 + the number of candidates scored at least as high as
        the target, other than the target itself.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [num_queries, num_items], got shape {scores.shape}")
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets must be [num_queries] = [{scores.shape[0]}], got shape {targets.shape}")
    if len(targets) and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"targets must index the {scores.shape[1]} candidates; got values in "
                         f"[{targets.min()}, {targets.max()}] -- map item ids to positions first")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; give excluded candidates -inf instead")
    ranks = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), chunk_size):
        block = scores[start:start + chunk_size]  # [B, P]
        rows = np.arange(len(block))
        target_score = block[rows, targets[start:start + chunk_size]][:, None]  # [B, 1]
        # Count every candidate scoring >= the target, then remove the target itself.
        ranks[start:start + chunk_size] = (block >= target_score).sum(axis=1)
    return ranks


def ranking_metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Acc@k (= Recall@k with one relevant item = HitRate@k), NDCG@k and MRR from ranks.

    With a single relevant item, NDCG@k is ``1 / log2(rank + 1)`` when ``rank <= k`` (the ideal
    DCG is 1), and MRR is the mean of ``1 / rank`` over all queries (no cut-off).
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        raise ValueError("no queries to evaluate")
    out: dict[str, float] = {}
    for k in ks:
        out[f"Acc@{k}"] = float((ranks <= k).mean())
    for k in ks:
        out[f"NDCG@{k}"] = float(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
    out["MRR"] = float((1.0 / ranks).mean())
    return out


def ranking_metrics(scores: np.ndarray, targets: np.ndarray, ks: Sequence[int] = DEFAULT_KS, *,
                    chunk_size: int = 2048) -> dict[str, float]:
    """Acc@k, NDCG@k and MRR of a full score matrix. See :func:`target_ranks`."""
    return ranking_metrics_from_ranks(target_ranks(scores, targets, chunk_size=chunk_size), ks)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """``[num_queries, k]`` indices of the ``k`` best candidates, best first (ties: lower index)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    # argpartition then a sort of only k columns: O(P + k log k) per row instead of O(P log P).
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (len(scores), 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


# --------------------------------------------------------------------------- classification

def binary_classification_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at ``threshold``) and ROC-AUC of binary predictions.

    ROC-AUC is computed from ranks (the Mann--Whitney statistic, ties counted as one half), so it
    needs no threshold; it is ``nan`` when only one class is present.
    """
    y_true = np.asarray(y_true).astype(bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score differ in shape: {y_true.shape} vs {y_score.shape}")
    y_pred = y_score >= threshold
    tp = float((y_pred & y_true).sum())
    fp = float((y_pred & ~y_true).sum())
    fn = float((~y_pred & y_true).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    if n_pos and n_neg:
        ranks = pd.Series(y_score).rank(method="average").to_numpy()
        auc = (ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    else:
        auc = float("nan")
    return {"accuracy": float((y_pred == y_true).mean()), "precision": precision, "recall": recall,
            "f1": f1, "roc_auc": float(auc)}


# --------------------------------------------------------------------------- forecasts

def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    return y_true, y_pred


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over the valid (non-NaN) observations."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.nanmean(np.abs(y_true - y_pred)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over the valid (non-NaN) observations."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.nanmean((y_true - y_pred) ** 2)))


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Symmetric MAPE in percent, ``200 |y - f| / (|y| + |f|)``; pairs where both are 0 count as 0."""
    y_true, y_pred = _pair(y_true, y_pred)
    denom = np.abs(y_true) + np.abs(y_pred)
    ratio = np.divide(2 * np.abs(y_true - y_pred), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.nanmean(ratio))


def mape(y_true: np.ndarray, y_pred: np.ndarray, *, min_true: float = 0.0) -> float:
    """Mean absolute percentage error (%) over valid, non-zero observations with ``|y_true| >= min_true``.

    MAPE divides by the actual value, so it is undefined at zero and explodes near it. Traffic
    papers report it on speeds (never near zero when observed); on counts, where zeros are real,
    give a ``min_true`` (say 2 passengers) and report how many points it kept.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    keep = np.isfinite(y_true) & (np.abs(y_true) > 0) & (np.abs(y_true) >= min_true)
    if not keep.any():
        return float("nan")
    return float(100 * np.mean(np.abs(y_true[keep] - y_pred[keep]) / np.abs(y_true[keep])))


def mae_mean_of_batches(y_true: np.ndarray, y_pred: np.ndarray, batch_size: int) -> float:
    """The *biased* masked MAE that averages per-batch means -- shown for comparison only.

    Some published traffic code divides each batch's masked error by that batch's number of valid
    points and then averages the batch values, so a batch with few valid readings weighs as much
    as a full one, and the last, smaller batch as much as any other. :func:`mae` instead averages
    over all valid points at once. Batches run along the first axis.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    means = []
    for begin in range(0, len(y_true), batch_size):
        error = np.abs(y_true[begin:begin + batch_size] - y_pred[begin:begin + batch_size])
        if np.isfinite(error).any():  # an all-missing batch would be NaN; that code skips it
            means.append(np.nanmean(error))
    return float(np.mean(means)) if means else float("nan")


def seasonal_naive_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast ``y[t] = y[t - season]`` (MASE's denominator)."""
    y_train = np.asarray(y_train, dtype=np.float64)
    if len(y_train) <= season:
        raise ValueError(f"MASE needs more than season = {season} training values, got {len(y_train)}")
    scale = float(np.nanmean(np.abs(y_train[season:] - y_train[:-season])))
    if not scale > 0:
        raise ValueError("the training series is constant at lag season, so MASE is undefined")
    return scale


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int) -> float:
    """Mean absolute scaled error: MAE divided by the seasonal naive in-sample MAE."""
    return mae(y_true, y_pred) / seasonal_naive_scale(y_train, season)


def interval_coverage(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of observations inside ``[lower, upper]`` (compare with the nominal level)."""
    y_true, lower = _pair(y_true, lower)
    _, upper = _pair(y_true, upper)
    valid = ~np.isnan(y_true)
    return float(((y_true >= lower) & (y_true <= upper))[valid].mean())


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int) -> dict[str, float]:
    """MAE, RMSE, MASE and sMAPE in one dictionary."""
    return {"MAE": mae(y_true, y_pred), "RMSE": rmse(y_true, y_pred),
            "MASE": mase(y_true, y_pred, y_train, season), "sMAPE": smape(y_true, y_pred)}


MetricFn = Callable[[np.ndarray, np.ndarray], float]

__all__ = [
    "DEFAULT_KS", "binary_classification_metrics", "forecast_metrics", "interval_coverage", "mae",
    "mae_mean_of_batches", "mape", "mase",
    "ranking_metrics", "ranking_metrics_from_ranks", "rmse", "seasonal_naive_scale", "smape",
    "target_ranks", "top_k",
]
