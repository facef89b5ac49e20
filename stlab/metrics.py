"""Evaluation metrics: ranking metrics for the next visit, error metrics for forecasts.

Ranking metrics (chapter 4) take a score matrix ``[num_queries, num_items]`` -- every candidate
scored for every query, the book's *full ranking* protocol -- and the index of the item that
actually came next. Ties are broken pessimistically (a tied item ranks ahead of the target), so a
model that scores everything equally gets the worst rank, never a lucky one. Matrices are
processed in chunks, so memory stays bounded however many queries there are.

Forecast metrics (chapter 3) compare predicted and observed values; MASE scales the error by
the in-sample error of the seasonal naive forecast, so 1.0 means "as good as repeating last
season" on the training data (Hyndman & Koehler, 2006). They score the points whose *actual*
is finite -- a missing reading is left out -- and refuse a forecast that is missing (``NaN``)
where the actual is observed, so a model cannot improve its score by saying nothing. MAPE
leaves out actuals below a floor (:data:`DEFAULT_MAPE_FLOOR`) and says so in its label.

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
    """``[num_queries, k]`` indices of the ``k`` best candidates, best first (ties: lower index).

    The same as ``np.argsort(-scores, axis=1, kind="stable")[:, :k]``, in O(P + k log k) per
    row instead of O(P log P).
    """
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    if k >= scores.shape[1]:
        return np.argsort(np.where(np.isnan(scores), np.inf, -scores) if scores.dtype.kind == "f" else -scores,
                          axis=1, kind="stable")
    # The k-th best value of each row; every strictly better candidate is in, and ties with it
    # are taken lowest index first (argpartition alone would pick among ties arbitrarily).
    negated = np.where(np.isnan(scores), np.inf, -scores) if scores.dtype.kind == "f" else -scores  # NaN ranks last
    kth = np.partition(negated, k - 1, axis=1)[:, k - 1 : k]  # [Q, 1]
    better = negated < kth  # [Q, P]
    tied = negated == kth
    room = k - better.sum(axis=1, keepdims=True)  # [Q, 1] places left for tied candidates
    chosen = better | (tied & (np.cumsum(tied, axis=1) <= room))
    part = np.nonzero(chosen)[1].reshape(len(scores), k)  # ascending index within each row
    order = np.lexsort((part, np.take_along_axis(negated, part, axis=1)), axis=1)
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
#: MAPE's default floor: actuals with ``|y| < DEFAULT_MAPE_FLOOR`` are left out (in the data's
#: unit: 1 mph, 1 passenger). A percentage of an actual near zero is unbounded -- one reading of
#: 0.001 mph forecast as 50 mph is an error of 5,000,000 % -- so every MAPE of the book is taken
#: over actuals of at least a stated floor, and tables name it (``MAPE % (|y| >= 1)``).
DEFAULT_MAPE_FLOOR: float = 1.0


def _pair(y_true: np.ndarray, y_pred: np.ndarray, *, what: str = "y_pred") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 arrays of the same shape and the mask of points to score: the finite actuals.

    A missing actual (``NaN``; ``inf`` is no reading either) is left out. A forecast that is not
    finite where the actual is raises: skipping it would reward a model for saying nothing.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and {what} differ in shape: {y_true.shape} vs {y_pred.shape}")
    valid = np.isfinite(y_true)
    bad = valid & ~np.isfinite(y_pred)
    if bad.any():
        first = np.unravel_index(np.flatnonzero(bad)[0], bad.shape) if bad.ndim else ()
        raise ValueError(f"{what} is NaN or infinite at {int(bad.sum())} of the {int(valid.sum())} points with an "
                         f"observed actual (first at index {tuple(int(i) for i in first)}); a metric cannot skip "
                         "them -- a model that gives no forecast must not score better than one that does")
    if not valid.any():
        raise ValueError(f"no finite actual among the {y_true.size} points: nothing to score")
    return y_true, y_pred, valid


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over the points whose actual is finite (a missing actual is left out).

    Raises:
        ValueError: shapes differ, ``y_pred`` is not finite where ``y_true`` is, or no actual is finite.
    """
    y_true, y_pred, valid = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true[valid] - y_pred[valid])))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over the points whose actual is finite (errors as :func:`mae`)."""
    y_true, y_pred, valid = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true[valid] - y_pred[valid]) ** 2)))


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Symmetric MAPE in percent, ``200 |y - f| / (|y| + |f|)``, over finite actuals.

    A pair where actual and forecast are both exactly 0 is a perfect forecast and counts as 0 %
    (the ratio is 0 / 0 there); a missing actual is left out; a non-finite forecast raises.
    """
    y_true, y_pred, valid = _pair(y_true, y_pred)
    y_true, y_pred = y_true[valid], y_pred[valid]
    denom = np.abs(y_true) + np.abs(y_pred)
    ratio = np.divide(2 * np.abs(y_true - y_pred), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.mean(ratio))


