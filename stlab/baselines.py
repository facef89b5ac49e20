"""Next-visit baselines behind one interface: ``fit`` on training check-ins, ``score`` a batch
of queries over all candidate POIs, ``recommend`` the top ``k``.

Every next-visit model of the book -- these baselines, the recurrent models of chapters 6--7 and
the graph models of chapter 10 -- subclasses :class:`stlab.protocol.NextVisitModel`, so the study
loops over models without special cases (the pattern of RecBole's ``full_sort_predict``).
:func:`tuned_baselines` gives all of them, tuned on validation as chapter 4 does, to every later
chapter.

The baselines, from the crudest up:

* :class:`Popularity` -- how often each POI was visited in training.
* :class:`UserFrequency` -- the user's most visited POIs (popularity breaks ties).
* :class:`HourPopularity` -- the POIs most visited at this hour of the day.
* :class:`Markov` -- first-order transitions ``P(next | previous)``, smoothed towards popularity.
* :class:`DistancePopularity` -- popularity times a distance decay from the previous place, the
  decay length fitted by maximum likelihood.
* :class:`BayesUserPOI` -- ``P(i | u) ∝ P(u | i) P(i)``, optionally with the hour
  (``P(h | i)``, naive Bayes).
* :class:`ImplicitALS` -- matrix factorisation of the user x POI counts (Hu, Koren & Volinsky,
  2008), users unseen in training folded in from their history.
* :class:`UserMarkovBlend` -- a mixture of the user's own counts and the Markov chain.

Introduced in chapter 4 (Predicting the next visit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from stlab.data.synthetic import SyntheticWorld
from stlab.features import haversine_km
from stlab.protocol import (NextVisitModel, NextVisitQueries, NextVisitTask, NotFittedError, evaluate,
                            prior_visit_counts, training_transitions)


# --------------------------------------------------------------------------- shared counts

def _user_poi_counts(task: NextVisitTask) -> sp.csr_matrix:
    """``[U, P]`` sparse training visits per user and POI."""
    train = task.train
    ones = np.ones(len(train))
    return sp.csr_matrix((ones, (train["user"].to_numpy(), train["poi"].to_numpy())),
                         shape=(task.num_users, task.num_pois))


def _history_counts(queries: NextVisitQueries, num_pois: int, *, exclude_train: bool) -> np.ndarray:
    """``[Q, P]`` visits in each query's history window (optionally only non-training ones)."""
    keep = queries.history_poi >= 0
    if exclude_train:
        keep &= ~queries.history_in_train
    rows, cols = np.nonzero(keep)
    counts = np.zeros((len(queries), num_pois))
    np.add.at(counts, (rows, queries.history_poi[rows, cols]), 1.0)
    return counts


# --------------------------------------------------------------------------- models

class Popularity(NextVisitModel):
    """Rank POIs by training visits, the same list for everyone."""

    name = "Popularity"

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        self.counts_ = task.train_popularity  # [P]
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.counts_, (len(queries), len(self.counts_))).copy()


class UserFrequency(NextVisitModel):
    """The user's most visited POIs so far; unvisited POIs follow in order of popularity.

    Args:
        popularity_weight: weight of the tie-breaking popularity term; below one visit, so a
            POI the user visited once always outranks every POI they never visited.
    """

    name = "User's most frequent"

    def __init__(self, popularity_weight: float = 0.5) -> None:
        if not 0 <= popularity_weight < 1:
            raise ValueError(f"popularity_weight must be in [0, 1) to stay a tie-breaker, got {popularity_weight}")
        self.popularity_weight = popularity_weight

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        pop = task.train_popularity
        self.tiebreak_ = self.popularity_weight * pop / max(pop.max(), 1.0)  # [P] in [0, w]
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        return prior_visit_counts(self.task, queries) + self.tiebreak_[None, :]


