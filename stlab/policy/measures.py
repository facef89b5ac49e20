"""Beyond accuracy: what a set of recommendation lists shows, not only whether it hits.

For lists ``[Q, k]`` of place indices (``-1`` = an empty position, skipped everywhere):

* **coverage** -- share of the catalogue that appears in some list (aggregate diversity);
* **novelty** -- mean self-information ``-log2 p(i)`` of the recommended places, ``p`` their share
  of training check-ins: a popular place tells the user little (Zhou et al., 2010, PNAS);
* **intra-list diversity** -- mean dissimilarity ``1 - sim`` of the pairs inside one list
  (Ziegler et al., 2005), averaged over lists;
* **popularity bias** -- average recommendation popularity, ARP (Abdollahpouri, Burke & Mobasher,
  2019), and the Gini coefficient of exposure: 0 when every place is shown equally often, near 1
  when a few places take all the exposure;
* **accuracy** of the lists against the places actually visited: Acc@k, NDCG@k and MRR@k
  (:func:`stlab.metrics.ranking_metrics_from_ranks`).

:func:`list_metrics` returns all of them as one row, so a chapter builds a table of policies.

Introduced in chapter 13 (Recommending and guiding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stlab.metrics import ranking_metrics_from_ranks
from stlab.policy.ranking import ItemSimilarity, as_similarity, check_lists, miscalibration


def coverage(lists: np.ndarray, num_items: int) -> float:
    """Share of the ``num_items`` places that appear in at least one list (as
    :func:`stlab.graphs.catalogue_coverage`, with empty positions allowed)."""
    if num_items < 1:
        raise ValueError(f"num_items must be positive, got {num_items}")
    lists = check_lists(lists, num_items)
    return float(len(np.unique(lists[lists >= 0])) / num_items)


def _popularity(popularity: np.ndarray, num_items: int | None = None) -> np.ndarray:
    popularity = np.asarray(popularity, dtype=np.float64)
    if popularity.ndim != 1 or (popularity < 0).any() or not np.isfinite(popularity).all():
        raise ValueError("popularity must be [P] non-negative counts (e.g. task.train_popularity)")
    if num_items is not None and len(popularity) != num_items:
        raise ValueError(f"popularity has {len(popularity)} places but the lists index {num_items}")
    return popularity


def novelty(lists: np.ndarray, popularity: np.ndarray, *, smoothing: float = 1.0) -> float:
    """Mean self-information ``-log2 p(i)`` (bits) over every recommended place.

    ``p(i) = (c_i + smoothing) / (sum_j c_j + smoothing * P)`` with ``c`` the training check-ins
    (``task.train_popularity``); the additive smoothing keeps a never-visited place finite.
    One more bit means a place half as popular.
    """
    c = _popularity(popularity)
    if smoothing < 0:
        raise ValueError(f"smoothing must be non-negative, got {smoothing}")
    lists = check_lists(lists, len(c))
    p = (c + smoothing) / (c.sum() + smoothing * len(c))
    shown = lists[lists >= 0]
    if shown.size == 0:
        raise ValueError("the lists are empty: no recommended place to measure")
    if (p[shown] == 0).any():
        raise ValueError("a recommended place has popularity 0, so its self-information is infinite; use "
                         "smoothing > 0")
    return float(np.mean(-np.log2(p[shown])))


def intra_list_diversity(lists: np.ndarray, similarity: ItemSimilarity | np.ndarray, *,
                         batch_size: int = 1024) -> float:
    """Mean over lists of the mean ``1 - sim(i, j)`` over ordered pairs ``i != j`` in the list.

    Lists with fewer than two places are left out; ``NaN`` if none has two.
    """
    if not isinstance(similarity, ItemSimilarity):
        similarity = as_similarity(similarity, np.asarray(similarity).shape[0])
    lists = check_lists(lists, similarity.num_items)
    per_list = []
    for start in range(0, len(lists), batch_size):
        block = lists[start:start + batch_size]  # [B, k]
        pair = (block[:, :, None] >= 0) & (block[:, None, :] >= 0) & ~np.eye(block.shape[1], dtype=bool)
        dissimilar = np.where(pair, 1.0 - similarity.among(block), 0.0).sum(axis=(1, 2))
        pairs = pair.sum(axis=(1, 2))
        per_list.append(np.where(pairs > 0, dissimilar / np.maximum(pairs, 1), np.nan))
    values = np.concatenate(per_list) if per_list else np.empty(0)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def average_popularity(lists: np.ndarray, popularity: np.ndarray) -> float:
    """ARP: mean over lists of the mean popularity (training check-ins) of the listed places."""
    c = _popularity(popularity)
    lists = check_lists(lists, len(c))
    shown = lists >= 0
    per_list = np.where(shown, c[np.maximum(lists, 0)], 0.0).sum(axis=1) / np.maximum(shown.sum(axis=1), 1)
    if not shown.any():
        raise ValueError("the lists are empty: no recommended place to measure")
    return float(per_list[shown.any(axis=1)].mean())


def exposure(lists: np.ndarray, num_items: int) -> np.ndarray:
    """``[P]`` how many lists show each place."""
    lists = check_lists(lists, num_items)
    return np.bincount(lists[lists >= 0], minlength=num_items).astype(np.float64)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: ``sum_ij |x_i - x_j| / (2 n^2 mean)``, computed from
    the sorted values in ``O(n log n)``. 0: all equal; ``(n - 1) / n``: one holds everything."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0 or (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("gini needs a non-empty array of finite, non-negative values")
    if x.sum() == 0:
        return 0.0
    n = x.size
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def exposure_gini(lists: np.ndarray, num_items: int) -> float:
    """Gini coefficient of :func:`exposure` over the whole catalogue (never-shown places count)."""
    return gini(exposure(lists, num_items))


def list_ranks(lists: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[Q]`` 1-based position of the target in each list, ``inf`` when it is not listed."""
    lists, targets = np.asarray(lists), np.asarray(targets)
    if lists.ndim != 2 or targets.shape != (len(lists),):
        raise ValueError(f"need lists [Q, k] and targets [Q], got {lists.shape} and {targets.shape}")
    hit = lists == targets[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)


