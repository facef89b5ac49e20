"""The response model, A/B tests, power, sequential tests and off-policy estimators, each checked
against an independent implementation (scipy, statsmodels, numerical integration) or a simulation
whose true answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, special, stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from stlab import abtest
from stlab.abtest import (
    ABTestConfig,
    BanditLog,
    PeekingConfig,
    assign_users,
    clustered_difference,
    doubly_robust_estimate,
    epsilon_greedy_policy,
    expected_response,
    group_sequential_design,
    ips_estimate,
    item_acceptance,
    log_bandit_feedback,
    mean_power,
    mean_sample_size,
    msprt_confidence_sequence,
    msprt_p_values,
    off_policy_table,
    policy_value,
    proportion_mde,
    proportion_power,
    proportion_sample_size,
    repeat_ab_test,
    run_ab_test,
    sample_response,
    simulate_peeking,
    snips_estimate,
    softmax_policy,
    support_deficit,
    visit_distribution,
    welch_difference,
)
from stlab.baselines import Markov, Popularity, TrueProbabilities
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.protocol import NextVisitQueries, build_task
from stlab.splits import temporal_split

# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def city():
    """True probabilities of every query of a small synthetic city, and two policies' top-5 lists."""
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=7))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    task = build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=4)
    parts = [task.queries(part) for part in ("train", "val", "test")]
    queries = NextVisitQueries(**{name: np.concatenate([getattr(q, name) for q in parts])
                                  for name in NextVisitQueries.__dataclass_fields__})
    # The world's probabilities restricted to the task's POIs miss the POIs cleaning removed:
    # renormalise over the candidates.
    log_probs = special.log_softmax(TrueProbabilities(world).fit(task).score(queries), axis=1)
    return {"task": task, "queries": queries, "log_probs": log_probs, "users": queries.user,
            "popularity": Popularity().fit(task).recommend(queries, 5),
            "markov": Markov().fit(task).recommend(queries, 5)}


def _tiny_log_probs() -> np.ndarray:
    with np.errstate(divide="ignore"):  # log 0 = -inf: a POI the user cannot choose
        return np.log(np.array([[0.5, 0.2, 0.2, 0.1], [0.1, 0.0, 0.6, 0.3]]))


# --------------------------------------------------------------------------- the response model

def test_expected_response_by_hand():
    lists = np.array([[0, 3], [1, 3]])
    out = expected_response(_tiny_log_probs(), lists, strength=2.0)
    np.testing.assert_allclose(out.list_mass, [0.6, 0.3])
    np.testing.assert_allclose(out.accept_prob, [1.0, 0.6])  # min(1, 2 * 0.6), 2 * 0.3
    np.testing.assert_allclose(out.visit_in_list_prob, [1.0, 0.6 + 0.4 * 0.3])
    visits = visit_distribution(_tiny_log_probs(), lists, strength=2.0)
    np.testing.assert_allclose(visits.sum(axis=1), 1.0)
    np.testing.assert_allclose(visits[0], [0.5 / 0.6, 0, 0, 0.1 / 0.6])  # certain acceptance: only the list
    # Row 1: 0.6 of the choice moves onto {1, 3} in proportion to p (0 and 0.3), the rest stays.
    np.testing.assert_allclose(visits[1], [0.4 * 0.1, 0.0, 0.4 * 0.6, 0.4 * 0.3 + 0.6])
    np.testing.assert_allclose(np.take_along_axis(visits, lists, axis=1).sum(axis=1), out.visit_in_list_prob)


