"""Speed of the graph models: the graph convolution (sparse, dense, PyTorch Geometric) and a
training step of T-GCN and STGCN on the book's two networks.

Usage (from the repository root):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_graphs.py [--device cuda] [--threads 2]

Part 1 times one graph convolution ``S X`` over all nodes for a batch of feature matrices: the
sparse product of ``stlab.models.torch.stgraph.propagate``, the same with a dense ``S``, and
``torch_geometric.nn.GCNConv``'s message passing (its linear map included).

Part 2 times a forward and backward pass (and an Adam step) of T-GCN and STGCN on a batch of 32
windows of every node, at the chapter's sizes, and reports milliseconds per window -- what one
training epoch costs is that times the windows drawn per epoch. Without ``STLAB_DATA`` the
simulated road network is used, and the table says so.

Prints Markdown tables and writes them to benchmarks/results/graphs.md (graphs-<device>.md on a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def timed(step, repeats: int, device: torch.device) -> float:
    """Median seconds of ``step()`` over ``repeats`` runs after two warm-up runs."""
    times = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def networks():
    from stlab.data import load_graph_series

    if os.environ.get("STLAB_DATA"):
        return {name: load_graph_series(name) for name in ("los-loop", "montevideo-bus")}
    return {"synthetic": load_graph_series("synthetic")}


def main() -> None:
    from torch_geometric.nn import GCNConv

    from stlab.graph_forecasting import network_setup
    from stlab.graphs import normalized_adjacency, to_torch_sparse
    from stlab.models.torch.stgraph import STGCN, TGCN, GraphForecasterConfig, propagate
    from stlab.training import select_device

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    batch = 32
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"device {device}, {args.threads} CPU threads.", ""]

    lines += ["| network | nodes | edges | sparse S X ms | dense S X ms | GCNConv ms |", "|---|---|---|---|---|---|"]
    series_by_name = networks()
    for name, series in series_by_name.items():
        setup = network_setup(name)
        adjacency = setup.adjacency_of(series)
        operator = normalized_adjacency(adjacency)
        sparse = to_torch_sparse(operator).to(device)
        dense = sparse.to_dense()
        x = torch.randn(batch, series.num_nodes, 64, device=device)
        conv = GCNConv(64, 64).to(device)
        edges = torch.from_numpy(np.stack(np.nonzero(adjacency))).to(device)
        flat = x.reshape(-1, 64)
        # PyG takes one big graph: the batch as disjoint copies of the network.
        offsets = (torch.arange(batch, device=device) * series.num_nodes).repeat_interleave(edges.shape[1])
        batched = edges.repeat(1, batch) + offsets
        with torch.no_grad():
            row = [timed(lambda: propagate(sparse, x), args.repeats, device),
                   timed(lambda: propagate(dense, x), args.repeats, device),
                   timed(lambda: conv(flat, batched), args.repeats, device)]
        lines.append(f"| {series.name} | {series.num_nodes} | {operator.nnz - series.num_nodes} | "
                     + " | ".join(f"{1000 * s:.2f}" for s in row) + " |")

    lines += ["", "| network | model | parameters | ms per window (train step) | windows/s |", "|---|---|---|---|---|"]
    for name, series in series_by_name.items():
        setup = network_setup(name)
        operator = to_torch_sparse(normalized_adjacency(setup.adjacency_of(series))).to(device)
        for model in ("tgcn", "stgcn"):
            config = GraphForecasterConfig(model=model, window=setup.window, horizon=setup.horizon, hidden_size=32,
                                           spatial_channels=16)
            features = 2 + 2 * len(setup.clock_periods)
            net = (TGCN(operator, features, config) if model == "tgcn"
                   else STGCN(operator, features, config)).to(device)
            optimizer = torch.optim.Adam(net.parameters())
            x = torch.randn(batch, setup.window, series.num_nodes, features, device=device)
            target = torch.randn(batch, setup.horizon, series.num_nodes, device=device)

            def step():
                optimizer.zero_grad()
                (net(x) - target).abs().mean().backward()
                optimizer.step()

            seconds = timed(step, args.repeats, device)
            parameters = sum(p.numel() for p in net.parameters())
            lines.append(f"| {series.name} | {'T-GCN' if model == 'tgcn' else 'STGCN'} | {parameters:,} | "
                         f"{1000 * seconds / batch:.2f} | {batch / seconds:,.0f} |")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / ("graphs.md" if device.type == "cpu" else f"graphs-{device.type}.md")
    out.write_text("# Graph models: speed\n\nWritten by `benchmarks/bench_graphs.py`.\n\n" + text + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
