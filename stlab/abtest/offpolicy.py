"""Off-policy evaluation: what another policy would have earned, from a randomised log.

A logging policy shows one action (POI) per query, drawn from action probabilities it records
(the propensities). From that log, the value of a target policy -- its mean reward per query --
is estimated without showing it to anyone: inverse propensity scoring (Horvitz & Thompson,
1952), its self-normalised form (Swaminathan & Joachims, 2015), the direct method with a reward
model, and the doubly robust estimator that combines them (Dudik, Langford & Li, 2011). Policies
are arrays of action probabilities ``[Q, A]``, so no framework is needed; in the synthetic city
the true value is known (:func:`policy_value`).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from stlab.abtest._common import (
    _INTERVALS,
    Interval,
    Seed,
    _check_choice,
    _check_open_unit,
    _check_policy,
    _check_positive,
    _inverse_cdf_draw,
)
from stlab.metrics import bootstrap_interval


def softmax_policy(scores: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """``[Q, A]`` policy choosing action ``a`` with probability ``softmax(scores / temperature)``.

    A ``-inf`` score is never chosen. Lower temperatures approach the greedy policy; a logging
    policy needs every action a target policy may take to have a positive probability.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape or np.isnan(scores).any() or (scores == np.inf).any():
        raise ValueError(f"scores must be a non-empty [Q, A] array without NaN or +inf, got shape {scores.shape}")
    if not np.isfinite(scores).any(axis=1).all():
        raise ValueError("every row of scores needs at least one finite score")
    return special.softmax(scores / _check_positive(temperature, "temperature"), axis=1)