def test_sampled_outcomes_match_the_expectations(city):
    log_probs, lists = city["log_probs"], city["markov"]
    expected = expected_response(log_probs, lists, strength=1.5)
    draws = [sample_response(log_probs, lists, strength=1.5, seed=s) for s in range(60)]
    for name in ("accepted", "visit_in_list"):
        observed = np.mean([d.metric(name).mean() for d in draws])
        truth = expected.metric(name).mean()
        se = np.sqrt(np.sum(truth * (1 - truth)) / (len(log_probs) * len(draws)))  # binomial, pooled
        assert abs(observed - truth) < 4 * se, (name, observed, truth, se)
    # Visits: 20,000 draws of one query against its visit distribution, every POI within 4.5 SE.
    row = 3
    many = np.repeat(log_probs[row:row + 1], 20_000, axis=0)
    visits = sample_response(many, np.repeat(lists[row:row + 1], 20_000, axis=0), strength=1.5, seed=1).visit
    frequency = np.bincount(visits, minlength=log_probs.shape[1]) / len(visits)
    target = visit_distribution(log_probs[row:row + 1], lists[row:row + 1], strength=1.5)[0]
    assert np.all(np.abs(frequency - target) <= 4.5 * np.sqrt(target * (1 - target) / len(visits)) + 1e-12)


def test_a_draw_never_visits_an_impossible_poi():
    log_probs = np.tile(_tiny_log_probs(), (500, 1))  # POI 1 has probability 0 in the odd rows
    lists = np.tile(np.array([[1, 2], [1, 2]]), (500, 1))
    out = sample_response(log_probs, lists, seed=0)
    assert not (out.visit[1::2] == 1).any()
    assert ((out.visit[out.accepted] == 1) | (out.visit[out.accepted] == 2)).all()


# --------------------------------------------------------------------------- comparing arms

def test_welch_difference_matches_scipy():
    rng = np.random.default_rng(0)
    control, treatment = rng.normal(1.0, 1.0, 40), rng.normal(1.4, 2.0, 25)
    ours = welch_difference(control, treatment, level=0.9)
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    low, high = ref.confidence_interval(0.9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-10)
    assert ours.relative == pytest.approx(treatment.mean() / control.mean() - 1)


def test_clustered_difference_matches_statsmodels_cluster_robust():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(30), rng.integers(1, 9, 30))  # users with 1-8 queries
    user_effect = rng.normal(0, 0.3, 30)[clusters]
    values = (rng.random(len(clusters)) < 0.3 + user_effect.clip(-0.25, 0.5)).astype(float)
    treatment = (clusters % 2 == 1)
    ours = clustered_difference(values, clusters, treatment)
    variance = 0.0
    for arm in (~treatment, treatment):
        fit = sm.OLS(values[arm], np.ones(arm.sum())).fit(
            cov_type="cluster", cov_kwds={"groups": clusters[arm], "use_correction": False})  # CR0
        groups = len(np.unique(clusters[arm]))
        variance += fit.bse[0] ** 2 * groups / (groups - 1)
    assert ours.std_error == pytest.approx(np.sqrt(variance), rel=1e-10)
    assert ours.difference == pytest.approx(values[treatment].mean() - values[~treatment].mean())
    # With one observation per cluster it is Welch's standard error.
    single = clustered_difference(values[:40], np.arange(40), np.arange(40) % 2 == 0)
    welch = welch_difference(values[:40][1::2], values[:40][::2])
    assert single.std_error == pytest.approx(welch.std_error, rel=1e-12)


def test_assignment_is_by_user_and_stable():
    users = np.repeat(np.arange(2000), 3)
    treated = assign_users(users, treatment_share=0.3, seed=5)
    per_user = treated.reshape(-1, 3)
    assert (per_user == per_user[:, :1]).all()  # a user's queries share an arm
    assert abs(per_user[:, 0].mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)
    subset = users[users % 7 == 0]  # other users absent: the same users keep their arms
    np.testing.assert_array_equal(assign_users(subset, treatment_share=0.3, seed=5), treated[users % 7 == 0])