def mape_label(min_true: float = DEFAULT_MAPE_FLOOR) -> str:
    """The column name of a MAPE taken with floor ``min_true``: ``"MAPE % (|y| >= 1)"``."""
    return f"MAPE % (|y| >= {min_true:g})"


def mape(y_true: np.ndarray, y_pred: np.ndarray, *, min_true: float = DEFAULT_MAPE_FLOOR) -> float:
    """Mean absolute percentage error (%) over finite actuals with ``|y_true| >= min_true``.

    MAPE divides by the actual value, so it is undefined at zero and explodes near it: the floor
    ``min_true`` (default :data:`DEFAULT_MAPE_FLOOR`, in the data's unit) leaves out the actuals
    below it. Report it with the MAPE (:func:`mape_label`). On counts, where small values are
    real, a higher floor (say 2 passengers) changes the number a lot: say which one you used.

    Raises:
        ValueError: ``min_true`` is not positive; no actual reaches it; or as :func:`mae`.
    """
    if not min_true > 0:
        raise ValueError(f"min_true must be > 0, got {min_true!r}: MAPE divides by the actual, so actuals near 0 "
                         f"give unbounded percentages; keep the default min_true={DEFAULT_MAPE_FLOOR:g} or choose "
                         "a floor in the data's unit")
    y_true, y_pred, valid = _pair(y_true, y_pred)
    keep = valid & (np.abs(y_true) >= min_true)
    if not keep.any():
        raise ValueError(f"no actual is at least min_true={min_true:g} (of {int(valid.sum())} finite actuals), so "
                         "MAPE is undefined; lower min_true or report MAE")
    return float(100 * np.mean(np.abs(y_true[keep] - y_pred[keep]) / np.abs(y_true[keep])))


def mae_mean_of_batches(y_true: np.ndarray, y_pred: np.ndarray, batch_size: int) -> float:
    """The *biased* masked MAE that averages per-batch means -- shown for comparison only.

    Some published traffic code divides each batch's masked error by that batch's number of valid
    points and then averages the batch values, so a batch with few valid readings weighs as much
    as a full one, and the last, smaller batch as much as any other. :func:`mae` instead averages
    over all valid points at once. Batches run along the first axis; a batch without a finite
    actual is skipped, as that code does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    y_true, y_pred, valid = _pair(y_true, y_pred)
    means = []
    for begin in range(0, len(y_true), batch_size):
        keep = valid[begin:begin + batch_size]
        if keep.any():
            error = np.abs(y_true[begin:begin + batch_size] - y_pred[begin:begin + batch_size])
            means.append(error[keep].mean())
    return float(np.mean(means))


def seasonal_naive_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast ``y[t] = y[t - season]`` (MASE's denominator),
    over the pairs where both values are finite."""
    y_train = np.asarray(y_train, dtype=np.float64)
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season!r}")
    if len(y_train) <= season:
        raise ValueError(f"MASE needs more than season = {season} training values, got {len(y_train)}")
    error = np.abs(y_train[season:] - y_train[:-season])
    error = error[np.isfinite(error)]
    if error.size == 0:
        raise ValueError(f"the training series has no pair of finite values {season} steps apart, so MASE is undefined")
    scale = float(error.mean())
    if not scale > 0:
        raise ValueError("the training series is constant at lag season, so MASE is undefined")
    return scale


