"""Values observed over time at the nodes of a graph: the table of spatio-temporal forecasting.

:class:`GraphSeries` is what the network loaders (:func:`stlab.data.load_los_loop`,
:func:`stlab.data.load_montevideo_bus`), the simulated road network and the synthetic city's
region counts return, and what the graph forecasters of chapter 11 take. Wrap your own network
with :func:`read_graph_series`. Introduced in chapter 11 (Spatio-temporal graph forecasting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stlab.data.errors import DataValidationError


@dataclass(frozen=True)
class GraphSeries:
    """Values observed over time at the nodes of a graph.

    Attributes:
        values: ``[T, N]`` float32 readings (``nan`` where missing).
        node_ids: ``[N]`` identifiers of the nodes, in column order.
        edge_index: ``[2, E]`` int64 source and target node positions.
        edge_weight: ``[E]`` float32 weights (meaning depends on the data set).
        timestamps: ``[T]`` time of each row, or ``None`` when unknown.
        coords: ``[N, 2]`` node coordinates (see ``coord_crs``), or ``None``.
        coord_crs: what ``coords`` are, for example ``"EPSG:4326 lat/lon"``.
        name: a short label.
    """

    values: np.ndarray
    node_ids: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    timestamps: pd.DatetimeIndex | None
    coords: np.ndarray | None
    coord_crs: str | None
    name: str

    @property
    def num_nodes(self) -> int:
        return int(self.values.shape[1])

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    def adjacency(self) -> np.ndarray:
        """Dense ``[N, N]`` weighted adjacency (row = source, column = target)."""
        adj = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        adj[self.edge_index[0], self.edge_index[1]] = self.edge_weight
        return adj


def read_graph_series(
    values: np.ndarray | pd.DataFrame,
    adjacency: np.ndarray,
    *,
    timestamps: pd.DatetimeIndex | None = None,
    node_ids: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    name: str = "graph series",
) -> GraphSeries:
    """Wrap any ``[T, N]`` matrix and ``[N, N]`` adjacency so models can use your own network.

    Args:
        values: ``[T, N]`` readings, ``NaN`` where missing; a DataFrame's columns become the
            node ids and a DatetimeIndex the time stamps.
        adjacency: ``[N, N]`` non-negative weights, rows and columns ordered like ``values``.
        timestamps: ``[T]`` time of each row (default: the DataFrame's index, or none).
        node_ids: ``[N]`` identifiers (default: the DataFrame's columns, or ``0..N-1``).
        coords: ``[N, 2]`` node positions, or ``None``.
        name: a short label.

    Raises:
        DataValidationError: shapes that disagree (adjacency, node ids, coordinates, time
            stamps), infinite readings, or a non-square, infinite or negative adjacency.
    """
    if isinstance(values, pd.DataFrame):
        node_ids = np.asarray(values.columns) if node_ids is None else node_ids
        if timestamps is None and isinstance(values.index, pd.DatetimeIndex):
            timestamps = values.index
        values = values.to_numpy()
    values = np.asarray(values, dtype=np.float32)
    adjacency = np.asarray(adjacency, dtype=np.float32)
    if values.ndim != 2:
        raise DataValidationError(f"{name}: values must be [time, node], got shape {values.shape}.")
    num_nodes = values.shape[1]
    infinite = np.argwhere(np.isinf(values))
    if len(infinite):
        t, n = infinite[0]
        raise DataValidationError(
            f"{name}: {len(infinite)} infinite value(s), the first at time step {t}, node {n} "
            f"({values[t, n]}).\nFix: mark missing readings with NaN, or correct the division that made them."
        )
    if adjacency.shape != (num_nodes, num_nodes):
        raise DataValidationError(
            f"{name}: adjacency has shape {adjacency.shape} but values have {num_nodes} nodes.\n"
            "Fix: order the adjacency rows and columns like the value columns."
        )
    if (adjacency < 0).any() or not np.isfinite(adjacency).all():
        raise DataValidationError(f"{name}: adjacency weights must be finite and non-negative.")
    if node_ids is not None:
        node_ids = np.asarray(node_ids)
        if node_ids.shape != (num_nodes,):
            raise DataValidationError(
                f"{name}: {node_ids.size} node id(s) (shape {node_ids.shape}) for {num_nodes} nodes.\n"
                "Fix: give one id per value column, in column order."
            )
    if coords is not None:
        coords = np.asarray(coords)
        if coords.ndim != 2 or coords.shape[0] != num_nodes:
            raise DataValidationError(f"{name}: coordinates of shape {coords.shape} for {num_nodes} nodes; "
                                      "expected [nodes, 2].")
    if timestamps is not None and len(timestamps) != values.shape[0]:
        raise DataValidationError(f"{name}: {len(timestamps)} time stamps for {values.shape[0]} rows.")
    src, dst = np.nonzero(adjacency)
    return GraphSeries(
        values=values,
        node_ids=np.arange(num_nodes) if node_ids is None else node_ids,
        edge_index=np.stack([src, dst]).astype(np.int64),
        edge_weight=adjacency[src, dst],
        timestamps=timestamps,
        coords=coords,
        coord_crs=None if coords is None else "given",
        name=name,
    )


def subgraph(series: GraphSeries, nodes: np.ndarray, *, name: str | None = None) -> GraphSeries:
    """The series at some nodes only, with the edges among them (for quick runs and tests)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    position = np.full(series.num_nodes, -1)
    position[nodes] = np.arange(len(nodes))
    keep = (position[series.edge_index[0]] >= 0) & (position[series.edge_index[1]] >= 0)
    return GraphSeries(
        values=series.values[:, nodes], node_ids=series.node_ids[nodes],
        edge_index=position[series.edge_index[:, keep]], edge_weight=series.edge_weight[keep],
        timestamps=series.timestamps, coords=None if series.coords is None else series.coords[nodes],
        coord_crs=series.coord_crs, name=name or series.name)
