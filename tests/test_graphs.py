"""Graphs from behaviour logs: the normalisation against dense NumPy, each builder on a hand-made
check-in table with known edges, clear errors on bad input, and coverage on a hand example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.baselines import training_transitions
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, BBox, SyntheticWorld, WorldConfig
from stlab.graphs import (LAYERED_EDGE_KINDS, Graph, bipartite_graph, catalogue_coverage, count_edges,
                          gcn_propagation, grid_neighbours, layered_graph, normalized_adjacency, poi_regions,
                          region_adjacency, spatial_coverage, time_slot, transition_graph, user_poi_graph)
from stlab.protocol import build_task
from stlab.splits import temporal_split

BOX = BBox(lon_min=0.0, lat_min=0.0, lon_max=2.0, lat_max=2.0)
# POI -> (lat, lon): one POI in each cell of a 2 x 2 grid (cell = row * 2 + col from the south-west).
POSITIONS = {"p0": (0.5, 0.5), "p1": (0.5, 1.5), "p2": (1.5, 0.5), "p3": (1.5, 1.5)}


def _edges(edge_index: np.ndarray, edge_weight: np.ndarray) -> dict[tuple[int, int], float]:
    out: dict[tuple[int, int], float] = {}
    for s, t, w in zip(edge_index[0].tolist(), edge_index[1].tolist(), edge_weight.tolist()):
        out[(s, t)] = out.get((s, t), 0.0) + w
    return out


@pytest.fixture(scope="module")
def tiny_task():
    """Two users, four POIs; training ends on 2 July 12:00 UTC (local time: UTC-4)."""
    rows = [  # user, POI, UTC time
        ("u1", "p0", "2024-07-01 12:00"), ("u1", "p1", "2024-07-01 13:00"), ("u1", "p0", "2024-07-01 18:00"),
        ("u2", "p1", "2024-07-01 14:00"), ("u2", "p1", "2024-07-01 15:00"), ("u2", "p3", "2024-07-02 00:00"),
        ("u1", "p2", "2024-07-03 12:00"), ("u2", "p0", "2024-07-04 12:00"),
    ]
    checkins = pd.DataFrame(rows, columns=["user_id", "poi_id", "timestamp"])
    checkins["timestamp"] = pd.to_datetime(checkins["timestamp"], utc=True)
    checkins["lat"] = checkins["poi_id"].map(lambda p: POSITIONS[p][0])
    checkins["lon"] = checkins["poi_id"].map(lambda p: POSITIONS[p][1])
    split = temporal_split(checkins, train_end="2024-07-02 12:00", val_end="2024-07-03 18:00")
    return build_task(checkins, split, timezone="America/New_York", history_len=3)


@pytest.fixture(scope="module")
def synthetic_task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


# --------------------------------------------------------------------------- normalisation

def test_gcn_propagation_equals_dense_formula_on_a_symmetric_graph():
    rng = np.random.default_rng(0)
    upper = np.triu(rng.random((7, 7)) * (rng.random((7, 7)) < 0.5), k=1)
    A = upper + upper.T  # symmetric, no self-loops
    A_tilde = A + np.eye(7)
    d = A_tilde.sum(axis=1)
    expected = np.diag(d ** -0.5) @ A_tilde @ np.diag(d ** -0.5)
    rows, cols = np.nonzero(A)
    S = gcn_propagation(np.stack([rows, cols]), A[rows, cols], 7).toarray()
    np.testing.assert_allclose(S, expected, atol=1e-12)
    np.testing.assert_allclose(normalized_adjacency(A).toarray(), expected, atol=1e-12)
    # Without self-loops, an isolated node gets an all-zero row instead of a division by zero.
    no_loops = gcn_propagation(np.stack([rows, cols]), A[rows, cols], 8, add_self_loops=False).toarray()
    assert not no_loops[7].any() and np.isfinite(no_loops).all()


# --------------------------------------------------------------------------- builders

def test_user_poi_graph_counts_training_visits_only(tiny_task):
    graph = user_poi_graph(tiny_task)
    U = tiny_task.num_users
    assert (graph.num_users, graph.num_items, graph.num_nodes) == (2, 4, 6)
    # u1 (user 0): p0 twice, p1 once; u2 (user 1): p1 twice, p3 once. Validation/test visits are left out.
    np.testing.assert_array_equal(graph.counts.toarray(), [[2, 1, 0, 0], [0, 2, 0, 1]])
    expected = {(0, U + 0): 2.0, (0, U + 1): 1.0, (1, U + 1): 2.0, (1, U + 3): 1.0}
    expected |= {(t, s): w for (s, t), w in expected.items()}
    assert _edges(graph.edge_index, graph.edge_weight) == expected
    assert graph.edge_index.shape == (2, 8) and graph.edge_weight.shape == (8,)
    binary = graph.binary()
    assert set(binary.edge_weight) == {1.0} and binary.counts.max() == 1.0


def test_transition_graph_counts_consecutive_training_moves(tiny_task):
    graph = transition_graph(tiny_task)
    assert graph.num_nodes == 4
    # u1: p0 -> p1 -> p0; u2: p1 -> p1 -> p3 (the move into the validation period is not training).
    assert _edges(graph.edge_index, graph.edge_weight) == {(0, 1): 1.0, (1, 0): 1.0, (1, 1): 1.0, (1, 3): 1.0}
    no_repeats = transition_graph(tiny_task, include_repeats=False)
    assert (1, 1) not in _edges(no_repeats.edge_index, no_repeats.edge_weight)
    # Within two hours only: u1's 5-hour and u2's 9-hour gaps are new trips.
    short = transition_graph(tiny_task, max_gap_hours=2)
    assert _edges(short.edge_index, short.edge_weight) == {(0, 1): 1.0, (1, 1): 1.0}


def test_transition_graph_matches_markov_counts(synthetic_task):
    graph = transition_graph(synthetic_task)
    source, target = training_transitions(synthetic_task)
    assert graph.edge_weight.sum() == len(source)
    dense = np.zeros((synthetic_task.num_pois,) * 2)
    np.add.at(dense, (source, target), 1.0)
    np.testing.assert_array_equal(graph.adjacency().toarray(), dense)
    assert len({tuple(e) for e in graph.edge_index.T}) == graph.num_edges  # unique edges


def test_region_adjacency_rook_and_queen(tiny_task):
    rook, regions = region_adjacency(2, pois=tiny_task.pois, bbox=BOX)
    np.testing.assert_array_equal(regions, [0, 1, 2, 3])
    assert set(_edges(rook.edge_index, rook.edge_weight)) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1),
                                                              (2, 3), (3, 2)}
    queen, none = region_adjacency(2, neighbourhood="queen")
    assert none is None and queen.num_edges == 12  # plus the two diagonals, both directions
    for n in (1, 3, 5):
        assert grid_neighbours(n, "rook").num_edges == 4 * n * (n - 1)
        assert grid_neighbours(n, "queen").num_edges == 4 * n * (n - 1) + 4 * (n - 1) ** 2
        adjacency = grid_neighbours(n, "queen").adjacency()
        assert (adjacency != adjacency.T).nnz == 0  # undirected
    # bbox=None divides the POIs' own extent.
    assert len(np.unique(poi_regions(tiny_task.pois, 2))) == 4


def test_layered_graph_on_the_tiny_table(tiny_task):
    graph = layered_graph(tiny_task, grid_size=2, num_slots=4, bbox=BOX)
    R = 4
    assert (graph.num_nodes, graph.num_slots, graph.num_regions) == (16, 4, R)
    assert graph.node_labels()[R * 2 + 3] == (2, 3)
    assert graph.slot_hours() == [(0, 6), (6, 12), (12, 18), (18, 24)]
    spatial, _ = graph.edges_of_kind("spatial")
    temporal, _ = graph.edges_of_kind("temporal")
    assert spatial.shape[1] == 4 * 8 and temporal.shape[1] == 4 * R
    assert (graph.node_slot[spatial[0]] == graph.node_slot[spatial[1]]).all()
    assert ((graph.node_slot[temporal[0]] + 1) % 4 == graph.node_slot[temporal[1]]).all()
    assert (graph.node_region[temporal[0]] == graph.node_region[temporal[1]]).all()
    # Local hours 8, 9, 14 (u1) and 10, 11, 20 (u2): node = slot * 4 + region.
    moves = dict(zip(map(tuple, graph.edges_of_kind("move")[0].T.tolist()), graph.edges_of_kind("move")[1]))
    assert moves == {(4, 5): 1.0, (5, 8): 1.0, (5, 5): 1.0, (5, 15): 1.0}
    acyclic = layered_graph(tiny_task, grid_size=2, num_slots=4, bbox=BOX, cyclic=False, max_gap_hours=2)
    assert acyclic.edges_of_kind("temporal")[0].shape[1] == 3 * R
    assert dict(zip(map(tuple, acyclic.edges_of_kind("move")[0].T.tolist()), acyclic.edges_of_kind("move")[1])) == {
        (4, 5): 1.0, (5, 5): 1.0}
    assert len(LAYERED_EDGE_KINDS) == 3


def test_time_slots():
    np.testing.assert_array_equal(time_slot(np.arange(24), 4), np.repeat(np.arange(4), 6))
    np.testing.assert_array_equal(time_slot(np.array([0, 23]), 1), [0, 0])


def test_count_edges_collapses_duplicates():
    edge_index, weight = count_edges(np.array([0, 0, 1, 0]), np.array([1, 1, 2, 2]), 3)
    assert _edges(edge_index, weight) == {(0, 1): 2.0, (0, 2): 1.0, (1, 2): 1.0}


# --------------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors(tiny_task):
    with pytest.raises(ValueError, match=r"shape \[2, E\]"):
        Graph(num_nodes=3, edge_index=np.zeros((3, 2), dtype=int), edge_weight=np.ones(2))
    with pytest.raises(ValueError, match="number the nodes"):
        Graph(num_nodes=2, edge_index=np.array([[0], [5]]), edge_weight=np.ones(1))
    with pytest.raises(ValueError, match="non-negative"):
        Graph(num_nodes=2, edge_index=np.array([[0], [1]]), edge_weight=-np.ones(1))
    with pytest.raises(ValueError, match="max_gap_hours"):
        transition_graph(tiny_task, max_gap_hours=0)
    with pytest.raises(ValueError, match="grid_size"):
        region_adjacency(0)
    with pytest.raises(ValueError, match="rook"):
        region_adjacency(3, neighbourhood="bishop")
    with pytest.raises(ValueError, match="outside the box"):
        poi_regions(tiny_task.pois, 4, bbox=BBox(lon_min=0.0, lat_min=0.0, lon_max=1.0, lat_max=1.0))
    with pytest.raises(ValueError, match="lacks column"):
        poi_regions(tiny_task.pois.drop(columns="lat"), 4)
    with pytest.raises(ValueError, match="num_slots"):
        layered_graph(tiny_task, num_slots=25, bbox=BOX)
    with pytest.raises(ValueError, match="encode users"):
        bipartite_graph(np.array([0, 3]), np.array([0, 1]), num_users=2, num_items=2)
    with pytest.raises(ValueError, match="equal length"):
        bipartite_graph(np.array([0, 1]), np.array([0]), num_users=2, num_items=2)
    with pytest.raises(ValueError, match=r"\[num_queries, k\]"):
        catalogue_coverage(np.array([0, 1, 2]), 5)
    with pytest.raises(ValueError, match="lie in"):
        catalogue_coverage(np.array([[0, 7]]), 5)
    with pytest.raises(ValueError, match="integer"):
        catalogue_coverage(np.array([[0.5, 1.0]]), 5)


def test_empty_training_part_is_refused(tiny_task):
    events = tiny_task.events.assign(part=1)  # every check-in moved out of training
    from dataclasses import replace

    empty = replace(tiny_task, events=events)
    for build in (user_poi_graph, transition_graph, lambda t: layered_graph(t, bbox=BOX)):
        with pytest.raises(ValueError, match="no training check-ins"):
            build(empty)


# --------------------------------------------------------------------------- coverage

def test_catalogue_and_spatial_coverage_by_hand():
    lists = np.array([[0, 1], [1, 2]])
    assert catalogue_coverage(lists, 5) == pytest.approx(3 / 5)
    # Items 0, 1 in region 0; 2, 3 in region 1; 4 in region 2: regions 0 and 1 of 3 are shown.
    assert spatial_coverage(lists, np.array([0, 0, 1, 1, 2])) == pytest.approx(2 / 3)
    assert catalogue_coverage(np.arange(5)[None, :], 5) == 1.0