def test_ab_interval_covers_the_true_uplift(city):
    args = (city["log_probs"], city["popularity"], city["markov"], city["users"])
    rates = {}
    for unit in ("user", "query"):
        runs = repeat_ab_test(*args, ABTestConfig(unit=unit, seed=100), num_repetitions=400)
        assert runs["true_uplift"].nunique() == 1 and runs["true_uplift"].iloc[0] > 0
        rates[unit] = runs["covers_truth"].mean()
        # The default analysis (per user) must reach the nominal 95 % on these seeded repetitions.
        # The per-query analysis, whose variance comes from the delta method over only ~30 users,
        # is held to 0.93: with 400 repetitions the coverage estimate has a binomial standard
        # error of about sqrt(0.95 * 0.05 / 400) = 0.011, so 0.93 is two of them below 0.95.
        assert rates[unit] >= (0.95 if unit == ABTestConfig().unit else 0.93), (unit, rates[unit])
        mean_estimate = runs["uplift"].mean()
        assert abs(mean_estimate - runs["true_uplift"].iloc[0]) < 4 * runs["uplift"].std() / np.sqrt(len(runs))
    # Treating a user's queries as independent understates the variance: the interval is too narrow.
    unclustered = repeat_ab_test(*args, ABTestConfig(unit="query_unclustered", seed=100), num_repetitions=400)
    rates["query_unclustered"] = unclustered["covers_truth"].mean()
    assert rates["query_unclustered"] < 0.9
    print(f"A/B interval coverage of the true uplift (400 repetitions, nominal 0.95): per user {rates['user']:.3f}, "
          f"per query clustered by user {rates['query']:.3f}, per query unclustered {rates['query_unclustered']:.3f}")


def test_ab_result_truth_is_the_expected_response(city):
    config = ABTestConfig(unit="query", metric="visit_in_list", strength=2.0, seed=3)
    result = run_ab_test(city["log_probs"], city["popularity"], city["markov"], city["users"], config)
    truth_c = expected_response(city["log_probs"], city["popularity"], strength=2.0).visit_in_list_prob.mean()
    truth_t = expected_response(city["log_probs"], city["markov"], strength=2.0).visit_in_list_prob.mean()
    assert result.true_uplift == pytest.approx(truth_t - truth_c)
    assert result.true_relative_uplift == pytest.approx(truth_t / truth_c - 1)
    assert result.num_queries_control + result.num_queries_treatment == len(city["users"])
    assert result.relative_low < result.relative_uplift < result.relative_high
    # Equal policies: the truth is exactly zero.
    same = run_ab_test(city["log_probs"], city["markov"], city["markov"], city["users"], config)
    assert same.true_uplift == 0.0


# --------------------------------------------------------------------------- power

@pytest.mark.parametrize("alternative", ["two-sided", "larger"])
@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_power_and_sample_size_match_statsmodels(alternative, ratio):
    analysis = NormalIndPower()
    for baseline, treated in ((0.10, 0.11), (0.3, 0.36), (0.05, 0.07)):
        h = proportion_effectsize(treated, baseline)
        n_ref = analysis.solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=ratio, alternative=alternative)
        n = proportion_sample_size(baseline, treated - baseline, ratio=ratio, alternative=alternative)
        assert n == int(np.ceil(n_ref)), (baseline, treated, n, n_ref)
        for nobs in (100, 1234, 20_000):
            assert proportion_power(baseline, treated - baseline, nobs, ratio=ratio, alternative=alternative) == \
                pytest.approx(analysis.power(h, nobs, 0.05, ratio=ratio, alternative=alternative), rel=1e-9)
    assert mean_power(0.3, 50, sd=2.0, alpha=0.01, ratio=ratio, alternative=alternative) == pytest.approx(
        analysis.power(0.15, 50, 0.01, ratio=ratio, alternative=alternative), rel=1e-9)
    assert mean_sample_size(-0.5, sd=2.0, power=0.9, ratio=ratio) == int(np.ceil(
        analysis.solve_power(effect_size=0.25, alpha=0.05, power=0.9, ratio=ratio)))