def scaled_mae(y_true: np.ndarray, y_pred: np.ndarray, scale: float | np.ndarray) -> float:
    """Mean of ``|y - f| / scale`` over finite actuals whose ``scale`` is finite and positive.

    ``scale`` is a number or one per series (broadcast along the last axis), MASE's denominator
    of each series (:func:`seasonal_naive_scale`); a series without one (``NaN``) is left out.
    Errors as :func:`mae`; also when no series has a scale.
    """
    y_true, y_pred, valid = _pair(y_true, y_pred)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), y_true.shape)
    keep = valid & np.isfinite(scale) & (scale > 0)
    if not keep.any():
        raise ValueError("no scored point has a finite, positive scale, so MASE is undefined")
    return float(np.mean(np.abs(y_true[keep] - y_pred[keep]) / scale[keep]))


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int) -> float:
    """Mean absolute scaled error: MAE divided by the seasonal naive in-sample MAE."""
    return scaled_mae(y_true, y_pred, seasonal_naive_scale(y_train, season))


def interval_coverage(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of the finite actuals inside ``[lower, upper]`` (compare with the nominal level).

    An infinite end is a one-sided interval and allowed; a ``NaN`` end where the actual is
    observed raises, as does ``lower > upper``.
    """
    y_true, lower = np.asarray(y_true, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    for name, end in (("lower", lower), ("upper", upper)):
        if end.shape != y_true.shape:
            raise ValueError(f"y_true and {name} differ in shape: {y_true.shape} vs {end.shape}")
    valid = np.isfinite(y_true)
    if not valid.any():
        raise ValueError(f"no finite actual among the {y_true.size} points: nothing to score")
    for name, end in (("lower", lower), ("upper", upper)):
        missing = valid & np.isnan(end)
        if missing.any():
            raise ValueError(f"{name} is NaN at {int(missing.sum())} points with an observed actual; an interval "
                             "that is not there cannot cover anything -- give -inf / inf for an open end")
    if (lower[valid] > upper[valid]).any():
        raise ValueError(f"lower > upper at {int((lower[valid] > upper[valid]).sum())} points")
    inside = (y_true >= lower) & (y_true <= upper)
    return float(inside[valid].mean())


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int) -> dict[str, float]:
    """MAE, RMSE, MASE and sMAPE in one dictionary."""
    return {"MAE": mae(y_true, y_pred), "RMSE": rmse(y_true, y_pred),
            "MASE": mase(y_true, y_pred, y_train, season), "sMAPE": smape(y_true, y_pred)}


MetricFn = Callable[[np.ndarray, np.ndarray], float]

def bootstrap_interval(values: np.ndarray, *, level: float = 0.95, num_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-query ``values`` and its percentile bootstrap interval (resampling queries).

    For a paired comparison, pass the per-query *differences* of two models on the same queries
    (for example ``1 / rank_a - 1 / rank_b`` for MRR): the interval then accounts for the
    queries both models find easy or hard.

    Returns:
        ``(mean, low, high)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {values.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = np.empty(num_resamples)
    for start in range(0, num_resamples, 256):  # bounded memory: 256 resamples at a time
        rows = rng.integers(0, len(values), size=(min(256, num_resamples - start), len(values)))
        means[start:start + len(rows)] = values[rows].mean(axis=1)
    tail = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


__all__ = [
    "bootstrap_interval",
    "DEFAULT_KS", "DEFAULT_MAPE_FLOOR", "binary_classification_metrics", "forecast_metrics", "interval_coverage", "mae",
    "mae_mean_of_batches", "mape", "mape_label", "mase", "scaled_mae",
    "ranking_metrics", "ranking_metrics_from_ranks", "rmse", "seasonal_naive_scale", "smape",
    "target_ranks", "top_k",
]
