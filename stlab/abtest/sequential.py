"""Peeking at a running experiment, and two sequential tests that allow it.

Testing after every batch and stopping at the first ``p < alpha`` raises the false-positive
rate far above ``alpha`` (Armitage, McPherson & Rowe, 1969). Two remedies:

* the mixture sequential probability ratio test (mSPRT), whose always-valid p-values and
  confidence sequences may be watched continuously (Johari, Pekelis & Walsh, 2022);
* group-sequential boundaries that spend ``alpha`` over planned looks (Lan & DeMets, 1983),
  with spending shaped like O'Brien & Fleming's (1979) boundaries, or Pocock's.

:func:`simulate_peeking` runs many experiments and analyses each one all four ways.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from stlab.abtest._common import (
    _SPENDINGS,
    Spending,
    _check_choice,
    _check_open_unit,
    _check_positive,
)


def msprt_p_values(estimate: np.ndarray, std_error: np.ndarray, *, mixture_sd: float,
                   null: float = 0.0) -> np.ndarray:
    """Always-valid p-values of the mixture sequential probability ratio test (mSPRT).

    At each look the estimate ``d`` (for example a difference in means) is taken as
    ``N(theta, s^2)`` with ``s`` its standard error. Mixing the likelihood ratio against
    ``theta = null`` over ``theta ~ N(null, tau^2)`` gives

    .. math:: \\Lambda = \\sqrt{\\frac{s^2}{s^2 + \\tau^2}}
              \\exp\\Big(\\frac{\\tau^2 (d - \\theta_0)^2}{2 s^2 (s^2 + \\tau^2)}\\Big),

    a martingale under the null, so by Ville's inequality ``P(sup Lambda >= 1 / alpha) <= alpha``.
    The always-valid p-value ``p_n = min(p_{n-1}, 1 / Lambda_n)`` may be watched after every
    observation and the test stopped at the first ``p_n <= alpha`` (Johari, Pekelis & Walsh, 2022).
    With ``s`` estimated (plug-in variance) the guarantee holds approximately, for large samples.

    ``tau`` (``mixture_sd``) sets the effect sizes the test is quickest to detect: pick it near
    the smallest effect that matters. A look with ``s = 0`` (no variation yet) adds no evidence.

    Args:
        estimate: ``[..., T]`` the estimate after each of ``T`` looks (last axis = time).
        std_error: ``[..., T]`` its standard error at each look.
        mixture_sd: ``tau > 0``, the standard deviation of the normal mixing distribution.
        null: ``theta_0``, the value under the null hypothesis.

    Returns:
        ``[..., T]`` non-increasing always-valid p-values.
    """
    estimate, std_error = np.asarray(estimate, dtype=np.float64), np.asarray(std_error, dtype=np.float64)
    if estimate.shape != std_error.shape or estimate.ndim == 0:
        raise ValueError(f"estimate and std_error must have one shape [..., T], got {estimate.shape} and "
                         f"{std_error.shape}")
    if (std_error < 0).any() or np.isnan(std_error).any():
        raise ValueError("std_error must be >= 0")
    tau2 = _check_positive(mixture_sd, "mixture_sd") ** 2
    s2 = std_error**2
    informative = (s2 > 0) & np.isfinite(s2) & np.isfinite(estimate)
    s2 = np.where(informative, s2, 1.0)  # placeholders, masked below
    log_ratio = 0.5 * np.log(s2 / (s2 + tau2)) + tau2 * (estimate - null) ** 2 / (2 * s2 * (s2 + tau2))
    log_ratio = np.where(informative, log_ratio, 0.0)
    return np.minimum.accumulate(np.minimum(1.0, np.exp(-log_ratio)), axis=-1)


def msprt_confidence_sequence(estimate: np.ndarray, std_error: np.ndarray, *, mixture_sd: float,
                              alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid ``1 - alpha`` confidence sequence of the mSPRT: ``(low, high)``, each ``[..., T]``.

    At each look, the values ``theta_0`` whose mSPRT statistic stays below ``1 / alpha``:
    ``d +- sqrt(2 s^2 (s^2 + tau^2) / tau^2 * (log(1 / alpha) + log((s^2 + tau^2) / s^2) / 2))``,
    intersected with the earlier intervals. With probability at least ``1 - alpha`` the true
    value lies inside at *every* look. Arguments as :func:`msprt_p_values`.
    """
    _check_open_unit(alpha, "alpha")
    estimate, std_error = np.asarray(estimate, dtype=np.float64), np.asarray(std_error, dtype=np.float64)
    if estimate.shape != std_error.shape or estimate.ndim == 0:
        raise ValueError(f"estimate and std_error must have one shape [..., T], got {estimate.shape} and "
                         f"{std_error.shape}")
    tau2 = _check_positive(mixture_sd, "mixture_sd") ** 2
    s2 = std_error**2
    informative = (s2 > 0) & np.isfinite(s2) & np.isfinite(estimate)
    s2 = np.where(informative, s2, 1.0)
    half = np.sqrt(2 * s2 * (s2 + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((s2 + tau2) / s2)))
    low = np.where(informative, estimate - half, -np.inf)
    high = np.where(informative, estimate + half, np.inf)
    return np.maximum.accumulate(low, axis=-1), np.minimum.accumulate(high, axis=-1)