def test_the_planned_sample_size_gives_the_planned_power_in_simulation():
    baseline, mde = 0.20, 0.05
    n = proportion_sample_size(baseline, mde, power=0.8)
    assert proportion_sample_size(baseline, 0.25, relative=True) == n  # +25 % of 0.2 is +0.05
    rng = np.random.default_rng(0)
    control = rng.binomial(n, baseline, 4000) / n
    treated = rng.binomial(n, baseline + mde, 4000) / n
    se = np.sqrt((control * (1 - control) + treated * (1 - treated)) / n)
    power = np.mean(np.abs(treated - control) / se > stats.norm.isf(0.025))  # the unpooled z-test
    assert abs(power - 0.8) < 0.03, power  # 4,000 experiments: MC standard error 0.006
    assert proportion_mde(baseline, n) == pytest.approx(mde, abs=2e-4)  # n is rounded up
    assert proportion_power(baseline, proportion_mde(baseline, 5000), 5000) == pytest.approx(0.8, abs=1e-9)


# --------------------------------------------------------------------------- peeking and sequential tests

def test_peeking_inflates_false_positives_and_sequential_tests_do_not():
    aa = simulate_peeking(PeekingConfig(num_experiments=2000, num_looks=20, batch_size=500, seed=0))
    # 2,000 A/A experiments: the MC standard error of a rate near 0.05 is 0.005; allow three.
    slack = 3 * np.sqrt(0.05 * 0.95 / 2000)
    print(f"A/A false-positive rate, 20 looks, alpha 0.05: fixed horizon {aa.fixed_horizon_rate:.3f}, "
          f"peeking {aa.peeking_rate:.3f}, mSPRT {aa.msprt_rate:.3f}, "
          f"O'Brien-Fleming {aa.group_sequential_rate:.3f}")
    assert aa.peeking_rate > 0.15
    assert aa.fixed_horizon_rate <= 0.05 + slack
    assert aa.msprt_rate <= 0.05 + slack
    assert aa.group_sequential_rate <= 0.05 + slack
    assert aa.by_look["peeking"].is_monotonic_increasing
    assert aa.by_look["peeking"].iloc[-1] == pytest.approx(aa.peeking_rate)
    ab = simulate_peeking(PeekingConfig(uplift=0.02, num_experiments=1000, seed=1))
    print(f"A/B detection rate (+2 points on 10 %): mSPRT {ab.msprt_rate:.3f}, "
          f"O'Brien-Fleming {ab.group_sequential_rate:.3f}, mean users per arm at the stop "
          f"{ab.summary.loc['mSPRT', 'mean users per arm']:.0f} and "
          f"{ab.summary.loc['group sequential', 'mean users per arm']:.0f} of 10,000")
    assert ab.msprt_rate > 0.9 and ab.group_sequential_rate > 0.9
    assert ab.summary.loc["mSPRT", "mean users per arm"] < 0.6 * 10_000  # real effects stop early


def test_group_sequential_bounds_match_published_tables_and_simulation():
    # Lan-DeMets spending, 5 equally spaced looks, two-sided alpha 0.05 (gsDesign / ldbounds tables).
    obf = group_sequential_design(5, alpha=0.05, spending="obrien_fleming")
    np.testing.assert_allclose(obf.bounds, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=2e-4)
    pocock = group_sequential_design(5, alpha=0.05, spending="pocock")
    np.testing.assert_allclose(pocock.bounds, [2.4380, 2.4268, 2.4101, 2.3966, 2.3859], atol=2e-4)
    assert group_sequential_design(1).bounds[0] == pytest.approx(stats.norm.isf(0.025))
    # Brownian paths read at unequal looks cross with probability alpha.
    design = group_sequential_design([0.2, 0.5, 0.6, 1.0], alpha=0.1)
    rng = np.random.default_rng(0)
    t = design.information_fractions
    paths = np.cumsum(rng.normal(size=(200_000, len(t))) * np.sqrt(np.diff(t, prepend=0)), axis=1) / np.sqrt(t)
    crossed = (design.first_rejection(paths) >= 0).mean()
    assert abs(crossed - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 200_000)
    assert design.to_frame()["alpha spent"].iloc[-1] == pytest.approx(0.1)


