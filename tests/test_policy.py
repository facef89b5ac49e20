"""Policies: every formula against an independent computation -- brute-force loops on tiny inputs,
hand-computed values, scikit-learn and :mod:`stlab.metrics` -- clear errors on bad input, and the
guidance trade-off's monotonicity where theory promises it."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, BBox, SyntheticWorld, WorldConfig
from stlab.features import EARTH_RADIUS_KM, grid_cells, haversine_km
from stlab.graphs import catalogue_coverage, time_slot
from stlab.metrics import ranking_metrics, top_k
from stlab.policy import (CategorySimilarity, CrowdingPenalty, DaySlots, DemandModel, DistanceSimilarity,
                          EmbeddingSimilarity, LoadForecast, MatrixSimilarity, active_in_slot, average_popularity,
                          calibrated_rerank, category_distribution, coverage, density_grid, exposure_gini,
                          frequent_transitions, gini, guidance_curve, guided_top_k, hotspots, intra_list_diversity,
                          list_accuracy, list_metrics, load_after, masked_top_k, miscalibration, mmr_rerank, novelty,
                          place_distances, query_origin, slot_activity, slot_demand, slot_totals, top_k_nearby,
                          user_clusters, user_profiles, within_distance)
from stlab.protocol import build_task
from stlab.splits import temporal_split


@pytest.fixture(scope="module")
def world_task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=7))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return world, build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=4)


def _true_probabilities(world, task, queries):
    """``[Q, P]`` the world's true next-visit probabilities over the task's places, renormalised."""
    events = task.events
    prev_time = pd.to_datetime(queries.prev_time, unit="s", utc=True)
    poi_ids = task.pois["poi_id"].to_numpy()
    prev = np.where(queries.prev_poi >= 0, poi_ids[np.maximum(queries.prev_poi, 0)], -1)
    logp = world.next_visit_log_probs(task.user_ids[queries.user], pd.to_datetime(queries.time, unit="s", utc=True),
                                      prev, prev_time)[:, poi_ids]
    p = np.exp(logp)
    assert len(events) and p.shape == (len(queries), task.num_pois)
    return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- slots

def test_day_slots_cut_the_day_and_wrap_past_midnight():
    slots = DaySlots()
    names = [slots.names[s] for s in slots.slot_of(np.arange(24))]
    assert names[:6] == ["night"] * 6 and names[6] == "morning" and names[11] == "midday"
    assert names[14] == "afternoon" and names[18] == "evening" and names[22:] == ["night"] * 2
    assert slots.hours(4) == (0, 1, 2, 3, 4, 5, 22, 23)
    np.testing.assert_array_equal(DaySlots.even(4).slot_of(np.arange(24)), time_slot(np.arange(24), 4))
    assert DaySlots.whole_day().slot_of(np.arange(24)).max() == 0
    for bad in ({"names": ("a", "b"), "starts": (3,)}, {"names": ("a", "a"), "starts": (1, 2)},
                {"names": ("a", "b"), "starts": (5, 5)}, {"names": ("a",), "starts": (24,)}):
        with pytest.raises(ValueError):
            DaySlots(**bad)
    with pytest.raises(ValueError, match="0..23"):
        slots.slot_of(np.array([24]))


def test_slot_totals_sum_hourly_rows_per_slot():
    values = np.arange(48, dtype=float).reshape(24, 2)
    out = slot_totals(values, np.arange(24), DaySlots.even(2))
    np.testing.assert_allclose(out, [values[:12].sum(0), values[12:].sum(0)])


# --------------------------------------------------------------------------- transitions

LOG = pd.DataFrame([  # user, time (h), local hour, label
    (1, 0.0, 8, "A"), (1, 1.0, 9, "B"), (1, 2.0, 10, "C"), (1, 9.0, 17, "A"), (1, 10.0, 18, "B"),
    (2, 0.0, 7, "A"), (2, 1.5, 8, "B"), (2, 2.0, 8, "B"), (2, 3.0, 9, "A"),
    (3, 0.0, 19, "A"), (3, 1.0, 20, "B"), (3, 2.0, 21, "A"), (3, 3.0, 22, "B"), (3, 3.5, 23, None),
    (3, 4.0, 23, "C"),
], columns=["user", "hours", "hour", "label"]).assign(time=lambda f: (f["hours"] * 3600).astype(np.int64))


def _brute_transitions(log, slots, max_gap_hours, drop_repeats=False):
    moves = []
    rows = log.to_dict("records")
    for a, b in pairwise(rows):
        if a["user"] != b["user"] or b["hours"] - a["hours"] > max_gap_hours:
            continue
        if pd.isna(a["label"]) or pd.isna(b["label"]) or (drop_repeats and a["label"] == b["label"]):
            continue
        moves.append((slots.names[int(slots.slot_of(np.array([a["hour"]]))[0])], a["label"], b["label"], a["user"]))
    out = {}
    for slot in {m[0] for m in moves}:
        in_slot = [m for m in moves if m[0] == slot]
        for a, b in {(m[1], m[2]) for m in in_slot}:
            count = sum(1 for m in in_slot if (m[1], m[2]) == (a, b))
            from_a = sum(1 for m in in_slot if m[1] == a)
            to_b = sum(1 for m in in_slot if m[2] == b)
            out[(slot, a, b)] = {"count": count, "users": len({m[3] for m in in_slot if (m[1], m[2]) == (a, b)}),
                                 "support": count / len(in_slot), "confidence": count / from_a,
                                 "lift": (count / from_a) / (to_b / len(in_slot))}
    return out


@pytest.mark.parametrize("drop_repeats", [False, True])
def test_frequent_transitions_match_brute_force_counting(drop_repeats):
    slots = DaySlots(names=("day", "evening"), starts=(6, 17))
    rules = frequent_transitions(LOG, "label", slots=slots, max_gap_hours=2.0, drop_repeats=drop_repeats)
    expected = _brute_transitions(LOG, slots, 2.0, drop_repeats)
    got = {(r.slot, r.antecedent, r.consequent): r for r in rules.itertuples()}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for column, value in want.items():
            assert getattr(got[key], column) == pytest.approx(value), (key, column)
    # user 1's 7-hour gap is a new trip; a missing label breaks the 22:00 -> 23:00 -> 23:30 chain
    assert ("day", "C", "A") not in got and ("evening", "B", "C") not in got
    assert list(rules.columns) == ["slot", "antecedent", "consequent", "count", "users", "support", "confidence", "lift"]
    assert rules.groupby("slot", observed=True)["support"].sum().to_numpy() == pytest.approx(1.0)


def test_frequent_transitions_filters_and_order():
    slots = DaySlots(names=("day", "evening"), starts=(6, 17))
    rules = frequent_transitions(LOG, "label", slots=slots, max_gap_hours=2.0, min_support=0.3, min_users=2)
    brute = _brute_transitions(LOG, slots, 2.0)
    kept = {k for k, v in brute.items() if v["support"] >= 0.3 and v["users"] >= 2}
    assert set(zip(rules["slot"], rules["antecedent"], rules["consequent"])) == kept
    whole = frequent_transitions(LOG, LOG["label"].to_numpy(), slots=DaySlots.whole_day(), max_gap_hours=None)
    assert whole["support"].is_monotonic_decreasing and whole["count"].sum() == 4 + 3 + 3


def test_frequent_transitions_refuse_bad_input():
    with pytest.raises(ValueError, match="sort with"):
        frequent_transitions(LOG.iloc[::-1], "label")
    with pytest.raises(ValueError, match="no column 'category'"):
        frequent_transitions(LOG, "category")
    with pytest.raises(ValueError, match="one value per event"):
        frequent_transitions(LOG, np.zeros(3))
    with pytest.raises(ValueError, match="max_gap_hours"):
        frequent_transitions(LOG, "label", max_gap_hours=0)


def test_frequent_transitions_on_the_synthetic_city(world_task):
    world, task = world_task
    category = world.pois.set_index("poi_id")["category"].astype(str)
    labels = category.reindex(task.pois["poi_id"]).to_numpy()[task.train["poi"].to_numpy()]
    rules = frequent_transitions(task.train, labels, max_gap_hours=6.0)
    assert set(rules["antecedent"]) <= set(category) and (rules["lift"] > 0).all()
    assert rules.groupby("slot", observed=True)["support"].sum().to_numpy() == pytest.approx(1.0)
    conf = rules.groupby(["slot", "antecedent"], observed=True)["confidence"].sum().to_numpy()
    assert conf == pytest.approx(1.0)  # every move from A goes somewhere


# --------------------------------------------------------------------------- user clusters

def _planted_profiles(seed=0):
    """Two kinds of user: mornings in region 0, evenings in region 3."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(12):
        morning = user < 7
        for _ in range(20):
            hour = int(rng.integers(7, 10)) if morning else int(rng.integers(19, 23))
            region = 0 if morning else 3
            if rng.random() < 0.15:
                region = int(rng.integers(0, 4))
            rows.append((user, hour, region))
    return pd.DataFrame(rows, columns=["user", "hour", "region"])


