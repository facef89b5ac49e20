"""The next-visit task and the book's one evaluation protocol.

**Task.** Given a user's check-ins up to time ``t``, rank *all* POIs for the user's check-in at
``t`` (full ranking: no sampled negatives).

**Protocol** (chapter 4; every later model is evaluated the same way):

1. Clean the log and split it chronologically with :func:`stlab.splits.clean_and_split`: row
   rules on the whole log, a global temporal split, and the k-core on training events only
   (later events keep the training core's POIs; new users are kept as cold-start). Models are
   *fitted on training events only*.
2. Each validation or test check-in is one query, except a user's very first check-in (there is
   no history to condition on). A query carries the user, the time ``t`` and the user's last
   ``history_len`` check-ins before ``t`` -- including earlier validation and test check-ins,
   which a deployed system would have logged by then. Models read that history but never refit.
3. Candidates are all POIs of the cleaned log, which with the leak-free filter is the training
   catalogue. (With a split made otherwise, a POI first seen after training is still a candidate;
   a model that cannot score it ranks it last: ties are counted pessimistically.)
4. Metrics: Acc@k (= Recall@k = HitRate@k, one relevant POI), NDCG@k and MRR
   (:mod:`stlab.metrics`), reported overall and separately for users seen / unseen in training.

Introduced in chapter 4 (Predicting the next visit); chapters 6-10 and the study reuse it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Self

import numpy as np
import pandas as pd

from stlab.metrics import DEFAULT_KS, ranking_metrics_from_ranks, target_ranks, top_k
from stlab.splits import Split

Part = Literal["train", "val", "test"]
_PART_CODE = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class NextVisitQueries:
    """A batch of "where next?" questions, all arrays aligned on the query axis.

    Attributes:
        user: ``[Q]`` user index (``0 .. num_users - 1``).
        time: ``[Q]`` int64 seconds since the epoch (UTC) of the check-in to predict.
        hour: ``[Q]`` local hour of day of that check-in (0--23).
        day_of_week: ``[Q]`` local day of week (Monday = 0).
        history_poi: ``[Q, L]`` POI indices of the user's last ``L`` check-ins before ``t``, most
            recent in the **last** column, ``-1`` where the user has fewer.
        history_time: ``[Q, L]`` int64 seconds of those check-ins (0 where padded).
        history_in_train: ``[Q, L]`` whether each history check-in is a training event (models
            that count a user's training events use it to avoid counting them twice).
        target: ``[Q]`` POI index of the check-in that happened.
        user_seen: ``[Q]`` whether the user has any training check-in.
    """

    user: np.ndarray
    time: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    history_poi: np.ndarray
    history_time: np.ndarray
    history_in_train: np.ndarray
    target: np.ndarray
    user_seen: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def prev_poi(self) -> np.ndarray:
        """``[Q]`` the previous POI (``-1`` if none)."""
        return self.history_poi[:, -1]

    @property
    def prev_time(self) -> np.ndarray:
        """``[Q]`` seconds of the previous check-in."""
        return self.history_time[:, -1]

    def subset(self, rows: np.ndarray | slice) -> NextVisitQueries:
        """The queries at ``rows`` (a slice, boolean mask or index array)."""
        return NextVisitQueries(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    def batches(self, batch_size: int) -> Iterator[NextVisitQueries]:
        """Consecutive batches of at most ``batch_size`` queries."""
        for start in range(0, len(self), batch_size):
            yield self.subset(slice(start, start + batch_size))


@dataclass(frozen=True)
class NextVisitTask:
    """Encoded check-ins, the split, and the candidate POIs: everything a model needs.

    Attributes:
        events: every cleaned check-in sorted by user then time, with integer ``user`` and
            ``poi`` indices, ``time`` (int64 seconds), local ``hour``, ``day_of_week`` and ``part``
            (0 train, 1 val, 2 test).
        pois: ``[P]`` table of the candidates (``poi_id, lat, lon``), row ``i`` = POI index ``i``.
        user_ids: ``[U]`` original user ids, position = user index.
        timezone: local zone of the city (for hours and days).
        history_len: ``L``, check-ins of history per query.
        split: the split the parts come from.
    """

    events: pd.DataFrame
    pois: pd.DataFrame
    user_ids: np.ndarray
    timezone: str
    history_len: int
    split: Split

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_pois(self) -> int:
        return len(self.pois)

    @property
    def train(self) -> pd.DataFrame:
        """Training check-ins (encoded), the only events a model may fit on."""
        return self.events[self.events["part"] == 0]

    @cached_property
    def training_moves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(source, destination, arrival time)`` of consecutive training check-ins of one user,
        sorted by source, then arrival: what :func:`prior_transition_counts` searches (computed
        once per task; models ask for it once per batch)."""
        source, dest, arrival = consecutive_moves(self.train)
        order = np.lexsort((arrival, source))
        return source[order], dest[order], arrival[order]

    @cached_property
    def train_popularity(self) -> np.ndarray:
        """``[P]`` training check-ins per POI (read-only)."""
        counts = np.bincount(self.train["poi"].to_numpy(), minlength=self.num_pois).astype(np.float64)
        counts.flags.writeable = False
        return counts

    @cached_property
    def train_hour_counts(self) -> np.ndarray:
        """``[24, P]`` training check-ins per local hour of the day and POI (read-only)."""
        train = self.train
        counts = np.zeros((24, self.num_pois))
        np.add.at(counts, (train["hour"].to_numpy(), train["poi"].to_numpy()), 1.0)
        counts.flags.writeable = False
        return counts

    def queries(self, part: Part = "test") -> NextVisitQueries:
        """One query per check-in of ``part`` that has at least one earlier check-in of its user
        (and, when ``events`` has a boolean ``is_query`` column, is marked as a query)."""
        if part not in _PART_CODE:
            raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
        ev = self.events
        user = ev["user"].to_numpy()
        poi = ev["poi"].to_numpy()
        time = ev["time"].to_numpy()
        in_train = (ev["part"] == 0).to_numpy()
        position = ev.groupby("user", sort=False).cumcount().to_numpy()
        wanted = (ev["part"].to_numpy() == _PART_CODE[part]) & (position > 0)
        if "is_query" in ev:  # a protocol preset that scores only some check-ins (stlab.study.presets)
            wanted &= ev["is_query"].to_numpy(dtype=bool)
        rows = np.flatnonzero(wanted)
        L = self.history_len
        lags = np.arange(L, 0, -1)  # oldest first, so the last column is the previous check-in
        source = rows[:, None] - lags[None, :]  # [Q, L] row of each history check-in
        valid = lags[None, :] <= position[rows][:, None]  # within the same user
        safe = np.where(valid, source, 0)
        seen_users = np.zeros(self.num_users, dtype=bool)
        seen_users[user[in_train]] = True
        return NextVisitQueries(
            user=user[rows], time=time[rows], hour=ev["hour"].to_numpy()[rows],
            day_of_week=ev["day_of_week"].to_numpy()[rows],
            history_poi=np.where(valid, poi[safe], -1), history_time=np.where(valid, time[safe], 0),
            history_in_train=valid & in_train[safe], target=poi[rows], user_seen=seen_users[user[rows]],
        )


def consecutive_moves(events: pd.DataFrame, max_gap_hours: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(previous POI, next POI, arrival time)`` of consecutive check-ins of the same user.

    Args:
        events: encoded check-ins sorted by user, then time (``user``, ``poi``, ``time`` columns).
        max_gap_hours: pairs further apart than this are not moves (a new trip); ``None`` keeps all.
    """
    user, time, poi = (events[c].to_numpy() for c in ("user", "time", "poi"))
    same_user = user[1:] == user[:-1]
    if max_gap_hours is not None:
        same_user &= np.diff(time) / 3600.0 <= max_gap_hours
    return poi[:-1][same_user], poi[1:][same_user], time[1:][same_user]


def training_transitions(task: NextVisitTask, max_gap_hours: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(previous POI, next POI)`` of consecutive training check-ins of the same user."""
    source, dest, _ = consecutive_moves(task.train, max_gap_hours)
    return source, dest


def build_task(checkins: pd.DataFrame, split: Split, *, timezone: str = "UTC", history_len: int = 20) -> NextVisitTask:
    """Encode cleaned check-ins and their split into a :class:`NextVisitTask`.

    Args:
        checkins: the cleaned log (``user_id, poi_id, timestamp, lat, lon``), the same rows the
            split was made from.
        split: from :func:`stlab.splits.temporal_split` or :func:`~stlab.splits.per_user_split`.
        timezone: the city's zone, for local hours.
        history_len: check-ins of history per query (``L``).
    """
    if history_len < 1:
        raise ValueError(f"history_len must be at least 1, got {history_len}")
    parts = []
    for name, frame in (("train", split.train), ("val", split.val), ("test", split.test)):
        parts.append(frame[["user_id", "poi_id", "timestamp"]].assign(part=_PART_CODE[name]))
    events = pd.concat(parts, ignore_index=True)
    if len(events) != len(checkins):
        raise ValueError(f"the split holds {len(events):,} check-ins but the log {len(checkins):,}; "
                         "split the same cleaned table you pass here")
    pois = (checkins.groupby("poi_id", sort=True)[["lat", "lon"]].median().reset_index())
    user_ids = np.sort(checkins["user_id"].unique())
    events["user"] = np.searchsorted(user_ids, events["user_id"].to_numpy())
    events["poi"] = np.searchsorted(pois["poi_id"].to_numpy(), events["poi_id"].to_numpy())
    events["time"] = pd.DatetimeIndex(events["timestamp"]).as_unit("s").asi8
    local = events["timestamp"].dt.tz_convert(timezone)
    events["hour"] = local.dt.hour.astype(np.int64)
    events["day_of_week"] = local.dt.day_of_week.astype(np.int64)
    # Sort by user, then time; the part breaks ties so a training event precedes a test event
    # logged in the same second.
    events = events.sort_values(["user", "time", "part"], kind="stable", ignore_index=True)
    return NextVisitTask(events=events, pois=pois, user_ids=user_ids, timezone=timezone,
                         history_len=history_len, split=split)


# --------------------------------------------------------------------------- the model interface

class NotFittedError(RuntimeError):
    """A model was asked to score before ``fit``."""


class NextVisitModel(ABC):
    """The interface every next-visit model implements, whichever framework it is written in.

    Subclasses set :attr:`name`, implement :meth:`fit` and :meth:`score`; :meth:`recommend` is
    shared. ``score`` returns ``[Q, P]`` finite or ``-inf`` scores, higher = more likely. The
    baselines of chapter 4, the recurrent models of chapters 6-7, the attention models of chapters 8-9 and the graph models of chapter 10
    all subclass it, so :func:`evaluate` and :func:`results_table` loop over models without special
    cases (the pattern of RecBole's ``full_sort_predict``).
    """

    name: str = "model"
    _task: NextVisitTask | None = None

    @abstractmethod
    def fit(self, task: NextVisitTask) -> Self:
        """Learn from ``task.train`` (training check-ins only); return ``self``."""

    @abstractmethod
    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` scores of every candidate POI for each query."""

    def recommend(self, queries: NextVisitQueries, k: int = 10, *, batch_size: int = 1024) -> np.ndarray:
        """``[Q, k]`` POI indices, best first (scored a batch at a time)."""
        parts = [top_k(self.score(batch), k) for batch in queries.batches(batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, k), dtype=np.int64)

    def _check_fitted(self) -> None:
        self.task  # noqa: B018 -- the property raises NotFittedError

    @property
    def task(self) -> NextVisitTask:
        if self._task is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call .fit(task) first")
        return self._task

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# --------------------------------------------------------------------------- evaluation

def evaluate(model: NextVisitModel, queries: NextVisitQueries, ks: Sequence[int] = DEFAULT_KS, *,
             batch_size: int = 1024) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on ``queries``, scoring one batch at a time.

    Memory stays at ``batch_size x num_pois`` scores however many queries there are.
    """
    return ranking_metrics_from_ranks(query_ranks(model, queries, batch_size=batch_size), ks)


def query_ranks(model: NextVisitModel, queries: NextVisitQueries, *, batch_size: int = 1024) -> np.ndarray:
    """``[Q]`` rank of the true POI for each query (1 = ranked first)."""
    parts = [target_ranks(model.score(batch), batch.target) for batch in queries.batches(batch_size)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def results_table(models: Sequence[NextVisitModel], queries: NextVisitQueries, ks: Sequence[int] = (1, 5, 10),
                  *, by_user_seen: bool = True, batch_size: int = 1024) -> pd.DataFrame:
    """One row per model: Acc@k, NDCG@k, MRR overall (and for seen / unseen users)."""
    ranks = {model.name: query_ranks(model, queries, batch_size=batch_size) for model in models}
    return ranks_table(ranks, queries, ks, by_user_seen=by_user_seen)


def ranks_table(ranks: Mapping[str, np.ndarray], queries: NextVisitQueries, ks: Sequence[int] = (1, 5, 10), *,
                by_user_seen: bool = True, segments: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """:func:`results_table` from ranks already computed: ``{model name: [Q] ranks}``.

    ``segments`` adds one column ``MRR (<name>)`` per ``[Q]`` boolean mask (for example
    :func:`query_segments`'s return and explore queries).
    """
    masks: dict[str, np.ndarray] = {}
    if by_user_seen:
        masks.update({"seen users": queries.user_seen, "unseen users": ~queries.user_seen})
    masks.update(segments or {})
    rows = []
    for name, model_ranks in ranks.items():
        if len(model_ranks) != len(queries):
            raise ValueError(f"{name}: {len(model_ranks)} ranks for {len(queries)} queries")
        row = {"model": name, **ranking_metrics_from_ranks(model_ranks, ks)}
        for label, mask in masks.items():
            if len(mask) != len(queries):
                raise ValueError(f"segment {label!r} has {len(mask)} entries for {len(queries)} queries")
            if mask.any():
                row[f"MRR ({label})"] = ranking_metrics_from_ranks(model_ranks[mask], ks)["MRR"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def query_segments(task: NextVisitTask, queries: NextVisitQueries, *, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """``[Q]`` boolean masks of the usual breakdowns: ``"seen users"`` / ``"unseen users"`` (any
    training check-in), and ``"return"`` / ``"explore"`` queries (the user visited the target
    before ``t``, as far as the query can know -- :func:`prior_visit_counts` -- or not)."""
    visited = np.concatenate([prior_visit_counts(task, batch)[np.arange(len(batch)), batch.target] > 0
                              for batch in queries.batches(batch_size)]) if len(queries) else np.zeros(0, bool)
    return {"seen users": queries.user_seen, "unseen users": ~queries.user_seen,
            "return": visited, "explore": ~visited}


def prior_visit_counts(task: NextVisitTask, queries: NextVisitQueries) -> np.ndarray:
    """``[Q, P]`` the user's check-ins at each POI before ``t``, without looking ahead.

    Training check-ins of the user strictly before ``t`` are counted from the log; later
    check-ins (validation, test) only as far as they appear in the query's history window,
    which is all a query carries. For a test query this equals
    :class:`~stlab.baselines.UserFrequency`'s counts; for a training query it never counts the
    target itself -- the leak a model would learn from if it were given full training counts.
    """
    ev = task.events
    train_rows = np.flatnonzero((ev["part"] == 0).to_numpy())
    train_user = ev["user"].to_numpy()[train_rows]
    train_time = ev["time"].to_numpy()[train_rows]
    train_poi = ev["poi"].to_numpy()[train_rows]
    # Training rows are sorted by user, then time, so (user, time) keys are sorted too and one
    # search finds where each query's "before t" range of its user ends.
    key_scale = np.int64(1) << 34  # above any time in seconds until the year 2514
    start = np.searchsorted(train_user, queries.user, side="left")
    end = np.searchsorted(train_user * key_scale + train_time, queries.user * key_scale + queries.time, side="left")
    lengths = end - start
    rows = np.repeat(np.arange(len(queries)), lengths)
    sources = np.concatenate([np.arange(s, e) for s, e in zip(start, end)]) if lengths.sum() else np.empty(0, int)
    counts = np.zeros((len(queries), task.num_pois))
    np.add.at(counts, (rows, train_poi[sources]), 1.0)
    later = (queries.history_poi >= 0) & ~queries.history_in_train
    q_idx, l_idx = np.nonzero(later)
    np.add.at(counts, (q_idx, queries.history_poi[q_idx, l_idx]), 1.0)
    return counts


def prior_transition_counts(task: NextVisitTask, queries: NextVisitQueries) -> np.ndarray:
    """``[Q, P]`` how often training check-ins went from the query's previous POI to each POI,
    counting only moves that ended strictly before ``t``.

    For validation and test queries that is every training move out of the previous POI -- what
    :class:`~stlab.baselines.Markov` counts. For a training query it excludes its own move and
    every later one, so a model trained on these counts never sees the answer among its inputs.
    Moves are consecutive training check-ins of one user.
    """
    source, dest, arrival = task.training_moves
    key_scale = np.int64(1) << 34  # as in prior_visit_counts
    prev = queries.prev_poi
    start = np.searchsorted(source, prev, side="left")
    end = np.searchsorted(source * key_scale + arrival, prev * key_scale + queries.time, side="left")
    lengths = np.maximum(end - start, 0)
    rows = np.repeat(np.arange(len(queries)), lengths)
    moves = np.concatenate([np.arange(s, s + n) for s, n in zip(start, lengths)]) if lengths.sum() else np.empty(0, int)
    counts = np.zeros((len(queries), task.num_pois))
    np.add.at(counts, (rows, dest[moves]), 1.0)
    return counts
