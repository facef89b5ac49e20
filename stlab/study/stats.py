"""The statistics of a multi-seed model comparison: per-query metrics, bootstrap intervals, paired
differences with Holm-adjusted p-values, the spread across seeds and results by segment.

Every model of the study is trained with ``S`` seeds and scored on the *same* ``Q`` test queries.
The unit of resampling is the query: a model's per-query results are first averaged over its seeds
(:func:`per_query_metrics` for ranks, :func:`seed_average` for forecast errors), and the
bootstrap then resamples queries, so an interval says how much the score would move on another
draw of test queries from the same population. Training noise is a second, separate source of
variation; :func:`seed_spread` reports it next to the interval rather than mixing the two.

Comparisons are *paired*: two models are scored on the same queries, so the bootstrap resamples
the per-query differences (:func:`paired_difference`), which removes the variation of queries
both models find easy or hard. Comparing every model with one reference is a family of tests;
:func:`pairwise_comparisons` adjusts their p-values with Holm's step-down method (:func:`holm`),
which controls the family-wise error rate without assuming the tests are independent.

All resampling uses a seeded :class:`numpy.random.Generator` and the same draws as
:func:`stlab.metrics.bootstrap_interval` (blocks of resampled query indices, so memory stays
bounded for ``Q`` of 10^4 and more): the same call gives the same numbers, and one metric's
interval here equals that function's. Forecast errors are per forecast origin; origins close in
time are correlated, and resampling them one by one makes an interval somewhat too narrow --
read it as a lower bound on the uncertainty.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd


#: Resampled indices drawn at once, in elements (``rows x Q``): 2^21 int64 are 16 MiB.
_CHUNK_ELEMENTS = 2**21

#: Hour-of-day bands of :func:`segment_masks`: name -> (first hour, last hour), inclusive.
HOUR_BANDS: dict[str, tuple[int, int]] = {"night": (0, 5), "morning": (6, 11), "afternoon": (12, 17),
                                          "evening": (18, 23)}

#: The default cut-offs of :func:`per_query_metrics` (the study reports @1, @5 and @10, a subset of
#: :data:`stlab.metrics.DEFAULT_KS`).
STUDY_KS: tuple[int, ...] = (1, 5, 10)

# --------------------------------------------------------------------------- checks


def _check_level(level: float, name: str = "level") -> None:
    if not (np.isfinite(level) and 0 < level < 1):
        raise ValueError(f"{name} must be strictly between 0 and 1, got {level!r}; "
                         f"pass a probability such as 0.95 (not a percentage such as 95)")


def _check_resamples(num_resamples: int) -> None:
    if isinstance(num_resamples, bool) or int(num_resamples) != num_resamples or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive integer, got {num_resamples!r}; 2000 is usual")


def _vector(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a non-empty, finite float64 ``[Q]`` array."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-query values [Q], got shape {array.shape}; "
                         "average over seeds first (seed_average or per_query_metrics)")
    if array.size == 0:
        raise ValueError(f"{name} is empty: there are no queries to evaluate")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                         "every query must have a result (drop the query for all models, or fix its score)")
    return array


def _matrix(values: Mapping[str, np.ndarray], what: str) -> tuple[list[str], np.ndarray]:
    """The names and a ``[M, Q]`` matrix of a non-empty mapping of equally long ``[Q]`` arrays."""
    if not isinstance(values, Mapping):
        raise ValueError(f"values must be a mapping of {what} name -> [Q] array, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"values is empty: give at least one {what} with its per-query values")
    names = list(values)
    rows = [_vector(values[name], f"values[{name!r}]") for name in names]
    lengths = {name: len(row) for name, row in zip(names, rows)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"every {what} must be scored on the same queries, but the lengths differ: {lengths}; "
                         "evaluate all models on one test set, in one query order")
    return names, np.vstack(rows)


# --------------------------------------------------------------------------- per-query values


def seed_average(values: np.ndarray) -> np.ndarray:
    """Per-query values averaged over seeds.

    Args:
        values: ``[S, Q]`` (one row per seed, the same queries in every row) or ``[Q]``.

    Returns:
        ``[Q]`` float64 mean over the seeds.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"values must be [S, Q] (seeds x queries) or [Q], got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"values of shape {array.shape} is empty: there must be at least one seed and one query")
    if not np.isfinite(array).all():
        raise ValueError(f"values holds {int((~np.isfinite(array)).sum())} NaN or infinite entries; "
                         "every seed must have a result for every query")
    return array.mean(axis=0)