def test_user_profiles_are_normalised_counts():
    events = _planted_profiles()
    users, profiles = user_profiles(events, "region", num_regions=4)
    assert profiles.shape == (12, 24, 4)
    for u in users:
        mine = events[events["user"] == u]
        counts = np.zeros((24, 4))
        for h, r in zip(mine["hour"], mine["region"]):
            counts[h, r] += 1
        np.testing.assert_allclose(profiles[u], counts / len(mine))
    few = user_profiles(events.iloc[:25], "region", min_events=10)[0]
    np.testing.assert_array_equal(few, [0])


def test_user_clusters_recover_planted_groups_and_agree_with_sklearn():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    events = _planted_profiles()
    clusters = user_clusters(events, "region", num_clusters=2, num_regions=4, seed=3)
    truth = (np.arange(12) >= 7).astype(int)
    assert adjusted_rand_score(truth, clusters.labels) == 1.0
    assert clusters.sizes.tolist() == [7, 5] and clusters.labels[0] == 0  # largest first
    X = clusters.profiles.reshape(12, -1)
    direct = KMeans(n_clusters=2, n_init=10, random_state=3).fit(X)
    assert adjusted_rand_score(direct.labels_, clusters.labels) == 1.0
    assert clusters.inertia == pytest.approx(direct.inertia_)
    np.testing.assert_allclose(clusters.centroids[0], clusters.profiles[clusters.labels == 0].mean(0))
    np.testing.assert_allclose(clusters.centroids.sum(axis=(1, 2)), 1.0)
    assert clusters.centroids[0][7:10, 0].sum() > 0.5  # the morning cluster lives in region 0
    assert clusters.centroid_frame(1).shape == (24, 4)
    again = user_clusters(events, "region", num_clusters=2, num_regions=4, seed=3)
    np.testing.assert_array_equal(again.labels, clusters.labels)
    with pytest.raises(ValueError, match="num_clusters must lie in 1..12"):
        user_clusters(events, "region", num_clusters=13)
    with pytest.raises(ValueError, match="non-negative integers"):
        user_clusters(events, np.full(len(events), -1))


