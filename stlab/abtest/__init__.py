"""Testing a recommender: simulated users, A/B tests, power, sequential tests, off-policy evaluation.

Offline metrics (chapter 4) ask whether a model ranks the place a user went next near the top.
A business asks something else: *if we show people this list, do they act differently?* That
is a causal question, answered by a randomised experiment. The synthetic city knows every
user's true next-visit distribution, so here experiments have a known right answer, and every
statistical tool can be checked against it.

1. **A user-response model** (:mod:`~stlab.abtest.response`). A policy shows user ``u`` a list
   ``R`` of ``k`` POIs at a query (user, time, previous visit). With ``p_u`` the user's true
   next-visit distribution, the user *accepts* the recommendation with probability
   ``a = min(1, strength * sum_{i in R} p_u(i))`` -- a list that covers more of what the user
   wanted anyway is taken up more often -- and then visits a POI of ``R`` drawn from ``p_u``
   restricted to ``R``; otherwise the user does what they would have done, a draw from ``p_u``.
   :func:`expected_response` gives the exact expectations, :func:`sample_response` a seeded
   draw. Everything takes ``true_log_probs [Q, P]`` and ``lists [Q, k]``, so any policy's
   top-``k`` (``model.recommend``) can be fed in.
2. **A/B tests** (:mod:`~stlab.abtest.experiment`; Kohavi, Tang & Xu, 2020). Users, not
   queries, are randomised, so one user's many queries are correlated; :func:`run_ab_test`
   either averages each user first (each user weighs the same) or keeps the per-query mean and
   takes its variance over users (the delta method for a ratio metric; Deng, Knoblich & Lu,
   2018). The result holds the estimate, its interval and the *true* uplift computed from the
   expected responses.
3. **Power** (:mod:`~stlab.abtest.power`): how many users an experiment needs to detect a given
   effect (:func:`proportion_sample_size`, :func:`proportion_power`, :func:`mean_sample_size`;
   Cohen, 1988).
4. **Peeking** (:mod:`~stlab.abtest.sequential`). Testing after every batch and stopping at the
   first ``p < alpha`` raises the false-positive rate far above ``alpha`` (Armitage, McPherson &
   Rowe, 1969; :func:`simulate_peeking`). Two remedies: the mixture sequential probability ratio
   test, whose always-valid p-values may be watched continuously (:func:`msprt_p_values`;
   Johari, Pekelis & Walsh, 2022), and group-sequential boundaries that spend ``alpha`` over
   planned looks (:func:`group_sequential_design`; Lan & DeMets, 1983, with spending shaped like
   O'Brien & Fleming's 1979 boundaries).
5. **Off-policy evaluation** (:mod:`~stlab.abtest.offpolicy`). From the log of a randomised
   logging policy that recorded its propensities, estimate what another policy would have
   earned -- without showing it to anyone: inverse propensity scoring (Horvitz & Thompson,
   1952), its self-normalised form (Swaminathan & Joachims, 2015) and the doubly robust
   estimator (Dudik, Langford & Li, 2011). Policies are arrays of action probabilities
   ``[Q, A]``, so no framework is needed.

Every random draw comes from a seeded :class:`numpy.random.Generator`: the same seed gives the
same numbers. Everything is importable from ``stlab.abtest`` itself.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

from stlab.abtest._common import Alternative, Interval, Metric, Seed, Spending, Unit
from stlab.abtest.experiment import (
    ABTestConfig,
    ABTestResult,
    DifferenceEstimate,
    assign_users,
    clustered_difference,
    repeat_ab_test,
    run_ab_test,
    welch_difference,
)
from stlab.abtest.offpolicy import (
    BanditLog,
    OffPolicyEstimate,
    direct_method_estimate,
    doubly_robust_estimate,
    epsilon_greedy_policy,
    ips_estimate,
    log_bandit_feedback,
    off_policy_table,
    policy_value,
    snips_estimate,
    softmax_policy,
    support_deficit,
)
from stlab.abtest.power import (
    mean_power,
    mean_sample_size,
    proportion_effect_size,
    proportion_mde,
    proportion_power,
    proportion_sample_size,
)
from stlab.abtest.response import (
    ExpectedResponse,
    SampledResponse,
    expected_response,
    item_acceptance,
    sample_response,
    visit_distribution,
)
from stlab.abtest.sequential import (
    PROCEDURES,
    GroupSequentialDesign,
    PeekingConfig,
    PeekingResult,
    group_sequential_design,
    msprt_confidence_sequence,
    msprt_p_values,
    simulate_peeking,
    spending_function,
)

__all__ = [
    "PROCEDURES", "ABTestConfig", "ABTestResult", "Alternative", "BanditLog", "DifferenceEstimate",
    "ExpectedResponse", "GroupSequentialDesign", "Interval", "Metric", "OffPolicyEstimate", "PeekingConfig",
    "PeekingResult", "SampledResponse", "Seed", "Spending", "Unit",
    "assign_users", "clustered_difference", "direct_method_estimate", "doubly_robust_estimate",
    "epsilon_greedy_policy", "expected_response", "group_sequential_design", "ips_estimate", "item_acceptance",
    "log_bandit_feedback", "mean_power", "mean_sample_size", "msprt_confidence_sequence", "msprt_p_values",
    "off_policy_table", "policy_value", "proportion_effect_size", "proportion_mde", "proportion_power",
    "proportion_sample_size", "repeat_ab_test", "run_ab_test", "sample_response", "simulate_peeking",
    "snips_estimate", "softmax_policy", "spending_function", "support_deficit", "visit_distribution",
    "welch_difference",
]
