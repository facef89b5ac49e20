"""Tables of the study, read from a results store: leaderboards with intervals, paired tests,
segments, cost, the effect of the protocol, and our numbers beside the literature's.

Every table uses the *final* runs of each cell: the setting chosen on validation (the best
seed-0 validation score among the cell's candidates), with all its seeds. Per-query values are
averaged over seeds before the bootstrap resamples queries (:mod:`stlab.study.stats`); the spread
across seeds is shown beside the interval, not mixed into it.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stlab.study.grid import family
from stlab.study.stats import (STUDY_KS, bootstrap_intervals, pairwise_comparisons, per_query_metrics, seed_average,
                               seed_spread, segment_masks, segment_table)
from stlab.study.store import ResultsStore

#: The next-visit metrics of the leaderboards, in order.
LEADERBOARD_METRICS = ("Acc@1", "Acc@5", "Acc@10", "NDCG@10", "MRR")


def final_runs(store: ResultsStore, *, kind: str | None = None) -> pd.DataFrame:
    """The runs of each cell's chosen setting (every seed), one row per run.

    Adds ``label`` (the family's name in tables) and ``chosen`` (the setting, as text)."""
    runs = store.runs()
    if runs.empty:
        return runs
    if kind is not None:
        runs = runs[runs["kind"] == kind]
    keep = []
    for (k, _, _, _), cell_runs in runs.groupby(["kind", "dataset", "preset", "model"], sort=False):
        first = cell_runs[cell_runs["seed"] == 0]
        if first.empty:
            continue
        score = first["val_MRR"] if k == "next-visit" else -first["val_MAE"]
        if score.isna().all():
            continue
        # Settings that tie on validation: the runner gave its seeds to the first in the grid's
        # order, which is the tied setting with the most runs here.
        tied = first.loc[score == score.max(), "settings_id"]
        runs_per_setting = cell_runs["settings_id"].value_counts()
        best = max(tied, key=lambda sid: runs_per_setting[sid])
        keep.append(cell_runs[cell_runs["settings_id"] == best])
    if not keep:
        return runs.iloc[:0]
    final = pd.concat(keep, ignore_index=True).sort_values(["kind", "dataset", "preset", "model", "seed"],
                                                           ignore_index=True)
    final["label"] = [family(k, m).label for k, m in zip(final["kind"], final["model"])]
    final["chosen"] = [", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in json.loads(s).items()) or "-" for s in final["settings"]]
    return final


def _per_query(store: ResultsStore, runs: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """label -> ``[S, Q]`` per-query values of ``column`` of each model's runs."""
    values = store.query_values(runs["run_id"].tolist())
    out: dict[str, np.ndarray] = {}
    for label, group in runs.groupby("label", sort=False):
        out[str(label)] = np.stack([values[rid][column].to_numpy() for rid in group["run_id"]])
    lengths = {v.shape[1] for v in out.values()}
    if len(lengths) > 1:
        raise ValueError(f"models were scored on different queries ({sorted(lengths)}); rerun the study with one "
                         "version of the data")
    return out


def _segments(store: ResultsStore, runs: pd.DataFrame) -> pd.DataFrame:
    return store.query_values([runs["run_id"].iloc[0]])[runs["run_id"].iloc[0]]


def leaderboard(store: ResultsStore, dataset: str, preset: str, *, num_resamples: int = 2000, seed: int = 0,
                runs: pd.DataFrame | None = None, metrics: Sequence[str] = LEADERBOARD_METRICS) -> pd.DataFrame:
    """One row per model on ``dataset`` under ``preset``: each of ``metrics`` (MRR always) with
    its 95 % interval (bootstrap over test queries), the spread of MRR across seeds, the chosen
    setting and the cost, best MRR first."""
    metrics = tuple(dict.fromkeys([*metrics, "MRR"]))
    final = runs if runs is not None else final_runs(store, kind="next-visit")
    cell = final[(final["dataset"] == dataset) & (final["preset"] == preset)]
    if cell.empty:
        raise ValueError(f"the store has no next-visit runs of {dataset!r} under {preset!r}")
    ranks = _per_query(store, cell, "rank")
    rows = []
    for label, model_ranks in ranks.items():
        runs_of = cell[cell["label"] == label]
        per_query = per_query_metrics(model_ranks, STUDY_KS)
        intervals = bootstrap_intervals({m: per_query[m] for m in metrics}, num_resamples=num_resamples, seed=seed)
        spread = seed_spread(runs_of["test_MRR"].to_numpy())
        row: dict[str, Any] = {"model": label}
        for metric in metrics:
            row[metric] = intervals.loc[metric, "point"]
            row[f"{metric} low"], row[f"{metric} high"] = intervals.loc[metric, "low"], intervals.loc[metric, "high"]
        row.update({"MRR seed sd": spread["sd"], "seeds": len(runs_of), "chosen": runs_of["chosen"].iloc[0],
                    "fit s": runs_of["fit_seconds"].mean(), "peak MB": runs_of["peak_memory_mb"].max(),
                    "queries": model_ranks.shape[1]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").sort_values("MRR", ascending=False)


def with_intervals(table: pd.DataFrame, metrics: Sequence[str] = LEADERBOARD_METRICS, digits: int = 3) -> pd.DataFrame:
    """The table with ``point [low, high]`` text for each metric (for display)."""
    shown = pd.DataFrame(index=table.index)
    for metric in metrics:
        shown[metric] = [f"{p:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for p, lo, hi in
                         zip(table[metric], table[f"{metric} low"], table[f"{metric} high"])]
    return shown


def comparisons(store: ResultsStore, dataset: str, preset: str, *, metric: str = "MRR", num_resamples: int = 2000,
                seed: int = 0, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every model against the best on ``metric``: paired bootstrap difference, interval, p-values
    with Holm's correction."""
    final = runs if runs is not None else final_runs(store, kind="next-visit")
    cell = final[(final["dataset"] == dataset) & (final["preset"] == preset)]
    ranks = _per_query(store, cell, "rank")
    values = {label: per_query_metrics(r, STUDY_KS)[metric] for label, r in ranks.items()}
    return pairwise_comparisons(values, num_resamples=num_resamples, seed=seed)


def segments(store: ResultsStore, dataset: str, preset: str, *, metric: str = "MRR",
             runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """``metric`` of each model by segment: hour bands, seen / unseen users, return / explore."""
    final = runs if runs is not None else final_runs(store, kind="next-visit")
    cell = final[(final["dataset"] == dataset) & (final["preset"] == preset)]
    ranks = _per_query(store, cell, "rank")
    queries = _segments(store, cell)
    masks = segment_masks(queries["hour"].to_numpy(), user_seen=queries["user_seen"].to_numpy(dtype=bool),
                          returning=queries["returning"].to_numpy(dtype=bool))
    return segment_table({label: per_query_metrics(r, STUDY_KS)[metric] for label, r in ranks.items()}, masks)


def protocol_effect(store: ResultsStore, dataset: str, *, metric: str = "MRR",
                    runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """``metric`` (mean over seeds) of every model under every preset: model x preset."""
    final = runs if runs is not None else final_runs(store, kind="next-visit")
    cell = final[final["dataset"] == dataset]
    return cell.pivot_table(index="label", columns="preset", values=f"test_{metric}", aggfunc="mean")


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and data set: mean fit seconds, peak memory, mean test MRR over presets and seeds."""
    nv = runs[runs["kind"] == "next-visit"]
    return (nv.groupby(["dataset", "label"])
            .agg(fit_s=("fit_seconds", "mean"), peak_mb=("peak_memory_mb", "max"), MRR=("test_MRR", "mean"),
                 runs=("run_id", "count"))
            .rename(columns={"fit_s": "fit s (mean)", "peak_mb": "peak MB"}))


def _minutes(label: str) -> float:
    """``"15 min"`` -> 15, ``"2 h"`` -> 120: how far ahead a step label is."""
    number, unit = label.split()
    return float(number) * (60 if unit == "h" else 1)


def forecast_leaderboard(store: ResultsStore, dataset: str, *, num_resamples: int = 2000, seed: int = 0,
                         runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """MAE at each reported horizon with its 95 % interval (bootstrap over forecast origins),
    and RMSE, one row per model, lowest MAE at the longest horizon first."""
    final = runs if runs is not None else final_runs(store, kind="forecast")
    cell = final[(final["kind"] == "forecast") & (final["dataset"] == dataset)]
    if cell.empty:
        raise ValueError(f"the store has no forecasting runs of {dataset!r}")
    first = store.query_values([cell["run_id"].iloc[0]])[cell["run_id"].iloc[0]]
    steps = sorted((c.split("@", 1)[1] for c in first.columns if c.startswith("abs_error@")), key=_minutes)
    rows = []
    for label, group in cell.groupby("label", sort=False):
        row: dict[str, Any] = {"model": label}
        for step in steps:
            errors = _per_query(store, group, f"abs_error@{step}")[str(label)]
            interval = bootstrap_intervals({"MAE": seed_average(errors)}, num_resamples=num_resamples, seed=seed)
            # The point is the MAE over all points (what chapter 11 reports), averaged over seeds.
            row[f"MAE {step}"] = group[f"test_MAE@{step}"].mean()
            row[f"MAE {step} low"], row[f"MAE {step} high"] = interval.loc["MAE", "low"], interval.loc["MAE", "high"]
            row[f"RMSE {step}"] = group[f"test_RMSE@{step}"].mean()
        row.update({"seeds": len(group), "chosen": group["chosen"].iloc[0], "fit s": group["fit_seconds"].mean()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").sort_values(f"MAE {steps[-1]}")


def _our_metric(name: str) -> str:
    """A published metric's name in the store: ``Recall@5`` -> ``Acc@5``, ``MAE@60min`` -> ``MAE@1 h``."""
    head, _, tail = name.partition("@")
    if tail.endswith("min"):
        minutes = int(tail[:-3])
        return f"{head}@{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{head}@{minutes} min"
    return name


def beside_literature(runs: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The published results of ``protocol`` with ours on the same or the closest data.

    One row per published result (``source`` names its bib key, ``data`` how its data relate to
    ours), then one row per model of the book run under the same preset on that closest data (mean
    over seeds; for forecasting, the ``dcrnn`` protocol is the book's rolling origin on LOS-LOOP).
    Metric columns use the book's names: Recall@k and HitRate@k are Acc@k with one relevant place.
    """
    from stlab.study.literature import book_metrics, published

    entries = published(protocol)
    if not entries:
        raise ValueError(f"no published results under {protocol!r}")
    rows = []
    for e in entries:
        metrics = {_our_metric(k): v for k, v in book_metrics(e.metrics).items()}
        rows.append({"model": e.model, "source": e.source_key, "data": f"{e.dataset} ({e.relation})", **metrics})
    metric_names = [c for c in pd.DataFrame(rows).columns if c not in ("model", "source", "data")]
    closest = entries[0].closest
    if protocol == "dcrnn":
        ours = runs[(runs["kind"] == "forecast") & (runs["dataset"] == closest)]
    else:
        ours = runs[(runs["kind"] == "next-visit") & (runs["dataset"] == closest) & (runs["preset"] == protocol)]
    for label, group in ours.groupby("label", sort=False):
        row = {"model": f"{label} (this book)", "source": "this study", "data": f"{closest}, {len(group)} seeds"}
        row.update({m: group[f"test_{m}"].mean() for m in metric_names if f"test_{m}" in group})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def provenance_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Where and with what the store's runs were made: commits, machines, package versions, grids."""
    return pd.DataFrame({
        "commits": [", ".join(sorted(runs["git_commit"].unique()))],
        "machines": ["; ".join(sorted(runs["machine"].unique()))],
        "grids": [", ".join(sorted(runs["grid"].unique()))],
        "runs": [len(runs)], "run hours": [runs["wall_seconds"].sum() / 3600],
        "packages": [", ".join(f"{k} {v}" for k, v in json.loads(runs["packages"].iloc[0]).items())],
    }).T.rename(columns={0: "value"})


__all__ = ["LEADERBOARD_METRICS", "beside_literature", "comparisons", "cost_table", "final_runs", "forecast_leaderboard", "leaderboard",
           "protocol_effect", "provenance_summary", "segments", "with_intervals"]
