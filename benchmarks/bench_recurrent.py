"""Training speed of the recurrent models: Keras on TensorFlow, Keras on PyTorch, and PyTorch;
and the from-scratch LSTM of chapter 5 against ``torch.nn.LSTM``.

Usage (from the repository root):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_recurrent.py [--device cuda] [--epochs 2]

Part 1 trains the book's next-POI model (``stlab.models.recurrent``; same configuration in every
framework) on chapter 7's task -- Gowalla NYC, global temporal split, 20 check-ins of history --
for ``--epochs`` epochs and reports the last epoch: seconds and training sequences per second
(validation excluded). A Keras backend is fixed when Keras is first imported, so each framework
runs in its own process. Without ``STLAB_DATA`` the synthetic city is used, and the table says so.

Part 2 times one forward and backward pass of ``ScratchLSTM`` (the gate equations written with
tensors) and ``torch.nn.LSTM`` (a fused kernel) at the same sizes, on the chosen device; on CUDA
also under float16 autocast (mixed precision).

Prints Markdown tables and writes them to benchmarks/results/recurrent.md (or
recurrent-<device>.md for a GPU run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = {"PyTorch": None, "Keras on TensorFlow": "tensorflow", "Keras on PyTorch": "torch"}


def build_task():
    """Chapter 7's task (real data when STLAB_DATA is set, else the synthetic city)."""
    from stlab.cleaning import CleaningConfig, clean_checkins
    from stlab.chapters import chapter_checkins
    from stlab.protocol import build_task as make_task
    from stlab.splits import temporal_split

    dataset = "gowalla-nyc" if os.environ.get("STLAB_DATA") else "synthetic"
    city = chapter_checkins(dataset, seed=0, smoke=False)
    checkins, _ = clean_checkins(city.checkins, CleaningConfig(bbox=city.bbox, min_user_checkins=10,
                                                               min_poi_checkins=10))
    return dataset, make_task(checkins, temporal_split(checkins, val_frac=0.1, test_frac=0.2),
                              timezone=city.timezone, history_len=20)


def train_one(framework: str, epochs: int, device: str) -> dict[str, object]:
    """Train one framework's model (in this process) and return the last epoch's speed."""
    from stlab.models.recurrent import RecurrentConfig

    dataset, task = build_task()
    config = RecurrentConfig(num_epochs=epochs, patience=epochs, progress=False, device=device)
    if framework == "PyTorch":
        from stlab.models.torch.nextvisit import RecurrentNextVisit
    else:
        from stlab.models.keras.nextvisit import RecurrentNextVisit
    model = RecurrentNextVisit(config).fit(task)
    last = model.history_.iloc[-1]
    return {"framework": framework, "dataset": dataset, "train sequences": len(task.queries("train")),
            "epoch s": float(last["seconds"]), "sequences/s": float(last["examples/s"]),
            "validation MRR": float(model.history_["validation"].max())}


def time_cells(device_name: str, repeats: int = 20) -> list[dict[str, object]]:
    """Forward + backward seconds per batch of ScratchLSTM and nn.LSTM."""
    import torch

    from stlab.models.torch.cells import ScratchLSTM

    device = torch.device(device_name)
    rows = []
    precisions = ["float32"] + (["float16 autocast"] if device.type == "cuda" else [])
    for batch, steps, inputs, hidden in ((256, 20, 50, 64), (256, 20, 50, 256), (64, 100, 50, 128)):
        for name, make in (("ScratchLSTM", lambda: ScratchLSTM(inputs, hidden)),
                           ("torch.nn.LSTM", lambda: torch.nn.LSTM(inputs, hidden))):
            for precision in precisions:
                torch.manual_seed(0)
                cell = make().to(device)
                x = torch.randn(steps, batch, inputs, device=device)
                autocast = precision != "float32"

                def step() -> None:
                    with torch.autocast(device_type=device.type, enabled=autocast):
                        out = cell(x)[0]
                    out.float().pow(2).mean().backward()

                for _ in range(3):  # warm-up: allocation, kernel selection
                    step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(repeats):
                    step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = (time.perf_counter() - start) / repeats
                rows.append({"cell": name, "precision": precision, "B x T x D -> H": f"{batch}x{steps}x{inputs}->{hidden}",
                             "ms / batch": 1000 * seconds, "sequences/s": batch / seconds})
    return rows




def machine(device: str) -> str:
    import torch

    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if device == "cuda" and torch.cuda.is_available() else ""
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads{gpu}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (PyTorch and the cell timing)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per framework; the last is reported")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one framework, in a process of its own
        print(json.dumps(train_one(args.worker, args.epochs, args.device)))
        return 0

    rows = []
    for framework in args.frameworks.split(","):
        backend = FRAMEWORKS[framework]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
        if backend:
            env["KERAS_BACKEND"] = backend
        print(f"training: {framework} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--worker", framework, "--epochs", str(args.epochs),
                               "--device", args.device], env=env, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{framework} failed (exit {done.returncode}); its error is printed above")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cells = time_cells(args.device)

    from stlab.reporting import markdown_table, write_report

    text = "\n\n".join([
        "# Recurrent models: training speed",
        f"Machine: {machine(args.device)}. Device: {args.device}. Command: "
        f"`python benchmarks/bench_recurrent.py --device {args.device} --epochs {args.epochs}`.",
        "## Next-POI model, one training epoch (the last of "
        f"{args.epochs}; validation excluded)\n\n" + markdown_table(rows),
        "## LSTM layer, forward + backward per batch\n\n" + markdown_table(cells),
    ])
    print(text)
    name = "recurrent.md" if args.device == "cpu" else f"recurrent-{args.device}.md"
    write_report(ROOT / "benchmarks" / "results" / name, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