def test_msprt_statistic_is_the_mixture_likelihood_ratio():
    estimate, se, tau = np.array([0.03, -0.01, 0.002]), np.array([0.01, 0.004, 0.02]), 0.015
    def integrand(theta: float, d: float, s: float) -> float:
        return stats.norm.pdf(d, theta, s) * stats.norm.pdf(theta, 0, tau)

    for d, s in zip(estimate, se):
        mixture, _ = integrate.quad(integrand, -1, 1, args=(d, s), points=[0.0, d], epsabs=0, epsrel=1e-12)
        ratio = mixture / stats.norm.pdf(d, 0, s)
        p = msprt_p_values(np.array([d]), np.array([s]), mixture_sd=tau)[0]
        assert p == pytest.approx(min(1.0, 1 / ratio), rel=1e-8)
    # The confidence sequence's end is where the p-value for that null equals alpha.
    low, high = msprt_confidence_sequence(estimate[:1], se[:1], mixture_sd=tau, alpha=0.05)
    for end in (low[0], high[0]):
        assert msprt_p_values(estimate[:1], se[:1], mixture_sd=tau, null=end)[0] == pytest.approx(0.05, rel=1e-8)


def test_msprt_confidence_sequence_holds_the_truth_at_every_look():
    rng = np.random.default_rng(2)
    theta, looks, num_paths = 0.3, 200, 3000
    n = np.arange(1, looks + 1)
    estimate = theta + np.cumsum(rng.normal(size=(num_paths, looks)), axis=1) / n  # running means, sd 1
    low, high = msprt_confidence_sequence(estimate, np.broadcast_to(1 / np.sqrt(n), estimate.shape),
                                          mixture_sd=0.3, alpha=0.05)
    missed = ((low > theta) | (high < theta)).any(axis=1).mean()
    assert missed <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / num_paths), missed
    assert (np.diff(high - low, axis=1) <= 1e-12).all()  # intervals only shrink


# --------------------------------------------------------------------------- off-policy evaluation

def _bandit_problem(seed: int = 0, num_queries: int = 40, num_actions: int = 5):
    rng = np.random.default_rng(seed)
    rewards = rng.uniform(0.05, 0.6, (num_queries, num_actions))
    logging = softmax_policy(rng.normal(size=(num_queries, num_actions)))
    target = softmax_policy(3 * rewards + rng.normal(0, 0.5, rewards.shape), temperature=0.5)
    return rewards, logging, target


def test_ips_and_dr_are_unbiased():
    rewards, logging, target = _bandit_problem()
    truth = policy_value(rewards, target)
    wrong_model = np.full_like(rewards, 0.3)  # DR needs right propensities, not a right model
    ips, dr = [], []
    for seed in range(600):
        log = log_bandit_feedback(rewards, logging, seed=seed)
        ips.append(ips_estimate(log, target).value)
        dr.append(doubly_robust_estimate(log, target, wrong_model).value)
    for name, values in (("IPS", ips), ("DR", dr)):
        error = np.mean(values) - truth
        assert abs(error) < 4 * np.std(values) / np.sqrt(len(values)), (name, error)


def test_snips_when_the_target_is_the_logging_policy_and_for_constant_rewards():
    rewards, logging, target = _bandit_problem(1)
    log = log_bandit_feedback(rewards, logging, seed=0)
    on_policy = snips_estimate(log, logging)
    assert on_policy.value == pytest.approx(log.reward.mean(), rel=1e-12)  # all weights are one
    assert on_policy.effective_sample_size == pytest.approx(len(log))
    constant = BanditLog(action=log.action, reward=np.full(len(log), 0.25), propensity=log.propensity)
    assert snips_estimate(constant, target).value == pytest.approx(0.25, rel=1e-12)
    assert ips_estimate(constant, target).value != pytest.approx(0.25, rel=1e-3)  # IPS is not self-normalised