def per_query_metrics(ranks: np.ndarray, ks: Sequence[int] = STUDY_KS) -> dict[str, np.ndarray]:
    """Each query's contribution to Acc@k, NDCG@k and MRR, averaged over seeds.

    For rank ``r`` (1 = best): Acc@k is ``1`` if ``r <= k`` else ``0``; NDCG@k is
    ``1 / log2(r + 1)`` if ``r <= k`` else ``0``; MRR is ``1 / r``. The mean of each ``[Q]`` array
    is the metric of :func:`stlab.metrics.ranking_metrics_from_ranks` averaged over the seeds.

    Args:
        ranks: ``[S, Q]`` ranks of the true next item (one row per seed, the same queries in
            every row), or ``[Q]`` for a single seed; all finite and ``>= 1``.
        ks: cut-offs, positive integers.

    Returns:
        ``{"Acc@1": [Q], ..., "NDCG@1": [Q], ..., "MRR": [Q]}`` in the order of
        :func:`~stlab.metrics.ranking_metrics_from_ranks`.
    """
    array = np.asarray(ranks, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"ranks must be [S, Q] (seeds x queries) or [Q], got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"ranks of shape {array.shape} is empty: there must be at least one seed and one query")
    if not np.isfinite(array).all() or (array < 1).any():
        raise ValueError("ranks must be finite and >= 1 (rank 1 = the best); got values in "
                         f"[{np.nanmin(array)}, {np.nanmax(array)}] -- use stlab.metrics.target_ranks, which is 1-based")
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"Acc@{k}"] = (array <= k).mean(axis=0)
    gain = 1.0 / np.log2(array + 1.0)
    for k in ks:
        out[f"NDCG@{k}"] = np.where(array <= k, gain, 0.0).mean(axis=0)
    out["MRR"] = (1.0 / array).mean(axis=0)
    return out


# --------------------------------------------------------------------------- bootstrap


def _index_blocks(num_queries: int, num_resamples: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first resample, [B, Q] resampled query indices)`` blocks, drawn as bootstrap_interval does."""
    rng = np.random.default_rng(seed)
    block = max(1, min(256, _CHUNK_ELEMENTS // num_queries))
    for start in range(0, num_resamples, block):
        yield start, rng.integers(0, num_queries, size=(min(block, num_resamples - start), num_queries))


def _bootstrap_means(matrix: np.ndarray, num_resamples: int, seed: int) -> np.ndarray:
    """``[M, R]`` means of the rows of ``matrix [M, Q]`` over ``R`` shared resamples of the queries."""
    means = np.empty((len(matrix), num_resamples))
    for start, rows in _index_blocks(matrix.shape[1], num_resamples, seed):
        for m, row in enumerate(matrix):  # one metric at a time: memory stays one block
            means[m, start:start + len(rows)] = row[rows].mean(axis=1)
    return means


def _percentiles(means: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2
    return np.quantile(means, tail, axis=-1), np.quantile(means, 1 - tail, axis=-1)


def bootstrap_intervals(values: Mapping[str, np.ndarray], *, level: float = 0.95, num_resamples: int = 2000,
                        seed: int = 0) -> pd.DataFrame:
    """Mean of each metric's per-query values and its percentile bootstrap interval.

    All metrics share one set of resampled query indices, so the intervals of, say, Acc@10 and
    MRR come from the same resampled test sets. Each row equals
    :func:`stlab.metrics.bootstrap_interval` of that metric with the same ``seed``.

    Args:
        values: metric name -> ``[Q]`` per-query values (for example :func:`per_query_metrics`).
        level: coverage of the interval, in ``(0, 1)``.
        num_resamples: bootstrap resamples of the queries.
        seed: seed of the resampling.

    Returns:
        One row per metric (index ``metric``), columns ``point``, ``low``, ``high``.
    """
    _check_level(level)
    _check_resamples(num_resamples)
    names, matrix = _matrix(values, "metric")
    low, high = _percentiles(_bootstrap_means(matrix, int(num_resamples), seed), level)
    return pd.DataFrame({"point": matrix.mean(axis=1), "low": low, "high": high},
                        index=pd.Index(names, name="metric"))


def _bootstrap_p_value(means: np.ndarray) -> float:
    at_or_below, at_or_above = int((means <= 0).sum()), int((means >= 0).sum())
    return float(min(1.0, 2 * (min(at_or_below, at_or_above) + 1) / (len(means) + 1)))


def paired_difference(a: np.ndarray, b: np.ndarray, *, level: float = 0.95, num_resamples: int = 2000,
                      seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of ``mean(a - b)`` over queries: the difference, its interval and a p-value.

    The bootstrap resamples queries and recomputes the mean difference ``R`` times. The interval
    is the percentile interval of those means. The two-sided p-value for "no difference" is

        ``p = min(1, 2 * (min(#{means <= 0}, #{means >= 0}) + 1) / (R + 1))``,

    twice the share of resampled differences on the far side of zero (a resample of exactly 0
    counts on both sides). It inverts the percentile interval: ``p`` is about the smallest
    ``1 - level`` at which the interval excludes 0, so ``p < 1 - level`` and "the interval
    excludes 0" agree up to the bootstrap's resolution. The ``+ 1`` keeps ``p`` away from an
    impossible 0; the smallest reportable value is ``2 / (R + 1)`` (about 0.001 for 2000).

    Args:
        a, b: ``[Q]`` per-query values of two models on the same queries, in the same order.
        level: coverage of the interval, in ``(0, 1)``.
        num_resamples: bootstrap resamples ``R``.
        seed: seed of the resampling.

    Returns:
        ``{"difference": mean(a - b), "low": ..., "high": ..., "p_value": ...}``.
    """
    _check_level(level)
    _check_resamples(num_resamples)
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold the same queries, got {len(a)} and {len(b)} values; "
                         "a paired comparison needs both models scored on one test set, in one query order")
    diff = a - b
    means = _bootstrap_means(diff[None, :], int(num_resamples), seed)[0]
    low, high = _percentiles(means, level)
    return {"difference": float(diff.mean()), "low": float(low), "high": float(high),
            "p_value": _bootstrap_p_value(means)}


