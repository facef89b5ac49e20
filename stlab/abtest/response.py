"""How simulated users respond to a recommended list: exact expectations and seeded draws.

A policy shows user ``u`` a list ``R`` of ``k`` POIs at a query (user, time, previous visit).
With ``p_u`` the user's true next-visit distribution (known in the synthetic city), the user
*accepts* with probability ``a = min(1, strength * sum_{i in R} p_u(i))`` -- a list that covers
more of what the user wanted anyway is taken up more often -- and then visits a POI of ``R``
drawn from ``p_u`` restricted to ``R``; otherwise the user does what they would have done, a
draw from ``p_u``. Everything takes ``true_log_probs [Q, P]`` and ``lists [Q, k]``, so any
policy's top-``k`` (``model.recommend``) can be fed in.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stlab.abtest._common import (
    _METRICS,
    Metric,
    Seed,
    _check_choice,
    _check_lists,
    _check_positive,
    _inverse_cdf_draw,
    _probabilities,
)


@dataclass(frozen=True, eq=False)
class ExpectedResponse:
    """Exact per-query expectations of the response model (see :func:`expected_response`).

    Attributes:
        list_mass: ``[Q]`` ``m = sum_{i in R} p_u(i)``, the chance the user would have gone to a
            listed POI anyway (what Acc@k of the list is in expectation).
        accept_prob: ``[Q]`` ``a = min(1, strength * m)``, the chance the user accepts.
        visit_in_list_prob: ``[Q]`` ``a + (1 - a) m``, the chance the next visit is a listed POI.
    """

    list_mass: np.ndarray
    accept_prob: np.ndarray
    visit_in_list_prob: np.ndarray

    def metric(self, name: Metric) -> np.ndarray:
        """``[Q]`` expected value of the per-query outcome ``name``."""
        _check_choice(name, "metric", _METRICS)
        return self.accept_prob if name == "accepted" else self.visit_in_list_prob

    def __len__(self) -> int:
        return len(self.list_mass)


@dataclass(frozen=True, eq=False)
class SampledResponse:
    """One seeded draw of the response model (see :func:`sample_response`).

    Attributes:
        accepted: ``[Q]`` whether the user accepted the recommendation.
        visit: ``[Q]`` the POI visited next (an index into the ``P`` columns).
        in_list: ``[Q]`` whether that POI was on the list.
    """

    accepted: np.ndarray
    visit: np.ndarray
    in_list: np.ndarray

    def metric(self, name: Metric) -> np.ndarray:
        """``[Q]`` float outcome ``name`` (1.0 or 0.0 per query)."""
        _check_choice(name, "metric", _METRICS)
        return (self.accepted if name == "accepted" else self.in_list).astype(np.float64)

    def __len__(self) -> int:
        return len(self.accepted)


def expected_response(true_log_probs: np.ndarray, lists: np.ndarray, *, strength: float = 1.0) -> ExpectedResponse:
    """The exact expected response of users shown ``lists``.

    Each query is a user ``u`` whose next visit, left alone, is drawn from ``p_u`` (a row of
    ``exp(true_log_probs)``). Shown the list ``R``, the user accepts with probability
    ``a = min(1, strength * m)`` where ``m = sum_{i in R} p_u(i)``, and then visits a POI of
    ``R`` drawn from ``p_u`` restricted to ``R``; otherwise the user draws from ``p_u`` as usual.
    With ``strength = 1`` a user takes up a list exactly as often as the list covers their
    intent; larger values make recommendations more persuasive (capped at certainty).

    Args:
        true_log_probs: ``[Q, P]`` true next-visit log-probabilities; each row's ``exp`` sums to one.
        lists: ``[Q, k]`` POIs shown, distinct per row (for example ``model.recommend(queries, k)``).
        strength: ``> 0``, how persuasive a list is (default 1).

    Returns:
        ``[Q]`` arrays of list mass, acceptance probability and probability of a listed visit.

    Raises:
        ValueError: rows not summing to one, ``k > P``, out-of-range or repeated POIs, mismatched
            shapes, or a ``strength`` that is not positive.
    """
    return _expected(*_checked(true_log_probs, lists), strength)


def _checked(true_log_probs: np.ndarray, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[Q, P]`` probabilities and ``[Q, k]`` lists, both checked."""
    probs = _probabilities(true_log_probs)
    return probs, _check_lists(lists, probs.shape[1], len(probs))


