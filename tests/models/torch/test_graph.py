"""Graph models: GCNLayer against PyG's GCNConv, LightGCN against a dense NumPy reference, the BPR
loss by hand, GAT attention that sums to one, and identical numbers from the same seed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from torch_geometric.nn import GCNConv  # noqa: E402

from stlab.cleaning import CleaningConfig, clean_checkins  # noqa: E402
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig  # noqa: E402
from stlab.graphs import user_poi_graph  # noqa: E402
from stlab.models.torch.graph import (BPRSampler, GATConfig, GATNextPOI, GCNLayer, LightGCN,  # noqa: E402
                                      LightGCNConfig, LightGCNNet, bpr_loss, propagation_matrix)
from stlab.protocol import build_task  # noqa: E402
from stlab.splits import temporal_split  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The graphs here are tiny: a second thread only adds synchronisation (and is slow when the
    # machine is busy).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


def _gcn_pair(num_nodes: int, in_features: int, out_features: int) -> tuple[GCNLayer, GCNConv]:
    torch.manual_seed(0)
    ours = GCNLayer(in_features, out_features)
    theirs = GCNConv(in_features, out_features)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.weight.T)  # Linear stores W as [F_out, F_in]
        ours.bias.normal_()
        theirs.bias.copy_(ours.bias)
    return ours, theirs


def _directed_graph(num_nodes: int, num_edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random weighted directed edges with duplicates and a few (unique) existing self-loops."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, num_nodes, num_edges)
    target = rng.integers(0, num_nodes, num_edges)
    off_diagonal = source != target
    source, target = source[off_diagonal], target[off_diagonal]
    source = np.concatenate([source, source[:5], [1, 4, 7]])  # 5 duplicate edges, then 3 self-loops
    target = np.concatenate([target, target[:5], [1, 4, 7]])
    return np.stack([source, target]), rng.uniform(0.1, 3.0, len(source))


@pytest.mark.parametrize("undirected", [False, True], ids=["directed", "undirected"])
def test_gcn_layer_equals_pyg_gcnconv(undirected):
    num_nodes = 12
    edge_index, edge_weight = _directed_graph(num_nodes, 40, seed=1)
    if undirected:
        edge_index = np.concatenate([edge_index, edge_index[::-1]], axis=1)
        edge_weight = np.concatenate([edge_weight, edge_weight])
    ours, theirs = _gcn_pair(num_nodes, 5, 3)
    x = torch.randn(num_nodes, 5)
    S = propagation_matrix(torch.from_numpy(edge_index), torch.from_numpy(edge_weight), num_nodes)
    with torch.no_grad():
        expected = theirs(x, torch.from_numpy(edge_index), torch.from_numpy(edge_weight).float())
        got = ours(x, S)
    assert got.shape == (num_nodes, 3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gcn_layer_refuses_a_mismatched_graph():
    layer = GCNLayer(4, 2)
    S = propagation_matrix(np.array([[0, 1], [1, 2]]), None, 3)
    with pytest.raises(ValueError, match=r"\[N, N\]"):
        layer(torch.randn(5, 4), S)
    with pytest.raises(ValueError, match=r"x must be"):
        layer(torch.randn(3, 7), S)


# --------------------------------------------------------------------------- LightGCN

def test_lightgcn_propagation_equals_numpy_layer_mean(task):
    graph = user_poi_graph(task).binary()
    U, P, N = task.num_users, task.num_pois, graph.num_nodes
    S = propagation_matrix(graph.edge_index, graph.edge_weight, N, add_self_loops=False, dtype=torch.float64)
    torch.manual_seed(0)
    net = LightGCNNet(U, P, S, dim=8, num_layers=3).double()
    with torch.no_grad():
        users, items = net.embeddings()
    A = graph.adjacency().toarray()  # symmetric, no self-loops
    degree = A.sum(1)
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    S_dense = inv_sqrt[:, None] * A * inv_sqrt[None, :]
    E = [net.embedding.weight.detach().numpy()]
    for _ in range(3):
        E.append(S_dense @ E[-1])
    expected = np.mean(E, axis=0)
    np.testing.assert_allclose(users.numpy(), expected[:U], atol=1e-12)
    np.testing.assert_allclose(items.numpy(), expected[U:], atol=1e-12)


def test_bpr_loss_equals_hand_formula():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=6), rng.normal(size=6)
    layer0 = [rng.normal(size=(6, 4)) for _ in range(3)]
    reg = 0.01
    expected = -np.mean(np.log(1 / (1 + np.exp(-(pos - neg))))) + reg * sum((e ** 2).sum() for e in layer0) / (2 * 6)
    got = bpr_loss(torch.from_numpy(pos), torch.from_numpy(neg), tuple(map(torch.from_numpy, layer0)), reg)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_bpr_sampler_negatives_are_unvisited_and_seeded(task):
    counts = user_poi_graph(task).counts
    first = list(BPRSampler(counts, batch_size=64, seed=3).epoch(0))
    again = list(BPRSampler(counts, batch_size=64, seed=3).epoch(0))
    users, items, negatives = (torch.cat(parts).numpy().copy() for parts in zip(*first))
    dense = counts.toarray()
    assert len(users) == counts.nnz  # every pair once per epoch
    assert (dense[users, items] > 0).all()
    assert (dense[users, negatives] == 0).all()
    assert all(torch.equal(a, b) for batch, other in zip(first, again) for a, b in zip(batch, other))


def _small_lightgcn(**changes) -> LightGCNConfig:
    return LightGCNConfig(**{"dim": 16, "num_layers": 2, "lr": 0.02, "batch_size": 128, "num_epochs": 4,
                             "patience": 10, "progress": False, "device": "cpu", **changes})


def test_lightgcn_trains_and_is_reproducible(task):
    queries = task.queries("test")
    first = LightGCN(_small_lightgcn()).fit(task)
    losses = first.history_["train loss"].to_numpy()
    assert losses[-1] < losses[0]
    scores = first.score(queries)
    assert scores.shape == (len(queries), task.num_pois) and np.isfinite(scores).all()
    again = LightGCN(_small_lightgcn()).fit(task)
    np.testing.assert_array_equal(again.score(queries), scores)
    top = first.recommend(queries, k=5)
    assert top.shape == (len(queries), 5)


def test_lightgcn_with_no_layers_is_matrix_factorisation(task):
    model = LightGCN(_small_lightgcn(num_layers=0, num_epochs=2, fold_in=False)).fit(task)
    assert model.name == "BPR-MF"
    queries = task.queries("test")
    weights = model.net_.embedding.weight.detach().numpy().astype(np.float64)
    user_vectors, item_vectors = weights[: task.num_users], weights[task.num_users:]
    np.testing.assert_allclose(model.score(queries), user_vectors[queries.user] @ item_vectors.T, atol=1e-12)


def test_lightgcn_folds_in_users_unseen_in_training(task):
    model = LightGCN(_small_lightgcn(num_epochs=1)).fit(task)
    queries = task.queries("test")
    row = 0
    learnt = model.user_vectors(queries)[row]
    np.testing.assert_array_equal(learnt, model.user_embeddings_[queries.user[row]])
    model.user_seen_[queries.user[row]] = False  # as if this user had no training check-in
    history = queries.history_poi[row][queries.history_poi[row] >= 0]
    np.testing.assert_allclose(model.user_vectors(queries)[row], model.item_embeddings_[history].mean(0))


def test_configs_are_validated():
    with pytest.raises(ValueError, match="num_layers"):
        LightGCNConfig(num_layers=-1)
    with pytest.raises(ValueError, match="multiple of heads"):
        GATConfig(dim=30, heads=4)


# --------------------------------------------------------------------------- graph attention

def _small_gat(**changes) -> GATConfig:
    return GATConfig(**{"dim": 16, "heads": 2, "batch_size": 256, "num_epochs": 2, "progress": False,
                        "device": "cpu", **changes})


def test_gat_attention_sums_to_one_over_each_pois_neighbours(task):
    model = GATNextPOI(_small_gat()).fit(task)
    edge_index, alpha = model.attention_weights()
    assert alpha.shape == (edge_index.shape[1], 2)
    assert (alpha >= 0).all()
    totals = np.zeros((task.num_pois, 2))
    np.add.at(totals, edge_index[0], alpha)  # row 0: the POI left, whose neighbours compete
    np.testing.assert_allclose(totals, 1.0, atol=1e-5)
    # Every observed move is an edge, plus one self-loop per POI.
    moves = {tuple(e) for e in model.graph_.edge_index.T if e[0] != e[1]}
    assert moves <= {tuple(e) for e in edge_index.T}
    assert (edge_index[0] == edge_index[1]).sum() == task.num_pois


def test_gat_scores_and_is_reproducible(task):
    queries = task.queries("test")
    first = GATNextPOI(_small_gat(use_edge_counts=False)).fit(task)
    scores = first.score(queries)
    assert scores.shape == (len(queries), task.num_pois) and np.isfinite(scores).all()
    again = GATNextPOI(_small_gat(use_edge_counts=False)).fit(task)
    np.testing.assert_array_equal(again.score(queries), scores)
    np.testing.assert_array_equal(again.attention_weights()[1], first.attention_weights()[1])
