"""The graph's contribution over several seeds: STGCN, the same STGCN without edges, and the
per-node LSTM of chapter 11, trained and evaluated under the chapter's protocol once per seed.

Usage (from the repository root):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_stgcn_seeds.py [--seeds 0 1 2] [--threads 2]

One seed of chapter 11 cannot tell the graph's contribution (a few per cent) from the spread
that another initialisation and window order give. This script fits the three models with the
chapter's settings (``stlab.graph_forecasting.network_forecasters``: same budget, same
early stopping) for every seed and network, and writes one row per (network, seed, model,
step ahead) -- MAE, RMSE and MAPE over all valid (origin, node) points -- to
``benchmarks/results/stgcn_seeds.csv``, with what produced it (data checksums, package versions,
machine, settings) in ``stgcn_seeds.json`` beside it. Both files are written atomically (a
temporary file, then a rename). Chapter 11 reads them and shows the mean and spread.

Without ``STLAB_DATA`` the registered networks cannot be read and the script stops: the
simulated network says nothing about the published ones.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("STGCN", "STGCN without edges", "LSTM per node")
RESULTS = ROOT / "benchmarks" / "results" / "stgcn_seeds.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--networks", nargs="+", default=["los-loop", "montevideo-bus"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not os.environ.get("STLAB_DATA"):
        print("set STLAB_DATA to a folder holding the real networks (see README)", file=sys.stderr)
        return 2

    import torch

    from stlab.data import load_graph_series
    from stlab.graph_forecasting import NODE_WINDOWS_PER_EPOCH, NUM_EPOCHS, evaluate_network, network_forecasters, network_setup
    from stlab.reporting import frame_checksum, write_report

    torch.set_num_threads(args.threads)
    rows, data = [], {}
    started = time.perf_counter()
    for name in args.networks:
        series, setup = load_graph_series(name), network_setup(name)
        data[name] = {"title": series.name, "nodes": series.num_nodes, "steps": series.num_steps,
                      "sha256 (content)": frame_checksum(pd.DataFrame(series.values))}
        for seed in args.seeds:
            factories = network_forecasters(series, setup, seed=seed, models=MODELS)
            evaluation = evaluate_network(series, setup, factories, progress=False)
            table = evaluation.table()
            for model in MODELS:
                for step in setup.report_steps:
                    label = setup.step_label(step)
                    metrics = table.loc[model, label]
                    rows.append({"network": name, "seed": seed, "model": model, "step": step, "ahead": label,
                                 "MAE": metrics["MAE"], "RMSE": metrics["RMSE"], "MAPE %": metrics.iloc[2],
                                 "MAPE floor": setup.mape_min_true, "seconds": evaluation.seconds[model]})
            print(f"{series.name}, seed {seed}: " + ", ".join(
                f"{m} {table.loc[m, (setup.step_label(setup.horizon), 'MAE')]:.3f}" for m in MODELS), flush=True)
    frame = pd.DataFrame(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    write_report(args.output, buffer.getvalue())
    meta = {
        "written by": "benchmarks/bench_stgcn_seeds.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date (UTC)": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M"),
        "seeds": args.seeds, "models": list(MODELS), "num_epochs": NUM_EPOCHS,
        "node_windows_per_epoch": NODE_WINDOWS_PER_EPOCH, "torch threads": args.threads, "data": data,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("stlab", "numpy", "pandas", "torch")},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_report(args.output.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    longest = frame[frame["step"] == frame.groupby("network")["step"].transform("max")]
    print(longest.pivot_table(index=["network", "model"], columns="seed", values="MAE").round(3).to_markdown())
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