class HourPopularity(NextVisitModel):
    """POIs most visited at the query's local hour, smoothed over neighbouring hours.

    Args:
        bandwidth_hours: standard deviation of the circular Gaussian kernel over hours; counts
            of an hour borrow from nearby hours, as 12:55 and 13:05 are alike.
        prior_weight: pseudo-visits spread by overall popularity, for POIs rare at an hour.
    """

    name = "Popular at this hour"

    def __init__(self, bandwidth_hours: float = 1.0, prior_weight: float = 1.0) -> None:
        if bandwidth_hours <= 0 or prior_weight < 0:
            raise ValueError("bandwidth_hours must be > 0 and prior_weight >= 0")
        self.bandwidth_hours = bandwidth_hours
        self.prior_weight = prior_weight

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        by_hour = task.train_hour_counts  # [24, P]
        d = np.abs(np.arange(24)[:, None] - np.arange(24)[None, :])
        kernel = np.exp(-0.5 * (np.minimum(d, 24 - d) / self.bandwidth_hours) ** 2)  # [24, 24]
        pop = by_hour.sum(0)
        self.table_ = kernel @ by_hour + self.prior_weight * pop / max(pop.sum(), 1.0)  # [24, P]
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        return self.table_[queries.hour]


class Markov(NextVisitModel):
    """First-order Markov chain over POIs: ``P(j | i) = (C[i, j] + a p(j)) / (C[i, .] + a)``.

    ``C`` counts consecutive training check-ins of the same user; ``p`` is the popularity
    distribution (add-one smoothed), so a POI never seen after ``i`` still gets ``a p(j)`` and a
    POI never seen at all falls back to popularity entirely.

    Args:
        smoothing: ``a``, pseudo-transitions spread by popularity.
        max_gap_hours: pairs further apart than this are not transitions (a new trip).
    """

    name = "Markov (1st order)"

    def __init__(self, smoothing: float = 1.0, max_gap_hours: float | None = None) -> None:
        if smoothing <= 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        self.smoothing = smoothing
        self.max_gap_hours = max_gap_hours

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        src, dst = training_transitions(task, self.max_gap_hours)
        P = task.num_pois
        self.transitions_ = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(P, P))  # [P, P]
        self.out_degree_ = np.asarray(self.transitions_.sum(axis=1)).ravel()  # [P]
        pop = task.train_popularity + 1.0
        self.prior_ = pop / pop.sum()  # [P]
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        prev = queries.prev_poi
        counts = self.transitions_[np.maximum(prev, 0)].toarray()  # [Q, P]
        counts[prev < 0] = 0.0
        a = self.smoothing
        denom = np.where(prev >= 0, self.out_degree_[np.maximum(prev, 0)], 0.0) + a
        return (counts + a * self.prior_[None, :]) / denom[:, None]