def spending_function(information: np.ndarray | float, *, alpha: float = 0.05,
                      spending: Spending = "obrien_fleming") -> np.ndarray:
    """Two-sided ``alpha`` spent by information fraction ``t`` (Lan & DeMets, 1983).

    Each side spends ``alpha / 2`` with the one-sided function ``f(t; a)``, the convention of
    gsDesign, ldbounds and rpact, so the two-sided total is ``2 f(t; alpha / 2)``:

    * ``"obrien_fleming"``: ``f = 2 - 2 Phi(z_{1-a/2} / sqrt(t))`` -- almost nothing early, so the
      final test keeps nearly the full ``alpha``;
    * ``"pocock"``: ``f = a log(1 + (e - 1) t)`` -- roughly even spending, easier early stops, a
      stricter last look.
    """
    _check_open_unit(alpha, "alpha")
    _check_choice(spending, "spending", _SPENDINGS)
    t = np.asarray(information, dtype=np.float64)
    if (t < 0).any() or (t > 1).any():
        raise ValueError("information fractions must lie in [0, 1]")
    per_side = alpha / 2
    if spending == "obrien_fleming":
        z = stats.norm.isf(per_side / 2)
        return 2 * np.where(t > 0, 2 * stats.norm.sf(z / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    return 2 * per_side * np.log1p((np.e - 1) * t)


@dataclass(frozen=True, eq=False)
class GroupSequentialDesign:
    """Two-sided efficacy boundaries for ``K`` planned looks (see :func:`group_sequential_design`).

    Attributes:
        information_fractions: ``[K]`` share of the planned sample seen at each look (last = 1).
        bounds: ``[K]`` reject "no difference" at look ``k`` when ``|z_k| >= bounds[k]``.
        cumulative_alpha: ``[K]`` the ``alpha`` spent by each look.
        alpha: the overall false-positive rate.
        spending: the spending function's name.
    """

    information_fractions: np.ndarray
    bounds: np.ndarray
    cumulative_alpha: np.ndarray
    alpha: float
    spending: str

    def first_rejection(self, z: np.ndarray) -> np.ndarray:
        """``[...]`` the first look (0-based) whose ``|z|`` crosses its bound, ``-1`` if none.

        Args:
            z: ``[..., K]`` the z-statistic at each look.
        """
        z = np.asarray(z, dtype=np.float64)
        if z.shape[-1:] != self.bounds.shape:
            raise ValueError(f"z must have the {len(self.bounds)} looks of the design on its last axis, got shape "
                             f"{z.shape}")
        crossed = np.abs(z) >= self.bounds
        return np.where(crossed.any(axis=-1), crossed.argmax(axis=-1), -1)

    def to_frame(self) -> pd.DataFrame:
        """One row per look: information fraction, bound on ``|z|``, nominal p-value, alpha spent."""
        return pd.DataFrame({"information": self.information_fractions, "z bound": self.bounds,
                             "nominal p": 2 * stats.norm.sf(self.bounds), "alpha spent": self.cumulative_alpha},
                            index=pd.RangeIndex(1, len(self.bounds) + 1, name="look"))


def _simpson(low: float, high: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and composite Simpson weights on ``[low, high]`` with spacing at most ``step``."""
    intervals = max(2, int(np.ceil((high - low) / step)))
    intervals += intervals % 2
    nodes = np.linspace(low, high, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return nodes, weights * (high - low) / (3 * intervals)


def _log_exit_gap(bound: float, nodes: np.ndarray, mass: np.ndarray, sd: float, root_t: float,
                  log_target: float) -> float:
    """``log P(no crossing before look k, |Z_k| >= bound) - log_target``.

    ``mass`` is the density of ``S_{k-1}`` on the continuation region times the quadrature weights
    at ``nodes``; the step to look ``k`` adds ``N(0, sd^2)``. In logs, as early looks spend ~1e-20.
    """
    b = bound * root_t
    tails = np.logaddexp(stats.norm.logsf((b - nodes) / sd), stats.norm.logcdf((-b - nodes) / sd))  # [N]
    with np.errstate(divide="ignore"):
        return float(special.logsumexp(np.log(mass) + tails)) - log_target


def group_sequential_design(looks: int | Sequence[float] = 5, *, alpha: float = 0.05,
                            spending: Spending = "obrien_fleming") -> GroupSequentialDesign:
    """Boundaries of a two-sided group-sequential test by the alpha-spending method.

    Under "no difference", the z-statistics at the looks behave like a Brownian motion read at
    the information fractions: ``S_k = Z_k sqrt(t_k)`` has independent ``N(0, t_k - t_{k-1})``
    increments. Each bound ``c_k`` is chosen so the chance of crossing first at look ``k`` equals
    the ``alpha`` the spending function assigns to it; the chance of having continued so far is
    carried by the density of ``S_k`` on the continuation region, integrated numerically
    (Armitage, McPherson & Rowe, 1969; Simpson's rule). The looks need not be equally spaced, but
    must be planned before the data are seen.

    Args:
        looks: the number of equally spaced looks, or the increasing information fractions of
            the looks, ending at 1.
        alpha: overall two-sided false-positive rate.
        spending: ``"obrien_fleming"`` or ``"pocock"`` (:func:`spending_function`).
    """
    _check_open_unit(alpha, "alpha")
    _check_choice(spending, "spending", _SPENDINGS)
    if isinstance(looks, (int, np.integer)):
        if looks < 1:
            raise ValueError(f"looks must be at least 1, got {looks}")
        t = np.arange(1, looks + 1) / looks
    else:
        t = np.asarray(looks, dtype=np.float64)
        if t.ndim != 1 or len(t) == 0 or not (np.diff(t) > 0).all() or t[0] <= 0 or abs(t[-1] - 1) > 1e-12:
            raise ValueError(f"information fractions must increase strictly within (0, 1] and end at 1, got {t}")
    spent = spending_function(t, alpha=alpha, spending=spending)  # [K]
    increments = np.diff(spent, prepend=0.0)
    steps = np.sqrt(np.diff(t, prepend=0.0))  # sd of each Brownian increment
    grid_step = steps.min() / 12  # resolves the narrowest transition kernel
    bounds = np.empty(len(t))
    bounds[0] = stats.norm.isf(increments[0] / 2) if increments[0] > 0 else np.inf
    edge = min(bounds[0], 12.0) * steps[0]  # beyond 12 sd the continuation density is nil
    nodes, weights = _simpson(-edge, edge, grid_step)
    mass = weights * stats.norm.pdf(nodes, scale=steps[0])  # S_1's sub-density times the weights

    for k in range(1, len(t)):
        sd, root_t = steps[k], np.sqrt(t[k])
        if increments[k] > 0:
            target = np.log(increments[k])
            exit_args = (nodes, mass, sd, root_t, target)
            high = 4.0
            while _log_exit_gap(high, *exit_args) > 0:
                high *= 2
            bounds[k] = optimize.brentq(_log_exit_gap, 0.0, high, args=exit_args, xtol=1e-10)
        else:
            bounds[k] = np.inf
        if k + 1 < len(t):  # carry the density of S_k on its continuation region to the next look
            edge = min(bounds[k] * root_t, nodes.max() + 12 * sd)
            new_nodes, new_weights = _simpson(-edge, edge, grid_step)
            kernel = stats.norm.pdf((new_nodes[:, None] - nodes[None, :]) / sd) / sd  # [N', N]
            mass = new_weights * (kernel @ mass)
            nodes = new_nodes
    return GroupSequentialDesign(information_fractions=t, bounds=bounds, cumulative_alpha=spent, alpha=alpha,
                                 spending=spending)


@dataclass(frozen=True)
class PeekingConfig:
    """Settings of :func:`simulate_peeking`: many two-arm experiments on a rate, looked at often.

    Attributes:
        control_rate: (float) the control arm's rate (for example acceptance), in (0, 1).
        uplift: (float) absolute treatment effect on the rate; 0 simulates A/A tests.
        batch_size: (int) new users per arm between two looks.
        num_looks: (int) looks per experiment; the last is the planned end.
        num_experiments: (int) simulated experiments.
        alpha: (float) significance level.
        mixture_sd: (float) ``tau`` of the mSPRT (:func:`msprt_p_values`), in rate units: the
            effect size the sequential test is tuned to.
        spending: (str) spending function of the group-sequential test.
        seed: (int) seed of every draw.
    """

    control_rate: float = 0.10
    uplift: float = 0.0
    batch_size: int = 500
    num_looks: int = 20
    num_experiments: int = 2000
    alpha: float = 0.05
    mixture_sd: float = 0.01
    spending: Spending = "obrien_fleming"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_open_unit(self.control_rate, "PeekingConfig.control_rate")
        _check_open_unit(self.control_rate + self.uplift, "PeekingConfig.control_rate + uplift")
        _check_open_unit(self.alpha, "PeekingConfig.alpha")
        _check_positive(self.mixture_sd, "PeekingConfig.mixture_sd")
        _check_choice(self.spending, "PeekingConfig.spending", _SPENDINGS)
        for name in ("batch_size", "num_looks", "num_experiments"):
            if getattr(self, name) < 1:
                raise ValueError(f"PeekingConfig.{name} must be at least 1, got {getattr(self, name)}")


#: The four ways :func:`simulate_peeking` analyses each experiment, as row names of its tables.
PROCEDURES: tuple[str, ...] = ("fixed horizon", "peeking", "mSPRT", "group sequential")


@dataclass(frozen=True, eq=False)
class PeekingResult:
    """Rejection rates of four analyses of the same simulated experiments.

    Under an A/A configuration (``uplift = 0``) a rejection is a false positive; otherwise it is
    a detection (the rate is the power).

    Attributes:
        config: the settings.
        fixed_horizon_rate: one z-test after the last batch.
        peeking_rate: a z-test after every batch, stopping at the first ``p < alpha``.
        msprt_rate: the mSPRT's always-valid p-value checked after every batch.
        group_sequential_rate: the group-sequential boundary checked after every batch.
        summary: one row per procedure (:data:`PROCEDURES`): rejection rate, its Monte Carlo
            standard error, and the mean users per arm when the experiment stopped.
        by_look: cumulative share of experiments stopped with a rejection, by look (rows) and
            procedure (columns), with the users per arm at each look.
    """

    config: PeekingConfig
    fixed_horizon_rate: float
    peeking_rate: float
    msprt_rate: float
    group_sequential_rate: float
    summary: pd.DataFrame
    by_look: pd.DataFrame


def simulate_peeking(config: PeekingConfig | None = None) -> PeekingResult:
    """Simulate experiments on a rate and analyse each of them four ways (see :class:`PeekingResult`).

    Each experiment adds ``batch_size`` users per arm between looks; a user converts with the
    arm's rate. At look ``k`` the difference of observed rates, its unpooled standard error and
    the z-statistic feed the fixed-horizon test (last look only), the repeated test (every look),
    the mSPRT and the group-sequential boundary (:func:`group_sequential_design` with equally
    spaced looks). A look where neither arm has varied yet (standard error 0) rejects nothing.
    """
    config = config or PeekingConfig()
    rng = np.random.default_rng(config.seed)
    shape = (config.num_experiments, config.num_looks)
    n = config.batch_size * np.arange(1, config.num_looks + 1)  # [K] users per arm so far
    rate_c = np.cumsum(rng.binomial(config.batch_size, config.control_rate, shape), axis=1) / n  # [E, K]
    rate_t = np.cumsum(rng.binomial(config.batch_size, config.control_rate + config.uplift, shape), axis=1) / n
    diff = rate_t - rate_c
    se = np.sqrt((rate_c * (1 - rate_c) + rate_t * (1 - rate_t)) / n)  # [E, K]
    z = np.divide(diff, se, out=np.zeros_like(diff), where=se > 0)
    naive_p = 2 * stats.norm.sf(np.abs(z))  # [E, K]
    design = group_sequential_design(config.num_looks, alpha=config.alpha, spending=config.spending)

    first_look = {  # [E] the look at which each procedure rejects, -1 if never
        "fixed horizon": np.where(naive_p[:, -1] < config.alpha, config.num_looks - 1, -1),
        "peeking": _first_true(naive_p < config.alpha),
        "mSPRT": _first_true(msprt_p_values(diff, se, mixture_sd=config.mixture_sd) <= config.alpha),
        "group sequential": design.first_rejection(z),
    }
    rows, curves = [], {}
    for name in PROCEDURES:
        look = first_look[name]
        rate = float((look >= 0).mean())
        stopped_n = np.where(look >= 0, n[np.maximum(look, 0)], n[-1])
        rows.append({"procedure": name, "rejection rate": rate,
                     "MC std error": float(np.sqrt(rate * (1 - rate) / config.num_experiments)),
                     "mean users per arm": float(stopped_n.mean())})
        curves[name] = [float(((look >= 0) & (look <= k)).mean()) for k in range(config.num_looks)]
    summary = pd.DataFrame(rows).set_index("procedure")
    by_look = pd.DataFrame({"users per arm": n, **curves}, index=pd.RangeIndex(1, config.num_looks + 1, name="look"))
    rates = summary["rejection rate"]
    return PeekingResult(config=config, fixed_horizon_rate=float(rates["fixed horizon"]),
                         peeking_rate=float(rates["peeking"]), msprt_rate=float(rates["mSPRT"]),
                         group_sequential_rate=float(rates["group sequential"]), summary=summary, by_look=by_look)


def _first_true(flags: np.ndarray) -> np.ndarray:
    """``[E]`` index of the first True along the last axis of ``flags [E, K]``, ``-1`` if none."""
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1), -1)
