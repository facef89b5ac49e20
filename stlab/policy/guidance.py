"""Guidance: recommendations that steer demand away from places about to be crowded.

**Re-ranking.** Each query ``q`` in slot ``s`` ranks places by

    key(q, i) = score(q, i) - trade_off * penalty(load[s, i] / capacity[s, i])

with :class:`CrowdingPenalty` ``penalty(u) = max(0, u - threshold) ** power`` of the forecast
utilisation (:class:`LoadForecast`; a place may share its load and capacity with the others of
its region). ``trade_off = 0`` gives back the ranking by score. Pass log-probabilities as scores
and the key multiplies a place's probability by ``exp(-trade_off * penalty)``: ``trade_off`` is
then in nats per unit of penalty. Alternatives may be limited to places *similar* to those the
unpenalised list showed (same category, nearby), so guidance swaps a crowded cafe for a quiet
one, not for a museum.

**Demand** (:class:`DemandModel`). Each query stands for ``per_query`` visits. With probability
``follow`` the user picks from the shown list, in proportion to their choice probabilities
restricted to it; otherwise they go where they would have gone anyway. The forecast describes
the world with today's (unpenalised) lists in it, so the load after guidance is the forecast plus
what the re-ranked lists send minus what the unpenalised lists sent.

**The trade-off** (:func:`guidance_curve`): as ``trade_off`` grows, how much of what users want
the lists still show (probability mass, hits) against the load on places (overload above
capacity, peak utilisation, share of recommendations to crowded places). A static penalty can
herd every query towards the same second-best place; ``adaptive=True`` serves queries in order,
each seeing the load the earlier ones already moved.

Introduced in chapter 13 (Recommending and guiding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stlab.policy.measures import list_accuracy
from stlab.policy.patterns import DaySlots
from stlab.policy.ranking import (ItemSimilarity, _rows, as_similarity, candidate_pool, check_k, check_lists,
                                  check_scores, rank_pool)


@dataclass(frozen=True)
class CrowdingPenalty:
    """``penalty(u) = max(0, u - threshold) ** power`` of a place's utilisation ``u = load / capacity``.

    The defaults charge nothing until a place is full, then one unit per capacity of overflow.
    A ``threshold`` below 1 starts steering before a place fills (forecasts err); ``power=2``
    is gentle just above the threshold and strong far above; ``threshold=0`` charges every
    visitor, so even half-empty places lose a little.

    Attributes:
        threshold: (float) utilisation at which the penalty starts, >= 0.
        power: (float) growth above it, > 0.
    """

    threshold: float = 1.0
    power: float = 1.0

    def __post_init__(self) -> None:
        if not self.threshold >= 0 or not self.power > 0:
            raise ValueError(f"need threshold >= 0 and power > 0, got threshold={self.threshold}, power={self.power}")

    def __call__(self, utilisation: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(utilisation, dtype=np.float64) - self.threshold, 0.0) ** self.power


@dataclass(frozen=True)
class LoadForecast:
    """Expected visits and capacity per slot of the day and unit (a place, or a region of places).

    Load, capacity and demand share one unit: expected visits in a slot over the period the
    queries cover (e.g. a forecast of hourly region counts summed over the slot's hours).

    Attributes:
        load: ``[S, G]`` (or ``[G]`` for one slot) forecast visits without guidance, >= 0.
        capacity: ``[S, G]``, ``[G]`` or a number: visits a unit takes in a slot (``np.inf``:
            no limit), > 0.
        group: ``[P]`` the unit of each place (``poi_regions(task.pois, g)`` for regions);
            ``None``: each place is its own unit (``G = P``).
    """

    load: np.ndarray
    capacity: np.ndarray | float
    group: np.ndarray | None = None

    def __post_init__(self) -> None:
        load = np.asarray(self.load, dtype=np.float64)
        load = load[None, :] if load.ndim == 1 else load
        if load.ndim != 2 or (load < 0).any() or not np.isfinite(load).all():
            raise ValueError(f"load must be a finite, non-negative [S, G] array, got shape {load.shape}")
        try:
            capacity = np.broadcast_to(np.asarray(self.capacity, dtype=np.float64), load.shape)
        except ValueError:
            raise ValueError(f"capacity must be a number, [G] or [S, G] = {list(load.shape)}, got shape "
                             f"{np.shape(self.capacity)}") from None
        if np.isnan(capacity).any() or (capacity <= 0).any():
            raise ValueError("capacity must be positive (np.inf for a place without limit)")
        if self.group is not None:
            group = np.asarray(self.group)
            if group.ndim != 1 or not np.issubdtype(group.dtype, np.integer) or (group.size and (
                    group.min() < 0 or group.max() >= load.shape[1])):
                raise ValueError(f"group must be [P] integer units in 0..{load.shape[1] - 1}")
            object.__setattr__(self, "group", group.astype(np.int64))
        object.__setattr__(self, "load", load)
        object.__setattr__(self, "capacity", capacity)

    @property
    def num_slots(self) -> int:
        return self.load.shape[0]

    @property
    def num_units(self) -> int:
        return self.load.shape[1]

    @property
    def utilisation(self) -> np.ndarray:
        """``[S, G]`` forecast load / capacity."""
        return self.load / self.capacity

    def place_group(self, num_places: int) -> np.ndarray:
        """``[P]`` unit of each place, checked against the ``P`` places the scores rank."""
        if self.group is None:
            if self.num_units != num_places:
                raise ValueError(f"the forecast has {self.num_units} units but the scores rank {num_places} places; "
                                 "pass group= (the unit of each place) for a forecast by region")
            return np.arange(num_places)
        if len(self.group) != num_places:
            raise ValueError(f"group gives units for {len(self.group)} places but the scores rank {num_places}")
        return self.group


@dataclass(frozen=True)
class DemandModel:
    """How lists turn into visits (see the module docstring).

    Attributes:
        follow: (float) share of users who pick from the list, in ``[0, 1]``.
        per_query: (float) visits each query stands for (10 if the queries are a 10 % sample).
        forecast_includes_lists: (bool) the forecast load already holds what the unpenalised
            lists send (the recommender as it runs), so only the change is added; ``False``: the
            forecast is everyone else's load and the lists' demand is added in full.
    """

    follow: float = 1.0
    per_query: float = 1.0
    forecast_includes_lists: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.follow <= 1 or not self.per_query > 0:
            raise ValueError(f"need follow in [0, 1] and per_query > 0, got {self.follow}, {self.per_query}")


def slot_totals(values: np.ndarray, hours: np.ndarray, slots: DaySlots) -> np.ndarray:
    """``[S, G]`` sums of hourly values ``[T, G]`` (forecast visits per place or region) over the
    hours of each slot: the load of each slot over the ``T`` hours, for :class:`LoadForecast`.

    Args:
        values: ``[T, G]`` one row per hour.
        hours: ``[T]`` local hour of each row (0--23).
        slots: the slots of the day.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(np.asarray(hours)):
        raise ValueError(f"values must be [T, G] with one local hour per row, got {values.shape} and "
                         f"{np.shape(hours)} hours")
    out = np.zeros((slots.num_slots, values.shape[1]))
    np.add.at(out, slots.slot_of(np.asarray(hours)), values)
    return out


def _check_probabilities(probabilities: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != shape:
        raise ValueError(f"probabilities must have the shape of the scores {shape}, got {p.shape}")
    if (p < 0).any() or not np.isfinite(p).all() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("probabilities must be non-negative rows that sum to 1 (a model's softmax, or "
                         "np.exp(world.next_visit_log_probs(...)))")
    return p


def _check_slot(slot: np.ndarray | None, num_queries: int, num_slots: int) -> np.ndarray:
    if slot is None:
        if num_slots != 1:
            raise ValueError(f"the forecast has {num_slots} slots: pass each query's slot (DaySlots.slot_of(hour))")
        return np.zeros(num_queries, dtype=np.int64)
    slot = np.asarray(slot)
    if slot.shape != (num_queries,) or not np.issubdtype(slot.dtype, np.integer) or (slot.size and (
            slot.min() < 0 or slot.max() >= num_slots)):
        raise ValueError(f"slot must be [Q] = [{num_queries}] integers in 0..{num_slots - 1}, got shape {slot.shape}")
    return slot.astype(np.int64)


def list_shares(lists: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``[Q, k]`` how a user who picks from the list splits over it: probabilities restricted to the
    list and renormalised (evenly if the list holds no probability; 0 at empty positions)."""
    shown = lists >= 0
    p = np.where(shown, np.take_along_axis(probabilities, _rows(lists), axis=1), 0.0)
    mass = p.sum(axis=1, keepdims=True)
    even = shown / np.maximum(shown.sum(axis=1, keepdims=True), 1)
    return np.where(mass > 0, p / np.where(mass > 0, mass, 1.0), even)


def slot_demand(lists: np.ndarray, probabilities: np.ndarray, slot: np.ndarray | None, forecast: LoadForecast,
                demand: DemandModel = DemandModel(), *, lists_only: bool = False) -> np.ndarray:
    """``[S, G]`` expected visits the queries send to each unit in each slot under ``demand``.

    ``lists_only`` keeps only the visits of users who follow the list (what differs between two
    policies); otherwise the others' visits, spread by their probabilities, are added.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    group = forecast.place_group(p.shape[1])
    lists = check_lists(lists, p.shape[1])
    slot = _check_slot(slot, len(lists), forecast.num_slots)
    out = np.zeros(forecast.load.shape)
    weight = demand.per_query * demand.follow * list_shares(lists, p)  # [Q, k]
    np.add.at(out, (np.repeat(slot, lists.shape[1]), group[_rows(lists)].ravel()), weight.ravel())
    if not lists_only and demand.follow < 1:
        for s in np.unique(slot):
            free = (1 - demand.follow) * demand.per_query * p[slot == s].sum(axis=0)  # [P]
            out[s] += np.bincount(group, weights=free, minlength=forecast.num_units)
    return out


def load_after(lists: np.ndarray, base_lists: np.ndarray, probabilities: np.ndarray, slot: np.ndarray | None,
               forecast: LoadForecast, demand: DemandModel = DemandModel()) -> np.ndarray:
    """``[S, G]`` load once ``lists`` replace ``base_lists`` (the unpenalised lists), >= 0."""
    if demand.forecast_includes_lists:
        change = (slot_demand(lists, probabilities, slot, forecast, demand, lists_only=True)
                  - slot_demand(base_lists, probabilities, slot, forecast, demand, lists_only=True))
        return np.maximum(forecast.load + change, 0.0)  # a forecast below the demand it held cannot go negative
    return forecast.load + slot_demand(lists, probabilities, slot, forecast, demand)


def load_report(load: np.ndarray, capacity: np.ndarray | float) -> dict[str, float]:
    """``overload`` (visits above capacity, summed), ``overloaded units`` (slot x unit pairs over
    capacity) and ``peak utilisation`` (largest load / capacity) of a ``[S, G]`` load."""
    load = np.asarray(load, dtype=np.float64)
    capacity = np.broadcast_to(np.asarray(capacity, dtype=np.float64), load.shape)
    above = np.maximum(load - capacity, 0.0)
    return {"overload": float(above.sum()), "overloaded units": float((above > 0).sum()),
            "peak utilisation": float((load / capacity).max())}


def _similar_to_base(similarity: ItemSimilarity, base: np.ndarray, pool: np.ndarray, min_similarity: float) -> np.ndarray:
    """``[B, N]`` whether each pool place is in the base list or at least ``min_similarity`` to one of it."""
    sim = np.where((base >= 0)[:, :, None], similarity.between(base, pool), -np.inf)  # [B, k, N]
    return (sim.max(axis=1) >= min_similarity) | (pool[:, :, None] == base[:, None, :]).any(axis=2)


def guided_top_k(scores: np.ndarray, slot: np.ndarray | None, forecast: LoadForecast, k: int, *, trade_off: float,
                 penalty: CrowdingPenalty = CrowdingPenalty(), pool: int | np.ndarray | None = None,
                 similarity: ItemSimilarity | np.ndarray | None = None, min_similarity: float = 0.5,
                 adaptive: bool = False, probabilities: np.ndarray | None = None,
                 demand: DemandModel = DemandModel(), batch_size: int = 256) -> np.ndarray:
    """``[Q, k]`` lists ranked by ``score - trade_off * penalty(utilisation)`` (module docstring).

    Args:
        scores: ``[Q, P]`` (log-probabilities make ``trade_off`` a rate in nats).
        slot: ``[Q]`` slot of each query (``DaySlots.slot_of(queries.hour)``); ``None`` for a
            one-slot forecast.
        forecast: load and capacity per slot and unit.
        k: list length.
        trade_off: (float) >= 0; 0 is the ranking by score.
        penalty: the :class:`CrowdingPenalty`.
        pool: candidates: ``None`` every place, the top ``N`` by score, or ``[Q, N]``.
        similarity: if given, a place may enter the list only if it is in the unpenalised list or
            at least ``min_similarity`` similar to a place in it.
        adaptive: serve queries in the order given (sort them by time), each seeing the forecast
            plus the load earlier queries moved; needs ``probabilities`` and uses ``demand``.
        batch_size: queries per block (memory ``batch_size x k x N`` for the similarity test).
    """
    scores = check_scores(scores)
    Q, P = scores.shape
    k = check_k(k, P)
    if not trade_off >= 0:
        raise ValueError(f"trade_off must be >= 0 (0: rank by score only), got {trade_off}")
    slot = _check_slot(slot, Q, forecast.num_slots)
    group = forecast.place_group(P)
    pool = np.broadcast_to(np.arange(P), (Q, P)) if pool is None else candidate_pool(scores, pool)
    valid = pool >= 0
    pool_scores = np.where(valid, np.take_along_axis(scores, _rows(pool), axis=1), -np.inf)  # [Q, N]
    base_pos = rank_pool(pool_scores, valid, k)
    base = np.where(base_pos >= 0, np.take_along_axis(pool, np.maximum(base_pos, 0), axis=1), -1)  # [Q, k]
    if similarity is not None:
        similarity = as_similarity(similarity, P)
        valid = np.concatenate([valid[s:s + batch_size] & _similar_to_base(similarity, base[s:s + batch_size],
                                                                           pool[s:s + batch_size], min_similarity)
                                for s in range(0, Q, batch_size)]) if Q else valid
    if trade_off == 0:
        return base
    if not adaptive:
        place_penalty = penalty(forecast.utilisation)[:, group]  # [S, P]
        key = pool_scores - trade_off * place_penalty[slot[:, None], _rows(pool)]
        pos = rank_pool(key, valid, k)
        return np.where(pos >= 0, np.take_along_axis(pool, np.maximum(pos, 0), axis=1), -1)
    if probabilities is None:
        raise ValueError("adaptive guidance needs probabilities: the demand a list sends moves the load")
    p = _check_probabilities(probabilities, scores.shape)
    load = forecast.load.copy()  # [S, G] updated as queries are served
    out = np.empty((Q, k), dtype=np.int64)
    for q in range(Q):
        s, row = slot[q], pool[q]
        pen = penalty(load[s] / forecast.capacity[s])[group[_rows(row)]]  # [N]
        pos = rank_pool((pool_scores[q] - trade_off * pen)[None, :], valid[q][None, :], k)[0]
        out[q] = np.where(pos >= 0, row[np.maximum(pos, 0)], -1)
        shown = out[q:q + 1]
        moved = demand.per_query * demand.follow * list_shares(shown, p[q:q + 1])[0]
        np.add.at(load[s], group[_rows(shown[0])], np.where(shown[0] >= 0, moved, 0.0))
        if demand.forecast_includes_lists:
            before = demand.per_query * demand.follow * list_shares(base[q:q + 1], p[q:q + 1])[0]
            np.add.at(load[s], group[_rows(base[q])], -np.where(base[q] >= 0, before, 0.0))
        else:
            load[s] += np.bincount(group, weights=(1 - demand.follow) * demand.per_query * p[q],
                                   minlength=forecast.num_units)
    return out


def guidance_curve(scores: np.ndarray, probabilities: np.ndarray, slot: np.ndarray | None, forecast: LoadForecast,
                   k: int, trade_offs: Sequence[float], *, targets: np.ndarray | None = None,
                   penalty: CrowdingPenalty = CrowdingPenalty(), demand: DemandModel = DemandModel(),
                   pool: int | np.ndarray | None = None, similarity: ItemSimilarity | np.ndarray | None = None,
                   min_similarity: float = 0.5, adaptive: bool = False, crowded_at: float = 1.0) -> pd.DataFrame:
    """What users would choose against the load on places, one row per ``trade_off``.

    Columns:

    * ``listed probability`` -- mean probability mass of the list under ``probabilities`` (the
      chance the place a user wants is shown); ``listed score``, ``listed penalty`` -- mean sums
      of the scores and of the forecast penalties of the listed places;
    * ``Acc@k``, ``NDCG@k`` -- against ``targets`` (the visits that happened), if given;
    * ``moved demand`` -- share of the followed demand sent to another unit than by the
      unpenalised lists; ``crowded share`` -- share of listed places whose forecast utilisation
      is at least ``crowded_at``;
    * ``overload``, ``overloaded units``, ``peak utilisation`` -- :func:`load_report` of
      :func:`load_after`.

    What theory promises: with a static penalty (``adaptive=False``), ``listed score`` and
    ``listed penalty`` never increase with ``trade_off`` (exchange argument: the list maximises
    ``score - trade_off * penalty``; compare the optima at two trade-offs); with probabilities as
    scores, ``listed probability`` never increases either. Overload need not fall monotonically:
    everyone may be sent to the same alternative -- which ``adaptive=True`` counters.

    Arguments as :func:`guided_top_k`; ``probabilities`` ``[Q, P]`` are each user's choice
    probabilities (the model's softmax, or the true ones of a synthetic world).
    """
    scores = check_scores(scores)
    p = _check_probabilities(probabilities, scores.shape)
    group = forecast.place_group(scores.shape[1])
    slot_q = _check_slot(slot, len(scores), forecast.num_slots)
    options = {"penalty": penalty, "pool": pool, "similarity": similarity, "min_similarity": min_similarity,
               "adaptive": adaptive, "probabilities": p, "demand": demand}
    base = guided_top_k(scores, slot, forecast, k, trade_off=0.0, **options)
    base_demand = slot_demand(base, p, slot, forecast, demand, lists_only=True)
    place_penalty = penalty(forecast.utilisation)[:, group]  # [S, P]
    crowded = (forecast.utilisation >= crowded_at)[:, group]  # [S, P]
    rows = []
    for trade_off in trade_offs:
        lists = guided_top_k(scores, slot, forecast, k, trade_off=float(trade_off), **options)
        shown, at = lists >= 0, _rows(lists)
        row: dict[str, float] = {"trade_off": float(trade_off)}
        row["listed probability"] = float(np.where(shown, np.take_along_axis(p, at, 1), 0).sum(1).mean())
        row["listed score"] = float(np.where(shown, np.take_along_axis(scores, at, 1), 0).sum(1).mean())
        row["listed penalty"] = float(np.where(shown, place_penalty[slot_q[:, None], at], 0).sum(1).mean())
        if targets is not None:
            row.update({name: value for name, value in list_accuracy(lists, targets).items()
                        if not name.startswith("MRR")})
        moved = slot_demand(lists, p, slot, forecast, demand, lists_only=True) - base_demand
        row["moved demand"] = float(0.5 * np.abs(moved).sum() / max(base_demand.sum(), 1e-12))
        row["crowded share"] = float(crowded[slot_q[:, None], at][shown].mean()) if shown.any() else float("nan")
        row.update(load_report(load_after(lists, base, p, slot, forecast, demand), forecast.capacity))
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["CrowdingPenalty", "DemandModel", "LoadForecast", "guidance_curve", "guided_top_k", "list_shares",
           "load_after", "load_report", "slot_demand", "slot_totals"]