class DistancePopularity(NextVisitModel):
    """Popularity discounted by distance from the previous place: ``p(i) exp(-d / l)``.

    The decay length ``l`` is chosen from ``scales_km`` by the log-likelihood of training
    transitions (the softmax over all POIs), so no test data is used.

    Args:
        scales_km: candidate decay lengths in km.
        sample_size: training transitions used to choose ``l`` (a random sample; seeded).
        seed: seed of that sample.
    """

    name = "Distance-aware popularity"

    def __init__(self, scales_km: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0),
                 sample_size: int = 5000, seed: int = 0) -> None:
        if not scales_km or min(scales_km) <= 0:
            raise ValueError("scales_km must hold positive lengths")
        self.scales_km = tuple(scales_km)
        self.sample_size = sample_size
        self.seed = seed

    def _distances(self, prev: np.ndarray) -> np.ndarray:
        """``[Q, P]`` km from each previous POI to every candidate (0 where there is none)."""
        pois = self.task.pois
        lat, lon = pois["lat"].to_numpy(), pois["lon"].to_numpy()
        safe = np.maximum(prev, 0)
        dist = haversine_km(lat[safe][:, None], lon[safe][:, None], lat[None, :], lon[None, :])  # [Q, P]
        dist[prev < 0] = 0.0  # no previous place: popularity alone
        return dist

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        self.log_pop_ = np.log(task.train_popularity + 1.0)  # add-one: unseen POIs stay rankable
        src, dst = training_transitions(task)
        rng = np.random.default_rng(self.seed)
        take = rng.choice(len(src), size=min(self.sample_size, len(src)), replace=False)
        src, dst = src[take], dst[take]
        dist = self._distances(src)  # [S, P], computed once for every candidate length
        self.log_likelihood_ = {}
        for scale in self.scales_km:
            logits = self.log_pop_[None, :] - dist / scale
            top = logits.max(axis=1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            self.log_likelihood_[scale] = float((logits[np.arange(len(dst)), dst] - log_norm).mean())
        self.scale_km_ = max(self.log_likelihood_, key=self.log_likelihood_.__getitem__)
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        return self.log_pop_[None, :] - self._distances(queries.prev_poi) / self.scale_km_


class BayesUserPOI(NextVisitModel):
    """``P(i | u) ∝ P(u | i) P(i)``, and with ``use_hour`` also ``× P(h | i)`` (naive Bayes).

    With additive smoothing ``a``: ``P(u | i) = (C[u, i] + a) / (N_i + a U)`` and
    ``P(h | i) = (C[h, i] + a) / (N_i + 24 a)``, ``P(i) = (N_i + 1) / (N + P)``. The user's
    check-ins after training that fall in the query's history window are added to ``C[u, i]``
    and to ``N_i`` alike.

    Args:
        smoothing: ``a``.
        use_hour: multiply in ``P(h | i)``, treating user and hour as independent given the POI.
    """

    def __init__(self, smoothing: float = 0.01, use_hour: bool = False) -> None:
        if smoothing <= 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        self.smoothing = smoothing
        self.use_hour = use_hour
        self.name = "Bayes P(u|i)P(h|i)P(i)" if use_hour else "Bayes P(u|i)P(i)"

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        n_i = task.train_popularity
        self.n_i_ = n_i
        self.log_prior_ = np.log((n_i + 1.0) / (n_i.sum() + task.num_pois))  # [P]
        by_hour = task.train_hour_counts  # [24, P]
        a = self.smoothing
        self.log_hour_ = np.log((by_hour + a) / (n_i[None, :] + 24 * a))  # [24, P]
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        a, U = self.smoothing, self.task.num_users
        later = _history_counts(queries, self.task.num_pois, exclude_train=True)  # [Q, P]
        c_ui = prior_visit_counts(self.task, queries)  # [Q, P], includes `later`
        # The user's check-ins after training join the POI's total too, so P(u | i) <= 1.
        scores = np.log((c_ui + a) / (self.n_i_[None, :] + later + a * U)) + self.log_prior_[None, :]
        if self.use_hour:
            scores += self.log_hour_[queries.hour]
        return scores


@dataclass
class _ALSState:
    user_factors: np.ndarray  # [U, k]
    item_factors: np.ndarray  # [P, k]


class ImplicitALS(NextVisitModel):
    """Matrix factorisation for implicit feedback by alternating least squares (Hu et al., 2008).

    Minimises ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (|x|^2 + |y|^2)`` with preference
    ``p_ui = [r_ui > 0]`` and confidence ``c_ui = 1 + alpha r_ui`` (``r`` = visit counts). A user
    with no training check-ins is *folded in*: their vector is solved from the POIs in their
    history window against the fixed POI vectors. A POI with no training check-in has no
    interest vector to speak of (ALS leaves it at zero) and scores ``-inf``: below every POI the
    model knows, however negative their scores.

    Args:
        factors: dimension ``k`` of the interest vectors.
        reg: L2 penalty.
        alpha: confidence per visit.
        iterations: alternating sweeps.
        seed: initialisation seed.
        progress: show a progress bar over sweeps.
    """

    name = "Matrix factorisation (ALS)"

    def __init__(self, factors: int = 64, reg: float = 10.0, alpha: float = 2.0, iterations: int = 10,
                 seed: int = 0, progress: bool = True) -> None:
        if factors < 1 or iterations < 1 or reg < 0 or alpha <= 0:
            raise ValueError("need factors >= 1, iterations >= 1, reg >= 0 and alpha > 0")
        self.factors, self.reg, self.alpha = factors, reg, alpha
        self.iterations, self.seed, self.progress = iterations, seed, progress

    @staticmethod
    def _solve_side(fixed: np.ndarray, counts: sp.csr_matrix, alpha: float, reg: float) -> np.ndarray:
        """Solve every row of ``counts`` for its vector, the other side held at ``fixed``."""
        k = fixed.shape[1]
        gram = fixed.T @ fixed + reg * np.eye(k)  # [k, k], shared by all rows
        out = np.zeros((counts.shape[0], k))
        indptr, indices, data = counts.indptr, counts.indices, counts.data
        for row in range(counts.shape[0]):
            items = indices[indptr[row]:indptr[row + 1]]
            if len(items) == 0:
                continue
            conf = 1.0 + alpha * data[indptr[row]:indptr[row + 1]]  # [n]
            Y = fixed[items]  # [n, k]
            A = gram + (Y.T * (conf - 1.0)) @ Y  # [k, k]
            b = Y.T @ conf  # [k]: preference is 1 on observed items
            out[row] = np.linalg.solve(A, b)
        return out

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        R = _user_poi_counts(task)  # [U, P]
        rng = np.random.default_rng(self.seed)
        k = self.factors
        X = rng.normal(0, 0.01, (task.num_users, k))
        Y = rng.normal(0, 0.01, (task.num_pois, k))
        R_t = R.T.tocsr()
        for _ in tqdm(range(self.iterations), desc="ALS sweeps", disable=not self.progress, leave=False):
            X = self._solve_side(Y, R, self.alpha, self.reg)
            Y = self._solve_side(X, R_t, self.alpha, self.reg)
        self.state_ = _ALSState(user_factors=X, item_factors=Y)
        self.user_seen_ = np.asarray(R.sum(axis=1)).ravel() > 0
        self.poi_seen_ = np.asarray(R.sum(axis=0)).ravel() > 0
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        X, Y = self.state_.user_factors, self.state_.item_factors
        users = X[queries.user].copy()  # [Q, k]
        cold = np.flatnonzero(~self.user_seen_[queries.user])
        if len(cold):
            window = sp.csr_matrix(_history_counts(queries.subset(cold), self.task.num_pois, exclude_train=False))
            users[cold] = self._solve_side(Y, window, self.alpha, self.reg)
        scores = users @ Y.T  # [Q, P]
        scores[:, ~self.poi_seen_] = -np.inf
        return scores


class TrueProbabilities(NextVisitModel):
    """The synthetic city's generating probabilities: the Bayes-optimal ranking, a ceiling.

    Not a model one could deploy -- it reads the simulator's hidden state (preferences, anchors).
    Ranking by the true probability maximises expected Acc@k for every ``k``, so no model can
    beat it in expectation. The previous check-in is taken from the cleaned log, which may
    differ from the true previous visit where cleaning removed rows.

    Args:
        world: the :class:`~stlab.data.synthetic.SyntheticWorld` that generated the check-ins.
    """

    name = "Bayes-optimal (true probabilities)"

    def __init__(self, world: SyntheticWorld) -> None:
        self.world = world

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        world_pois = self.world.pois["poi_id"].to_numpy()
        candidates = task.pois["poi_id"].to_numpy()
        if not np.isin(candidates, world_pois).all():
            raise ValueError("the task's POIs are not this world's POIs; build the task from world.checkins")
        self.columns_ = np.searchsorted(world_pois, candidates)  # world column of each candidate
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        task = self.task
        prev = queries.prev_poi
        prev_ids = np.where(prev >= 0, task.pois["poi_id"].to_numpy()[np.maximum(prev, 0)], -1)
        prev_time = pd.to_datetime(np.where(prev >= 0, queries.prev_time, 0), unit="s", utc=True)
        log_probs = self.world.next_visit_log_probs(
            task.user_ids[queries.user], pd.to_datetime(queries.time, unit="s", utc=True), prev_ids,
            prev_time)  # [Q, world POIs]
        return log_probs[:, self.columns_]


class UserMarkovBlend(NextVisitModel):
    """``weight * p_user(i) + (1 - weight) * p_Markov(i | i_L)``: who is asking, and where from.

    ``p_user`` is :class:`UserFrequency`'s scores normalised to sum to one per query (the user's
    visits so far, popularity below one visit breaking ties); ``p_Markov`` is :class:`Markov`'s
    smoothed transition distribution. Chapter 4 chooses ``weight`` on validation queries.

    Args:
        weight: the user model's share, in [0, 1].
        smoothing: the Markov chain's smoothing ``a``.
    """

    def __init__(self, weight: float = 0.5, smoothing: float = 1.0) -> None:
        if not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.weight = weight
        self.user_model = UserFrequency()
        self.markov = Markov(smoothing=smoothing)
        self.name = f"Blend: user + Markov (weight {weight:g})"

    def fit(self, task: NextVisitTask) -> Self:
        self._task = task
        self.user_model.fit(task)
        self.markov.fit(task)
        return self

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        self._check_fitted()
        counts = self.user_model.score(queries)  # [Q, P], positive
        p_user = counts / counts.sum(axis=1, keepdims=True)
        return self.weight * p_user + (1 - self.weight) * self.markov.score(queries)


def default_baselines(seed: int = 0, *, progress: bool = True) -> list[NextVisitModel]:
    """The chapter's baselines with their default settings, crudest first."""
    return [Popularity(), HourPopularity(), DistancePopularity(seed=seed), UserFrequency(), Markov(),
            BayesUserPOI(), BayesUserPOI(use_hour=True), ImplicitALS(seed=seed, progress=progress)]


@dataclass(frozen=True)
class BaselineGrid:
    """The validation grids of chapter 4's tuned baselines, the same for every chapter that
    compares with them.

    Attributes:
        markov_smoothing: (tuple[float, ...]) values of the Markov chain's ``a``.
        bayes_smoothing: (tuple[float, ...]) values of the Bayesian user model's ``a``.
        als_alpha: (tuple[float, ...]) ALS confidence per visit.
        blend_weight: (tuple[float, ...]) the user model's share in :class:`UserMarkovBlend`.
    """

    markov_smoothing: tuple[float, ...] = (1.0, 100.0, 1000.0)
    bayes_smoothing: tuple[float, ...] = (0.001, 0.01, 0.1)
    als_alpha: tuple[float, ...] = (1.0, 2.0, 5.0)
    blend_weight: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)

    @classmethod
    def smoke(cls) -> BaselineGrid:
        """Smaller grids for smoke runs."""
        return cls(als_alpha=(1.0, 5.0), blend_weight=(0.25, 0.75))