# --------------------------------------------------------------------------- hotspots

def test_density_grid_counts_cells_and_measures_areas():
    rng = np.random.default_rng(0)
    box = BBox(lon_min=-74.0, lat_min=40.6, lon_max=-73.9, lat_max=40.8)
    lat = np.r_[rng.uniform(40.6, 40.8, 300), rng.normal(40.71, 0.003, 200), 41.5]
    lon = np.r_[rng.uniform(-74.0, -73.9, 300), rng.normal(-73.93, 0.003, 200), -73.95]
    grid = density_grid(lat, lon, bbox=box, grid_size=8)
    cells = grid_cells(lat, lon, box, 8)
    np.testing.assert_array_equal(grid.mass.ravel(), np.bincount(cells[cells >= 0], minlength=64))
    assert grid.points_outside == 1 and grid.share.sum() == pytest.approx(1.0)
    # Areas: the rows add up to the box's spherical area; each is close to height x width.
    box_area = EARTH_RADIUS_KM ** 2 * np.radians(0.1) * (np.sin(np.radians(40.8)) - np.sin(np.radians(40.6)))
    assert 8 * grid.cell_area_km2.sum() == pytest.approx(box_area)
    mid = 40.6 + 0.2 * 3.5 / 8
    height = haversine_km(40.6 + 0.2 * 3 / 8, -74.0, 40.6 + 0.2 * 4 / 8, -74.0)
    width = haversine_km(mid, -74.0, mid, -74.0 + 0.1 / 8)
    assert grid.cell_area_km2[3] == pytest.approx(height * width, rel=1e-3)
    top = hotspots(lat, lon, bbox=box, grid_size=8, top=3)
    assert top["mass"].is_monotonic_decreasing and top.loc[0, "cell"] == np.bincount(cells[cells >= 0]).argmax()
    assert top["cumulative_share"].iloc[-1] == pytest.approx(top["share"].sum())
    assert abs(top.loc[0, "lat"] - 40.71) < 0.2 / 8 and abs(top.loc[0, "lon"] + 73.93) < 0.1 / 8
    smooth = density_grid(lat, lon, bbox=box, grid_size=8, bandwidth_km=0.5)
    assert smooth.mass.sum() <= grid.mass.sum() + 1e-9 and smooth.share.sum() == pytest.approx(1.0)
    assert np.unravel_index(smooth.mass.argmax(), (8, 8)) == np.unravel_index(grid.mass.argmax(), (8, 8))
    with pytest.raises(ValueError, match="bandwidth_km"):
        density_grid(lat, lon, bandwidth_km=0)


# --------------------------------------------------------------------------- context

def _brute_masked(scores, allowed, k, fallback, eligible, fill):
    out = np.full((len(scores), k), -1)
    for q in range(len(scores)):
        first = sorted(np.flatnonzero(allowed[q]), key=lambda i: (-scores[q, i], i))
        second = sorted(np.flatnonzero(eligible[q] & ~allowed[q]), key=lambda i: (-fallback[q, i], i)) if fill else []
        row = (first + second)[:k]
        out[q, :len(row)] = row
    return out


@pytest.mark.parametrize("fill", [True, False])
def test_masked_top_k_against_sorting(fill):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(20, 9))
    scores[rng.random(scores.shape) < 0.1] = -np.inf  # a model that cannot score some places
    allowed, eligible = rng.random((20, 9)) < 0.3, rng.random((20, 9)) < 0.7
    fallback = rng.normal(size=(20, 9))
    got = masked_top_k(scores, allowed, 4, fill=fill, fallback=fallback, eligible=eligible)
    np.testing.assert_array_equal(got, _brute_masked(scores, allowed, 4, fallback, eligible, fill))
    np.testing.assert_array_equal(masked_top_k(scores, np.ones_like(allowed), 4), top_k(scores, 4))