def list_accuracy(lists: np.ndarray, targets: np.ndarray, ks: Sequence[int] | None = None) -> dict[str, float]:
    """Acc@k, NDCG@k (each ``k`` in ``ks``, at most the list length) and MRR@k of the list length.

    Equal to :func:`stlab.metrics.ranking_metrics` of the full scores when the lists are their top
    ``k`` (and no score ties the target).
    """
    lists = np.asarray(lists)
    length = lists.shape[1] if lists.ndim == 2 else 0
    ks = (length,) if ks is None else tuple(ks)
    if not ks or min(ks) < 1 or max(ks) > length:
        raise ValueError(f"each k must lie in 1..{length} (the list length), got {ks}")
    out = ranking_metrics_from_ranks(list_ranks(lists, targets), ks)
    out[f"MRR@{length}"] = out.pop("MRR")  # positions beyond the list are unknown: reciprocal rank 0
    return out


def list_metrics(lists: np.ndarray, *, num_items: int, targets: np.ndarray | None = None,
                 popularity: np.ndarray | None = None, similarity: ItemSimilarity | np.ndarray | None = None,
                 target_distribution: np.ndarray | None = None, item_categories: np.ndarray | None = None,
                 ks: Sequence[int] | None = None) -> dict[str, float]:
    """One table row of accuracy and beyond-accuracy measures of a policy's lists.

    Each group is measured when its inputs are given: accuracy with ``targets``; novelty and
    ARP with ``popularity``; intra-list diversity with ``similarity``; miscalibration with
    ``target_distribution`` and ``item_categories``. Coverage and exposure Gini always.

    Args:
        lists: ``[Q, k]`` place indices (``-1`` empty).
        num_items: ``P``, the catalogue (``task.num_pois``).
        targets: ``[Q]`` the places actually visited (``queries.target``).
        popularity: ``[P]`` training check-ins (``task.train_popularity``).
        similarity: an :class:`~stlab.policy.ItemSimilarity` or ``[P, P]`` matrix.
        target_distribution, item_categories: see :func:`~stlab.policy.miscalibration`.
        ks: cut-offs for accuracy (default: the list length).

    Returns:
        ``{"Acc@k", "NDCG@k", "MRR@k", "coverage", "novelty (bits)", "ARP", "exposure Gini",
        "diversity (ILD)", "miscalibration (KL)"}`` -- the keys of the groups measured.
    """
    lists = check_lists(lists, num_items)
    row: dict[str, float] = {}
    if targets is not None:
        row.update(list_accuracy(lists, targets, ks))
    row["coverage"] = coverage(lists, num_items)
    if popularity is not None:
        c = _popularity(popularity, num_items)
        row["novelty (bits)"] = novelty(lists, c)
        row["ARP"] = average_popularity(lists, c)
    row["exposure Gini"] = exposure_gini(lists, num_items)
    if similarity is not None:
        row["diversity (ILD)"] = intra_list_diversity(lists, as_similarity(similarity, num_items))
    if (target_distribution is None) != (item_categories is None):
        raise ValueError("miscalibration needs both target_distribution and item_categories")
    if target_distribution is not None:
        kl = miscalibration(lists, target_distribution, item_categories)  # NaN for queries without a target
        row["miscalibration (KL)"] = float(np.nanmean(kl)) if np.isfinite(kl).any() else float("nan")
    return row