def test_dr_with_the_true_reward_model_has_far_less_variance_than_ips():
    rewards, logging, target = _bandit_problem(2, num_queries=100)
    rows = np.arange(len(rewards))
    ips, dr, ips_noisy, dr_noisy = [], [], [], []
    for seed in range(300):
        log = log_bandit_feedback(rewards, logging, seed=seed)
        # Rewards without noise (each action's expected reward): the right reward model leaves DR
        # nothing to correct, so all that remains of IPS's variance -- which action was logged -- goes.
        exact = BanditLog(log.action, rewards[rows, log.action], log.propensity)
        ips.append(ips_estimate(exact, target).value)
        dr.append(doubly_robust_estimate(exact, target, rewards).value)
        ips_noisy.append(ips_estimate(log, target).value)
        dr_noisy.append(doubly_robust_estimate(log, target, rewards).value)
    assert np.var(dr) < 1e-20 and np.var(ips) > 1e-4
    # Bernoulli rewards keep their own noise, w (r - rhat), in DR; it still beats IPS.
    assert np.var(dr_noisy) < 0.9 * np.var(ips_noisy), (np.var(dr_noisy), np.var(ips_noisy))


def test_off_policy_estimates_on_the_synthetic_city(city):
    rewards = item_acceptance(city["log_probs"], strength=5.0)  # [Q, P] accept one recommended POI
    scores = Popularity().fit(city["task"]).score(city["queries"])
    logging = epsilon_greedy_policy(scores, epsilon=0.5)
    target = softmax_policy(Markov().fit(city["task"]).score(city["queries"]) * 5)
    assert support_deficit(logging, target) == 0.0  # epsilon-greedy explores every POI
    truth = policy_value(rewards, target)
    reward_model = np.clip(rewards + 0.05, 0, 1)  # a good but biased model
    values = {name: [] for name in ("DM", "IPS", "SNIPS", "DR")}
    dr_covers = 0
    for seed in range(200):
        table = off_policy_table(log_bandit_feedback(rewards, logging, seed=seed), target, reward_model,
                                 true_value=truth)
        for name, estimates in values.items():
            estimates.append(table.loc[name, "value"])
        dr_covers += bool(table.loc["DR", "covers truth"])
    for name in ("IPS", "DR"):  # unbiased: the mean of 200 logs is within 4 standard errors
        assert abs(np.mean(values[name]) - truth) < 4 * np.std(values[name]) / np.sqrt(200), name
    assert np.mean(values["DM"]) - truth > 0.04  # the model's bias, which DM inherits and DR removes
    assert np.std(values["DR"]) < 0.5 * np.std(values["IPS"])
    assert dr_covers >= 180, dr_covers  # 95 % intervals; 200 logs
    boot = off_policy_table(log_bandit_feedback(rewards, logging, seed=0), target, reward_model,
                            interval="bootstrap", num_resamples=500)
    assert (boot["low"] <= boot["value"]).all() and (boot["value"] <= boot["high"]).all()


def test_policies_from_scores():
    scores = np.array([[1.0, 3.0, -np.inf, 2.0]])
    greedy = epsilon_greedy_policy(scores, epsilon=0.3)
    np.testing.assert_allclose(greedy, [[0.1, 0.8, 0.0, 0.1]])
    np.testing.assert_allclose(softmax_policy(scores, temperature=2.0)[0],
                               special.softmax(scores[0] / 2.0))
    assert support_deficit(greedy, np.array([[0.0, 0.5, 0.5, 0.0]])) == pytest.approx(0.5)


# --------------------------------------------------------------------------- errors and reproducibility