# --------------------------------------------------------------------------- multiple comparisons


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate), in the input order.

    With the ``m`` p-values sorted ascending, the ``i``-th (0-based) becomes
    ``max over j <= i of min(1, (m - j) * p_(j))``: monotone in the raw p-values and capped at 1.
    Reject a hypothesis at level ``alpha`` when its adjusted p-value is below ``alpha``.

    Args:
        p_values: ``[m]`` raw p-values in ``[0, 1]``.

    Returns:
        ``[m]`` float64 adjusted p-values.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"p_values must be a non-empty 1-D sequence, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p_values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def pairwise_comparisons(values: Mapping[str, np.ndarray], *, reference: str | None = None,
                         higher_is_better: bool = True, level: float = 0.95, num_resamples: int = 2000,
                         seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Every model against a reference: paired bootstrap difference, interval, raw and Holm p-value.

    Each model ``m`` other than the reference gets :func:`paired_difference` of
    ``values[m] - values[reference]`` (all with the same ``seed``, so with the same resampled
    queries), and the raw p-values of the family are adjusted by :func:`holm`.

    Args:
        values: model name -> ``[Q]`` per-query values of one metric, all on the same queries.
        reference: the model everyone is compared with; default the best by mean (ties: the
            first in ``values``).
        higher_is_better: ``True`` for accuracy-like metrics (Acc@k, NDCG@k, MRR), ``False``
            for errors (MAE, RMSE); it only decides the default reference.
        level, num_resamples, seed: as :func:`paired_difference`.
        alpha: family-wise error rate of the ``significant`` column.

    Returns:
        One row per model other than the reference (index ``model``, in the order of
        ``values``), columns ``reference``, ``mean``, ``difference`` (model minus reference),
        ``low``, ``high``, ``p_value``, ``p_holm`` and ``significant`` (``p_holm < alpha``).
    """
    _check_level(alpha, "alpha")
    names, matrix = _matrix(values, "model")
    if len(names) < 2:
        raise ValueError(f"a comparison needs at least two models, got only {names}")
    means = matrix.mean(axis=1)
    if reference is None:
        reference = names[int(np.argmax(means) if higher_is_better else np.argmin(means))]
    elif reference not in values:
        raise ValueError(f"reference {reference!r} is not among the models {names}; pass one of them, or None "
                         "for the best by mean")
    base = matrix[names.index(reference)]
    rows = []
    for name, row, mean in zip(names, matrix, means):
        if name != reference:
            rows.append({"model": name, "reference": reference, "mean": float(mean),
                         **paired_difference(row, base, level=level, num_resamples=num_resamples, seed=seed)})
    table = pd.DataFrame(rows).set_index("model")
    table["p_holm"] = holm(table["p_value"].to_numpy())
    table["significant"] = table["p_holm"] < alpha
    return table


# --------------------------------------------------------------------------- seeds and segments


def seed_spread(metric_by_seed: np.ndarray) -> dict[str, float]:
    """Mean, sample standard deviation (``ddof=1``), minimum and maximum of a metric over seeds.

    Report it next to the query-bootstrap interval: the interval is about the test queries, this
    is about training randomness. With a single seed the standard deviation is ``nan``.

    Args:
        metric_by_seed: ``[S]`` one value of the metric per seed.
    """
    values = _vector(metric_by_seed, "metric_by_seed")
    sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "sd": sd, "min": float(values.min()), "max": float(values.max())}


def _mask(mask: np.ndarray, name: str, num_queries: int) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != (num_queries,):
        raise ValueError(f"{name} must be [Q] = [{num_queries}] like hour, got shape {array.shape}")
    if array.dtype != bool:
        raise ValueError(f"{name} must be boolean (one True/False per query), got dtype {array.dtype}; "
                         "convert it with .astype(bool) after checking its values")
    return array


def segment_masks(hour: np.ndarray, *, user_seen: np.ndarray | None = None,
                  returning: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean query masks of the segments the study reports.

    Args:
        hour: ``[Q]`` integer hour of day (0..23) of each query, in local time.
        user_seen: ``[Q]`` whether the query's user appears in the training data, or ``None``.
        returning: ``[Q]`` whether the true next place was visited by the user before (a return)
            rather than new to them (an exploration), or ``None``.

    Returns:
        ``{"all", "night" (0-5), "morning" (6-11), "afternoon" (12-17), "evening" (18-23)}``, plus
        ``"seen users"`` and ``"unseen users"`` when ``user_seen`` is given and ``"return"`` and
        ``"explore"`` when ``returning`` is given; each a ``[Q]`` boolean array.
    """
    hours = np.asarray(hour)
    if hours.ndim != 1 or hours.size == 0:
        raise ValueError(f"hour must be a non-empty 1-D array [Q], got shape {hours.shape}")
    if hours.dtype.kind not in "iu" and not (hours.dtype.kind == "f" and np.isfinite(hours).all()
                                             and (hours == np.round(hours)).all()):
        raise ValueError(f"hour must hold whole hours 0..23, got dtype {hours.dtype}; take timestamp.dt.hour")
    if hours.min() < 0 or hours.max() > 23:
        raise ValueError(f"hour must lie in 0..23, got values in [{hours.min()}, {hours.max()}]")
    masks: dict[str, np.ndarray] = {"all": np.ones(len(hours), dtype=bool)}
    for band, (first, last) in HOUR_BANDS.items():
        masks[band] = (hours >= first) & (hours <= last)
    if user_seen is not None:
        seen = _mask(user_seen, "user_seen", len(hours))
        masks["seen users"], masks["unseen users"] = seen, ~seen
    if returning is not None:
        back = _mask(returning, "returning", len(hours))
        masks["return"], masks["explore"] = back, ~back
    return masks


