"""Prequential ("test-then-train") replay of an evaluation period, day by day, under a
:class:`Strategy` (see :mod:`stlab.online`).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from stlab.metrics import ranking_metrics_from_ranks
from stlab.online.models import (
    _PART_CODES,
    Updatable,
    _QueryIndex,
    training_until,
)
from stlab.protocol import (
    NextVisitModel,
    NextVisitTask,
    query_ranks,
)

# --------------------------------------------------------------------------- strategies

ModelSource = NextVisitModel | Callable[[], NextVisitModel]


def _fresh(source: ModelSource, task: NextVisitTask) -> NextVisitModel:
    """A new, independent model from a factory or a template instance."""
    if isinstance(source, NextVisitModel):
        # A deep copy of the model only: the tasks it points to are shared, not duplicated.
        shared = [t for t in (task, getattr(source, "_task", None)) if t is not None]
        return copy.deepcopy(source, memo={id(t): t for t in shared})
    model = source()
    if not isinstance(model, NextVisitModel):
        raise TypeError(f"the model factory returned {type(model).__name__}, not a NextVisitModel")
    return model


def _fitted(source: ModelSource, task: NextVisitTask, *, copy_fitted: bool) -> NextVisitModel:
    """``source`` fitted on ``task``: a model already fitted on it is reused (or copied)."""
    if isinstance(source, NextVisitModel) and getattr(source, "_task", None) is task:
        return _fresh(source, task) if copy_fitted else source
    return _fresh(source, task).fit(task)


class Strategy(Protocol):
    """How a model keeps up with new check-ins during a prequential replay.

    Attributes:
        kind: a short label of the strategy (``"frozen"``, ``"incremental"``, ...).
        label: the name results are reported under (``None``: ``"<kind>: <model name>"``).
    """

    kind: ClassVar[str]
    label: str | None

    def start(self, task: NextVisitTask) -> NextVisitModel:
        """The model fitted on the training events of ``task``."""

    def learn(self, model: NextVisitModel, task: NextVisitTask, new_events: pd.DataFrame,
              learned_until: int) -> NextVisitModel:
        """The model after ``new_events`` (rows of ``task.events``, every event before
        ``learned_until`` seconds that was not learned yet); may return ``model`` itself."""


@dataclass(frozen=True)
class Frozen:
    """Trained once on the training events; never learns again.

    Args:
        model: a model (used as it is if already fitted on the task) or a factory of one.
        label: the name of its results.
    """

    model: ModelSource
    label: str | None = None
    kind: ClassVar[str] = "frozen"

    def start(self, task: NextVisitTask) -> NextVisitModel:
        return _fitted(self.model, task, copy_fitted=False)  # never changed, so no copy is needed

    def learn(self, model: NextVisitModel, task: NextVisitTask, new_events: pd.DataFrame,
              learned_until: int) -> NextVisitModel:
        return model


@dataclass(frozen=True)
class Incremental:
    """Trained on the training events, then updated in place with each day's check-ins.

    Args:
        model: an :class:`Updatable` model (a fitted one is copied, so it stays as it was) or a
            factory of one.
        label: the name of its results.
    """

    model: ModelSource
    label: str | None = None
    kind: ClassVar[str] = "incremental"

    def start(self, task: NextVisitTask) -> NextVisitModel:
        model = _fitted(self.model, task, copy_fitted=True)
        if not isinstance(model, Updatable):
            raise TypeError(f"{type(model).__name__} has no update(task, new_events) method, so it cannot learn "
                            "incrementally; use NightlyRetrain for it, or an Updatable model such as "
                            "OnlineCountModel or FineTunedTransformer")
        return model

    def learn(self, model: NextVisitModel, task: NextVisitTask, new_events: pd.DataFrame,
              learned_until: int) -> NextVisitModel:
        model.update(task, new_events)  # type: ignore[attr-defined]
        return model


@dataclass(frozen=True)
class NightlyRetrain:
    """Refitted from scratch every night on every event logged so far (:func:`training_until`).

    Args:
        model: a factory of the model, or a template instance (copied before each fit).
        label: the name of its results.
    """

    model: ModelSource
    label: str | None = None
    kind: ClassVar[str] = "nightly retrain"

    def start(self, task: NextVisitTask) -> NextVisitModel:
        return _fitted(self.model, task, copy_fitted=True)

    def learn(self, model: NextVisitModel, task: NextVisitTask, new_events: pd.DataFrame,
              learned_until: int) -> NextVisitModel:
        return _fresh(self.model, task).fit(training_until(task, learned_until))


# --------------------------------------------------------------------------- prequential evaluation

def _check_temporal(task: NextVisitTask) -> None:
    if task.split.protocol != "temporal":
        raise ValueError(f"prequential replay needs a global temporal split, got a {task.split.protocol!r} split: "
                         "with one, some training events come after evaluation events, so no model could have "
                         "learned 'only the past'. Split with stlab.splits.clean_and_split or temporal_split.")


def replay_days(task: NextVisitTask, parts: Sequence[str] = ("val", "test")) -> pd.DataFrame:
    """The local days a prequential replay walks through: every day with a check-in of ``parts``.

    Returns:
        One row per day, in order: ``day`` (the local date), ``start`` (int64 seconds of its
        first instant: local midnight), ``events`` (check-ins of ``parts`` that day) and
        ``queries`` (those with an earlier check-in of their user).
    """
    codes = _part_codes(parts)
    events = task.events
    day = _local_days(events["time"].to_numpy(), task.timezone)
    in_parts = np.isin(events["part"].to_numpy(), codes)
    has_history = events.groupby("user", sort=False).cumcount().to_numpy() > 0
    frame = pd.DataFrame({"day": day[in_parts], "query": has_history[in_parts]})
    days = frame.groupby("day", sort=True).agg(events=("query", "size"), queries=("query", "sum")).reset_index()
    days.insert(1, "start", _day_starts(days["day"], task.timezone))
    return days.astype({"events": np.int64, "queries": np.int64})


def _part_codes(parts: Sequence[str]) -> list[int]:
    if isinstance(parts, str):
        parts = (parts,)
    unknown = [p for p in parts if p not in ("val", "test")]
    if unknown or not parts:
        raise ValueError(f"parts to replay must be 'val' and/or 'test', got {list(parts)!r}")
    return [_PART_CODES[p] for p in parts]


def _local_days(seconds: np.ndarray, timezone: str) -> np.ndarray:
    """``[N]`` local calendar date of each time, as ``datetime64[D]``."""
    local = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True)).tz_convert(timezone).tz_localize(None)
    return local.normalize().to_numpy().astype("datetime64[D]")


def _day_starts(days: pd.Series | np.ndarray, timezone: str) -> np.ndarray:
    """int64 seconds of the first instant of each local date (its midnight; on a day whose
    midnight does not exist, the first instant after the clock jump)."""
    midnight = pd.DatetimeIndex(pd.to_datetime(np.asarray(days, dtype="datetime64[D]")))
    starts = midnight.tz_localize(timezone, ambiguous=np.ones(len(midnight), dtype=bool), nonexistent="shift_forward")
    return starts.as_unit("s").asi8.astype(np.int64)


@dataclass(frozen=True)
class PrequentialResult:
    """What a prequential replay measured, day by day and query by query.

    Attributes:
        name: the strategy's label.
        daily: one row per replayed day: ``day``, ``queries``, ``MRR``, ``Acc@k`` (``NaN`` on a
            day without queries), ``events learned`` after the day, ``update seconds`` (the
            learning that followed the day; ``NaN`` after the last day, when nothing is left to
            predict) and ``score seconds``.
        ranks: one row per query: ``day``, ``user``, ``time``, ``target``, ``rank``.
        catch_up_seconds: the update before the first day, with the evaluation events that
            precede it (0 if none, or for a frozen model).
    """

    name: str
    daily: pd.DataFrame
    ranks: pd.DataFrame
    catch_up_seconds: float = 0.0

    def metrics(self, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """Acc@k, NDCG@k and MRR over every replayed query."""
        return ranking_metrics_from_ranks(self.ranks["rank"].to_numpy(), ks)


def prequential(task: NextVisitTask, strategy: Strategy, *, parts: Sequence[str] = ("val", "test"),
                ks: Sequence[int] = (1, 5, 10), batch_size: int = 1024) -> PrequentialResult:
    """Replay the evaluation period day by day: score each day's queries, then learn its events.

    1. The strategy's model is fitted on the training events.
    2. Before the first replayed day, it learns every later event that precedes that day (none
       with the default ``parts``; the validation period when only ``"test"`` is replayed).
    3. For each local day ``d`` (in ``task.timezone``) with a check-in of ``parts``: every query
       of ``parts`` on day ``d`` is ranked over all POIs by the model as it stands; then the model
       learns every event from the start of day ``d`` to the start of the next replayed day.

    The queries come from the task the model was fitted on (``model.task``), so a model refitted
    on :func:`training_until` reads the same histories with training flags that match its
    training events. Nothing here is random; a strategy whose model is seeded is reproducible.

    Args:
        task: a task with a global temporal split (``split.protocol == "temporal"``).
        strategy: :class:`Frozen`, :class:`Incremental`, :class:`NightlyRetrain` or your own.
        parts: the evaluation parts to replay, ``"val"`` and/or ``"test"``.
        ks: cut-offs of the daily Acc@k.
        batch_size: queries scored per call.

    Raises:
        ValueError: a split that is not temporal, or nothing to replay.
    """
    _check_temporal(task)
    days = replay_days(task, parts)
    if days.empty:
        raise ValueError(f"no check-ins of {list(parts)} to replay; the split has none")
    events = task.events
    when = events["time"].to_numpy()
    part = events["part"].to_numpy()
    learnable = part != 0  # training events are learned by every strategy's fit
    in_parts = np.isin(part, _part_codes(parts))
    day_of_row = _local_days(when, task.timezone)
    starts = days["start"].to_numpy()

    model = strategy.start(task)
    name = getattr(strategy, "label", None) or f"{getattr(strategy, 'kind', type(strategy).__name__)}: {model.name}"
    catch_up_seconds = 0.0
    early = np.flatnonzero(learnable & (when < starts[0]))
    if len(early):
        clock = time.perf_counter()
        model = strategy.learn(model, task, events.iloc[early], int(starts[0]))
        catch_up_seconds = time.perf_counter() - clock

    indexes: dict[int, _QueryIndex] = {}
    daily, rank_parts = [], []
    for i, (day, start) in enumerate(zip(days["day"].to_numpy(), starts)):
        if id(model.task) not in indexes:  # a refitted model brings its own task
            indexes = {id(model.task): _QueryIndex(model.task)}
        rows = np.flatnonzero(in_parts & (day_of_row == day))
        query_rows, queries = indexes[id(model.task)].at(rows)
        if np.any(when[query_rows] < start):  # local dates and day starts disagree: a bug, not bad data
            raise RuntimeError(f"a query of {day} precedes the day's start")
        clock = time.perf_counter()
        ranks = query_ranks(model, queries, batch_size=batch_size)
        score_seconds = time.perf_counter() - clock
        row: dict[str, Any] = {"day": pd.Timestamp(day), "queries": len(queries)}
        row.update(_day_metrics(ranks, ks))
        learned, update_seconds = 0, math.nan
        if i + 1 < len(days):
            until = int(starts[i + 1])
            new = np.flatnonzero(learnable & (when >= start) & (when < until))
            clock = time.perf_counter()
            model = strategy.learn(model, task, events.iloc[new], until)
            update_seconds = time.perf_counter() - clock
            learned = len(new)
        row.update({"events learned": learned, "update seconds": update_seconds, "score seconds": score_seconds})
        daily.append(row)
        rank_parts.append(pd.DataFrame({"day": pd.Timestamp(day), "user": queries.user, "time": queries.time,
                                        "target": queries.target, "rank": ranks}))
    return PrequentialResult(name=name, daily=pd.DataFrame(daily), ranks=pd.concat(rank_parts, ignore_index=True),
                             catch_up_seconds=catch_up_seconds)


def _day_metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    if len(ranks) == 0:
        return {"MRR": math.nan, **{f"Acc@{k}": math.nan for k in ks}}
    metrics = ranking_metrics_from_ranks(ranks, ks)
    return {"MRR": metrics["MRR"], **{f"Acc@{k}": metrics[f"Acc@{k}"] for k in ks}}


def prequential_table(results: Sequence[PrequentialResult], ks: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
    """One row per strategy: MRR and Acc@k over all replayed queries, and what learning cost
    (mean and total seconds of the daily updates, and the catch-up before the first day)."""
    rows = []
    for result in results:
        metrics = result.metrics(ks)
        updates = result.daily["update seconds"].dropna()
        rows.append({"strategy": result.name, "queries": len(result.ranks), "days": len(result.daily),
                     "MRR": metrics["MRR"], **{f"Acc@{k}": metrics[f"Acc@{k}"] for k in ks},
                     "update s (mean)": float(updates.mean()) if len(updates) else 0.0,
                     "update s (total)": float(updates.sum()), "catch-up s": result.catch_up_seconds})
    return pd.DataFrame(rows).set_index("strategy")


def prequential_curves(results: Sequence[PrequentialResult], metric: str = "MRR", *, window: int = 1) -> pd.DataFrame:
    """Days x strategies: ``metric`` over the queries of each day, or of the last ``window``
    days (pooled over queries, so a quiet day weighs less than a busy one). Plot it with
    ``.plot()``.

    Args:
        metric: ``"MRR"`` or ``"Acc@k"`` (any ``k``).
        window: days pooled per point (1: each day alone).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 day, got {window}")
    if metric == "MRR":
        def per_query(rank: np.ndarray) -> np.ndarray:
            return 1.0 / rank
    elif metric.startswith("Acc@") and metric[4:].isdigit():
        k = int(metric[4:])

        def per_query(rank: np.ndarray) -> np.ndarray:
            return (rank <= k).astype(np.float64)
    else:
        raise ValueError(f"metric must be 'MRR' or 'Acc@k' (such as 'Acc@10'), got {metric!r}")
    names = [result.name for result in results]
    if len(set(names)) != len(names):
        raise ValueError(f"results share a name ({names}); give the strategies distinct labels, e.g. "
                         "Incremental(model, label='incremental')")
    curves = {}
    for result in results:
        days = pd.DatetimeIndex(result.daily["day"])
        value = pd.Series(per_query(result.ranks["rank"].to_numpy(np.float64)))
        pooled = value.groupby(result.ranks["day"].to_numpy()).agg(["sum", "size"]).reindex(days, fill_value=0)
        rolled = pooled.rolling(window, min_periods=1).sum()
        curves[result.name] = (rolled["sum"] / rolled["size"].where(rolled["size"] > 0)).to_numpy()
    return pd.DataFrame(curves, index=pd.DatetimeIndex(results[0].daily["day"], name="day") if results else None)



__all__ = ["Frozen", "Incremental", "ModelSource", "NightlyRetrain", "PrequentialResult", "Strategy", "prequential",
           "prequential_curves", "prequential_table", "replay_days"]
