"""Shared pieces of :mod:`stlab.abtest`: type aliases, input checks and a seeded inverse-CDF draw.

Every check raises a :class:`ValueError` that names the problem and the fix.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: A seed, or a generator to draw from (passed through :func:`numpy.random.default_rng`).
Seed = int | np.random.Generator
#: A per-query outcome of showing a list: the user ``"accepted"`` the recommendation, or the
#: user's next visit was one of the listed POIs (``"visit_in_list"``, accepted or not).
Metric = Literal["accepted", "visit_in_list"]
#: How an A/B test weighs queries; see :class:`~stlab.abtest.experiment.ABTestConfig`.
Unit = Literal["user", "query", "query_unclustered"]
Alternative = Literal["two-sided", "larger", "smaller"]
Spending = Literal["obrien_fleming", "pocock"]
Interval = Literal["normal", "bootstrap"]

_METRICS: tuple[str, ...] = ("accepted", "visit_in_list")
_UNITS: tuple[str, ...] = ("user", "query", "query_unclustered")
_ALTERNATIVES: tuple[str, ...] = ("two-sided", "larger", "smaller")
_SPENDINGS: tuple[str, ...] = ("obrien_fleming", "pocock")
_INTERVALS: tuple[str, ...] = ("normal", "bootstrap")
#: Rows of probabilities may miss one by this much (float32 model outputs, rounding).
_SUM_TOLERANCE = 1e-4


# --------------------------------------------------------------------------- input checks

def _check_open_unit(value: float, name: str) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def _check_choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def _check_positive(value: float, name: str) -> float:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _probabilities(true_log_probs: np.ndarray, name: str = "true_log_probs") -> np.ndarray:
    """``[Q, P]`` probabilities from log-probabilities, checked and renormalised exactly."""
    log_probs = np.asarray(true_log_probs, dtype=np.float64)
    if log_probs.ndim != 2 or 0 in log_probs.shape:
        raise ValueError(f"{name} must be a non-empty [Q, P] array (queries x POIs), got shape {log_probs.shape}")
    bad = np.isnan(log_probs) | (log_probs == np.inf)
    if bad.any():
        raise ValueError(f"{name} is NaN or +inf at {int(bad.sum())} entries; a log-probability is finite, or "
                         "-inf for a POI the user cannot choose")
    probs = np.exp(log_probs)
    total = probs.sum(axis=1)  # [Q]
    off = np.abs(total - 1.0) > _SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"exp({name}) must sum to one in every row, but {int(off.sum())} of {len(total)} rows do not (row "
            f"{row} sums to {total[row]:.6g}). Pass log-probabilities over all P candidates, such as "
            "SyntheticWorld.next_visit_log_probs; a world's probabilities restricted to a task's POIs miss the POIs "
            "cleaning removed, so renormalise them first with scipy.special.log_softmax(x, axis=1)")
    # Divide by the row sum so the arithmetic below is exact, whatever rounding the input carried.
    return probs / total[:, None]


def _check_lists(lists: np.ndarray, num_pois: int, num_queries: int, name: str = "lists") -> np.ndarray:
    """``[Q, k]`` integer POI indices, ``1 <= k <= P``, distinct within a row."""
    lists = np.asarray(lists)
    if lists.ndim != 2:
        raise ValueError(f"{name} must be a [Q, k] array of POI indices (one list of k POIs per query), got shape "
                         f"{lists.shape}; a single POI per query is lists[:, None]")
    if not np.issubdtype(lists.dtype, np.integer):
        raise ValueError(f"{name} must hold integer POI indices, got dtype {lists.dtype}")
    if lists.shape[0] != num_queries:
        raise ValueError(f"{name} has {lists.shape[0]} rows but true_log_probs has {num_queries}: give one list per "
                         "query, in the same order")
    k = lists.shape[1]
    if not 1 <= k <= num_pois:
        raise ValueError(f"{name} shows k = {k} POIs per query, but k must be between 1 and the P = {num_pois} "
                         "candidates")
    if lists.min() < 0 or lists.max() >= num_pois:
        raise ValueError(f"{name} holds POI indices outside 0..{num_pois - 1} (min {lists.min()}, max {lists.max()}); "
                         "-1 padding is not allowed: every list shows exactly k POIs")
    if k > 1:
        ordered = np.sort(lists, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if repeated.any():
            raise ValueError(f"{name} repeats a POI within {int(repeated.sum())} lists (first at row "
                             f"{int(np.flatnonzero(repeated)[0])}); a list shows k distinct POIs")
    return lists.astype(np.int64, copy=False)


def _check_policy(policy: np.ndarray, name: str, num_queries: int | None = None) -> np.ndarray:
    """``[Q, A]`` action probabilities: non-negative, rows summing to one."""
    policy = np.asarray(policy, dtype=np.float64)
    if policy.ndim != 2 or 0 in policy.shape:
        raise ValueError(f"{name} must be a non-empty [Q, A] array of action probabilities, got shape {policy.shape}")
    if num_queries is not None and len(policy) != num_queries:
        raise ValueError(f"{name} has {len(policy)} rows but the log has {num_queries} queries: one row per logged "
                         "query, in the same order")
    if not np.isfinite(policy).all() or (policy < 0).any():
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    total = policy.sum(axis=1)
    off = np.abs(total - 1.0) > _SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(f"every row of {name} must sum to one, but {int(off.sum())} rows do not (row {row} sums "
                         f"to {total[row]:.6g}); turn scores into a policy with softmax_policy or "
                         "epsilon_greedy_policy")
    return policy / total[:, None]


def _check_users(users: np.ndarray, num_queries: int | None = None) -> np.ndarray:
    users = np.asarray(users)
    if users.ndim != 1 or not np.issubdtype(users.dtype, np.integer):
        raise ValueError(f"users must be a 1-D integer array of user indices, got shape {users.shape} and dtype "
                         f"{users.dtype}")
    if num_queries is not None and len(users) != num_queries:
        raise ValueError(f"users has {len(users)} entries but true_log_probs has {num_queries} rows: one user per "
                         "query")
    if len(users) and users.min() < 0:
        raise ValueError("users must be indices >= 0 (for example NextVisitQueries.user)")
    return users.astype(np.int64, copy=False)


def _inverse_cdf_draw(weights: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """``[Q]`` column drawn from each row of ``weights [Q, C]`` (not necessarily normalised) with
    ``uniform [Q]`` in ``(0, 1]``: the first column whose cumulative weight reaches ``u * total``."""
    cumulative = np.cumsum(weights, axis=1)  # [Q, C]
    # u > 0, so the chosen column always has positive weight: the cumulative sum jumps there.
    column = (cumulative < uniform[:, None] * cumulative[:, -1:]).sum(axis=1)
    return np.minimum(column, weights.shape[1] - 1)