@dataclass(frozen=True)
class TunedBaselines:
    """Chapter 4's baselines with hyperparameters chosen on validation MRR, fitted on training.

    Attributes:
        models: every baseline, crudest first, the blend last.
        chosen: hyperparameter -> value chosen.
        validation: one row per (hyperparameter, value) with its validation MRR.
        fit_seconds: model name -> seconds its final fit took.
    """

    models: list[NextVisitModel]
    chosen: dict[str, float]
    validation: pd.DataFrame
    fit_seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NextVisitModel:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"no baseline named {name!r}; have {[m.name for m in self.models]}")


def tuned_baselines(task: NextVisitTask, val_queries: NextVisitQueries | None = None, *, seed: int = 0,
                    grid: BaselineGrid = BaselineGrid(), include: Sequence[str] | None = None) -> TunedBaselines:
    """Chapter 4's baselines, each tuned on validation MRR the same way, ready to compare with.

    Every hyperparameter of :class:`BaselineGrid` is chosen by validation MRR (full ranking), one
    at a time; the blend uses the chosen Markov smoothing and picks its weight. Later chapters
    compare their models with *all* of these, so "beats every baseline" means every one, tuned.

    Args:
        task: the next-visit task (models fit on its training events).
        val_queries: queries to tune on; default ``task.queries("val")``.
        seed: seed of the randomised baselines (distance sample, ALS initialisation).
        grid: the grids (``BaselineGrid.smoke()`` in smoke runs).
        include: names of the models to return (all by default), e.g. ``["Markov (1st order)"]``.
    """
    val_queries = task.queries("val") if val_queries is None else val_queries
    if len(val_queries) == 0:
        raise ValueError("tuned_baselines needs validation queries to choose hyperparameters; the split "
                         "has none (give validation a share, e.g. val_frac=0.1)")
    searches = {
        "Markov smoothing a": (grid.markov_smoothing, lambda v: Markov(smoothing=v)),
        "Bayes smoothing a": (grid.bayes_smoothing, lambda v: BayesUserPOI(smoothing=v)),
        "ALS confidence alpha": (grid.als_alpha, lambda v: ImplicitALS(alpha=v, seed=seed, progress=False)),
        "blend weight": (grid.blend_weight, None),
    }
    chosen: dict[str, float] = {}
    rows = []
    for label, (values, make) in searches.items():
        if make is None:  # the blend reuses the chosen Markov smoothing
            def make(v: float) -> NextVisitModel:
                return UserMarkovBlend(weight=v, smoothing=chosen["Markov smoothing a"])
        mrr = {v: evaluate(make(v).fit(task), val_queries)["MRR"] for v in values}
        chosen[label] = max(mrr, key=mrr.__getitem__)  # the first of equal values: the grid's order
        rows += [{"hyperparameter": label, "value": v, "validation MRR": m} for v, m in mrr.items()]
    models: list[NextVisitModel] = [
        Popularity(), HourPopularity(), DistancePopularity(seed=seed), UserFrequency(),
        Markov(smoothing=chosen["Markov smoothing a"]), BayesUserPOI(smoothing=chosen["Bayes smoothing a"]),
        BayesUserPOI(smoothing=chosen["Bayes smoothing a"], use_hour=True),
        ImplicitALS(alpha=chosen["ALS confidence alpha"], seed=seed, progress=False),
        UserMarkovBlend(weight=chosen["blend weight"], smoothing=chosen["Markov smoothing a"]),
    ]
    if include is not None:
        unknown = set(include) - {m.name for m in models}
        if unknown:
            raise ValueError(f"unknown baseline(s) {sorted(unknown)}; have {[m.name for m in models]}")
        models = [m for m in models if m.name in include]
    fit_seconds = {}
    for model in models:
        start = time.perf_counter()
        model.fit(task)
        fit_seconds[model.name] = time.perf_counter() - start
    return TunedBaselines(models=models, chosen=chosen, validation=pd.DataFrame(rows), fit_seconds=fit_seconds)


__all__ = [
    "BaselineGrid", "BayesUserPOI", "DistancePopularity", "HourPopularity", "ImplicitALS", "Markov", "NextVisitModel",
    "NotFittedError", "Popularity", "TrueProbabilities", "TunedBaselines", "UserFrequency", "UserMarkovBlend",
    "default_baselines", "training_transitions", "tuned_baselines",
]