def segment_table(values: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Each model's mean per-query value within each segment, with the segment's query count.

    Args:
        values: model name -> ``[Q]`` per-query values of one metric.
        masks: segment name -> ``[Q]`` boolean mask (for example :func:`segment_masks`).

    Returns:
        Columns = segments; a first row ``queries`` with each segment's number of queries, then
        one row per model with its mean in the segment (``nan`` where the segment is empty).
    """
    names, matrix = _matrix(values, "model")
    if "queries" in values:
        raise ValueError("'queries' is the row of query counts in the table; rename that model")
    if not isinstance(masks, Mapping) or len(masks) == 0:
        raise ValueError("masks must be a non-empty mapping of segment name -> [Q] boolean mask "
                         "(see segment_masks)")
    counts, columns = {}, {}
    for segment, mask in masks.items():
        keep = _mask(mask, f"masks[{segment!r}]", matrix.shape[1])
        counts[segment] = float(keep.sum())
        columns[segment] = matrix[:, keep].mean(axis=1) if keep.any() else np.full(len(names), np.nan)
    table = pd.DataFrame(columns, index=pd.Index(names, name="model"))
    return pd.concat([pd.DataFrame(counts, index=pd.Index(["queries"], name="model")), table])


__all__ = [
    "HOUR_BANDS", "STUDY_KS", "bootstrap_intervals", "holm", "paired_difference", "pairwise_comparisons",
    "per_query_metrics", "seed_average", "seed_spread", "segment_masks", "segment_table",
]
