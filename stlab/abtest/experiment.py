"""User-randomised A/B tests of two recommendation policies, and the comparison of two arms.

Users, not queries, are randomised, so one user's many queries are correlated. The analysis
either averages each user first (each user weighs the same; Welch's t over users) or keeps the
per-query mean and takes its variance over users (the delta method for a ratio metric; Deng,
Knoblich & Lu, 2018). In simulation the *true* uplift is known from the expected responses, so
an interval's coverage can be measured (Kohavi, Tang & Xu, 2020, on running such tests).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from stlab.abtest._common import (
    _METRICS,
    _UNITS,
    Metric,
    Seed,
    Unit,
    _check_choice,
    _check_open_unit,
    _check_positive,
    _check_users,
)
from stlab.abtest.response import expected_response, sample_response


@dataclass(frozen=True)
class DifferenceEstimate:
    """Treatment minus control: estimate, standard error, interval, p-value, relative change.

    Attributes:
        control_mean, treatment_mean: the two arms' means.
        difference: ``treatment_mean - control_mean``.
        std_error: its standard error.
        low, high: the two-sided interval at ``level``.
        p_value: two-sided p-value for "no difference".
        df: degrees of freedom of the Student-t reference (``inf``: normal).
        relative: ``difference / control_mean`` (``nan`` if the control mean is 0).
        relative_low, relative_high: its delta-method interval.
        level: confidence level.
    """

    control_mean: float
    treatment_mean: float
    difference: float
    std_error: float
    low: float
    high: float
    p_value: float
    df: float
    relative: float
    relative_low: float
    relative_high: float
    level: float


def _difference(mean_c: float, var_c: float, mean_t: float, var_t: float, df: float,
                level: float) -> DifferenceEstimate:
    """Interval and test from two independent arm means and the variances of those means."""
    diff = mean_t - mean_c
    se = float(np.sqrt(var_c + var_t))
    quantile = float(stats.t.isf((1 - level) / 2, df) if np.isfinite(df) else stats.norm.isf((1 - level) / 2))
    if se > 0:
        p_value = float(2 * (stats.t.sf(abs(diff) / se, df) if np.isfinite(df) else stats.norm.sf(abs(diff) / se)))
    else:  # both arms constant: the difference is known exactly
        p_value = 1.0 if diff == 0 else 0.0
    if mean_c != 0:
        # Delta method for mean_t / mean_c - 1 with independent arms.
        rel_se = float(np.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4))
        relative = diff / mean_c
        rel_low, rel_high = relative - quantile * rel_se, relative + quantile * rel_se
    else:
        relative = rel_low = rel_high = float("nan")
    return DifferenceEstimate(control_mean=float(mean_c), treatment_mean=float(mean_t), difference=float(diff),
                              std_error=se, low=float(diff - quantile * se), high=float(diff + quantile * se),
                              p_value=p_value, df=float(df), relative=float(relative), relative_low=float(rel_low),
                              relative_high=float(rel_high), level=float(level))


def welch_difference(control: np.ndarray, treatment: np.ndarray, *, level: float = 0.95) -> DifferenceEstimate:
    """Difference in means of two independent samples, Welch's unequal-variance t interval.

    Use it when the observations are independent -- for example one value per *user* when users
    were randomised. Degrees of freedom by Welch--Satterthwaite.

    Args:
        control: ``[n_c]`` values of the control arm (at least two).
        treatment: ``[n_t]`` values of the treatment arm (at least two).
        level: confidence level in (0, 1).
    """
    _check_open_unit(level, "level")
    control, treatment = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    for name, values in (("control", control), ("treatment", treatment)):
        if values.ndim != 1 or len(values) < 2:
            raise ValueError(f"{name} must be a 1-D array of at least two values, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    var_c, var_t = control.var(ddof=1) / len(control), treatment.var(ddof=1) / len(treatment)
    if var_c + var_t > 0:
        df = (var_c + var_t) ** 2 / (var_c**2 / (len(control) - 1) + var_t**2 / (len(treatment) - 1))
    else:
        df = float("inf")
    return _difference(control.mean(), var_c, treatment.mean(), var_t, df, level)


def _ratio_mean(values: np.ndarray, clusters: np.ndarray) -> tuple[float, float, int]:
    """Per-observation mean and its variance over clusters (delta method), and the cluster count."""
    _, cluster = np.unique(clusters, return_inverse=True)
    sums = np.bincount(cluster, weights=values)  # [G] each cluster's total
    counts = np.bincount(cluster).astype(np.float64)  # [G] its observations
    num_clusters = len(sums)
    mean = sums.sum() / counts.sum()
    # Var(sum y / sum n) ~ G / (G - 1) * sum_g (y_g - mean n_g)^2 / (sum n)^2; the factor makes one
    # observation per cluster reduce to the usual s^2 / n.
    residual = sums - mean * counts
    var = num_clusters / (num_clusters - 1) * np.sum(residual**2) / counts.sum() ** 2
    return float(mean), float(var), num_clusters


def clustered_difference(values: np.ndarray, clusters: np.ndarray, treatment: np.ndarray, *,
                         level: float = 0.95) -> DifferenceEstimate:
    """Difference in per-observation means when whole clusters (users) were randomised.

    Each arm's mean is ``sum of values / number of observations`` -- every query weighs the same --
    but its variance is taken over clusters, the units that were randomised (the delta method for
    a ratio metric; Deng, Knoblich & Lu, 2018). It equals the cluster-robust (CR0) standard
    error of a regression on the arm indicator, times ``G / (G - 1)`` per arm. The interval uses
    Student's t with Welch--Satterthwaite degrees of freedom counted in clusters, which matters
    with few users per arm; with one observation per cluster the result is exactly
    :func:`welch_difference`.

    Args:
        values: ``[N]`` one value per observation (query).
        clusters: ``[N]`` the cluster (user) of each observation.
        treatment: ``[N]`` bool, the arm of each observation; constant within a cluster.
        level: confidence level in (0, 1).
    """
    _check_open_unit(level, "level")
    values = np.asarray(values, dtype=np.float64)
    clusters, treatment = np.asarray(clusters), np.asarray(treatment)
    if values.ndim != 1 or clusters.shape != values.shape or treatment.shape != values.shape:
        raise ValueError(f"values, clusters and treatment must be 1-D arrays of one length, got shapes "
                         f"{values.shape}, {clusters.shape} and {treatment.shape}")
    if treatment.dtype != bool:
        raise ValueError(f"treatment must be a boolean array (True = treatment arm), got dtype {treatment.dtype}")
    if not np.isfinite(values).all():
        raise ValueError("values holds NaN or infinite values")
    mixed = np.intersect1d(clusters[treatment], clusters[~treatment])
    if len(mixed):
        raise ValueError(f"{len(mixed)} clusters (first {mixed[0]!r}) have observations in both arms; randomise whole "
                         "clusters (assign_users), or analyse observations with welch_difference")
    arms = []
    for name, mask in (("control", ~treatment), ("treatment", treatment)):
        if len(np.unique(clusters[mask])) < 2:
            raise ValueError(f"the {name} arm needs at least two clusters to estimate a variance")
        arms.append(_ratio_mean(values[mask], clusters[mask]))
    (mean_c, var_c, groups_c), (mean_t, var_t, groups_t) = arms
    if var_c + var_t > 0:
        df = (var_c + var_t) ** 2 / (var_c**2 / (groups_c - 1) + var_t**2 / (groups_t - 1))
    else:
        df = float("inf")
    return _difference(mean_c, var_c, mean_t, var_t, df, level)


# --------------------------------------------------------------------------- the A/B test

def assign_users(users: np.ndarray, *, treatment_share: float = 0.5, seed: Seed = 0) -> np.ndarray:
    """``[Q]`` bool, True where the query's user is in the treatment arm.

    Each user index draws one uniform from the seeded generator and is treated when it falls
    below ``treatment_share`` (Bernoulli assignment, what hashing user ids with a salt does in a
    live system). A user's arm depends only on the seed and the user's index, never on which other
    users appear, so all queries of a user share an arm.

    Args:
        users: ``[Q]`` user index of each query (for example ``NextVisitQueries.user``).
        treatment_share: expected share of users treated, in (0, 1).
        seed: an ``int`` seed or a :class:`numpy.random.Generator`.
    """
    _check_open_unit(treatment_share, "treatment_share")
    users = _check_users(users)
    if len(users) == 0:
        return np.zeros(0, dtype=bool)
    draws = np.random.default_rng(seed).random(int(users.max()) + 1)  # [U] one per user index
    return draws[users] < treatment_share


@dataclass(frozen=True)
class ABTestConfig:
    """Settings of a simulated A/B test (:func:`run_ab_test`).

    Attributes:
        treatment_share: (float) expected share of users in the treatment arm, in (0, 1).
        strength: (float) how persuasive a list is, in the response model (``> 0``).
        metric: (str) the per-query outcome: ``"accepted"`` or ``"visit_in_list"``.
        unit: (str) how queries are weighed and their correlation within a user handled:
            ``"user"`` -- average each user's queries, then compare users (every user weighs the
            same; Welch's t interval over users); ``"query"`` -- every query weighs the same, the
            variance taken over users (:func:`clustered_difference`, the delta method); ``"query_unclustered"`` --
            queries treated as independent, which they are not: its interval is too narrow when
            users issue many queries (for comparison only).
        level: (float) confidence level of the intervals.
        seed: (int) seed of the assignment and the outcomes.
    """

    treatment_share: float = 0.5
    strength: float = 1.0
    metric: Metric = "accepted"
    unit: Unit = "user"
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        _check_open_unit(self.treatment_share, "ABTestConfig.treatment_share")
        _check_positive(self.strength, "ABTestConfig.strength")
        _check_choice(self.metric, "ABTestConfig.metric", _METRICS)
        _check_choice(self.unit, "ABTestConfig.unit", _UNITS)
        _check_open_unit(self.level, "ABTestConfig.level")


@dataclass(frozen=True)
class ABTestResult:
    """What an A/B test estimated, and -- known only in simulation -- the truth.

    Attributes:
        metric, unit, level: as in :class:`ABTestConfig`.
        num_users_control, num_users_treatment: users per arm.
        num_queries_control, num_queries_treatment: queries per arm.
        control_mean, treatment_mean: observed means of the metric (per user or per query).
        uplift: ``treatment_mean - control_mean``.
        std_error, low, high, p_value: its standard error, interval and two-sided p-value.
        relative_uplift, relative_low, relative_high: ``uplift / control_mean`` and its interval.
        true_control_mean, true_treatment_mean: the expected metric of *all* users under each
            policy, from :func:`expected_response` (weighed as ``unit`` says).
        true_uplift, true_relative_uplift: the quantity the test estimates.
    """

    metric: str
    unit: str
    level: float
    num_users_control: int
    num_users_treatment: int
    num_queries_control: int
    num_queries_treatment: int
    control_mean: float
    treatment_mean: float
    uplift: float
    std_error: float
    low: float
    high: float
    p_value: float
    relative_uplift: float
    relative_low: float
    relative_high: float
    true_control_mean: float
    true_treatment_mean: float
    true_uplift: float
    true_relative_uplift: float

    @property
    def covers_truth(self) -> bool:
        """Whether the interval holds the true uplift."""
        return self.low <= self.true_uplift <= self.high

    @property
    def significant(self) -> bool:
        """Whether ``p < 1 - level`` (the interval excludes zero)."""
        return self.p_value < 1 - self.level

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """The fields and the two properties, for a row of a results table."""
        return {**asdict(self), "covers_truth": self.covers_truth, "significant": self.significant}


def _user_means(values: np.ndarray, users: np.ndarray) -> np.ndarray:
    """``[U']`` mean of ``values`` per user present, in the order of ``np.unique(users)``."""
    _, user = np.unique(users, return_inverse=True)
    return np.bincount(user, weights=values) / np.bincount(user)


def run_ab_test(true_log_probs: np.ndarray, control_lists: np.ndarray, treatment_lists: np.ndarray,
                users: np.ndarray, config: ABTestConfig | None = None) -> ABTestResult:
    """Simulate a user-randomised A/B test of two recommendation policies and analyse it.

    Users are assigned with :func:`assign_users`; each query is served its user's arm's list, the
    response is drawn with :func:`sample_response`, and the uplift of ``config.metric`` is
    estimated as ``config.unit`` says. The true uplift is the difference of the expected metric
    when *every* user gets one policy or the other (from :func:`expected_response`), weighed the
    same way, so ``result.covers_truth`` says whether the interval found it.

    Args:
        true_log_probs: ``[Q, P]`` true next-visit log-probabilities of each query.
        control_lists: ``[Q, k]`` what the control policy shows at each query.
        treatment_lists: ``[Q, k']`` what the treatment policy shows (``k'`` may differ from ``k``).
        users: ``[Q]`` the user of each query (the randomisation unit).
        config: settings; default :class:`ABTestConfig()`.

    Raises:
        ValueError: bad inputs (as :func:`expected_response`), or an arm with fewer than two users.
    """
    config = config or ABTestConfig()
    expected_c = expected_response(true_log_probs, control_lists, strength=config.strength)
    expected_t = expected_response(true_log_probs, treatment_lists, strength=config.strength)
    users = _check_users(users, len(expected_c))
    rng = np.random.default_rng(config.seed)
    treated = assign_users(users, treatment_share=config.treatment_share, seed=rng)  # [Q]
    users_t, users_c = np.unique(users[treated]), np.unique(users[~treated])
    if min(len(users_t), len(users_c)) < 2:
        raise ValueError(f"the assignment put {len(users_c)} users in control and {len(users_t)} in treatment; each "
                         "arm needs at least two -- use more users, a treatment_share nearer 0.5 or another seed")
    # Draw both policies' responses with one generator and keep each query's own arm: a query's
    # outcome then depends on the seed and its arm only.
    sampled_c = sample_response(true_log_probs, control_lists, strength=config.strength, seed=rng)
    sampled_t = sample_response(true_log_probs, treatment_lists, strength=config.strength, seed=rng)
    outcome = np.where(treated, sampled_t.metric(config.metric), sampled_c.metric(config.metric))  # [Q]
    truth_c, truth_t = expected_c.metric(config.metric), expected_t.metric(config.metric)  # [Q]

    if config.unit == "user":
        estimate = welch_difference(_user_means(outcome[~treated], users[~treated]),
                                    _user_means(outcome[treated], users[treated]), level=config.level)
        true_c, true_t = _user_means(truth_c, users).mean(), _user_means(truth_t, users).mean()
    elif config.unit == "query":
        estimate = clustered_difference(outcome, users, treated, level=config.level)
        true_c, true_t = truth_c.mean(), truth_t.mean()
    else:
        estimate = welch_difference(outcome[~treated], outcome[treated], level=config.level)
        true_c, true_t = truth_c.mean(), truth_t.mean()
    return ABTestResult(
        metric=config.metric, unit=config.unit, level=config.level,
        num_users_control=len(users_c), num_users_treatment=len(users_t),
        num_queries_control=int((~treated).sum()), num_queries_treatment=int(treated.sum()),
        control_mean=estimate.control_mean, treatment_mean=estimate.treatment_mean, uplift=estimate.difference,
        std_error=estimate.std_error, low=estimate.low, high=estimate.high, p_value=estimate.p_value,
        relative_uplift=estimate.relative, relative_low=estimate.relative_low, relative_high=estimate.relative_high,
        true_control_mean=float(true_c), true_treatment_mean=float(true_t), true_uplift=float(true_t - true_c),
        true_relative_uplift=float((true_t - true_c) / true_c) if true_c > 0 else float("nan"),
    )


def repeat_ab_test(true_log_probs: np.ndarray, control_lists: np.ndarray, treatment_lists: np.ndarray,
                   users: np.ndarray, config: ABTestConfig | None = None, *,
                   num_repetitions: int = 200) -> pd.DataFrame:
    """:func:`run_ab_test` with seeds ``config.seed, config.seed + 1, ...``: one row per repetition.

    The share of rows with ``covers_truth`` estimates the interval's real coverage (its Monte
    Carlo standard error is ``sqrt(c (1 - c) / num_repetitions)``); the share ``significant``
    estimates the power (or, for two equal policies, the false-positive rate).
    """
    config = config or ABTestConfig()
    if num_repetitions < 1:
        raise ValueError(f"num_repetitions must be at least 1, got {num_repetitions}")
    rows = [run_ab_test(true_log_probs, control_lists, treatment_lists, users,
                        ABTestConfig(**{**asdict(config), "seed": config.seed + r})).as_dict()
            for r in range(num_repetitions)]
    return pd.DataFrame(rows).assign(seed=config.seed + np.arange(num_repetitions))
