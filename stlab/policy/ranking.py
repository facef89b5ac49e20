"""From scores to the list a user sees: top-k under a context, and re-ranking for diversity and
calibration.

Every function takes a score matrix ``[Q, P]`` (``model.score(queries)``: higher is better,
``-inf`` for a place a model cannot score) and returns lists ``[Q, k]`` of place indices, best
first; ``-1`` marks an empty position when too few places qualify.

* **Context.** :func:`within_distance` and :func:`active_in_slot` build ``[Q, P]`` masks of the
  places a query may be shown; :func:`masked_top_k` and :func:`top_k_nearby` rank inside them,
  with a stated policy when fewer than ``k`` qualify.
* **Similarity.** :class:`ItemSimilarity` and its kinds -- same category, nearby, cosine of
  embeddings, or a given matrix -- compute similarity only for the pairs asked for.
* **Re-ranking** inside a candidate pool (the top ``N`` by score, or any ``[Q, N]`` pool), with one
  ``trade_off`` in ``[0, 1]`` whose 0 gives back the ranking by score:
  :func:`mmr_rerank`, maximal marginal relevance (Carbonell & Goldstein, 1998), and
  :func:`calibrated_rerank`, calibration to the user's category mix (Steck, 2018).

Introduced in chapter 13 (Recommending and guiding).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from stlab.features import haversine_km
from stlab.metrics import top_k
from stlab.policy.patterns import DaySlots, _column
from stlab.protocol import NextVisitQueries


# --------------------------------------------------------------------------- checks shared by the package

def check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """``scores`` as a float64 ``[Q, P]`` array without ``NaN``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"{name} must be [num_queries, num_places], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN; give a place that must not be shown -inf instead")
    return scores


def check_k(k: int, num_items: int, name: str = "k") -> int:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= num_items:
        raise ValueError(f"{name} must be an integer in 1..{num_items} (the number of places), got {k!r}")
    return int(k)


def check_lists(lists: np.ndarray, num_items: int, name: str = "lists") -> np.ndarray:
    """``[Q, k]`` int64 place indices, ``-1`` allowed as an empty position."""
    lists = np.asarray(lists)
    if lists.ndim != 2:
        raise ValueError(f"{name} must be [num_queries, k] place indices, got shape {lists.shape}; "
                         "stack the lists (model.recommend returns this shape)")
    if lists.size and not np.issubdtype(lists.dtype, np.integer):
        raise ValueError(f"{name} must hold integer place indices, got dtype {lists.dtype}")
    if lists.size and (lists.min() < -1 or lists.max() >= num_items):
        raise ValueError(f"{name} must hold indices in [0, {num_items}) or -1 for an empty position, got values in "
                         f"[{lists.min()}, {lists.max()}]; map place ids to positions first")
    return lists.astype(np.int64)


