"""Next-visit models that learn after deployment: counts that grow and a Transformer that is
fine-tuned on each day's check-ins (see :mod:`stlab.online`).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from stlab.protocol import (
    NextVisitModel,
    NextVisitQueries,
    NextVisitTask,
    NotFittedError,
)

if TYPE_CHECKING:  # torch is imported only when a Transformer is fine-tuned
    from stlab.models.attention.config import TransformerConfig
    from stlab.models.torch.attention import TransformerNextVisit

#: ``last_time_`` of a user with no learned check-in (earlier than any real time).
NO_TIME = np.iinfo(np.int64).min
_PARTS: tuple[tuple[str, int], ...] = (("train", 0), ("val", 1), ("test", 2))
_PART_CODES = dict(_PARTS)
_EVENT_COLUMNS = ("user", "poi", "time", "hour")

# --------------------------------------------------------------------------- updating models

@runtime_checkable
class Updatable(Protocol):
    """A model that can learn new check-ins without being refitted from scratch.

    ``new_events`` are rows of ``task.events`` (encoded ``user``, ``poi``, ``time``, ``hour``
    columns, the index being their row numbers in ``task.events``), in time order across calls:
    a model that is updated with day 1, then day 2, has learned the same events as one fitted on
    both, and should be as close to it as its learning rule allows.
    """

    def update(self, task: NextVisitTask, new_events: pd.DataFrame) -> None:
        """Learn ``new_events`` (in place)."""


class OnlineCountModel(NextVisitModel):
    """Chapter 4's user + Markov blend, with counts that keep growing: an online next-POI model.

    ``score = weight * p_user(i) + (1 - weight) * p_Markov(i | previous POI)``, where

    * ``p_user`` is the user's visits to each POI (every learned check-in, plus those in the
      query's history that the model has not learned yet), with popularity below one visit
      breaking ties (weight ``popularity_weight``), normalised to sum to one;
    * ``p_Markov(j | i) = (C[i, j] + a p(j)) / (C[i, .] + a)``, ``C`` the learned moves between
      consecutive check-ins of a user, ``p`` the add-one popularity.

    Fitted on a task's training events it scores exactly as
    :class:`~stlab.baselines.UserMarkovBlend` with the same settings. What it adds is
    :meth:`learn`: new check-ins are added to the counts, so after learning events ``E`` (later
    than training, in time order) it is the model :meth:`fit` would give on the training events
    plus ``E`` -- exactly, since counts add -- at the cost of the new events only. It also keeps
    visits per local hour, for :meth:`hour_popularity` (the cold-start answer of
    :mod:`stlab.serve`).

    Check-ins are learned as a stream, in the order given. One that is not older than the user's
    latest learned check-in extends their trail: a move from that one to it. One that arrives
    late (older) counts as a visit, but no move is spliced into the trail already counted. So
    learning a batch is learning its check-ins one at a time, and replaying a log in arrival order
    rebuilds the model exactly. A task's events are sorted by user and time, so :meth:`fit`
    counts every consecutive pair, as chapter 4's Markov chain does.

    Args:
        weight: the user model's share, in [0, 1].
        smoothing: the Markov chain's ``a`` (> 0).
        popularity_weight: weight of the tie-breaking popularity term, in [0, 1).
        max_gap_hours: consecutive check-ins further apart are not a move (``None``: all are).
        hour_bandwidth_hours: width of the circular kernel that smooths :meth:`hour_popularity`.

    Shapes:
        ``user_poi_counts``: ``[U, P]``; ``transition_counts``: ``[P, P]``; ``popularity_``:
        ``[P]``; ``hour_counts_``: ``[24, P]``; ``last_poi_``, ``last_time_``: ``[U]``.
    """

    def __init__(self, weight: float = 0.5, smoothing: float = 1.0, popularity_weight: float = 0.5,
                 max_gap_hours: float | None = None, hour_bandwidth_hours: float = 1.0) -> None:
        if not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        if smoothing <= 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        if not 0 <= popularity_weight < 1:
            raise ValueError(f"popularity_weight must be in [0, 1) to stay a tie-breaker, got {popularity_weight}")
        if max_gap_hours is not None and max_gap_hours <= 0:
            raise ValueError(f"max_gap_hours must be > 0 or None, got {max_gap_hours}")
        if hour_bandwidth_hours <= 0:
            raise ValueError(f"hour_bandwidth_hours must be > 0, got {hour_bandwidth_hours}")
        self.weight = weight
        self.smoothing = smoothing
        self.popularity_weight = popularity_weight
        self.max_gap_hours = max_gap_hours
        self.hour_bandwidth_hours = hour_bandwidth_hours
        self.name = f"Online blend: user + Markov (weight {weight:g})"

    # ------------------------------------------------------------------ state
    def params(self) -> dict[str, float | None]:
        """The constructor's arguments (to rebuild the model with :meth:`load_state_dict`)."""
        return {"weight": self.weight, "smoothing": self.smoothing, "popularity_weight": self.popularity_weight,
                "max_gap_hours": self.max_gap_hours, "hour_bandwidth_hours": self.hour_bandwidth_hours}

    def reset(self, num_users: int, num_pois: int) -> Self:
        """Forget everything: empty counts for ``num_users`` users and ``num_pois`` POIs."""
        if num_users < 0 or num_pois < 1:
            raise ValueError(f"need num_users >= 0 and num_pois >= 1, got {num_users} and {num_pois}")
        self._user_poi = sp.csr_matrix((num_users, num_pois))
        self._moves = sp.csr_matrix((num_pois, num_pois))
        # New counts wait in these lists until the next score merges them: learning one check-in
        # then costs O(1), not a rebuild of the sparse matrices.
        self._pending_visits: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_moves: list[tuple[np.ndarray, np.ndarray]] = []
        self.popularity_ = np.zeros(num_pois)
        self.hour_counts_ = np.zeros((24, num_pois))
        self.out_degree_ = np.zeros(num_pois)
        self.last_poi_ = np.full(num_users, -1, dtype=np.int64)
        self.last_time_ = np.full(num_users, NO_TIME, dtype=np.int64)
        self.num_events_ = 0
        return self

    def grow(self, num_users: int, num_pois: int) -> Self:
        """Make room for more users and POIs (new ones start with no counts); never shrinks."""
        self._check_fitted()
        U, P = max(num_users, self.num_users), max(num_pois, self.num_pois)
        if (U, P) == (self.num_users, self.num_pois):
            return self
        self._merge_pending()
        self._user_poi.resize((U, P))
        self._moves.resize((P, P))
        extra_p, extra_u = P - self.num_pois, U - self.num_users
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(extra_p)])
        self.hour_counts_ = np.concatenate([self.hour_counts_, np.zeros((24, extra_p))], axis=1)
        self.out_degree_ = np.concatenate([self.out_degree_, np.zeros(extra_p)])
        self.last_poi_ = np.concatenate([self.last_poi_, np.full(extra_u, -1, dtype=np.int64)])
        self.last_time_ = np.concatenate([self.last_time_, np.full(extra_u, NO_TIME, dtype=np.int64)])
        return self

    @property
    def num_users(self) -> int:
        self._check_fitted()
        return len(self.last_poi_)

    @property
    def num_pois(self) -> int:
        self._check_fitted()
        return len(self.popularity_)

    @property
    def user_poi_counts(self) -> sp.csr_matrix:
        """``[U, P]`` learned visits per user and POI (a copy)."""
        self._merge_pending()
        return self._user_poi.copy()

    @property
    def transition_counts(self) -> sp.csr_matrix:
        """``[P, P]`` learned moves from POI ``i`` (row) to POI ``j`` (column) (a copy)."""
        self._merge_pending()
        return self._moves.copy()

    def _check_fitted(self) -> None:
        if not hasattr(self, "popularity_"):
            raise NotFittedError(f"{type(self).__name__} has no counts; call .fit(task) or .load_state_dict(state)")

    def _merge_pending(self) -> None:
        self._check_fitted()
        for name, pending, shape in (("_user_poi", self._pending_visits, (self.num_users, self.num_pois)),
                                     ("_moves", self._pending_moves, (self.num_pois, self.num_pois))):
            if pending:
                rows = np.concatenate([r for r, _ in pending])
                cols = np.concatenate([c for _, c in pending])
                added = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)  # duplicates summed
                setattr(self, name, (getattr(self, name) + added).tocsr())
                pending.clear()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every count as a NumPy array (no Python objects): what :meth:`load_state_dict` reads,
        and what ``np.savez`` can store and ``np.load(allow_pickle=False)`` read back."""
        self._merge_pending()
        state = {"popularity": self.popularity_, "hour_counts": self.hour_counts_, "out_degree": self.out_degree_,
                 "last_poi": self.last_poi_, "last_time": self.last_time_,
                 "num_events": np.asarray(self.num_events_, dtype=np.int64)}
        for name, matrix in (("user_poi", self._user_poi), ("moves", self._moves)):
            matrix.sum_duplicates()
            state.update({f"{name}_data": matrix.data, f"{name}_indices": matrix.indices.astype(np.int64),
                          f"{name}_indptr": matrix.indptr.astype(np.int64),
                          f"{name}_shape": np.asarray(matrix.shape, dtype=np.int64)})
        return {name: np.array(value, copy=True) for name, value in state.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> Self:
        """Set every count from :meth:`state_dict`'s arrays (the settings stay this instance's)."""
        missing = {"popularity", "hour_counts", "out_degree", "last_poi", "last_time", "num_events",
                   *(f"{m}_{part}" for m in ("user_poi", "moves") for part in ("data", "indices", "indptr", "shape"))
                   } - set(state)
        if missing:
            raise ValueError(f"not an OnlineCountModel state: missing {sorted(missing)}")
        self._user_poi, self._moves = (
            sp.csr_matrix((np.asarray(state[f"{m}_data"], np.float64), np.asarray(state[f"{m}_indices"]),
                           np.asarray(state[f"{m}_indptr"])), shape=tuple(int(n) for n in state[f"{m}_shape"]))
            for m in ("user_poi", "moves"))
        self._pending_visits, self._pending_moves = [], []
        self.popularity_ = np.array(state["popularity"], np.float64)
        self.hour_counts_ = np.array(state["hour_counts"], np.float64)
        self.out_degree_ = np.array(state["out_degree"], np.float64)
        self.last_poi_ = np.array(state["last_poi"], np.int64)
        self.last_time_ = np.array(state["last_time"], np.int64)
        self.num_events_ = int(state["num_events"])
        U, P = len(self.last_poi_), len(self.popularity_)
        if self._user_poi.shape != (U, P) or self._moves.shape != (P, P) or self.hour_counts_.shape != (24, P):
            raise ValueError(f"inconsistent state: {U} users and {P} POIs, but counts of shapes "
                             f"{self._user_poi.shape}, {self._moves.shape}, {self.hour_counts_.shape}")
        return self

    # ------------------------------------------------------------------ learning
    def fit(self, task: NextVisitTask) -> Self:
        """Count the training events of ``task`` (from scratch)."""
        self._task = task
        self.reset(task.num_users, task.num_pois)
        self.learn(task.train)
        return self

    def update(self, task: NextVisitTask, new_events: pd.DataFrame) -> None:
        """:class:`Updatable`: learn ``new_events`` (``task`` is not needed by counts)."""
        self.learn(new_events)

    def learn(self, events: pd.DataFrame) -> Self:
        """Add check-ins to the counts.

        Args:
            events: encoded check-ins with integer ``user``, ``poi``, ``time`` (seconds) and local
                ``hour`` columns, in the order they arrived.

        Raises:
            ValueError: a column is missing, or a user or POI index is outside the model (make
                room first with :meth:`grow`).
        """
        self._check_fitted()
        missing = [c for c in _EVENT_COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(f"events need columns {list(_EVENT_COLUMNS)}; missing {missing}")
        if len(events) == 0:
            return self
        user, poi, when, hour = (events[c].to_numpy(dtype=np.int64) for c in _EVENT_COLUMNS)
        for label, values, size in (("user", user, self.num_users), ("poi", poi, self.num_pois)):
            if values.min() < 0 or values.max() >= size:
                raise ValueError(f"{label} indices must be in [0, {size}), got [{values.min()}, {values.max()}]; "
                                 f"call .grow(num_users, num_pois) before learning new users or POIs")
        if hour.min() < 0 or hour.max() > 23:
            raise ValueError(f"hour must be a local hour 0..23, got [{hour.min()}, {hour.max()}]")
        self._pending_visits.append((user, poi))
        np.add.at(self.popularity_, poi, 1.0)
        np.add.at(self.hour_counts_, (hour, poi), 1.0)

        # Each user's check-ins, in the order given.
        order = np.argsort(user, kind="stable")
        user, poi, when = user[order], poi[order], when[order]
        first = np.concatenate([[True], user[1:] != user[:-1]])
        # A check-in is in order when it is not older than any the user had before it (learned
        # earlier, or earlier in this call); the in-order ones form the user's trail.
        latest_before = self.last_time_[user].copy()
        # Latest so far, per user (one check-in -- a live service's usual call -- needs no groupby).
        running = when if len(when) == 1 else pd.Series(when).groupby(user).cummax().to_numpy()
        later = ~first
        latest_before[later] = np.maximum(latest_before[later], running[:-1][later[1:]])
        trail = np.flatnonzero(when >= latest_before)
        t_user, t_poi, t_when = user[trail], poi[trail], when[trail]
        t_first, t_last = np.ones(len(trail), dtype=bool), np.ones(len(trail), dtype=bool)
        t_first[1:] = t_last[:-1] = t_user[1:] != t_user[:-1]  # a user's first and last on the trail
        # A move into each trail check-in from the one before it -- for the first, the user's
        # last learned check-in (none for a new user).
        source = np.empty(len(trail), dtype=np.int64)
        source_time = np.empty(len(trail), dtype=np.int64)
        source[1:], source_time[1:] = t_poi[:-1], t_when[:-1]
        source[t_first], source_time[t_first] = self.last_poi_[t_user[t_first]], self.last_time_[t_user[t_first]]
        move = source >= 0
        move[move] &= self._close(t_when[move] - source_time[move])
        self._pending_moves.append((source[move], t_poi[move]))
        np.add.at(self.out_degree_, source[move], 1.0)
        self.last_poi_[t_user[t_last]] = t_poi[t_last]
        self.last_time_[t_user[t_last]] = t_when[t_last]
        self.num_events_ += len(user)
        return self

    def _close(self, gap_seconds: np.ndarray) -> np.ndarray:
        """Whether consecutive check-ins this far apart are a move (``max_gap_hours``)."""
        if self.max_gap_hours is None:
            return np.ones(len(gap_seconds), dtype=bool)
        return gap_seconds / 3600.0 <= self.max_gap_hours

    # ------------------------------------------------------------------ scoring
    def user_counts(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` the user's learned visits per POI plus the history check-ins not learned
        yet (later than the user's last learned one), as :func:`stlab.protocol.prior_visit_counts`
        counts a user's training visits plus the later ones in the history window."""
        self._merge_pending()
        U = self.num_users
        users = queries.user
        known = users < U
        counts = np.zeros((len(queries), self.num_pois))
        if known.any():
            counts[known] = self._user_poi[users[known]].toarray()
        last_time = np.where(known, self.last_time_[np.minimum(users, max(U - 1, 0))] if U else NO_TIME, NO_TIME)
        unlearned = (queries.history_poi >= 0) & (queries.history_time > last_time[:, None])
        rows, cols = np.nonzero(unlearned)
        np.add.at(counts, (rows, queries.history_poi[rows, cols]), 1.0)
        return counts

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` the blend's probabilities (each row sums to one)."""
        P = self.num_pois
        counts = self.user_counts(queries) + self.popularity_weight * self.popularity_ / max(self.popularity_.max(), 1.0)
        total = counts.sum(axis=1, keepdims=True)
        p_user = np.divide(counts, total, out=np.full_like(counts, 1.0 / P), where=total > 0)
        prev = queries.prev_poi
        has_prev = prev >= 0
        safe = np.maximum(prev, 0)
        moves = self._moves[safe].toarray()  # [Q, P]
        moves[~has_prev] = 0.0
        prior = (self.popularity_ + 1.0) / (self.popularity_ + 1.0).sum()  # [P]
        a = self.smoothing
        denom = np.where(has_prev, self.out_degree_[safe], 0.0) + a
        p_markov = (moves + a * prior[None, :]) / denom[:, None]
        return self.weight * p_user + (1 - self.weight) * p_markov

    def hour_popularity(self, hours: np.ndarray) -> np.ndarray:
        """``[Q, P]`` learned visits at each local hour in ``hours`` (``[Q]``), smoothed over
        neighbouring hours with a circular Gaussian kernel and one pseudo-visit spread by
        popularity (as :class:`~stlab.baselines.HourPopularity`): what everyone does at this hour."""
        self._check_fitted()
        d = np.abs(np.arange(24)[:, None] - np.arange(24)[None, :])
        kernel = np.exp(-0.5 * (np.minimum(d, 24 - d) / self.hour_bandwidth_hours) ** 2)  # [24, 24]
        pop = self.popularity_
        table = kernel @ self.hour_counts_ + pop / max(pop.sum(), 1.0)  # [24, P]
        return table[np.asarray(hours, dtype=np.int64)]


# --------------------------------------------------------------------------- fine-tuning a Transformer

class FineTunedTransformer(NextVisitModel):
    """Chapter 8's space-time Transformer whose weights keep learning: after each day, a few
    gradient steps on that day's check-ins, at a small learning rate.

    Each :meth:`update` turns the new check-ins into queries (each with the user's history, as in
    training), then takes ``steps`` Adam steps from the current weights on batches of them drawn
    with a seeded generator, with the loss the model was trained with (softmax cross-entropy or
    BCE) and gradients clipped at norm 1. The optimiser starts afresh each day, so a day's update
    depends only on the weights and the day. PyTorch is imported only here.

    Args:
        base: a fitted :class:`~stlab.models.torch.attention.TransformerNextVisit` (copied, so the
            original stays frozen), or the :class:`~stlab.models.attention.config.TransformerConfig`
            of one to train in :meth:`fit` (``None``: the default configuration).
        steps: gradient steps per update.
        lr: learning rate of the updates (a fraction of the training rate, so a day nudges the
            weights rather than overwriting what months taught them).
        batch_size: queries per step (at most the day's).
        seed: seed of the batch draws (and of dropout, when the configuration has any).
    """

    def __init__(self, base: TransformerNextVisit | TransformerConfig | None = None, *, steps: int = 10,
                 lr: float = 5e-4, batch_size: int = 128, seed: int = 0) -> None:
        if steps < 1 or lr <= 0 or batch_size < 1:
            raise ValueError(f"need steps >= 1, lr > 0 and batch_size >= 1; got {steps}, {lr}, {batch_size}")
        self.base, self.steps, self.lr, self.batch_size, self.seed = base, steps, lr, batch_size, seed
        self.name = "Transformer, fine-tuned daily"

    def fit(self, task: NextVisitTask) -> Self:
        """Use the fitted base model (a copy) or train one on ``task``'s training events."""
        from stlab.models.torch.attention import TransformerNextVisit

        if isinstance(self.base, TransformerNextVisit):
            if getattr(self.base, "_task", None) is not task:
                raise ValueError("the base Transformer was fitted on another task (or not at all); fit it on this "
                                 "task first, or pass its TransformerConfig to train one here")
            self.model_ = copy.deepcopy(self.base, memo={id(task): task})  # the task is shared, not copied
        else:
            self.model_ = TransformerNextVisit(self.base).fit(task)
        self.name = f"{self.model_.name}, fine-tuned daily"
        self._task = task
        self.updates_ = 0
        self.losses_: list[float] = []
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        return self.model_.score(queries)

    def update(self, task: NextVisitTask, new_events: pd.DataFrame) -> None:
        """Fine-tune on the queries whose targets are ``new_events`` (rows of ``task.events``)."""
        import torch
        from torch import nn

        from stlab.models.torch.attention import (
            AttentionDataset,
            bce_loss,
            draw_negatives,
        )

        self._check_fitted()
        if task is not self.task:
            raise ValueError("update needs the task the model was fitted on (its events are what new_events index)")
        queries = queries_at(task, new_events.index.to_numpy())
        self.updates_ += 1
        if len(queries) == 0:
            return
        model, net = self.model_, self.model_.net_
        dataset = AttentionDataset(task, queries, counts=model._uses_counts)
        seed = self.seed + self.updates_  # a stream per update: reproducible, and no two days alike
        generator, negatives = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        devices = [model.device_.index or 0] if model.device_.type == "cuda" else []
        losses = []
        with torch.random.fork_rng(devices=devices):  # seeded dropout without touching the caller's RNG
            torch.manual_seed(seed)
            net.train()
            for _ in range(self.steps):
                rows = torch.randperm(len(dataset), generator=generator)[: self.batch_size].tolist()
                *inputs, target = (None if t is None else t.to(model.device_) for t in dataset.__getitems__(rows))
                if model.config.loss == "bce":
                    loss = bce_loss(net.logits(*inputs), target, draw_negatives(target, task.num_pois, negatives))
                else:
                    loss = nn.functional.nll_loss(net(*inputs), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                losses.append(float(loss.detach()))
            net.eval()
        self.losses_.append(float(np.mean(losses)))




# --------------------------------------------------------------------------- tasks as they were

def training_until(task: NextVisitTask, cutoff: int) -> NextVisitTask:
    """The task as it would be if training had ended at ``cutoff``: every event before it (and
    every original training event) is a training event; the rest are test events.

    Nothing later is left in validation, so a model whose ``fit`` stops early on validation
    queries cannot peek at the future. Rows keep their order, so row ``i`` is the same check-in
    in both tasks. ``split`` still describes the original cut.

    Args:
        task: the next-visit task.
        cutoff: int64 seconds since the epoch (UTC).
    """
    events = task.events
    learned = (events["part"].to_numpy() == 0) | (events["time"].to_numpy() < cutoff)
    return dataclasses.replace(task, events=events.assign(part=np.where(learned, 0, 2).astype(np.int64)))


class _QueryIndex:
    """The queries of one task by event row, each part's computed once, when first needed."""

    def __init__(self, task: NextVisitTask) -> None:
        self.task = task
        events = task.events
        self.part = events["part"].to_numpy()
        # As in NextVisitTask.queries: a check-in is a query when its user has an earlier one.
        self.has_history = events.groupby("user", sort=False).cumcount().to_numpy() > 0
        self._queries: dict[str, tuple[np.ndarray, NextVisitQueries]] = {}

    def _part(self, name: str) -> tuple[np.ndarray, NextVisitQueries]:
        if name not in self._queries:
            rows = np.flatnonzero((self.part == _PART_CODES[name]) & self.has_history)
            queries = self.task.queries(name)  # type: ignore[arg-type]
            if len(queries) != len(rows):
                raise RuntimeError(f"{len(queries)} {name} queries for {len(rows)} rows; NextVisitTask.queries "
                                   "no longer makes one query per check-in with history")
            self._queries[name] = rows, queries
        return self._queries[name]

    def at(self, rows: np.ndarray) -> tuple[np.ndarray, NextVisitQueries]:
        """``(rows that have a query, their queries)``, in row order."""
        wanted = np.zeros(len(self.part), dtype=bool)
        wanted[np.asarray(rows, dtype=np.int64)] = True
        found_rows, found = [], []
        for name, code in _PARTS:
            if not (wanted & (self.part == code) & self.has_history).any():
                continue
            part_rows, queries = self._part(name)
            keep = wanted[part_rows]
            found_rows.append(part_rows[keep])
            found.append(queries.subset(keep))
        if not found:
            return np.empty(0, dtype=np.int64), self._empty()
        all_rows = np.concatenate(found_rows)
        merged = NextVisitQueries(**{f: np.concatenate([getattr(q, f) for q in found])
                                     for f in NextVisitQueries.__dataclass_fields__})
        order = np.argsort(all_rows, kind="stable")
        return all_rows[order], merged.subset(order)

    def _empty(self) -> NextVisitQueries:
        L = self.task.history_len
        return NextVisitQueries(user=np.empty(0, np.int64), time=np.empty(0, np.int64), hour=np.empty(0, np.int64),
                                day_of_week=np.empty(0, np.int64), history_poi=np.empty((0, L), np.int64),
                                history_time=np.empty((0, L), np.int64), history_in_train=np.empty((0, L), bool),
                                target=np.empty(0, np.int64), user_seen=np.empty(0, bool))


def queries_at(task: NextVisitTask, rows: np.ndarray) -> NextVisitQueries:
    """The queries whose targets are the check-ins at ``rows`` of ``task.events`` (those whose
    user has an earlier check-in), in row order, exactly as :meth:`NextVisitTask.queries` builds
    them (history, and its training flags, relative to ``task``)."""
    return _QueryIndex(task).at(rows)[1]


__all__ = ["NO_TIME", "FineTunedTransformer", "OnlineCountModel", "Updatable", "queries_at", "training_until"]
