"""Speed and memory of the attention models: training throughput, full-ranking latency per
query, the cost of re-ranking with a small language model, and each process's peak memory.

Usage (from the repository root):

    STLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_attention.py [--device cuda] [--epochs 1] \
        [--llm-queries 10] [--threads 1]

The task is chapter 8's: Gowalla NYC (the synthetic city without ``STLAB_DATA``; the header says
which), cleaned and split in time by ``stlab.splits.clean_and_split``, 20 check-ins of history.

Part 1 trains, for ``--epochs`` epochs, the space-time Transformer of chapter 8 in PyTorch, its
Keras twin on the TensorFlow backend, the same Transformer with chapter 7's mixture head
(repeat, transition, explore) and chapter 7's LSTM, and reports the last epoch: seconds and
training sequences per second (validation excluded). A Keras backend is fixed when Keras is
first imported, so every model runs in a process of its own.

Part 2 times full-ranking inference of each fitted model: ``model.score`` of one test query at a
time (``--latency-queries`` queries drawn with seed 0, after a warm-up; p50 and p99), and the
throughput of scoring every test query in calls of 1,024.

Part 3 loads SmolLM2-135M-Instruct (``stlab.models.pretrained.causal_lm``) and re-ranks the top 20
POIs of the fitted PyTorch Transformer with ``llm_rerank`` on ``--llm-queries`` test queries
(drawn with seed 0), one shared prompt per query. On the first ``--compare-queries`` of them it
then compares three ways to score the 20 candidate names: the prompt run once and the
candidates in one batch (what ``llm_rerank`` does), the prompt run once and the candidates one at
a time, and no sharing -- the model run on each candidate's full sequence, prompt included.

Part 4 lists each process's peak resident memory (``ru_maxrss``) once its task was built and at
its end, and on CUDA the most memory PyTorch allocated on the GPU. With ``--device cuda`` the
PyTorch models train under mixed precision (their default) and the language model runs on the GPU.

``--threads N`` caps the CPU threads of PyTorch and TensorFlow in every process. On a machine that
other jobs share, threads that outnumber the free cores wait on each other: there one thread per
process gives steadier (and often faster) numbers than one per core. The header records the load
average before and after the run.

Prints Markdown tables and writes them to benchmarks/results/attention.md (or
attention-<device>.md for a GPU run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HISTORY_LEN = 20
CANDIDATES = 20
BATCHED_CALL = 1024
# model key -> (label, framework, Keras backend or None)
MODELS = {
    "transformer": ("space-time Transformer", "PyTorch", None),
    "transformer-keras": ("space-time Transformer", "Keras on TensorFlow", "tensorflow"),
    "transformer-mixture": ("space-time Transformer + mixture head", "PyTorch", None),
    "lstm": ("LSTM (chapter 7)", "PyTorch", None),
}


def build_task():
    """Chapter 8's task (real data when STLAB_DATA is set, else the synthetic city)."""
    from stlab.chapters import chapter_checkins
    from stlab.cleaning import CleaningConfig
    from stlab.protocol import build_task as make_task
    from stlab.splits import clean_and_split

    dataset = "gowalla-nyc" if os.environ.get("STLAB_DATA") else "synthetic"
    city = chapter_checkins(dataset, seed=0, smoke=False)
    cleaning = CleaningConfig(bbox=city.bbox, min_user_checkins=10, min_poi_checkins=10)
    checkins, split, _ = clean_and_split(city.checkins, cleaning, val_frac=0.1, test_frac=0.2)
    return dataset, city, make_task(checkins, split, timezone=city.timezone, history_len=HISTORY_LEN)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cuda_peak_mib(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def sample_rows(n: int, size: int) -> np.ndarray:
    """``size`` of ``n`` rows, drawn with seed 0, in order."""
    return np.sort(np.random.default_rng(0).choice(n, size=min(size, n), replace=False))


def make_model(key: str, epochs: int, device: str):
    patience = max(epochs, 1)
    if key == "lstm":
        from stlab.models.recurrent import RecurrentConfig
        from stlab.models.torch.nextvisit import RecurrentNextVisit

        return RecurrentNextVisit(RecurrentConfig(num_epochs=epochs, patience=patience, seed=0, device=device,
                                                  progress=False))
    from stlab.models.attention.config import TransformerConfig

    # chapter 8's main model; the mixture variant changes only the head
    config = TransformerConfig(d_model=64, num_heads=2, num_layers=2, ffn_dim=128, num_epochs=epochs,
                               patience=patience, seed=0, device=device, progress=False)
    if key == "transformer-mixture":
        from dataclasses import replace

        config = replace(config, components=("repeat", "transition", "explore"))
    if key == "transformer-keras":
        from stlab.models.keras.attention import TransformerNextVisit
    else:
        from stlab.models.torch.attention import TransformerNextVisit
    return TransformerNextVisit(config)


def latency(model, queries, n_single: int, warmup: int = 10) -> dict[str, float]:
    """Milliseconds of ``score`` on one query (p50, p99, mean) and queries/s in calls of 1,024."""
    rows = sample_rows(len(queries), n_single)
    for i in rows[:warmup]:  # warm-up: allocation, kernel selection, graph tracing
        model.score(queries.subset([i]))
    times = []
    for i in rows:
        one = queries.subset([i])
        start = time.perf_counter()
        model.score(one)
        times.append(time.perf_counter() - start)
    ms = 1000 * np.asarray(times)
    model.score(queries.subset(slice(0, BATCHED_CALL)))  # warm-up at the batched size
    start = time.perf_counter()
    for batch in queries.batches(BATCHED_CALL):
        model.score(batch)
    batched = time.perf_counter() - start
    return {"single queries": len(rows), "p50 ms": float(np.percentile(ms, 50)), "p99 ms": float(np.percentile(ms, 99)),
            "mean ms": float(ms.mean()), "batched queries/s": len(queries) / batched}


def train_worker(key: str, epochs: int, device: str, latency_queries: int, llm_queries: int,
                 candidates_path: str | None) -> dict[str, object]:
    """Fit one model (in this process), time its inference, and report its memory."""
    dataset, _, task = build_task()
    rss_task = peak_rss_mib()
    model = make_model(key, epochs, device)
    model.fit(task)
    last = model.history_.iloc[-1]
    test = task.queries("test")
    label, framework, _ = MODELS[key]
    out: dict[str, object] = {
        "data": {"dataset": dataset, "users": task.num_users, "POIs": task.num_pois,
                 **{f"{part} queries": len(task.queries(part)) for part in ("train", "val", "test")}},
        "train": {"model": label, "framework": framework, "epoch s": float(last["seconds"]),
                  "sequences/s": float(last["examples/s"]),
                  "validation MRR": float(model.history_["validation"].max())},
        "latency": {"model": label, "framework": framework, **latency(model, test, latency_queries)},
    }
    if candidates_path:  # the top POIs of the LLM's queries, for the re-ranking worker
        rows = sample_rows(len(test), llm_queries)
        scores = model.score(test.subset(rows))
        top = np.argsort(-scores, axis=1, kind="stable")[:, :CANDIDATES]
        np.savez(candidates_path, rows=rows, top=top)
    out["memory"] = {"process": f"{label} ({framework})", "peak RSS MiB, task built": rss_task,
                     "peak RSS MiB, model loaded": None, "peak RSS MiB": peak_rss_mib(),
                     "CUDA peak MiB": cuda_peak_mib(device)}
    return out


def full_sequence_log_likelihoods(prompt_ids: list[int], candidate_ids: list[list[int]], model) -> np.ndarray:
    """``log P(candidate | prompt)`` with no sharing: the model runs on each candidate's whole
    sequence, prompt included, one candidate at a time."""
    import inspect

    import torch

    device = next(model.parameters()).device
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    totals = []
    with torch.inference_mode():
        for cand in candidate_ids:
            ids = torch.tensor([prompt_ids + cand], dtype=torch.long, device=device)
            keep = {"logits_to_keep": len(cand) + 1} if keep_logits else {}
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **keep).logits[0]
            # rows predicting the candidate's tokens: from the prompt's last one to the one before the end
            logp = torch.log_softmax(logits[-len(cand) - 1:-1].to(torch.float64), dim=-1)
            totals.append(float(logp.gather(-1, torch.tensor(cand, device=device)[:, None]).sum()))
    return np.asarray(totals)