@pytest.mark.parametrize("call, message", [
    (lambda: expected_response(np.log(np.full((2, 4), 0.3)), np.array([[0], [1]])), "sum to one"),
    (lambda: expected_response(_tiny_log_probs(), np.array([[0, 1, 2, 3, 0]] * 2)), "between 1 and the P = 4"),
    (lambda: expected_response(_tiny_log_probs(), np.array([[0, 0], [1, 2]])), "repeats a POI"),
    (lambda: expected_response(_tiny_log_probs(), np.array([[0, 4], [1, 2]])), "outside 0..3"),
    (lambda: expected_response(_tiny_log_probs(), np.array([[0, 1]])), "one list per query"),
    (lambda: expected_response(_tiny_log_probs(), np.array([0, 1])), r"\[Q, k\]"),
    (lambda: expected_response(_tiny_log_probs(), np.array([[0], [1]]), strength=0), "strength"),
    (lambda: run_ab_test(_tiny_log_probs(), np.array([[0], [1]]), np.array([[1], [2]]), np.array([0, 1, 2])),
     "one user per query"),
    (lambda: ABTestConfig(level=1.0), "level must be in"),
    (lambda: ABTestConfig(unit="session"), "unit must be one of"),
    (lambda: proportion_sample_size(0.1, 0.01, alpha=0.0), "alpha must be in"),
    (lambda: proportion_sample_size(0.1, 0.01, power=0.01), r"power must be in \(alpha, 1\)"),
    (lambda: proportion_sample_size(0.95, 0.1), "outside"),
    (lambda: mean_sample_size(0.2, alternative="smaller"), "cannot detect"),
    (lambda: group_sequential_design([0.5, 0.4, 1.0]), "increase"),
    (lambda: PeekingConfig(alpha=1.5), "alpha must be in"),
    (lambda: msprt_p_values(np.zeros(3), np.ones(2), mixture_sd=1.0), "one shape"),
    (lambda: policy_value(np.ones((2, 3)), np.full((2, 3), 0.5)), "sum to one"),
    (lambda: ips_estimate(BanditLog(np.array([0, 1]), np.array([1.0, 0.0]), np.array([0.5, 0.5])),
                          np.full((3, 2), 0.5)), "one row per logged query"),
    (lambda: BanditLog(np.array([0]), np.array([1.0]), np.array([0.0])), "propensity must be in"),
    (lambda: softmax_policy(np.array([[0.0, np.inf]])), r"without NaN or \+inf"),
    (lambda: clustered_difference(np.ones(4), np.array([0, 0, 1, 2]), np.array([True, False, True, False])),
     "both arms"),
])
def test_bad_input_is_refused_with_a_helpful_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_restricted_probabilities_point_to_the_fix(city):
    world_scores = TrueProbabilities(SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=7)))
    raw = world_scores.fit(city["task"]).score(city["queries"])  # not renormalised
    with pytest.raises(ValueError, match="log_softmax"):
        expected_response(raw, city["markov"])


def test_same_seed_same_numbers(city):
    args = (city["log_probs"], city["popularity"], city["markov"], city["users"])
    assert run_ab_test(*args, ABTestConfig(seed=4)) == run_ab_test(*args, ABTestConfig(seed=4))
    assert run_ab_test(*args, ABTestConfig(seed=4)) != run_ab_test(*args, ABTestConfig(seed=5))
    a, b = (sample_response(city["log_probs"], city["markov"], seed=9) for _ in range(2))
    np.testing.assert_array_equal(a.visit, b.visit)
    np.testing.assert_array_equal(a.accepted, b.accepted)
    rewards, logging, _ = _bandit_problem()
    np.testing.assert_array_equal(log_bandit_feedback(rewards, logging, seed=3).action,
                                  log_bandit_feedback(rewards, logging, seed=3).action)
    small = PeekingConfig(num_experiments=200, num_looks=5)
    first, again = simulate_peeking(small), simulate_peeking(small)
    assert first.summary.equals(again.summary) and first.by_look.equals(again.by_look)


def test_every_module_documents_its_chapter_and_exports_its_api():
    import importlib
    import pkgutil

    modules = [abtest] + [importlib.import_module(f"stlab.abtest.{info.name}")
                          for info in pkgutil.iter_modules(abtest.__path__)]
    for module in modules:
        assert module.__doc__.strip().endswith("Introduced in chapter 14 (Testing and running a recommender)."), \
            module.__name__
    assert set(abtest.__all__) <= set(dir(abtest))
    public = {name for module in modules[1:] for name, value in vars(module).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__}
    assert public <= set(abtest.__all__), public - set(abtest.__all__)
