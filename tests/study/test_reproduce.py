"""The book's committed study store is reproduced exactly: one seeded run of each kind is
fitted again on this CPU and must give the stored ranks bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stlab.data import DataNotFoundError
from stlab.study.jobs import Job, run_job
from stlab.study.store import DEFAULT_STORE, ResultsStore, run_id


def stored_runs():
    store = ResultsStore(DEFAULT_STORE)
    runs = store.runs()
    if runs.empty:
        pytest.skip(f"no study store at {DEFAULT_STORE} (make study writes it)")
    return store, runs


def job_of(row) -> Job:
    return Job.from_description({"cell": {"kind": row["kind"], "dataset": row["dataset"], "preset": row["preset"],
                                          "model": row["model"]},
                                 "settings": json.loads(row["settings"]), "seed": int(row["seed"]),
                                 "epochs": int(row["epochs"]), "smoke": bool(row["smoke"]), "timezone": None})


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("model", ["als", "transformer"])
def test_a_stored_run_is_reproduced_exactly(model):
    store, runs = stored_runs()
    mine = runs[(runs["model"] == model) & (runs["seed"] > 0)].sort_values("wall_seconds")
    if mine.empty:
        pytest.skip(f"the store has no {model} run with a seed above 0")
    row = mine.iloc[0]
    job = job_of(row)
    assert run_id(job) == row["run_id"]  # the stored description is the whole job
    try:
        result = run_job(job)
    except DataNotFoundError as error:
        pytest.skip(f"the data of {row['dataset']} are not here: {error}")
    assert result.data_checksum == row["data_checksum"]
    stored = store.query_values([row["run_id"]])[row["run_id"]]
    np.testing.assert_array_equal(result.per_query["rank"], stored["rank"].to_numpy())
    assert result.test_metrics["MRR"] == row["test_MRR"]
    assert result.val_metrics["MRR"] == row["val_MRR"]


def test_the_committed_store_is_complete_and_says_where_it_came_from():
    store, runs = stored_runs()
    assert store.failed() == []
    assert runs["git_commit"].str.fullmatch(r"[0-9a-f]{40}(\+dirty)?").all()
    assert len(store.query_values(runs["run_id"].tolist()[:5])) == 5
    from stlab.study.grid import family
    from stlab.study.report import final_runs

    final = final_runs(store)
    seeds = final.groupby(["kind", "dataset", "preset", "model"])["seed"].nunique()
    for (kind, _, _, model), count in seeds.items():  # the chosen setting of every cell ran with its seeds
        assert count >= (5 if family(kind, model).neural else 3), (kind, model, count)