def llm_worker(device: str, candidates_path: str, compare_queries: int) -> dict[str, object]:
    """Load the language model, re-rank the given candidates, compare scoring with and without
    the shared prompt."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from stlab.chapters import venue_names
    from stlab.models.pretrained import causal_lm, llm_rerank, rerank_prompt
    from stlab.models.pretrained.scoring import (
        _ids,
        candidate_log_likelihoods,
        tokenize_candidates,
    )

    dataset, city, task = build_task()
    names = list(venue_names(task.pois["poi_id"], dataset, city=city))
    saved = np.load(candidates_path)
    sample = task.queries("test").subset(saved["rows"])
    top = saved["top"]
    rss_task = peak_rss_mib()

    start = time.perf_counter()
    tokenizer, model = causal_lm(device)
    load_s = time.perf_counter() - start
    rss_loaded = peak_rss_mib()
    llm_rerank(sample.subset([0]), top[:1], poi_names=names, timezone=city.timezone, tokenizer=tokenizer,
               model=model, progress=False)  # warm-up
    start = time.perf_counter()
    llm_rerank(sample, top, poi_names=names, timezone=city.timezone, tokenizer=tokenizer, model=model,
               progress=False)
    per_query = (time.perf_counter() - start) / len(sample)

    # The same prompts as llm_rerank writes (10 most recent visits, a chat template).
    zone = ZoneInfo(city.timezone)
    special = not bool(getattr(tokenizer, "chat_template", None))
    variants: dict[str, list[float]] = {"shared": [], "shared, one at a time": [], "full": []}
    prompt_tokens, candidate_tokens, differences = [], [], []
    for q in range(min(compare_queries, len(sample))):
        pois, times = sample.history_poi[q], sample.history_time[q]
        history = [(names[pois[i]], datetime.fromtimestamp(int(times[i]), tz=zone))
                   for i in np.flatnonzero(pois >= 0)[-10:]]
        candidates = [names[p] for p in top[q]]
        prompt = rerank_prompt(history, datetime.fromtimestamp(int(sample.time[q]), tz=zone), candidates,
                               tokenizer=tokenizer)
        prompt_ids = _ids(tokenizer, prompt, special=special)
        candidate_ids = tokenize_candidates(tokenizer, candidates)
        prompt_tokens.append(len(prompt_ids))
        candidate_tokens.append(np.mean([len(c) for c in candidate_ids]))
        results = {}
        for label, seconds in variants.items():
            start = time.perf_counter()
            if label == "full":
                results[label] = full_sequence_log_likelihoods(prompt_ids, candidate_ids, model)
            else:
                results[label] = candidate_log_likelihoods(
                    prompt, candidates, tokenizer=tokenizer, model=model, add_special_tokens=special,
                    batch_size=CANDIDATES if label == "shared" else 1).total
            seconds.append(time.perf_counter() - start)
        differences.append(float(np.abs(results["full"] - results["shared"]).max()))
    return {"load s": load_s, "per query s": per_query, "queries": len(sample),
            "prompt tokens": float(np.mean(prompt_tokens)), "candidate tokens": float(np.mean(candidate_tokens)),
            "compared queries": len(prompt_tokens), "variants": {k: float(np.mean(v)) for k, v in variants.items()},
            "max |full - shared|": max(differences),
            "memory": {"process": "language model re-ranking", "peak RSS MiB, task built": rss_task,
                       "peak RSS MiB, model loaded": rss_loaded, "peak RSS MiB": peak_rss_mib(),
                       "CUDA peak MiB": cuda_peak_mib(device)}}




def version(*distributions: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    for name in distributions:
        try:
            return installed(name)
        except PackageNotFoundError:
            continue
    return "not installed"


def machine(device: str) -> str:
    """CPU model, cores and library versions, read without importing TensorFlow."""
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").exists() else platform.processor() or platform.machine()
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if device == "cuda" and torch.cuda.is_available() else ""
    return (f"{model} ({platform.machine()}), {os.cpu_count()} CPU cores, {platform.system()}, "
            f"Python {platform.python_version()}; torch {torch.__version__} ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}), "
            f"keras {version('keras')}, TensorFlow {version('tensorflow', 'tensorflow-cpu', 'tensorflow_cpu')}, "
            f"transformers {version('transformers')}{gpu}")


def limit_threads(threads: int) -> dict[str, str]:
    """Caps the thread pools of PyTorch, TensorFlow and BLAS at ``threads`` (0: their defaults);
    returns the environment variables that do it in a new process."""
    if threads <= 0:
        return {}
    import torch

    torch.set_num_threads(threads)
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}


def run_worker(args: argparse.Namespace, worker: str, extra: list[str], backend: str | None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", **limit_threads(args.threads)}
    if backend:
        env["KERAS_BACKEND"] = backend
    command = [sys.executable, __file__, "--worker", worker, "--epochs", str(args.epochs), "--device", args.device,
               "--latency-queries", str(args.latency_queries), "--llm-queries", str(args.llm_queries),
               "--compare-queries", str(args.compare_queries), "--threads", str(args.threads), *extra]
    print(f"running: {worker} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{worker} failed (exit {done.returncode}); its error is printed above")
    print(f"  {worker} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    from stlab.reporting import markdown_table, write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the PyTorch models and the language model)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per model; the last is reported")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--latency-queries", type=int, default=200, help="test queries scored one at a time")
    parser.add_argument("--llm-queries", type=int, default=10, help="test queries re-ranked by the language model "
                                                                     "(0: skip part 3)")
    parser.add_argument("--compare-queries", type=int, default=1,
                        help="of those, queries scored with and without the shared prompt")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per process for PyTorch and TensorFlow (0: their defaults, one per core)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--candidates", help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit_threads(args.threads)
    if args.worker == "llm":
        print(json.dumps(llm_worker(args.device, args.candidates, args.compare_queries)))
        return 0
    if args.worker:  # one model, in a process of its own
        print(json.dumps(train_worker(args.worker, args.epochs, args.device, args.latency_queries,
                                      args.llm_queries, args.candidates)))
        return 0

    keys = args.models.split(",")
    unknown = set(keys) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
    rerank = args.llm_queries > 0
    if rerank and "transformer" not in keys:
        keys.insert(0, "transformer")  # the re-ranker's candidate generator
    load_before = os.getloadavg()[0]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        candidates = str(Path(scratch) / "candidates.npz")
        for key in keys:
            extra = ["--candidates", candidates] if key == "transformer" and rerank else []
            results[key] = run_worker(args, key, extra, MODELS[key][2])
        llm = run_worker(args, "llm", ["--candidates", candidates], None) if rerank else None

    load_after = os.getloadavg()[0]
    data = results[keys[0]]["data"]
    gpu = args.device == "cuda"
    memory = [results[k]["memory"] for k in keys] + ([llm["memory"]] if llm else [])
    for row in memory:
        if not gpu:
            row.pop("CUDA peak MiB")
        if not llm:
            row.pop("peak RSS MiB, model loaded")
    sections = [
        "# Attention models: speed and memory",
        f"Machine: {machine(args.device)}. Device: {args.device}. Data: {data['dataset']} "
        f"({data['users']:,} users, {data['POIs']:,} POIs; {data['train queries']:,} training, "
        f"{data['val queries']:,} validation and {data['test queries']:,} test queries; "
        f"{HISTORY_LEN} check-ins of history). Load average (1 min) {load_before:.1f} before the run, "
        f"{load_after:.1f} after. Command: `python benchmarks/bench_attention.py --device {args.device} "
        f"--epochs {args.epochs} --llm-queries {args.llm_queries}"
        + (f" --threads {args.threads}" if args.threads else "") + "`.",
        f"## Training, one epoch (the last of {args.epochs}; validation excluded)\n\n"
        + markdown_table([results[k]["train"] for k in keys]),
        f"## Full-ranking inference (all {data['POIs']:,} POIs per query)\n\n"
        f"`score` on one test query at a time (p50, p99 and mean over the queries, after 10 warm-up calls), "
        f"and all {data['test queries']:,} test queries in calls of {BATCHED_CALL:,}.\n\n"
        + markdown_table([results[k]["latency"] for k in keys]),
    ]
    if llm:
        variants = llm["variants"]
        labels = {"shared": f"prompt once, {CANDIDATES} candidates in one batch (llm_rerank)",
                  "shared, one at a time": "prompt once, candidates one at a time",
                  "full": "no sharing: each candidate's full sequence"}
        comparison = [{"scoring": labels[k], "s / query": v, "ms / candidate": 1000 * v / CANDIDATES,
                       "x shared": v / variants["shared"]} for k, v in variants.items()]
        sections.append(
            f"## Re-ranking with SmolLM2-135M-Instruct ({CANDIDATES} candidates: the PyTorch Transformer's top "
            f"{CANDIDATES})\n\n"
            + markdown_table([{"load s": llm["load s"], "queries": llm["queries"], "s / query": llm["per query s"],
                         "ms / candidate": 1000 * llm["per query s"] / CANDIDATES,
                         "prompt tokens (mean)": llm["prompt tokens"],
                         "candidate tokens (mean)": llm["candidate tokens"]}])
            + f"\n\nScoring the candidates with and without the shared prompt, on {llm['compared queries']} of "
            f"those queries (largest difference of a candidate's log-likelihood: {llm['max |full - shared|']:.1e}):"
            f"\n\n" + markdown_table(comparison))
    sections.append("## Peak memory of each process\n\n"
                    "`ru_maxrss` once the task was built, "
                    + ("once the language model was loaded " if llm else "") + "and at the end of the process"
                    + ("; `torch.cuda.max_memory_allocated` on the GPU" if gpu else "")
                    + ".\n\n" + markdown_table(memory))
    text = "\n\n".join(sections)
    print(text)


    name = "attention.md" if args.device == "cpu" else f"attention-{args.device}.md"
    write_report(ROOT / "benchmarks" / "results" / name, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