def rank_pool(key: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """``[Q, k]`` positions of the ``k`` valid entries with the highest key (ties: lower position).

    A valid entry whose key is ``-inf`` still ranks, after every finite one; positions left
    without a valid entry are ``-1``.
    """
    key = np.where(valid, key, -np.inf)
    key[valid & np.isneginf(key)] = -np.finfo(np.float64).max  # below any finite key, above the invalid
    order = top_k(key, k) if key.shape[1] else np.zeros((len(key), 0), dtype=np.int64)
    if order.shape[1] < k:
        order = np.pad(order, ((0, 0), (0, k - order.shape[1])), constant_values=-1)
    return np.where(np.arange(k)[None, :] < valid.sum(axis=1)[:, None], order, -1)


def candidate_pool(scores: np.ndarray, pool: int | np.ndarray) -> np.ndarray:
    """``[Q, N]`` candidates: the top ``pool`` places by score, or a given ``[Q, N]`` pool (``-1``
    for an empty position, e.g. from :func:`top_k_nearby` with ``fill="none"``)."""
    scores = check_scores(scores)
    if isinstance(pool, (int, np.integer)):
        return top_k(scores, check_k(pool, scores.shape[1], "pool"))
    pool = check_lists(pool, scores.shape[1], "pool")
    if len(pool) != len(scores):
        raise ValueError(f"pool has {len(pool)} rows but scores {len(scores)}; give one pool per query")
    return pool


# --------------------------------------------------------------------------- similarity

class ItemSimilarity(ABC):
    """Similarity of places, usually in ``[0, 1]`` (1: interchangeable), for the pairs asked for.

    Only ``[Q, N, M]`` blocks are computed, never the whole ``[P, P]`` matrix, so a catalogue of
    tens of thousands of places costs nothing until pairs are compared.
    """

    @property
    @abstractmethod
    def num_items(self) -> int:
        """``P``, the places it knows."""

    @abstractmethod
    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``[Q, N, M]`` similarity of places ``a`` ``[Q, N]`` to places ``b`` ``[Q, M]`` (indices)."""

    def among(self, items: np.ndarray) -> np.ndarray:
        """``[Q, N, N]`` similarity of each pair of places in each row of ``items``."""
        return self.between(items, items)

    def matrix(self) -> np.ndarray:
        """``[P, P]`` every pair (for small catalogues and plots)."""
        every = np.arange(self.num_items)[None, :]
        return self.between(every, every)[0]


def _rows(items: np.ndarray) -> np.ndarray:
    """Place indices with empty positions (-1) sent to 0: callers mask those positions."""
    return np.maximum(np.asarray(items, dtype=np.int64), 0)


@dataclass(frozen=True, eq=False)
class MatrixSimilarity(ItemSimilarity):
    """A given ``[P, P]`` similarity matrix."""

    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != values.shape[1] or not np.isfinite(values).all():
            raise ValueError(f"a similarity matrix must be a finite square [P, P] array, got shape {values.shape}")
        object.__setattr__(self, "values", values)

    @property
    def num_items(self) -> int:
        return len(self.values)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.values[_rows(a)[:, :, None], _rows(b)[:, None, :]]


@dataclass(frozen=True, eq=False)
class CategorySimilarity(ItemSimilarity):
    """1 for two places of the same category, else 0 (``categories``: ``[P]`` labels)."""

    categories: np.ndarray

    def __post_init__(self) -> None:
        codes, _ = pd.factorize(pd.Series(np.asarray(self.categories)))
        if (codes < 0).any():
            raise ValueError("every place needs a category; fill missing ones (e.g. with 'Other') first")
        object.__setattr__(self, "categories", codes.astype(np.int64))

    @property
    def num_items(self) -> int:
        return len(self.categories)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        c = self.categories
        return (c[_rows(a)][:, :, None] == c[_rows(b)][:, None, :]).astype(np.float64)


@dataclass(frozen=True, eq=False)
class DistanceSimilarity(ItemSimilarity):
    """``exp(-d / scale_km)`` for places ``d`` km apart: 1 at the same spot, 0.37 at ``scale_km``."""

    lat: np.ndarray
    lon: np.ndarray
    scale_km: float = 1.0

    def __post_init__(self) -> None:
        lat, lon = np.asarray(self.lat, dtype=np.float64), np.asarray(self.lon, dtype=np.float64)
        if lat.shape != lon.shape or lat.ndim != 1 or not self.scale_km > 0:
            raise ValueError("DistanceSimilarity needs 1-D lat and lon of one shape and a positive scale_km")
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lon", lon)

    @property
    def num_items(self) -> int:
        return len(self.lat)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = _rows(a), _rows(b)
        d = haversine_km(self.lat[a][:, :, None], self.lon[a][:, :, None], self.lat[b][:, None, :],
                         self.lon[b][:, None, :])
        return np.exp(-d / self.scale_km)


@dataclass(frozen=True, eq=False)
class EmbeddingSimilarity(ItemSimilarity):
    """Cosine similarity of ``[P, D]`` place embeddings or feature rows (0 for an all-zero row)."""

    embeddings: np.ndarray

    def __post_init__(self) -> None:
        X = np.asarray(self.embeddings, dtype=np.float64)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ValueError(f"embeddings must be a finite [P, D] array, got shape {X.shape}")
        norm = np.linalg.norm(X, axis=1, keepdims=True)
        object.__setattr__(self, "embeddings", np.divide(X, norm, out=np.zeros_like(X), where=norm > 0))

    @property
    def num_items(self) -> int:
        return len(self.embeddings)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        X = self.embeddings
        return np.einsum("qnd,qmd->qnm", X[_rows(a)], X[_rows(b)])


def as_similarity(similarity: ItemSimilarity | np.ndarray, num_items: int) -> ItemSimilarity:
    """An :class:`ItemSimilarity` from itself or from a ``[P, P]`` matrix, checked against ``P``."""
    if not isinstance(similarity, ItemSimilarity):
        similarity = MatrixSimilarity(similarity)
    if similarity.num_items != num_items:
        raise ValueError(f"the similarity knows {similarity.num_items} places but the scores rank {num_items}")
    return similarity


# --------------------------------------------------------------------------- context

def query_origin(queries: NextVisitQueries, pois: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``([Q], [Q])`` latitude and longitude of each query's previous place (``NaN`` without one)."""
    prev = queries.prev_poi
    lat = pois["lat"].to_numpy(dtype=np.float64)[np.maximum(prev, 0)]
    lon = pois["lon"].to_numpy(dtype=np.float64)[np.maximum(prev, 0)]
    return np.where(prev >= 0, lat, np.nan), np.where(prev >= 0, lon, np.nan)


def place_distances(origin_lat: np.ndarray, origin_lon: np.ndarray, poi_lat: np.ndarray,
                    poi_lon: np.ndarray) -> np.ndarray:
    """``[Q, P]`` km from each query's origin to each place (``NaN`` for a query without origin)."""
    origin_lat, origin_lon = np.asarray(origin_lat, dtype=np.float64), np.asarray(origin_lon, dtype=np.float64)
    poi_lat, poi_lon = np.asarray(poi_lat, dtype=np.float64), np.asarray(poi_lon, dtype=np.float64)
    if origin_lat.ndim != 1 or origin_lat.shape != origin_lon.shape:
        raise ValueError(f"origin_lat and origin_lon must be [Q] arrays, got {origin_lat.shape}, {origin_lon.shape}")
    if poi_lat.ndim != 1 or poi_lat.shape != poi_lon.shape:
        raise ValueError(f"poi_lat and poi_lon must be [P] arrays, got {poi_lat.shape}, {poi_lon.shape}")
    return haversine_km(origin_lat[:, None], origin_lon[:, None], poi_lat[None, :], poi_lon[None, :])


def within_distance(origin_lat: np.ndarray, origin_lon: np.ndarray, poi_lat: np.ndarray, poi_lon: np.ndarray,
                    max_km: float | np.ndarray) -> np.ndarray:
    """``[Q, P]`` whether each place lies within ``max_km`` (a number or ``[Q]``) of the query's
    origin. A query without an origin (``NaN``) may be shown every place."""
    return _within_budget(place_distances(origin_lat, origin_lon, poi_lat, poi_lon), max_km)


def _within_budget(distance: np.ndarray, max_km: float | np.ndarray) -> np.ndarray:
    """:func:`within_distance` from the ``[Q, P]`` distances (``NaN``: no origin)."""
    max_km = np.asarray(max_km, dtype=np.float64)
    if (max_km < 0).any() or np.isnan(max_km).any():
        raise ValueError("max_km must be non-negative (np.inf for no budget)")
    if max_km.ndim > 1 or (max_km.ndim == 1 and max_km.shape != (len(distance),)):
        raise ValueError(f"max_km must be a number or one budget per query, [{len(distance)}], got {max_km.shape}")
    budget = max_km[:, None] if max_km.ndim == 1 else max_km
    return np.isnan(distance) | (distance <= budget)


def slot_activity(events: pd.DataFrame, num_pois: int, slots: DaySlots = DaySlots(), *, poi_column: str = "poi",
                  hour_column: str = "hour") -> np.ndarray:
    """``[S, P]`` check-ins of each place in each slot of the day (from ``task.train``): where
    there is no check-in in a slot, the place is presumably closed or unvisited then."""
    poi = _column(events, poi_column, "place")
    if poi.size and (poi.min() < 0 or poi.max() >= num_pois):
        raise ValueError(f"place indices must lie in [0, {num_pois}), got values in [{poi.min()}, {poi.max()}]")
    counts = np.zeros((slots.num_slots, num_pois))
    np.add.at(counts, (slots.slot_of(_column(events, hour_column, "local hour")), poi), 1.0)
    return counts


def active_in_slot(activity: np.ndarray, slot: np.ndarray, min_count: float = 1.0) -> np.ndarray:
    """``[Q, P]`` whether each place had at least ``min_count`` check-ins in the query's slot.

    Args:
        activity: ``[S, P]`` from :func:`slot_activity` (or opening hours as 0/1 per slot).
        slot: ``[Q]`` each query's slot (``DaySlots.slot_of(queries.hour)``).
    """
    activity, slot = np.asarray(activity, dtype=np.float64), np.asarray(slot)
    if activity.ndim != 2:
        raise ValueError(f"activity must be [num_slots, num_places], got shape {activity.shape}")
    if slot.ndim != 1 or (slot.size and (slot.min() < 0 or slot.max() >= len(activity))):
        raise ValueError(f"slot must be a [Q] array of slots in 0..{len(activity) - 1}")
    return activity[slot] >= min_count


def masked_top_k(scores: np.ndarray, allowed: np.ndarray, k: int, *, fill: bool = True,
                 fallback: np.ndarray | None = None, eligible: np.ndarray | None = None) -> np.ndarray:
    """``[Q, k]`` the best ``allowed`` places by score; if fewer than ``k`` are allowed, a stated fill.

    Allowed places come first, by score. When a query has fewer than ``k`` and ``fill`` is on, the
    remaining positions take places that are ``eligible`` but not allowed, highest ``fallback``
    first (default: the score); positions still empty, or all of them with ``fill=False``, hold -1.

    Args:
        scores: ``[Q, P]``.
        allowed: ``[Q, P]`` bool, the places each query may be shown.
        fallback: ``[Q, P]`` order of the fill (e.g. ``-distance`` for the nearest first).
        eligible: ``[Q, P]`` bool, places the fill may use (default every place): a hard limit,
            such as "open at this hour", that the fill never relaxes.
    """
    scores = check_scores(scores)
    k = check_k(k, scores.shape[1])
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape != scores.shape:
        raise ValueError(f"allowed must have the shape of scores {scores.shape}, got {allowed.shape}")
    first = rank_pool(scores, allowed, k)
    if not fill:
        return first
    fallback = scores if fallback is None else check_scores(fallback, "fallback")
    eligible = np.ones_like(allowed) if eligible is None else np.asarray(eligible, dtype=bool)
    if fallback.shape != scores.shape or eligible.shape != scores.shape:
        raise ValueError(f"fallback and eligible must have the shape of scores {scores.shape}")
    second = rank_pool(fallback, eligible & ~allowed, k)
    taken = np.minimum(allowed.sum(axis=1), k)[:, None]  # [Q, 1] positions filled by allowed places
    position = np.arange(k)[None, :]
    from_second = np.take_along_axis(second, np.clip(position - taken, 0, k - 1), axis=1)
    return np.where(position < taken, first, from_second)


def top_k_nearby(scores: np.ndarray, k: int, *, origin_lat: np.ndarray | None = None,
                 origin_lon: np.ndarray | None = None, poi_lat: np.ndarray | None = None,
                 poi_lon: np.ndarray | None = None, max_km: float | np.ndarray,
                 allowed: np.ndarray | None = None,
                 fill: Literal["nearest", "best", "none"] = "nearest",
                 distances: np.ndarray | None = None) -> np.ndarray:
    """``[Q, k]`` the best places within ``max_km`` of each query's origin.

    Policy when fewer than ``k`` lie within the budget: ``"nearest"`` fills the list with the
    nearest places beyond it (the smallest detour), ``"best"`` with the best-scoring ones beyond
    it, ``"none"`` leaves the positions empty (-1). ``allowed`` (``[Q, P]``, e.g. from
    :func:`active_in_slot`) is a hard limit that no fill relaxes. Origins from
    :func:`query_origin`; a query without one is not limited by distance. ``distances`` (``[Q, P]``
    from :func:`place_distances`) replaces the four coordinate arrays when already computed, for
    instance to try several budgets.
    """
    if fill not in ("nearest", "best", "none"):
        raise ValueError(f"fill must be 'nearest', 'best' or 'none', got {fill!r}")
    scores = check_scores(scores)
    if distances is None:
        if any(a is None for a in (origin_lat, origin_lon, poi_lat, poi_lon)):
            raise ValueError("give origin_lat, origin_lon, poi_lat and poi_lon, or the distances")
        distances = place_distances(origin_lat, origin_lon, poi_lat, poi_lon)
    distance = np.asarray(distances, dtype=np.float64)
    if distance.shape != scores.shape:
        raise ValueError(f"{distance.shape[0]} origins and {distance.shape[1]} places do not match scores "
                         f"{scores.shape}")
    near = _within_budget(distance, max_km)
    hard = np.ones_like(near) if allowed is None else np.asarray(allowed, dtype=bool)
    fallback = -np.nan_to_num(distance) if fill == "nearest" else scores
    return masked_top_k(scores, near & hard, k, fill=fill != "none", fallback=fallback, eligible=hard)


# --------------------------------------------------------------------------- re-ranking

def _check_trade_off(trade_off: float) -> float:
    if not 0 <= trade_off <= 1:
        raise ValueError(f"trade_off must lie in [0, 1] (0: rank by score only), got {trade_off}")
    return float(trade_off)


def _relevance(scores: np.ndarray, pool: np.ndarray, normalise: bool) -> np.ndarray:
    """``[Q, N]`` finite relevance of the pool: min-max scaled per query when ``normalise``.

    Scaling to ``[0, 1]`` puts relevance on the scale of similarities and of each other, so one
    ``trade_off`` means the same for a model whose scores are counts and one whose are logits.
    A score of ``-inf`` becomes the query's lowest relevance.
    """
    rel = np.take_along_axis(scores, _rows(pool), axis=1)
    finite = np.isfinite(rel) & (pool >= 0)
    low = np.where(finite, rel, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, rel, -np.inf).max(axis=1, keepdims=True)
    low, high = np.where(np.isfinite(low), low, 0.0), np.where(np.isfinite(high), high, 0.0)
    if normalise:
        span = np.where(high > low, high - low, 1.0)
        return np.where(finite, (rel - low) / span, 0.0)
    return np.where(finite, rel, low - 1.0)


def mmr_rerank(scores: np.ndarray, similarity: ItemSimilarity | np.ndarray, k: int, *, trade_off: float = 0.5,
               pool: int | np.ndarray = 50, normalise: bool = True, batch_size: int = 512) -> np.ndarray:
    """``[Q, k]`` lists chosen greedily by maximal marginal relevance (Carbonell & Goldstein, 1998).

    Each step adds the pool place ``i`` that maximises::

        (1 - trade_off) * rel(i) - trade_off * max_{j already in the list} sim(i, j)

    (the paper's ``lambda`` is ``1 - trade_off``). The first place is the most relevant; ties go
    to the better-scored place, so ``trade_off=0`` gives back the ranking by score.

    Args:
        scores: ``[Q, P]``.
        similarity: an :class:`ItemSimilarity` or a ``[P, P]`` matrix.
        k: list length.
        trade_off: (float) weight of redundancy, in ``[0, 1]``.
        pool: the candidates (see :func:`candidate_pool`): the top ``N`` by score, or ``[Q, N]``.
        normalise: min-max scale relevance to ``[0, 1]`` within each query's pool, the scale of
            similarities, so one ``trade_off`` means the same whatever the model's score scale.
        batch_size: queries per block (memory ``batch_size x N x N``).
    """
    scores, trade_off = check_scores(scores), _check_trade_off(trade_off)
    k, similarity = check_k(k, scores.shape[1]), as_similarity(similarity, scores.shape[1])
    pool = candidate_pool(scores, pool)
    out = np.full((len(scores), k), -1, dtype=np.int64)
    for start in range(0, len(scores), batch_size):
        block = pool[start:start + batch_size]  # [B, N]
        rel = _relevance(scores[start:start + batch_size], block, normalise)
        sim = similarity.among(block)  # [B, N, N]
        rows = np.arange(len(block))
        available = block >= 0
        redundancy = np.zeros(block.shape)  # max similarity to the list so far (0 while it is empty)
        for step in range(min(k, block.shape[1])):
            objective = np.where(available, (1 - trade_off) * rel - trade_off * redundancy, -np.inf)
            pick = objective.argmax(axis=1)  # first maximum: the better-scored place
            has = available[rows, pick]
            out[start + rows[has], step] = block[rows[has], pick[has]]
            available[rows, pick] = False
            picked_sim = sim[rows, pick, :]  # [B, N]
            redundancy = picked_sim if step == 0 else np.maximum(redundancy, picked_sim)
    return out


def _category_matrix(item_categories: np.ndarray, num_categories: int | None = None) -> np.ndarray:
    """``[P, C]`` category distribution of each place from ``[P]`` integer codes or a ``[P, C]`` matrix."""
    cats = np.asarray(item_categories)
    if cats.ndim == 2:
        cats = cats.astype(np.float64)
        if (cats < 0).any() or not np.allclose(cats.sum(axis=1), 1.0):
            raise ValueError("a [P, C] item_categories matrix must hold non-negative rows that sum to 1")
        return cats
    if cats.ndim != 1 or (cats.size and (not np.issubdtype(cats.dtype, np.integer) or cats.min() < 0)):
        raise ValueError("item_categories must be [P] non-negative integer codes (pd.factorize the names) or a "
                         "[P, C] matrix of category shares")
    C = int(cats.max()) + 1 if num_categories is None else int(num_categories)
    if cats.size and cats.max() >= C:
        raise ValueError(f"a category code is {int(cats.max())} but num_categories is {C}")
    return np.eye(C)[cats]


def category_distribution(items: np.ndarray, item_categories: np.ndarray, *, num_categories: int | None = None,
                          weights: np.ndarray | None = None) -> np.ndarray:
    """``[Q, C]`` category mix of each row of places (``-1`` entries skipped): Steck's ``p(c | u)``
    from a user's history, or ``q(c | list)`` of a list. A row without places is all zeros.

    Args:
        items: ``[Q, L]`` place indices (``queries.history_poi``, or lists).
        item_categories: ``[P]`` integer codes or ``[P, C]`` shares.
        weights: ``[Q, L]`` weight of each entry (e.g. recency); default 1.
    """
    M = _category_matrix(item_categories, num_categories)
    items = check_lists(items, len(M), "items")
    w = (items >= 0).astype(np.float64)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != items.shape or (weights < 0).any():
            raise ValueError(f"weights must be non-negative with the shape of items {items.shape}")
        w = w * weights
    mass = np.einsum("ql,qlc->qc", w, M[_rows(items)])
    total = mass.sum(axis=1, keepdims=True)
    return np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)


