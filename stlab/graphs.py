"""Graphs from behaviour logs, and the normalised adjacency that graph convolutions use.

**Convention.** A graph is an ``edge_index`` of shape ``[2, E]`` (row 0: source, row 1: target)
with an ``edge_weight`` of shape ``[E]``, exactly as in PyTorch Geometric (Fey & Lenssen, 2019),
so every graph built here can be handed to ``torch_geometric.nn`` layers unchanged. A message
flows from source to target.

**Normalisation** (Kipf & Welling, ICLR 2017). With self-loops added, ``A~ = A + I``, and the
degree of node ``i`` taken as the total weight *into* it, ``d_i = sum_j A~[j, i]``, the
propagation operator is

    S[i, j] = A~[j, i] / sqrt(d_i d_j)          (for an undirected graph: S = D~^-1/2 A~ D~^-1/2)

and one graph convolution is ``H' = sigma(S H W)``. This is PyTorch Geometric's ``gcn_norm``
for its default ``flow="source_to_target"``, which the tests check numerically.

**Graphs from behaviour logs** (second half of this module), all from training check-ins only:
the bipartite user--POI graph (:func:`user_poi_graph`), the POI transition graph
(:func:`transition_graph`), grid regions and their neighbours (:func:`region_adjacency`), and the
time-and-place layered graph (:func:`layered_graph`). :func:`catalogue_coverage` and
:func:`spatial_coverage` measure how much of the city a recommender ever shows.

Introduced in chapter 10 (Graph convolutions for behaviour); chapter 11 uses the same operator
inside its spatio-temporal models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from stlab.features import grid_cells
from stlab.protocol import NextVisitTask, training_transitions

if TYPE_CHECKING:
    from stlab.features import BBoxLike


def check_edges(edge_index: np.ndarray, edge_weight: np.ndarray | None, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``[2, E]`` edge list and return it as int64 with float64 weights (ones if ``None``).

    Raises:
        ValueError: a wrong shape, a node id outside ``[0, num_nodes)``, or a negative or
            non-finite weight -- each message says how to fix it.
    """
    edge_index = np.asarray(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E] (sources, targets), got {edge_index.shape}; "
                         "transpose an [E, 2] list of pairs first")
    edge_index = edge_index.astype(np.int64)
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise ValueError(f"edge_index refers to node {int(edge_index.max())} (or a negative id) but the graph has "
                         f"{num_nodes} nodes; number the nodes 0..{num_nodes - 1}")
    weight = np.ones(edge_index.shape[1]) if edge_weight is None else np.asarray(edge_weight, dtype=np.float64)
    if weight.shape != (edge_index.shape[1],):
        raise ValueError(f"edge_weight must have shape [E] = [{edge_index.shape[1]}], got {weight.shape}")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("edge weights must be finite and non-negative; transform distances into similarities "
                         "first (for example with gaussian_kernel_weights)")
    return edge_index, weight


def adjacency_matrix(edge_index: np.ndarray, edge_weight: np.ndarray | None, num_nodes: int) -> sp.csr_matrix:
    """Sparse ``[N, N]`` adjacency with ``A[source, target] = weight`` (duplicate edges add up)."""
    edge_index, weight = check_edges(edge_index, edge_weight, num_nodes)
    return sp.csr_matrix((weight, (edge_index[0], edge_index[1])), shape=(num_nodes, num_nodes))


def gcn_propagation(edge_index: np.ndarray, edge_weight: np.ndarray | None, num_nodes: int, *,
                    add_self_loops: bool = True) -> sp.csr_matrix:
    """The GCN operator ``S`` (see the module docstring): ``H' = S H`` aggregates into each node.

    Args:
        edge_index: ``[2, E]`` sources and targets.
        edge_weight: ``[E]`` non-negative weights, or ``None`` for ones.
        num_nodes: (int) ``N``.
        add_self_loops: (bool) add ``I`` first, so each node keeps part of its own signal. A node
            that already has a self-loop keeps that loop's weight; the others get weight 1, as
            in PyTorch Geometric's ``add_remaining_self_loops``.

    Returns:
        ``[N, N]`` sparse CSR ``S``, row = receiving node. Nodes with no incoming weight get an
        all-zero row rather than a division by zero.
    """
    edge_index, weight = check_edges(edge_index, edge_weight, num_nodes)
    if add_self_loops:
        is_loop = edge_index[0] == edge_index[1]
        loop_weight = np.ones(num_nodes)
        loop_weight[edge_index[0, is_loop]] = weight[is_loop]  # an existing loop keeps its weight
        loops = np.arange(num_nodes)
        edge_index = np.concatenate([edge_index[:, ~is_loop], np.stack([loops, loops])], axis=1)
        weight = np.concatenate([weight[~is_loop], loop_weight])
    source, target = edge_index
    degree = np.bincount(target, weights=weight, minlength=num_nodes)  # weight into each node
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
    values = inv_sqrt[target] * weight * inv_sqrt[source]
    return sp.csr_matrix((values, (target, source)), shape=(num_nodes, num_nodes))