def test_top_k_nearby_budget_fill_policies_and_hard_limits():
    rng = np.random.default_rng(2)
    poi_lat, poi_lon = 40.7 + rng.uniform(-0.05, 0.05, 15), -73.9 + rng.uniform(-0.05, 0.05, 15)
    origin_lat, origin_lon = np.r_[40.7, 40.7, np.nan], np.r_[-73.9, -73.95, np.nan]
    scores = rng.normal(size=(3, 15))
    d = haversine_km(origin_lat[:, None], origin_lon[:, None], poi_lat, poi_lon)
    near = within_distance(origin_lat, origin_lon, poi_lat, poi_lon, 2.5)
    np.testing.assert_array_equal(near[:2], d[:2] <= 2.5)
    assert near[2].all()  # no origin: no budget
    per_query = within_distance(origin_lat, origin_lon, poi_lat, poi_lon, np.array([0.0, 100.0, 0.0]))
    assert per_query[1:].all() and per_query[0].sum() == (d[0] == 0).sum()
    with pytest.raises(ValueError, match="one budget per query"):
        within_distance(origin_lat, origin_lon, poi_lat, poi_lon, np.ones(2))
    open_now = rng.random((3, 15)) < 0.8
    for fill, fallback in (("nearest", -np.nan_to_num(d)), ("best", scores), ("none", scores)):
        got = top_k_nearby(scores, 6, origin_lat=origin_lat, origin_lon=origin_lon, poi_lat=poi_lat,
                           poi_lon=poi_lon, max_km=2.5, allowed=open_now, fill=fill)
        want = _brute_masked(scores, near & open_now, 6, fallback, open_now, fill != "none")
        np.testing.assert_array_equal(got, want)
        assert open_now[np.arange(3)[:, None], np.maximum(got, 0)][got >= 0].all()  # closed places never shown
        given = top_k_nearby(scores, 6, distances=place_distances(origin_lat, origin_lon, poi_lat, poi_lon),
                             max_km=2.5, allowed=open_now, fill=fill)  # distances computed once elsewhere
        np.testing.assert_array_equal(given, got)
    with pytest.raises(ValueError, match="or the distances"):
        top_k_nearby(scores, 3, origin_lat=origin_lat, max_km=1.0)
    with pytest.raises(ValueError, match="fill must be"):
        top_k_nearby(scores, 3, origin_lat=origin_lat, origin_lon=origin_lon, poi_lat=poi_lat, poi_lon=poi_lon,
                     max_km=1.0, fill="far")


def test_slot_activity_and_query_context_on_the_synthetic_city(world_task):
    _, task = world_task
    slots = DaySlots()
    activity = slot_activity(task.train, task.num_pois, slots)
    by_hour = task.train_hour_counts
    for s in range(slots.num_slots):
        np.testing.assert_array_equal(activity[s], by_hour[list(slots.hours(s))].sum(0))
    queries = task.queries("test")
    mask = active_in_slot(activity, slots.slot_of(queries.hour), min_count=2)
    np.testing.assert_array_equal(mask, activity[slots.slot_of(queries.hour)] >= 2)
    lat, lon = query_origin(queries, task.pois)
    prev = queries.prev_poi
    np.testing.assert_allclose(lat[prev >= 0], task.pois["lat"].to_numpy()[prev[prev >= 0]])
    assert np.isnan(lat[prev < 0]).all()
    with pytest.raises(ValueError, match="slot must be"):
        active_in_slot(activity, np.array([7]))


# --------------------------------------------------------------------------- similarity and re-ranking

def test_similarities_match_dense_computations():
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(3)
    cats, X = rng.integers(0, 3, 7), rng.normal(size=(7, 4))
    lat, lon = 40.7 + rng.uniform(0, 0.05, 7), -73.9 + rng.uniform(0, 0.05, 7)
    dense = {
        "category": (CategorySimilarity(np.array(["abc"[c] for c in cats])), (cats[:, None] == cats).astype(float)),
        "distance": (DistanceSimilarity(lat, lon, 2.0), np.exp(-haversine_km(lat[:, None], lon[:, None], lat, lon) / 2)),
        "embedding": (EmbeddingSimilarity(X), cosine_similarity(X)),
    }
    a, b = rng.integers(0, 7, (2, 3)), rng.integers(0, 7, (2, 5))
    for similarity, want in dense.values():
        np.testing.assert_allclose(similarity.matrix(), want, atol=1e-12)
        np.testing.assert_allclose(similarity.between(a, b), want[a[:, :, None], b[:, None, :]], atol=1e-12)
        np.testing.assert_allclose(MatrixSimilarity(want).among(a), want[a[:, :, None], a[:, None, :]])
    with pytest.raises(ValueError, match="square"):
        MatrixSimilarity(np.ones((3, 4)))


def _minmax(x):
    return (x - x.min()) / (x.max() - x.min())


def _brute_mmr(scores, sim, k, trade_off, pool_size):
    out = []
    for q in range(len(scores)):
        pool = list(top_k(scores[q:q + 1], pool_size)[0])
        rel = dict(zip(pool, _minmax(scores[q, pool])))
        chosen: list[int] = []
        for _ in range(k):
            best, best_value = None, -math.inf
            for i in pool:
                if i in chosen:
                    continue
                redundancy = max(sim[i, j] for j in chosen) if chosen else 0.0
                value = (1 - trade_off) * rel[i] - trade_off * redundancy
                if value > best_value:
                    best, best_value = i, value
            chosen.append(best)
        out.append(chosen)
    return np.array(out)