def _check_target(target: np.ndarray, num_queries: int, num_categories: int) -> np.ndarray:
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (num_queries, num_categories) or (target < 0).any() or not np.isfinite(target).all():
        raise ValueError(f"target must be a non-negative [Q, C] = [{num_queries}, {num_categories}] array "
                         f"(category_distribution of the histories), got shape {target.shape}")
    total = target.sum(axis=1, keepdims=True)
    return np.divide(target, total, out=np.zeros_like(target), where=total > 0)


def _kl(p: np.ndarray, q: np.ndarray, alpha: float) -> np.ndarray:
    """``KL(p || (1 - alpha) q + alpha p)`` over the last axis; 0 where ``p`` is all zeros."""
    p, q = np.broadcast_arrays(p, q)
    q_mix = (1 - alpha) * q + alpha * p
    ratio = np.divide(p, q_mix, out=np.ones_like(p), where=p > 0)
    return (p * np.log(ratio)).sum(axis=-1)


def miscalibration(lists: np.ndarray, target: np.ndarray, item_categories: np.ndarray, *,
                   alpha: float = 0.01) -> np.ndarray:
    """``[Q]`` Steck's miscalibration ``KL(p || q~)`` of each list: ``p`` the target category mix,
    ``q~ = (1 - alpha) q + alpha p`` the list's mix blended so the divergence stays finite. ``NaN``
    for a query without target."""
    M = _category_matrix(item_categories)
    lists = check_lists(lists, len(M))
    p = _check_target(target, len(lists), M.shape[1])
    q = category_distribution(lists, M)
    return np.where(p.sum(axis=1) > 0, _kl(p, q, alpha), np.nan)