def normalized_adjacency(adjacency: np.ndarray | sp.spmatrix, *, add_self_loops: bool = True) -> sp.csr_matrix:
    """``D~^-1/2 (A + I) D~^-1/2`` of a dense or sparse ``[N, N]`` adjacency (``A[source, target]``).

    For a symmetric ``A`` the result is symmetric; for a directed one it is :func:`gcn_propagation`
    of the same edges (row = receiving node).
    """
    matrix = sp.coo_matrix(adjacency)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"an adjacency matrix must be square, got shape {matrix.shape}")
    edge_index = np.stack([matrix.row, matrix.col])
    return gcn_propagation(edge_index, matrix.data, matrix.shape[0], add_self_loops=add_self_loops)


def symmetrize(edge_index: np.ndarray, edge_weight: np.ndarray | None, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected version of a graph: ``A + A^T`` (weights of both directions add up)."""
    adjacency = adjacency_matrix(edge_index, edge_weight, num_nodes)
    both = (adjacency + adjacency.T).tocoo()
    return np.stack([both.row, both.col]).astype(np.int64), both.data.astype(np.float64)


def gaussian_kernel_weights(distances: np.ndarray, *, threshold: float = 0.1, scale: float | None = None) -> np.ndarray:
    """Turn distances into similarities ``exp(-(d / sigma)^2)``, zeroing those below ``threshold``.

    This is how DCRNN (Li et al., ICLR 2018) built the METR-LA adjacency from road distances;
    ``sigma`` defaults to the standard deviation of the finite distances.
    """
    distances = np.asarray(distances, dtype=np.float64)
    finite = distances[np.isfinite(distances)]
    sigma = float(finite.std()) if scale is None else float(scale)
    if sigma <= 0:
        raise ValueError("the distance scale must be positive; pass scale= when all distances are equal")
    weights = np.exp(-np.square(distances / sigma))
    weights[~np.isfinite(distances) | (weights < threshold)] = 0.0
    return weights


def to_torch_sparse(matrix: sp.spmatrix, *, dtype: object = None) -> object:
    """A SciPy sparse matrix as a ``torch`` sparse COO tensor (float32 unless ``dtype`` is given)."""
    import torch

    coo = sp.coo_matrix(matrix)
    indices = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data).to(torch.float32 if dtype is None else dtype)
    return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=True).coalesce()


# --------------------------------------------------------------------------- graphs from behaviour logs
#
# Every builder below reads *training* check-ins only (``task.train``), so a model that propagates
# over these graphs never sees a validation or test event. Node numbering is documented on each
# builder; all of them return the same ``[2, E]`` / ``[E]`` convention as above.

#: Names of the edge kinds of a :class:`LayeredGraph`, indexed by ``LayeredGraph.edge_kind``.
LAYERED_EDGE_KINDS: tuple[str, ...] = ("spatial", "temporal", "move")


@dataclass(frozen=True)
class Graph:
    """A weighted directed graph in PyTorch Geometric's convention.

    Attributes:
        num_nodes: (int) ``N``.
        edge_index: ``[2, E]`` int64 sources (row 0) and targets (row 1); each pair at most once
            unless a builder says otherwise.
        edge_weight: ``[E]`` float64 non-negative weights.

    An undirected graph stores both directions of every edge.
    """

    num_nodes: int
    edge_index: np.ndarray
    edge_weight: np.ndarray

    def __post_init__(self) -> None:
        if self.num_nodes < 0:
            raise ValueError(f"num_nodes must be non-negative, got {self.num_nodes}")
        edge_index, edge_weight = check_edges(self.edge_index, self.edge_weight, self.num_nodes)
        object.__setattr__(self, "edge_index", edge_index)
        object.__setattr__(self, "edge_weight", edge_weight)

    @property
    def num_edges(self) -> int:
        """``E``, the stored (directed) edges."""
        return int(self.edge_index.shape[1])

    def adjacency(self) -> sp.csr_matrix:
        """``[N, N]`` sparse ``A[source, target] = weight`` (parallel edges add up)."""
        return adjacency_matrix(self.edge_index, self.edge_weight, self.num_nodes)

    def out_degree(self, *, weighted: bool = False) -> np.ndarray:
        """``[N]`` edges (or their total weight) leaving each node."""
        weights = self.edge_weight if weighted else None
        return np.bincount(self.edge_index[0], weights=weights, minlength=self.num_nodes).astype(np.float64)

    def in_degree(self, *, weighted: bool = False) -> np.ndarray:
        """``[N]`` edges (or their total weight) entering each node."""
        weights = self.edge_weight if weighted else None
        return np.bincount(self.edge_index[1], weights=weights, minlength=self.num_nodes).astype(np.float64)

    def describe(self) -> dict[str, float]:
        """Size and degree statistics: nodes, edges, total weight, mean / median / max out-degree,
        the share of nodes with no edge at all, and the share of edges that are self-loops."""
        out_degree = self.out_degree()
        touched = np.zeros(self.num_nodes, dtype=bool)
        touched[self.edge_index.ravel()] = True
        return {
            "nodes": float(self.num_nodes), "edges": float(self.num_edges),
            "total weight": float(self.edge_weight.sum()),
            "mean out-degree": float(out_degree.mean()) if self.num_nodes else 0.0,
            "median out-degree": float(np.median(out_degree)) if self.num_nodes else 0.0,
            "max out-degree": float(out_degree.max()) if self.num_nodes else 0.0,
            "isolated nodes (share)": float((~touched).mean()) if self.num_nodes else 0.0,
            "self-loops (share of edges)": float((self.edge_index[0] == self.edge_index[1]).mean())
            if self.num_edges else 0.0,
        }


@dataclass(frozen=True)
class BipartiteGraph(Graph):
    """Users and items in one graph: users are nodes ``0 .. U-1``, item ``i`` is node ``U + i``.

    Attributes:
        num_users: (int) ``U``.
        num_items: (int) ``I``; ``num_nodes = U + I``.
        counts: ``[U, I]`` sparse CSR visits of each user to each item.
        edge_index: ``[2, 2 * nnz(counts)]`` every user--item pair in both directions (user ->
            item first, then item -> user), so messages flow both ways.
        edge_weight: ``[2 * nnz(counts)]`` the visit count of the pair, twice.
    """

    num_users: int = 0
    num_items: int = 0
    counts: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))

    def binary(self) -> BipartiteGraph:
        """The same graph with every weight set to one (an interaction happened or not)."""
        return BipartiteGraph(num_nodes=self.num_nodes, edge_index=self.edge_index,
                              edge_weight=np.ones_like(self.edge_weight), num_users=self.num_users,
                              num_items=self.num_items, counts=(self.counts > 0).astype(np.float64).tocsr())


@dataclass(frozen=True)
class LayeredGraph(Graph):
    """A space--time layered graph: one copy ("layer") of the region grid per time slot of the day.

    Node ``n = slot * R + region`` stands for "region ``region`` during slot ``slot``".

    Attributes:
        num_slots: (int) ``S``, slots of equal length dividing the local day.
        num_regions: (int) ``R``, grid cells; ``num_nodes = S * R``.
        node_slot: ``[N]`` the slot of each node.
        node_region: ``[N]`` the region of each node.
        edge_kind: ``[E]`` index into :data:`LAYERED_EDGE_KINDS`: ``0`` spatial (neighbouring
            regions, same slot, both directions), ``1`` temporal (a region to itself in the next
            slot), ``2`` move (an observed training move from the slot and region where it left to
            the slot and region where it arrived). Edges of different kinds between the same two
            nodes are kept apart; :meth:`adjacency` adds them up.
    """

    num_slots: int = 1
    num_regions: int = 0
    node_slot: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    node_region: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edge_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def node_labels(self) -> list[tuple[int, int]]:
        """``(slot, region)`` of every node, position = node id."""
        return list(zip(self.node_slot.tolist(), self.node_region.tolist()))

    def slot_hours(self) -> list[tuple[int, int]]:
        """``(first hour, end hour)`` of each slot in local time, e.g. ``(6, 12)``."""
        return [(-(-24 * s // self.num_slots), -(-24 * (s + 1) // self.num_slots)) for s in range(self.num_slots)]

    def edges_of_kind(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """``([2, E_k], [E_k])`` the edges of one kind (``"spatial"``, ``"temporal"`` or ``"move"``)."""
        if kind not in LAYERED_EDGE_KINDS:
            raise ValueError(f"unknown edge kind {kind!r}; choose one of {LAYERED_EDGE_KINDS}")
        keep = self.edge_kind == LAYERED_EDGE_KINDS.index(kind)
        return self.edge_index[:, keep], self.edge_weight[keep]


def _require_training_events(task: NextVisitTask) -> pd.DataFrame:
    train = task.train
    if len(train) == 0:
        raise ValueError("the task has no training check-ins, so there is nothing to build a graph from; "
                         "check the split (its training part is empty)")
    return train


def count_edges(source: np.ndarray, target: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapse repeated ``(source, target)`` pairs into unique edges weighted by their count.

    Args:
        source: ``[M]`` node ids.
        target: ``[M]`` node ids.
        num_nodes: (int) ``N``.

    Returns:
        ``edge_index`` ``[2, E]`` (sorted by source, then target) and ``edge_weight`` ``[E]`` counts.
    """
    source, target = np.asarray(source), np.asarray(target)
    if source.shape != target.shape or source.ndim != 1:
        raise ValueError(f"source and target must be 1-D arrays of equal length, got {source.shape} and "
                         f"{target.shape}")
    edge_index, weight = check_edges(np.stack([source, target]), None, num_nodes)
    counts = sp.coo_matrix((weight, (edge_index[0], edge_index[1])), shape=(num_nodes, num_nodes)).tocsr()
    counts.sum_duplicates()
    coo = counts.tocoo()
    return np.stack([coo.row, coo.col]).astype(np.int64), coo.data.astype(np.float64)


def bipartite_graph(user: np.ndarray, item: np.ndarray, num_users: int, num_items: int) -> BipartiteGraph:
    """The user--item graph of a list of interactions (one row per check-in).

    Args:
        user: ``[M]`` user index of each interaction (``0 .. num_users - 1``).
        item: ``[M]`` item index of each interaction (``0 .. num_items - 1``).
        num_users: (int) ``U``, including users without interactions (isolated nodes).
        num_items: (int) ``I``, likewise.

    Returns:
        A :class:`BipartiteGraph` with visit counts as weights.
    """
    user, item = np.asarray(user), np.asarray(item)
    if user.shape != item.shape or user.ndim != 1:
        raise ValueError(f"user and item must be 1-D arrays of equal length, got {user.shape} and {item.shape}")
    if len(user) and (user.min() < 0 or user.max() >= num_users):
        raise ValueError(f"user indices must lie in [0, {num_users}); encode users as 0..U-1 first "
                         "(stlab.protocol.build_task does)")
    if len(item) and (item.min() < 0 or item.max() >= num_items):
        raise ValueError(f"item indices must lie in [0, {num_items}); encode items as 0..I-1 first "
                         "(stlab.protocol.build_task does)")
    counts = sp.csr_matrix((np.ones(len(user)), (user, item)), shape=(num_users, num_items))
    counts.sum_duplicates()
    coo = counts.tocoo()
    user_nodes, item_nodes = coo.row.astype(np.int64), coo.col.astype(np.int64) + num_users
    edge_index = np.concatenate([np.stack([user_nodes, item_nodes]), np.stack([item_nodes, user_nodes])], axis=1)
    edge_weight = np.concatenate([coo.data, coo.data]).astype(np.float64)
    return BipartiteGraph(num_nodes=num_users + num_items, edge_index=edge_index, edge_weight=edge_weight,
                          num_users=num_users, num_items=num_items, counts=counts)


def user_poi_graph(task: NextVisitTask) -> BipartiteGraph:
    """The bipartite user--POI graph of the training check-ins, weighted by visit counts.

    Users are nodes ``0 .. U-1`` and POI ``p`` is node ``U + p`` (``U = task.num_users``,
    ``P = task.num_pois``); users and POIs without a training check-in are isolated nodes, so
    indices stay aligned with the task. This is the graph LightGCN propagates over.

    Returns:
        :class:`BipartiteGraph` with ``counts`` ``[U, P]`` and ``2 * nnz`` directed edges.
    """
    train = _require_training_events(task)
    return bipartite_graph(train["user"].to_numpy(), train["poi"].to_numpy(), task.num_users, task.num_pois)


def transition_graph(task: NextVisitTask, max_gap_hours: float | None = None, *,
                     include_repeats: bool = True) -> Graph:
    """The POI -> POI graph of consecutive training check-ins of the same user, weighted by count.

    Edge ``i -> j`` with weight ``C[i, j]``: how often a user checked in at ``j`` right after ``i``
    -- the counts of :class:`stlab.baselines.Markov` (same pairs as
    :func:`stlab.protocol.training_transitions`).

    Args:
        task: the next-visit task (its training check-ins are read).
        max_gap_hours: pairs further apart in time are not moves (``None``: every pair counts).
        include_repeats: keep ``i -> i`` (two check-ins in a row at the same POI).

    Returns:
        :class:`Graph` over ``P = task.num_pois`` nodes, ``[2, E]`` unique directed edges.
    """
    _require_training_events(task)
    if max_gap_hours is not None and max_gap_hours <= 0:
        raise ValueError(f"max_gap_hours must be positive (or None for no limit), got {max_gap_hours}")
    source, target = training_transitions(task, max_gap_hours)
    if not include_repeats:
        keep = source != target
        source, target = source[keep], target[keep]
    edge_index, edge_weight = count_edges(source, target, task.num_pois)
    return Graph(num_nodes=task.num_pois, edge_index=edge_index, edge_weight=edge_weight)


def grid_neighbours(grid_size: int, neighbourhood: Literal["rook", "queen"] = "rook") -> Graph:
    """The adjacency of a ``grid_size x grid_size`` grid of cells (row-major, as
    :func:`stlab.features.grid_cells` numbers them), both directions, weight one.

    Args:
        grid_size: (int) cells per side; ``R = grid_size ** 2`` nodes.
        neighbourhood: ``"rook"`` -- cells sharing an edge (up to 4 neighbours); ``"queen"`` --
            sharing an edge or a corner (up to 8).
    """
    if not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
    if neighbourhood not in ("rook", "queen"):
        raise ValueError(f"neighbourhood must be 'rook' (shared edge) or 'queen' (shared edge or corner), "
                         f"got {neighbourhood!r}")
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    if neighbourhood == "queen":
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    row, col = np.divmod(np.arange(grid_size * grid_size), grid_size)
    sources, targets = [], []
    for d_row, d_col in steps:
        r, c = row + d_row, col + d_col
        inside = (r >= 0) & (r < grid_size) & (c >= 0) & (c < grid_size)
        sources.append(np.flatnonzero(inside))
        targets.append(r[inside] * grid_size + c[inside])
    edge_index = np.stack([np.concatenate(sources), np.concatenate(targets)]).astype(np.int64)
    order = np.lexsort((edge_index[1], edge_index[0]))
    edge_index = edge_index[:, order]
    return Graph(num_nodes=grid_size * grid_size, edge_index=edge_index, edge_weight=np.ones(edge_index.shape[1]))


def poi_regions(pois: pd.DataFrame, grid_size: int, bbox: BBoxLike | None = None) -> np.ndarray:
    """``[P]`` grid cell of each POI (``lat``, ``lon`` columns), numbered as by
    :func:`stlab.features.grid_cells`.

    Args:
        pois: the candidate table (``task.pois``).
        grid_size: (int) cells per side.
        bbox: the box divided into cells -- the city box the log was cleaned with
            (``stlab.chapters.DATASET_CITY``); ``None`` takes the POIs' own extent.

    Raises:
        ValueError: a POI lies outside ``bbox``.
    """
    if not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
    missing = {"lat", "lon"} - set(pois.columns)
    if missing:
        raise ValueError(f"the POI table lacks column(s) {sorted(missing)}; pass task.pois")
    lat, lon = pois["lat"].to_numpy(dtype=np.float64), pois["lon"].to_numpy(dtype=np.float64)
    if bbox is None:
        if len(lat) == 0:
            raise ValueError("no POIs to place on a grid")
        from stlab.data import BBox

        pad_lat, pad_lon = max(np.ptp(lat) * 1e-6, 1e-9), max(np.ptp(lon) * 1e-6, 1e-9)
        bbox = BBox(lon_min=lon.min() - pad_lon, lat_min=lat.min() - pad_lat,
                    lon_max=lon.max() + pad_lon, lat_max=lat.max() + pad_lat)
    regions = grid_cells(lat, lon, bbox, grid_size)
    if (regions < 0).any():
        raise ValueError(f"{int((regions < 0).sum())} POI(s) lie outside the box {bbox}; pass the box the log "
                         "was cleaned with (stlab.chapters.DATASET_CITY), or bbox=None to use the POIs' extent")
    return regions


def region_adjacency(grid_size: int, *, neighbourhood: Literal["rook", "queen"] = "rook",
                     pois: pd.DataFrame | None = None, bbox: BBoxLike | None = None) -> tuple[Graph, np.ndarray | None]:
    """The grid regions of a city and which of them touch; optionally, the region of each POI.

    Args:
        grid_size: (int) cells per side of the box; ``R = grid_size ** 2`` regions.
        neighbourhood: ``"rook"`` or ``"queen"`` (see :func:`grid_neighbours`).
        pois: the candidate POIs (``task.pois``), to place them in regions.
        bbox: the city's box (``stlab.data.NYC_BBOX``, or from ``DATASET_CITY``); ``None``: the
            POIs' extent.

    Returns:
        The region :class:`Graph` (``R`` nodes, both directions of each neighbouring pair) and
        ``[P]`` the region of each POI (``None`` without ``pois``).
    """
    graph = grid_neighbours(grid_size, neighbourhood)
    regions = None if pois is None else poi_regions(pois, grid_size, bbox)
    return graph, regions


def time_slot(hour: np.ndarray, num_slots: int) -> np.ndarray:
    """``[M]`` slot of each local hour (0--23) when the day is cut into ``num_slots`` equal slots."""
    if not isinstance(num_slots, (int, np.integer)) or not 1 <= num_slots <= 24:
        raise ValueError(f"num_slots must be an integer in 1..24 (slots of whole hours), got {num_slots!r}")
    hour = np.asarray(hour, dtype=np.int64)
    if hour.size and (hour.min() < 0 or hour.max() > 23):
        raise ValueError("hours must lie in 0..23 (local hour of the day)")
    return hour * num_slots // 24


def layered_graph(task: NextVisitTask, *, grid_size: int = 8, num_slots: int = 4, bbox: BBoxLike | None = None,
                  neighbourhood: Literal["rook", "queen"] = "rook", max_gap_hours: float | None = None,
                  spatial_weight: float = 1.0, temporal_weight: float = 1.0, cyclic: bool = True) -> LayeredGraph:
    """The time-and-place layered graph of the training check-ins.

    The day is cut into ``num_slots`` slots of local time and the city into a ``grid_size x
    grid_size`` grid; each ``(slot, region)`` pair is a node (``node = slot * R + region``).
    Three kinds of edges link them:

    * **spatial** -- within a slot, neighbouring regions (``neighbourhood``), both directions,
      weight ``spatial_weight``;
    * **temporal** -- a region to itself in the next slot (slot ``S-1`` to slot ``0`` when
      ``cyclic``: the night runs into the morning), weight ``temporal_weight``;
    * **move** -- every consecutive pair of training check-ins of one user (no more than
      ``max_gap_hours`` apart), from the slot and region of the first to those of the second,
      weight = number of moves. A move inside one slot stays in its layer; one that crosses slots
      links the two layers.

    Args:
        task: the next-visit task (training check-ins; local hours from ``task.events["hour"]``).
        grid_size: (int) cells per side.
        num_slots: (int) slots of the day, 1..24 (4: night, morning, afternoon, evening).
        bbox: the city's box; ``None`` uses the POIs' extent.
        neighbourhood: ``"rook"`` or ``"queen"``.
        max_gap_hours: longer gaps between check-ins are not moves (``None``: no limit).
        spatial_weight, temporal_weight: (float) weights of the fixed edges.
        cyclic: link the last slot of the day back to the first.

    Returns:
        :class:`LayeredGraph` with ``N = num_slots * grid_size ** 2`` nodes.
    """
    train = _require_training_events(task)
    if spatial_weight < 0 or temporal_weight < 0:
        raise ValueError("spatial_weight and temporal_weight must be non-negative")
    if max_gap_hours is not None and max_gap_hours <= 0:
        raise ValueError(f"max_gap_hours must be positive (or None for no limit), got {max_gap_hours}")
    region_graph, poi_region = region_adjacency(grid_size, neighbourhood=neighbourhood, pois=task.pois, bbox=bbox)
    num_regions = region_graph.num_nodes
    slots = np.arange(num_slots)

    # Spatial: the region graph copied into every layer.
    offsets = np.repeat(slots * num_regions, region_graph.num_edges)  # [S * E_r]
    spatial = np.tile(region_graph.edge_index, num_slots) + offsets[None, :]
    # Temporal: (s, r) -> (s + 1, r).
    linked = slots if cyclic else slots[:-1]
    regions = np.arange(num_regions)
    temporal = np.stack([(linked[:, None] * num_regions + regions[None, :]).ravel(),
                         (((linked[:, None] + 1) % num_slots) * num_regions + regions[None, :]).ravel()])
    if num_slots == 1:  # a single layer would link every region to itself: no temporal edges
        temporal = np.zeros((2, 0), dtype=np.int64)
    # Moves: consecutive training check-ins of one user (sorted by user, then time).
    user, time, poi = (train[c].to_numpy() for c in ("user", "time", "poi"))
    node = time_slot(train["hour"].to_numpy(), num_slots) * num_regions + poi_region[poi]  # [M]
    same_user = user[1:] == user[:-1]
    if max_gap_hours is not None:
        same_user &= np.diff(time) / 3600.0 <= max_gap_hours
    move_index, move_weight = count_edges(node[:-1][same_user], node[1:][same_user], num_slots * num_regions)

    edge_index = np.concatenate([spatial, temporal, move_index], axis=1).astype(np.int64)
    edge_weight = np.concatenate([np.full(spatial.shape[1], float(spatial_weight)),
                                  np.full(temporal.shape[1], float(temporal_weight)), move_weight])
    edge_kind = np.concatenate([np.full(spatial.shape[1], 0), np.full(temporal.shape[1], 1),
                                np.full(move_index.shape[1], 2)]).astype(np.int64)
    num_nodes = num_slots * num_regions
    node_slot, node_region = np.divmod(np.arange(num_nodes), num_regions)
    return LayeredGraph(num_nodes=num_nodes, edge_index=edge_index, edge_weight=edge_weight, num_slots=num_slots,
                        num_regions=num_regions, node_slot=node_slot.astype(np.int64),
                        node_region=node_region.astype(np.int64), edge_kind=edge_kind)


# --------------------------------------------------------------------------- coverage of recommendations

def _check_lists(top_k_lists: np.ndarray, num_items: int) -> np.ndarray:
    lists = np.asarray(top_k_lists)
    if lists.ndim != 2:
        raise ValueError(f"top_k_lists must be [num_queries, k] item indices, got shape {lists.shape}; "
                         "stack the lists (model.recommend returns this shape)")
    if num_items < 1:
        raise ValueError(f"num_items must be positive, got {num_items}")
    if lists.size and not np.issubdtype(lists.dtype, np.integer):
        raise ValueError(f"top_k_lists must hold integer item indices, got dtype {lists.dtype}")
    if lists.size and (lists.min() < 0 or lists.max() >= num_items):
        raise ValueError(f"item indices must lie in [0, {num_items}), got values in [{lists.min()}, {lists.max()}]; "
                         "map item ids to positions first")
    return lists.astype(np.int64)


def catalogue_coverage(top_k_lists: np.ndarray, num_items: int) -> float:
    """Share of all ``num_items`` items that appear in at least one top-``k`` list.

    A model that recommends the same few popular places to everyone covers little of the
    catalogue; coverage@k says how much of the city a model ever shows.

    Args:
        top_k_lists: ``[Q, k]`` recommended item indices per query (``model.recommend``).
        num_items: (int) size of the catalogue (``task.num_pois``).
    """
    lists = _check_lists(top_k_lists, num_items)
    return float(len(np.unique(lists)) / num_items)


def spatial_coverage(top_k_lists: np.ndarray, item_region: np.ndarray) -> float:
    """Share of the regions holding at least one item in which some top-``k`` list recommends one.

    Args:
        top_k_lists: ``[Q, k]`` recommended item indices.
        item_region: ``[I]`` region of each item (:func:`poi_regions`).
    """
    item_region = np.asarray(item_region, dtype=np.int64)
    if item_region.ndim != 1 or (item_region < 0).any():
        raise ValueError("item_region must be a 1-D array of non-negative region ids (see poi_regions)")
    lists = _check_lists(top_k_lists, len(item_region))
    occupied = np.unique(item_region)
    return float(len(np.unique(item_region[lists.ravel()])) / len(occupied))