def _expected(probs: np.ndarray, lists: np.ndarray, strength: float) -> ExpectedResponse:
    strength = _check_positive(strength, "strength")
    mass = np.minimum(np.take_along_axis(probs, lists, axis=1).sum(axis=1), 1.0)  # [Q]
    accept = np.minimum(1.0, strength * mass)
    return ExpectedResponse(list_mass=mass, accept_prob=accept, visit_in_list_prob=accept + (1.0 - accept) * mass)


def visit_distribution(true_log_probs: np.ndarray, lists: np.ndarray, *, strength: float = 1.0) -> np.ndarray:
    """``[Q, P]`` distribution of the next visit of users shown ``lists``.

    ``q(i) = a p(i) 1[i in R] / m + (1 - a) p(i)``: the recommendation moves the accepted share
    ``a`` of each user's choice onto the listed POIs. Comparing ``q`` with ``p`` shows how much a
    policy concentrates visits (for example on popular places). Arguments as :func:`expected_response`.
    """
    probs, lists = _checked(true_log_probs, lists)  # [Q, P], [Q, k]
    response = _expected(probs, lists, strength)
    accept, mass = response.accept_prob, response.list_mass
    visits = (1.0 - accept)[:, None] * probs  # [Q, P]
    # A list the user gives no chance (m = 0) is never accepted (a = 0), so nothing moves.
    share = np.divide(accept, mass, out=np.zeros_like(mass), where=mass > 0)  # [Q]
    rows = np.arange(len(probs))[:, None]
    visits[rows, lists] += share[:, None] * probs[rows, lists]
    return visits


def sample_response(true_log_probs: np.ndarray, lists: np.ndarray, *, strength: float = 1.0,
                    seed: Seed = 0) -> SampledResponse:
    """A seeded draw of each user's response to ``lists`` (the model of :func:`expected_response`).

    Two uniforms per query: one decides acceptance, the other the POI (from the list if accepted,
    else from all POIs), so the same seed gives the same outcomes.

    Args:
        true_log_probs: ``[Q, P]`` true next-visit log-probabilities.
        lists: ``[Q, k]`` POIs shown.
        strength: ``> 0``, how persuasive a list is.
        seed: an ``int`` seed or a :class:`numpy.random.Generator`.

    Returns:
        ``[Q]`` arrays: accepted, the POI visited, and whether it was listed.
    """
    probs, lists = _checked(true_log_probs, lists)  # [Q, P], [Q, k]
    accept = _expected(probs, lists, strength).accept_prob  # [Q]
    rng = np.random.default_rng(seed)
    accepted = rng.random(len(probs)) < accept
    uniform = 1.0 - rng.random(len(probs))  # in (0, 1]
    listed = lists[np.arange(len(lists)), _inverse_cdf_draw(np.take_along_axis(probs, lists, axis=1), uniform)]
    organic = _inverse_cdf_draw(probs, uniform)
    visit = np.where(accepted, listed, organic)
    in_list = accepted | (lists == organic[:, None]).any(axis=1)
    return SampledResponse(accepted=accepted, visit=visit, in_list=in_list)


def item_acceptance(true_log_probs: np.ndarray, *, strength: float = 1.0) -> np.ndarray:
    """``[Q, P]`` expected reward of recommending one POI: ``min(1, strength * p_u(i))``.

    The response model of :func:`expected_response` with lists of one item; the reward is 1 when
    the user accepts. It is the ``expected_rewards`` of off-policy evaluation with actions = POIs.
    """
    probs = _probabilities(true_log_probs)
    return np.minimum(1.0, _check_positive(strength, "strength") * probs)