def calibrated_rerank(scores: np.ndarray, target: np.ndarray, item_categories: np.ndarray, k: int, *,
                      trade_off: float = 0.5, pool: int | np.ndarray = 50, alpha: float = 0.01,
                      normalise: bool = True, batch_size: int = 512) -> np.ndarray:
    """``[Q, k]`` lists whose category mix matches the user's (Steck, 2018, RecSys).

    Greedy maximisation of ``(1 - trade_off) * sum_{i in list} rel(i) - trade_off * KL(p || q~)``
    (Steck's ``lambda`` is ``trade_off``): each step adds the pool place that raises it most.
    A query whose target is all zeros (no history) is ranked by relevance.

    Args:
        scores: ``[Q, P]``.
        target: ``[Q, C]`` the category mix to match (:func:`category_distribution` of
            ``queries.history_poi``); rows are normalised.
        item_categories: ``[P]`` integer codes or ``[P, C]`` shares.
        trade_off, pool, normalise, batch_size: as :func:`mmr_rerank`.
        alpha: (float) the blend that keeps the KL finite (Steck uses 0.01).
    """
    scores, trade_off = check_scores(scores), _check_trade_off(trade_off)
    k = check_k(k, scores.shape[1])
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    M = _category_matrix(item_categories)
    if len(M) != scores.shape[1]:
        raise ValueError(f"item_categories describes {len(M)} places but scores rank {scores.shape[1]}")
    p_all = _check_target(target, len(scores), M.shape[1])
    pool = candidate_pool(scores, pool)
    out = np.full((len(scores), k), -1, dtype=np.int64)
    for start in range(0, len(scores), batch_size):
        block = pool[start:start + batch_size]  # [B, N]
        rel = _relevance(scores[start:start + batch_size], block, normalise)
        p = p_all[start:start + batch_size][:, None, :]  # [B, 1, C]
        cand = M[_rows(block)]  # [B, N, C]
        rows = np.arange(len(block))
        available = block >= 0
        chosen_mass = np.zeros((len(block), 1, M.shape[1]))  # [B, 1, C] category mass of the list so far
        for step in range(min(k, block.shape[1])):
            kl = _kl(p, (chosen_mass + cand) / (step + 1), alpha)  # [B, N] KL if i were added
            objective = np.where(available, (1 - trade_off) * rel - trade_off * kl, -np.inf)
            pick = objective.argmax(axis=1)
            has = available[rows, pick]
            out[start + rows[has], step] = block[rows[has], pick[has]]
            available[rows, pick] = False
            chosen_mass[has, 0] += cand[rows[has], pick[has]]
    return out