def epsilon_greedy_policy(scores: np.ndarray, *, epsilon: float = 0.1) -> np.ndarray:
    """``[Q, A]`` policy taking the best-scored action with probability ``1 - epsilon`` and a
    uniformly random action with finite score otherwise (ties: the lower index). ``epsilon = 0``
    is the deterministic greedy policy.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape or np.isnan(scores).any() or (scores == np.inf).any():
        raise ValueError(f"scores must be a non-empty [Q, A] array without NaN or +inf, got shape {scores.shape}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    allowed = np.isfinite(scores)
    if not allowed.any(axis=1).all():
        raise ValueError("every row of scores needs at least one finite score")
    policy = epsilon * allowed / allowed.sum(axis=1, keepdims=True)  # [Q, A]
    policy[np.arange(len(scores)), np.argmax(np.where(allowed, scores, -np.inf), axis=1)] += 1 - epsilon
    return policy


def policy_value(expected_rewards: np.ndarray, policy: np.ndarray) -> float:
    """The true value of ``policy``: ``mean_q sum_a policy[q, a] expected_rewards[q, a]``.

    Args:
        expected_rewards: ``[Q, A]`` expected reward of each action at each query (for example
            :func:`~stlab.abtest.response.item_acceptance`).
        policy: ``[Q, A]`` action probabilities.
    """
    expected_rewards = np.asarray(expected_rewards, dtype=np.float64)
    policy = _check_policy(policy, "policy")
    if expected_rewards.shape != policy.shape:
        raise ValueError(f"expected_rewards {expected_rewards.shape} and policy {policy.shape} must have one shape")
    return float((expected_rewards * policy).sum(axis=1).mean())


def support_deficit(logging_policy: np.ndarray, target_policy: np.ndarray) -> float:
    """Mean probability the target policy puts on actions the logging policy never takes.

    Importance weighting cannot see those actions: IPS is then biased (towards zero, for
    non-negative rewards). Zero means the logging policy covers the target.
    """
    logging_policy = _check_policy(logging_policy, "logging_policy")
    target_policy = _check_policy(target_policy, "target_policy")
    if logging_policy.shape != target_policy.shape:
        raise ValueError(f"logging_policy {logging_policy.shape} and target_policy {target_policy.shape} must have "
                         "one shape")
    return float(np.where(logging_policy > 0, 0.0, target_policy).sum(axis=1).mean())


@dataclass(frozen=True, eq=False)
class BanditLog:
    """What a randomised logging policy recorded: one shown action per query.

    Attributes:
        action: ``[Q]`` the action (POI) shown.
        reward: ``[Q]`` the reward observed (1 if accepted).
        propensity: ``[Q]`` the logging policy's probability of that action at that query.
    """

    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray

    def __post_init__(self) -> None:
        if not (self.action.ndim == self.reward.ndim == self.propensity.ndim == 1
                and len(self.action) == len(self.reward) == len(self.propensity) > 0):
            raise ValueError(f"action, reward and propensity must be non-empty 1-D arrays of one length, got shapes "
                             f"{self.action.shape}, {self.reward.shape} and {self.propensity.shape}")
        if not np.issubdtype(self.action.dtype, np.integer) or self.action.min() < 0:
            raise ValueError("action must hold non-negative integer action indices")
        if not np.isfinite(self.reward).all():
            raise ValueError("reward holds NaN or infinite values")
        if not ((self.propensity > 0) & (self.propensity <= 1)).all():
            raise ValueError("every propensity must be in (0, 1]: a logged action had a positive chance of being "
                             "shown; record the logging policy's probability, not a score")

    def __len__(self) -> int:
        return len(self.action)


def log_bandit_feedback(expected_rewards: np.ndarray, logging_policy: np.ndarray, *, seed: Seed = 0) -> BanditLog:
    """Simulate a log: at each query the logging policy draws one action; the reward is a
    Bernoulli draw with the action's expected reward (which must lie in [0, 1]).

    Args:
        expected_rewards: ``[Q, A]`` expected reward of each action (for example
            :func:`~stlab.abtest.response.item_acceptance`).
        logging_policy: ``[Q, A]`` action probabilities of the policy that was live.
        seed: an ``int`` seed or a :class:`numpy.random.Generator`.
    """
    expected_rewards = np.asarray(expected_rewards, dtype=np.float64)
    logging_policy = _check_policy(logging_policy, "logging_policy")
    if expected_rewards.shape != logging_policy.shape:
        raise ValueError(f"expected_rewards {expected_rewards.shape} and logging_policy {logging_policy.shape} must "
                         "have one shape [Q, A]")
    if not ((expected_rewards >= 0) & (expected_rewards <= 1)).all():
        raise ValueError("expected_rewards must be probabilities in [0, 1] to draw Bernoulli rewards")
    rng = np.random.default_rng(seed)
    action = _inverse_cdf_draw(logging_policy, 1.0 - rng.random(len(logging_policy)))
    rows = np.arange(len(action))
    reward = (rng.random(len(action)) < expected_rewards[rows, action]).astype(np.float64)
    return BanditLog(action=action, reward=reward, propensity=logging_policy[rows, action])


@dataclass(frozen=True)
class OffPolicyEstimate:
    """An off-policy estimate of a target policy's value.

    Attributes:
        estimator: ``"DM"``, ``"IPS"``, ``"SNIPS"`` or ``"DR"``.
        value: the estimated mean reward per query under the target policy.
        std_error: its standard error (over queries).
        low, high: the interval at ``level``.
        effective_sample_size: Kish's ``(sum w)^2 / sum w^2`` of the importance weights -- how
            many on-policy queries the log is worth (``Q`` for DM, which uses no weights).
        level: confidence level.
    """

    estimator: str
    value: float
    std_error: float
    low: float
    high: float
    effective_sample_size: float
    level: float


def _importance_weights(log: BanditLog, target_policy: np.ndarray, max_weight: float | None) -> np.ndarray:
    target_policy = _check_policy(target_policy, "target_policy", len(log))
    if log.action.max() >= target_policy.shape[1]:
        raise ValueError(f"the log holds action {log.action.max()} but target_policy has only "
                         f"{target_policy.shape[1]} actions")
    weights = target_policy[np.arange(len(log)), log.action] / log.propensity  # [Q]
    if max_weight is not None:
        # Clipping trades a bias (downwards, for non-negative rewards) for a smaller variance.
        weights = np.minimum(weights, _check_positive(max_weight, "max_weight"))
    return weights


def _mean_estimate(name: str, terms: np.ndarray, weights: np.ndarray | None, level: float, interval: str,
                   num_resamples: int, seed: int) -> OffPolicyEstimate:
    """An estimator that is the mean of per-query ``terms``: normal or bootstrap interval."""
    _check_open_unit(level, "level")
    _check_choice(interval, "interval", _INTERVALS)
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else float("nan")
    if interval == "normal":
        quantile = stats.norm.isf((1 - level) / 2)
        low, high = value - quantile * se, value + quantile * se
    else:
        _, low, high = bootstrap_interval(terms, level=level, num_resamples=num_resamples, seed=seed)
    ess = float(weights.sum() ** 2 / np.sum(weights**2)) if weights is not None else float(len(terms))
    return OffPolicyEstimate(estimator=name, value=value, std_error=se, low=float(low), high=float(high),
                             effective_sample_size=ess, level=level)


def ips_estimate(log: BanditLog, target_policy: np.ndarray, *, max_weight: float | None = None,
                 level: float = 0.95, interval: Interval = "normal", num_resamples: int = 2000,
                 seed: int = 0) -> OffPolicyEstimate:
    """Inverse propensity scoring: ``mean_q w_q r_q`` with ``w_q = pi(a_q | q) / pi_0(a_q | q)``.

    Unbiased when the logging policy ``pi_0`` gives a positive probability to every action the
    target ``pi`` may take (:func:`support_deficit` is 0); its variance grows with the weights.
    When a few large weights dominate (an ``effective_sample_size`` far below ``Q``), the
    distribution of the estimate is skewed: most logs miss the rare heavily weighted rewards and
    come out low with a small standard error, so the normal interval covers the truth less often
    than its level says.

    Args:
        log: the logged actions, rewards and propensities.
        target_policy: ``[Q, A]`` the policy to evaluate, one row per logged query.
        max_weight: clip the weights at this value (biased, lower variance); ``None`` keeps them.
        level: confidence level.
        interval: ``"normal"`` (CLT over queries) or ``"bootstrap"`` (percentile, over queries).
        num_resamples, seed: of the bootstrap.
    """
    weights = _importance_weights(log, target_policy, max_weight)
    return _mean_estimate("IPS", weights * log.reward, weights, level, interval, num_resamples, seed)


def snips_estimate(log: BanditLog, target_policy: np.ndarray, *, level: float = 0.95, interval: Interval = "normal",
                   num_resamples: int = 2000, seed: int = 0) -> OffPolicyEstimate:
    """Self-normalised IPS: ``sum w r / sum w`` (Swaminathan & Joachims, 2015).

    Dividing by the weights' sum instead of ``Q`` makes the estimate a weighted mean of observed
    rewards, so it always lies within their range; it is biased for small logs (consistent as
    they grow) but usually has a much smaller variance. The normal interval uses the delta method,
    ``se = sqrt(sum (w (r - V))^2 Q / (Q - 1)) / sum w``; the bootstrap one resamples queries.
    Arguments as :func:`ips_estimate`.
    """
    _check_open_unit(level, "level")
    _check_choice(interval, "interval", _INTERVALS)
    weights = _importance_weights(log, target_policy, None)
    if weights.sum() <= 0:
        raise ValueError("the target policy gives probability 0 to every logged action, so SNIPS is undefined")
    value = float(np.sum(weights * log.reward) / weights.sum())
    count = len(log)
    se = float(np.sqrt(np.sum((weights * (log.reward - value)) ** 2) * count / max(count - 1, 1)) / weights.sum())
    if interval == "normal":
        quantile = stats.norm.isf((1 - level) / 2)
        low, high = value - quantile * se, value + quantile * se
    else:
        rng = np.random.default_rng(seed)
        ratios = np.empty(num_resamples)
        for start in range(0, num_resamples, 256):  # bounded memory, as bootstrap_interval
            rows = rng.integers(0, count, size=(min(256, num_resamples - start), count))
            w = weights[rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios[start:start + len(rows)] = (w * log.reward[rows]).sum(axis=1) / w.sum(axis=1)
        tail = (1 - level) / 2
        low, high = np.nanquantile(ratios, tail), np.nanquantile(ratios, 1 - tail)
    return OffPolicyEstimate(estimator="SNIPS", value=value, std_error=se, low=float(low), high=float(high),
                             effective_sample_size=float(weights.sum() ** 2 / np.sum(weights**2)), level=level)


def _check_reward_model(reward_model: np.ndarray, target_policy: np.ndarray) -> np.ndarray:
    reward_model = np.asarray(reward_model, dtype=np.float64)
    if reward_model.shape != np.shape(target_policy):
        raise ValueError(f"reward_model {reward_model.shape} must have the target policy's shape "
                         f"{np.shape(target_policy)}: a predicted reward for every action at every logged query")
    if not np.isfinite(reward_model).all():
        raise ValueError("reward_model holds NaN or infinite predictions")
    return reward_model


def direct_method_estimate(log: BanditLog, target_policy: np.ndarray, reward_model: np.ndarray, *,
                           level: float = 0.95, interval: Interval = "normal", num_resamples: int = 2000,
                           seed: int = 0) -> OffPolicyEstimate:
    """The direct method: ``mean_q sum_a pi(a | q) rhat(q, a)``, trusting a reward model.

    Low variance, but biased by whatever the model gets wrong -- and its interval, taken over
    queries, does not know about that bias. Arguments as :func:`doubly_robust_estimate`.
    """
    target_policy = _check_policy(target_policy, "target_policy", len(log))
    reward_model = _check_reward_model(reward_model, target_policy)
    terms = (target_policy * reward_model).sum(axis=1)
    return _mean_estimate("DM", terms, None, level, interval, num_resamples, seed)


def doubly_robust_estimate(log: BanditLog, target_policy: np.ndarray, reward_model: np.ndarray, *,
                           max_weight: float | None = None, level: float = 0.95, interval: Interval = "normal",
                           num_resamples: int = 2000, seed: int = 0) -> OffPolicyEstimate:
    """Doubly robust: the direct method plus an importance-weighted correction of its error.

    ``mean_q [ sum_a pi(a | q) rhat(q, a) + w_q (r_q - rhat(q, a_q)) ]`` (Dudik, Langford & Li,
    2011). Unbiased when the propensities are right, whatever the reward model; the better the
    model, the smaller the residuals ``r - rhat`` the weights multiply, and the lower the variance
    than IPS.

    Args:
        log: the logged actions, rewards and propensities.
        target_policy: ``[Q, A]`` the policy to evaluate.
        reward_model: ``[Q, A]`` predicted reward of every action at every logged query (fitted on
            other data than this log, or cross-fitted, to keep the estimate honest).
        max_weight, level, interval, num_resamples, seed: as :func:`ips_estimate`.
    """
    weights = _importance_weights(log, target_policy, max_weight)
    target_policy = _check_policy(target_policy, "target_policy", len(log))
    reward_model = _check_reward_model(reward_model, target_policy)
    rows = np.arange(len(log))
    terms = (target_policy * reward_model).sum(axis=1) + weights * (log.reward - reward_model[rows, log.action])
    return _mean_estimate("DR", terms, weights, level, interval, num_resamples, seed)


def off_policy_table(log: BanditLog, target_policy: np.ndarray, reward_model: np.ndarray, *,
                     true_value: float | None = None, level: float = 0.95, interval: Interval = "normal",
                     num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """DM, IPS, SNIPS and DR side by side: one row each (value, std error, interval, ESS), and,
    when the true value is known (simulation: :func:`policy_value`), the error of each and whether
    its interval covers the truth."""
    options = {"level": level, "interval": interval, "num_resamples": num_resamples, "seed": seed}
    estimates = [direct_method_estimate(log, target_policy, reward_model, **options),
                 ips_estimate(log, target_policy, **options), snips_estimate(log, target_policy, **options),
                 doubly_robust_estimate(log, target_policy, reward_model, **options)]
    table = pd.DataFrame([asdict(e) for e in estimates]).set_index("estimator")
    if true_value is not None:
        table["true value"] = true_value
        table["error"] = table["value"] - true_value
        table["covers truth"] = (table["low"] <= true_value) & (true_value <= table["high"])
    return table