def test_mmr_against_a_brute_force_greedy_and_by_hand():
    rng = np.random.default_rng(4)
    scores, X = rng.normal(size=(6, 12)), rng.normal(size=(12, 3))
    sim = EmbeddingSimilarity(X).matrix()
    for trade_off in (0.0, 0.3, 0.7):
        np.testing.assert_array_equal(mmr_rerank(scores, sim, 4, trade_off=trade_off, pool=8),
                                      _brute_mmr(scores, sim, 4, trade_off, 8))
    np.testing.assert_array_equal(mmr_rerank(scores, sim, 5, trade_off=0.0, pool=12), top_k(scores, 5))
    # By hand: places 0 and 1 are near-duplicates at the top; 2 is different and a little worse.
    s, S = np.array([[1.0, 0.95, 0.8, 0.0]]), np.array([[1, .99, 0, 0], [.99, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    assert mmr_rerank(s, S, 3, trade_off=0.0, pool=4).tolist() == [[0, 1, 2]]
    assert mmr_rerank(s, S, 3, trade_off=0.5, pool=4).tolist() == [[0, 2, 3]]  # 0.5*.95-.5*.99 < 0.5*0 - 0
    padded = mmr_rerank(s, S, 3, trade_off=0.5, pool=np.array([[2, 0, -1, -1]]))
    assert padded.tolist() == [[0, 2, -1]]
    with pytest.raises(ValueError, match="trade_off"):
        mmr_rerank(s, S, 2, trade_off=1.5)
    with pytest.raises(ValueError, match="knows 4 places but the scores rank 3"):
        mmr_rerank(s[:, :3], S, 2)


def _kl(p, q, alpha):
    return sum(pc * math.log(pc / ((1 - alpha) * qc + alpha * pc)) for pc, qc in zip(p, q) if pc > 0)


def _brute_calibrated(scores, target, cats, k, trade_off, pool_size, alpha=0.01):
    C = target.shape[1]
    out = []
    for q in range(len(scores)):
        pool = list(top_k(scores[q:q + 1], pool_size)[0])
        rel = dict(zip(pool, _minmax(scores[q, pool])))
        p = target[q] / target[q].sum()
        chosen: list[int] = []
        for _ in range(k):
            best, best_value = None, -math.inf
            for i in pool:
                if i in chosen:
                    continue
                mix = np.bincount([cats[j] for j in chosen + [i]], minlength=C) / (len(chosen) + 1)
                value = (1 - trade_off) * (sum(rel[j] for j in chosen) + rel[i]) - trade_off * _kl(p, mix, alpha)
                if value > best_value:
                    best, best_value = i, value
            chosen.append(best)
        out.append(chosen)
    return np.array(out)


def test_calibration_against_a_brute_force_greedy():
    rng = np.random.default_rng(5)
    scores, cats = rng.normal(size=(5, 10)), rng.integers(0, 3, 10)
    history = rng.integers(-1, 10, (5, 6))
    target = category_distribution(history, cats, num_categories=3)
    for trade_off in (0.0, 0.5, 0.9):
        got = calibrated_rerank(scores, target, cats, 4, trade_off=trade_off, pool=8)
        np.testing.assert_array_equal(got, _brute_calibrated(scores, target, cats, 4, trade_off, 8))
    np.testing.assert_array_equal(calibrated_rerank(scores, target, cats, 4, trade_off=0.0, pool=10),
                                  top_k(scores, 4))
    plain = miscalibration(top_k(scores, 4), target, cats).mean()
    assert miscalibration(calibrated_rerank(scores, target, cats, 4, trade_off=0.9, pool=10), target,
                          cats).mean() < plain
    no_history = calibrated_rerank(scores, np.zeros((5, 3)), cats, 4, trade_off=0.9, pool=10)
    np.testing.assert_array_equal(no_history, top_k(scores, 4))


def test_category_distribution_and_miscalibration_by_hand():
    cats = np.array([0, 0, 1, 2])
    dist = category_distribution(np.array([[0, 1, 2, -1], [-1, -1, -1, -1]]), cats)
    np.testing.assert_allclose(dist, [[2 / 3, 1 / 3, 0], [0, 0, 0]])
    weighted = category_distribution(np.array([[0, 2]]), cats, weights=np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(weighted, [[0.25, 0.75, 0]])
    kl = miscalibration(np.array([[0, 3], [0, 1]]), np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]), cats, alpha=0.01)
    assert kl[0] == pytest.approx(0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / 0.005))
    assert np.isnan(kl[1])
    with pytest.raises(ValueError, match="integer codes"):
        category_distribution(np.array([[0]]), np.array(["Food", "Bar"]))


# --------------------------------------------------------------------------- beyond-accuracy measures

def test_beyond_accuracy_measures_by_hand():
    lists = np.array([[0, 1, -1], [0, 2, 3]])
    popularity = np.array([6.0, 2.0, 1.0, 1.0, 0.0])
    assert coverage(lists, 5) == pytest.approx(4 / 5)
    assert coverage(np.array([[0, 1], [0, 2]]), 5) == catalogue_coverage(np.array([[0, 1], [0, 2]]), 5)
    p = popularity / 10
    assert novelty(lists, popularity, smoothing=0) == pytest.approx(np.mean(-np.log2(p[[0, 1, 0, 2, 3]])))
    p1 = (popularity + 1) / 15
    assert novelty(lists, popularity) == pytest.approx(np.mean(-np.log2(p1[[0, 1, 0, 2, 3]])))
    with pytest.raises(ValueError, match="smoothing"):
        novelty(np.array([[4]]), popularity, smoothing=0)
    assert average_popularity(lists, popularity) == pytest.approx(((6 + 2) / 2 + (6 + 1 + 1) / 3) / 2)
    sim = np.eye(5)
    sim[0, 2] = sim[2, 0] = 0.5
    # list 1: one pair, dissimilarity 1; list 2: pairs (0,2) .5, (0,3) 1, (2,3) 1
    assert intra_list_diversity(lists, sim) == pytest.approx((1.0 + 2.5 / 3) / 2)
    assert np.isnan(intra_list_diversity(np.array([[0, -1]]), sim))


def test_gini_against_mean_absolute_difference():
    rng = np.random.default_rng(6)
    for x in (rng.random(9), rng.integers(0, 5, 12).astype(float), np.array([0, 0, 0, 5.0])):
        mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
        assert gini(x) == pytest.approx(mad)
    assert gini(np.ones(4)) == 0.0 and gini(np.array([0, 0, 0, 1.0])) == pytest.approx(3 / 4)
    assert exposure_gini(np.array([[0], [0], [0]]), 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        gini(np.array([-1.0, 2.0]))


def test_list_accuracy_equals_full_ranking_metrics_of_the_top_k():
    rng = np.random.default_rng(7)
    scores, targets = rng.normal(size=(200, 30)), rng.integers(0, 30, 200)
    got = list_accuracy(top_k(scores, 10), targets, ks=(1, 5, 10))
    full = ranking_metrics(scores, targets, ks=(1, 5, 10))
    for name in ("Acc@1", "Acc@5", "Acc@10", "NDCG@1", "NDCG@5", "NDCG@10"):
        assert got[name] == pytest.approx(full[name])
    ranks = np.argsort(np.argsort(-scores, axis=1), axis=1)[np.arange(200), targets] + 1
    assert got["MRR@10"] == pytest.approx(np.where(ranks <= 10, 1 / ranks, 0).mean())
    with pytest.raises(ValueError, match="list length"):
        list_accuracy(top_k(scores, 10), targets, ks=(20,))


def test_list_metrics_row_on_the_synthetic_city(world_task):
    world, task = world_task
    queries = task.queries("test")
    scores = np.log(task.train_popularity + 1)[None, :] + np.random.default_rng(0).normal(0, .1, (len(queries), 1))
    category = world.pois.set_index("poi_id")["category"].cat.codes.reindex(task.pois["poi_id"]).to_numpy()
    lists = top_k(scores, 5)
    target = category_distribution(queries.history_poi, category, num_categories=8)
    row = list_metrics(lists, num_items=task.num_pois, targets=queries.target, popularity=task.train_popularity,
                       similarity=CategorySimilarity(category), target_distribution=target,
                       item_categories=category)
    assert set(row) == {"Acc@5", "NDCG@5", "MRR@5", "coverage", "novelty (bits)", "ARP", "exposure Gini",
                        "diversity (ILD)", "miscalibration (KL)"}
    assert row["coverage"] == pytest.approx(5 / task.num_pois)  # the same five for everyone
    diverse = mmr_rerank(scores, CategorySimilarity(category), 5, trade_off=0.5, pool=20)
    assert list_metrics(diverse, num_items=task.num_pois, similarity=CategorySimilarity(category))[
        "diversity (ILD)"] >= row["diversity (ILD)"]
    no_history = list_metrics(lists, num_items=task.num_pois, target_distribution=np.zeros_like(target),
                              item_categories=category)
    assert np.isnan(no_history["miscalibration (KL)"])
    with pytest.raises(ValueError, match="both"):
        list_metrics(lists, num_items=task.num_pois, target_distribution=target)
    with pytest.raises(ValueError, match="indices in"):
        list_metrics(lists + 100, num_items=task.num_pois)


# --------------------------------------------------------------------------- guidance

def test_crowding_penalty_and_load_forecast():
    assert CrowdingPenalty()(np.array([0.5, 1.0, 1.5])).tolist() == [0.0, 0.0, 0.5]
    assert CrowdingPenalty(threshold=0.8, power=2)(np.array([1.8])) == pytest.approx([1.0])
    forecast = LoadForecast(load=np.array([[4.0, 1.0], [0.0, 9.0]]), capacity=np.array([2.0, np.inf]),
                            group=np.array([0, 0, 1]))
    np.testing.assert_allclose(forecast.utilisation, [[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(forecast.place_group(3), [0, 0, 1])
    with pytest.raises(ValueError, match="scores rank 4"):
        forecast.place_group(4)
    with pytest.raises(ValueError, match="capacity must be positive"):
        LoadForecast(load=np.ones(3), capacity=0.0)
    with pytest.raises(ValueError, match="capacity must be a number"):
        LoadForecast(load=np.ones((2, 3)), capacity=np.ones(2))
    with pytest.raises(ValueError, match="group must be"):
        LoadForecast(load=np.ones(2), capacity=1.0, group=np.array([0, 2]))
    with pytest.raises(ValueError, match="threshold"):
        CrowdingPenalty(threshold=-1)


def test_slot_demand_by_hand():
    lists = np.array([[0, 1], [2, -1], [1, 2]])
    p = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.0, 0.8], [0.25, 0.25, 0.25, 0.25]])
    forecast = LoadForecast(load=np.zeros((2, 4)), capacity=1.0)
    out = slot_demand(lists, p, np.array([0, 1, 0]), forecast, DemandModel(per_query=2.0), lists_only=True)
    want = np.zeros((2, 4))
    want[0, [0, 1]] += 2 * np.array([0.75, 0.25])
    want[0, [1, 2]] += 2 * np.array([0.5, 0.5])
    want[1, 2] += 2.0  # a list without probability mass: the user picks evenly from it
    np.testing.assert_allclose(out, want)
    half = slot_demand(lists, p, np.array([0, 1, 0]), forecast, DemandModel(follow=0.5))
    np.testing.assert_allclose(half, 0.25 * want + 0.5 * np.stack([p[[0, 2]].sum(0), p[1]]))
    assert half.sum() == pytest.approx(3.0)  # one visit per query, wherever it goes
    regions = LoadForecast(load=np.zeros((2, 2)), capacity=1.0, group=np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(slot_demand(lists, p, np.array([0, 1, 0]), regions, lists_only=True),
                               0.5 * np.stack([want[:, :2].sum(1), want[:, 2:].sum(1)], axis=1))


def _crowded_city(num_queries=40, seed=8):
    """Place 0 is everyone's favourite and over capacity in both slots; the others have room."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(6), num_queries)
    p[:, 0] += rng.uniform(0.5, 2.0, num_queries)
    p /= p.sum(1, keepdims=True)
    slot = rng.integers(0, 2, num_queries)
    base = top_k(np.log(p), 1)
    load = 5 + slot_demand(base, p, slot, LoadForecast(np.zeros((2, 6)), 1.0), lists_only=True)
    return np.log(p), p, slot, LoadForecast(load=load, capacity=np.array([10.0, 30, 30, 30, 30, 30]))


def test_zero_trade_off_gives_back_the_ranking_by_score():
    scores, p, slot, forecast = _crowded_city()
    np.testing.assert_array_equal(guided_top_k(scores, slot, forecast, 3, trade_off=0.0), top_k(scores, 3))
    for options in ({"pool": 4}, {"similarity": CategorySimilarity(np.array([0, 0, 1, 1, 2, 2]))},
                    {"adaptive": True, "probabilities": p}):
        np.testing.assert_array_equal(guided_top_k(scores, slot, forecast, 3, trade_off=0.0, **options),
                                      top_k(scores, 3))


def test_static_guidance_equals_the_penalised_ranking_by_place_and_by_region():
    scores, _, slot, forecast = _crowded_city()
    penalty = CrowdingPenalty(threshold=0.5, power=2.0)
    key = scores - 0.7 * penalty(forecast.utilisation)[slot]
    np.testing.assert_array_equal(guided_top_k(scores, slot, forecast, 2, trade_off=0.7, penalty=penalty),
                                  top_k(key, 2))
    regions = LoadForecast(load=np.array([[30.0, 1.0], [5.0, 5.0]]), capacity=10.0, group=np.array([0, 0, 0, 1, 1, 1]))
    key = scores - 2.0 * CrowdingPenalty()(regions.utilisation)[slot][:, regions.group]
    np.testing.assert_array_equal(guided_top_k(scores, slot, regions, 2, trade_off=2.0), top_k(key, 2))


def test_larger_trade_off_never_increases_overload_when_alternatives_have_room():
    scores, p, slot, forecast = _crowded_city()
    curve = guidance_curve(scores, p, slot, forecast, 1, np.linspace(0, 3, 13), targets=np.zeros(len(p), int))
    assert (np.diff(curve["overload"]) <= 1e-9).all() and curve["overload"].iloc[0] > curve["overload"].iloc[-1]
    assert curve["overload"].iloc[0] == pytest.approx(np.maximum(forecast.load[:, 0] - 10, 0).sum())
    assert (np.diff(curve["crowded share"]) <= 1e-9).all() and curve["moved demand"].iloc[0] == 0.0
    assert (np.diff(curve["Acc@1"]) <= 1e-9).all()  # everyone actually went to place 0


def test_guidance_curve_is_monotone_where_theory_says_so():
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.full(12, 0.5), 30)
    slot = rng.integers(0, 3, 30)
    forecast = LoadForecast(load=rng.uniform(0, 20, (3, 12)), capacity=rng.uniform(5, 15, 12))
    trade_offs = np.linspace(0, 2, 21)
    for scores in (np.log(p), p):
        curve = guidance_curve(scores, p, slot, forecast, 3, trade_offs, penalty=CrowdingPenalty(threshold=0.5))
        assert (np.diff(curve["listed score"]) <= 1e-12).all()
        assert (np.diff(curve["listed penalty"]) <= 1e-12).all()
    assert (np.diff(curve["listed probability"]) <= 1e-12).all()  # scores = probabilities


def test_guidance_only_towards_similar_places():
    scores, p, slot, forecast = _crowded_city()
    category = np.array([0, 1, 0, 1, 2, 2])
    similar = guided_top_k(scores, slot, forecast, 1, trade_off=50.0, similarity=CategorySimilarity(category),
                           min_similarity=1.0)
    base = top_k(scores, 1)
    assert (category[similar] == category[base]).all()
    assert (similar[base == 0] == 2).all()  # place 0's only sibling
    free = guided_top_k(scores, slot, forecast, 1, trade_off=50.0)
    assert (free != 0).all() and (category[free] != category[base]).any()


def test_adaptive_guidance_avoids_herding():
    p = np.tile([0.4, 0.3, 0.2, 0.1], (10, 1))
    scores, slot = np.log(p), np.zeros(10, dtype=int)
    forecast = LoadForecast(load=np.array([10.0, 0, 0, 0]), capacity=np.array([5.0, 3, 3, 3]))
    base = top_k(scores, 1)
    static = guided_top_k(scores, slot, forecast, 1, trade_off=5.0)
    adaptive = guided_top_k(scores, slot, forecast, 1, trade_off=5.0, adaptive=True, probabilities=p)
    assert (static == 1).all()  # everyone sent to the same second-best place
    def overload(lists):
        return np.maximum(load_after(lists, base, p, slot, forecast) - forecast.capacity, 0).sum()
    assert overload(base) == 5.0 and overload(static) == 7.0
    assert overload(adaptive) < overload(base) and len(np.unique(adaptive)) > 1
    np.testing.assert_array_equal(adaptive, guided_top_k(scores, slot, forecast, 1, trade_off=5.0, adaptive=True,
                                                         probabilities=p))
    with pytest.raises(ValueError, match="needs probabilities"):
        guided_top_k(scores, slot, forecast, 1, trade_off=1.0, adaptive=True)
    background = DemandModel(forecast_includes_lists=False)
    np.testing.assert_allclose(load_after(base, base, p, slot, forecast, background), [[20.0, 0, 0, 0]])


def test_guidance_inputs_are_checked():
    scores, p, slot, forecast = _crowded_city()
    with pytest.raises(ValueError, match="rows that sum to 1"):
        guidance_curve(scores, p * 2, slot, forecast, 1, [0.0])
    with pytest.raises(ValueError, match="slot must be"):
        guided_top_k(scores, slot + 5, forecast, 1, trade_off=1.0)
    with pytest.raises(ValueError, match="pass each query's slot"):
        guided_top_k(scores, None, forecast, 1, trade_off=1.0)
    with pytest.raises(ValueError, match="trade_off must be >= 0"):
        guided_top_k(scores, slot, forecast, 1, trade_off=-1.0)
    with pytest.raises(ValueError, match="k must be"):
        guided_top_k(scores, slot, forecast, 7, trade_off=1.0)
    with pytest.raises(ValueError, match="NaN"):
        guided_top_k(np.full_like(scores, np.nan), slot, forecast, 1, trade_off=1.0)


def test_guidance_on_the_synthetic_city_with_true_probabilities(world_task):
    world, task = world_task
    queries = task.queries("test")
    p = _true_probabilities(world, task, queries)
    slots = DaySlots.even(4)
    slot = slots.slot_of(queries.hour)
    expected = slot_demand(top_k(np.log(p), 5), p, slot, LoadForecast(np.zeros((4, task.num_pois)), 1.0))
    forecast = LoadForecast(load=expected, capacity=np.quantile(expected[expected > 0], 0.8))
    curve = guidance_curve(np.log(p), p, slot, forecast, 5, [0.0, 0.5, 2.0], targets=queries.target,
                           pool=20, adaptive=True)
    assert curve.loc[0, "moved demand"] == 0.0 and curve.loc[0, "overload"] == pytest.approx(
        np.maximum(expected - forecast.capacity, 0).sum())
    assert curve["overload"].iloc[-1] < curve["overload"].iloc[0]
    assert curve["listed probability"].iloc[-1] <= curve["listed probability"].iloc[0]
    again = guidance_curve(np.log(p), p, slot, forecast, 5, [0.0, 0.5, 2.0], targets=queries.target,
                           pool=20, adaptive=True)
    pd.testing.assert_frame_equal(curve, again)
