"""The study's grid, store and resumable runner, on a smoke grid of the synthetic city."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stlab.study import grid as grid_module
from stlab.study import runner
from stlab.study.grid import Cell, StudyGrid, candidates, get_grid
from stlab.study.jobs import Job, run_job
from stlab.study.store import ResultsStore, run_id

TINY = get_grid("smoke", presets=("book",), models=("popularity", "markov"), forecast_datasets=(),
                forecast_models=())


def test_candidates_give_every_family_the_same_budget():
    space = {"a": (1, 2, 3), "b": (10, 20)}
    assert len(candidates(space, 4)) == 4 and len(candidates({"a": (1, 2)}, 4)) == 2
    assert candidates(space, 4) == candidates(space, 4)  # fixed
    assert candidates(space, 4, search="random", seed=1) != candidates(space, 4, search="random", seed=2)
    assert candidates({}, 3) == [{}]
    with pytest.raises(ValueError, match="trials must be at least 1"):
        candidates(space, 0)


def test_grid_counts_cells_seeds_and_runs():
    grid = get_grid("default")
    cells = grid.cells()
    skipped_pairs = [entry for entry in grid.skip if entry.count(":") == 1]
    skipped_cells = [entry for entry in grid.skip if entry.count(":") == 2]
    pairs = len(grid.datasets) * len(grid.presets) - len(skipped_pairs)
    assert len(cells) == pairs * len(grid.models) - len(skipped_cells) + len(grid.forecast_models)
    assert not [c for c in cells if f"{c.dataset}:{c.preset}" in grid.skip]
    assert not [c for c in cells if f"{c.dataset}:{c.preset}:{c.model}" in grid.skip]
    # default and large together are the grid the book's store was first made with
    before = StudyGrid(skip=("foursquare-nyc-stan:book", "foursquare-nyc-stan:flashback"))
    assert set(cells) | set(get_grid("large").cells()) == set(before.cells())
    assert grid.seeds_of(Cell("next-visit", "gowalla-nyc", "book", "lstm")) == tuple(range(5))
    assert grid.seeds_of(Cell("next-visit", "gowalla-nyc", "book", "markov")) == tuple(range(3))
    assert get_grid("default", seeds=4).seeds == 4
    with pytest.raises(ValueError, match="unknown grid"):
        get_grid("huge")
    with pytest.raises(ValueError, match="unknown next-visit model"):
        StudyGrid(models=("gpt",))
    with pytest.raises(ValueError, match="unknown protocol preset"):
        StudyGrid(presets=("leaky",))


def test_the_runner_stores_every_run_then_skips_them(tmp_path):
    lines: list[str] = []
    first = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lines.append)
    store = ResultsStore(tmp_path)
    runs = store.runs()
    # markov: 2 candidates at seed 0, then seed 1 of the chosen one; popularity: 1 + 1.
    assert first.finished == len(runs) == 5 and first.failed == 0
    assert set(runs["seed"]) == {0, 1}
    for column in ("git_commit", "data_checksum", "config_hash", "packages", "machine", "wall_seconds",
                   "peak_memory_mb", "settings", "val_MRR", "test_MRR", "test_Acc@10", "test_NDCG@10"):
        assert runs[column].notna().all(), column
    assert runs.groupby("preset")["data_checksum"].nunique().eq(1).all()  # one data set, one protocol
    again = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lines.append)
    assert again.finished == 0 and again.skipped == 5
    assert "5 already in the store (skipped)" in lines[-1]


def test_a_stored_run_is_reproduced_exactly(tmp_path):
    runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    store = ResultsStore(tmp_path)
    row = store.runs().query("model == 'markov' and seed == 1").iloc[0]
    cell = Cell("next-visit", row["dataset"], row["preset"], row["model"])
    job = Job(cell=cell, settings=json.loads(row["settings"]), seed=1, epochs=TINY.epochs, smoke=True)
    assert run_id(job) == row["run_id"]
    result = run_job(job)
    assert result.test_metrics["MRR"] == row["test_MRR"]
    stored = store.query_values([row["run_id"]])[row["run_id"]]
    np.testing.assert_array_equal(result.per_query["rank"], stored["rank"].to_numpy())
    assert result.data_checksum == row["data_checksum"]


def test_the_chosen_setting_is_the_best_on_validation(tmp_path):
    runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    runs = ResultsStore(tmp_path).runs()
    markov = runs[(runs["model"] == "markov") & (runs["seed"] == 0)]
    best = markov.loc[markov["val_MRR"].idxmax(), "settings"]
    assert runs[(runs["model"] == "markov") & (runs["seed"] == 1)]["settings"].tolist() == [best]


def test_failed_runs_are_recorded_and_retried(tmp_path, monkeypatch):
    real = runner.run_job

    def flaky(job):
        if job.cell.model == "markov":
            raise RuntimeError("out of memory")
        return real(job)

    monkeypatch.setattr(runner, "run_job", flaky)
    first = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    store = ResultsStore(tmp_path)
    assert first.failed == 2 and len(store.failed()) == 2
    assert "out of memory" in store.failed()[0]["error"]
    monkeypatch.setattr(runner, "run_job", real)
    second = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    assert second.retried == 2 and second.failed == 0 and store.failed() == []
    assert len(store) == 5


def test_a_run_killed_midway_is_redone(tmp_path):
    runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    store = ResultsStore(tmp_path)
    victim = store.runs()["run_id"].iloc[0]
    (tmp_path / "runs" / f"{victim}.parquet").unlink()  # killed after its per-query file, before its row
    (tmp_path / "runs" / f".{victim}.parquet.abc.tmp").write_bytes(b"half")
    summary = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    assert summary.finished == 1 and summary.skipped == 4 and len(store) == 5


def test_the_store_answers_duckdb_queries(tmp_path):
    assert ResultsStore(tmp_path).runs().empty
    runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    table = ResultsStore(tmp_path).sql("SELECT model, count(*) AS n, avg(test_MRR) AS mrr FROM runs GROUP BY model "
                                       "ORDER BY model")
    assert table["model"].tolist() == ["markov", "popularity"] and table["n"].tolist() == [3, 2]
    with pytest.raises(FileNotFoundError, match="incomplete"):
        ResultsStore(tmp_path).query_values(["missing"])


@pytest.mark.slow
def test_ray_gives_the_same_runs_as_the_local_executor(tmp_path):
    pytest.importorskip("ray")
    runner.run_study(TINY, tmp_path / "local", executor="local", progress=False, log=lambda _: None)
    runner.run_study(TINY, tmp_path / "ray", executor="ray", progress=False, log=lambda _: None)
    local = ResultsStore(tmp_path / "local").runs().set_index("run_id")
    ray = ResultsStore(tmp_path / "ray").runs().set_index("run_id")
    assert list(local.index) == list(ray.index)
    columns = [c for c in local.columns if c.startswith(("test_", "val_"))]
    pd.testing.assert_frame_equal(local[columns], ray[columns])
    from stlab.study.store import git_commit

    assert set(ray["git_commit"]) == {git_commit()}  # the workers ran, and recorded, the driver's code


def test_grid_module_lists_the_registered_models():
    assert {"lstm", "transformer", "markov"} <= set(grid_module.NEXT_VISIT_MODELS)
    assert {"stgcn", "historical-average"} <= set(grid_module.FORECAST_MODELS)


def test_graph_models_skip_single_series_and_the_oracle_needs_the_synthetic_city():
    grid = get_grid("full")
    cells = grid.cells()
    assert not [c for c in cells if c.dataset == "bike-sharing" and c.model in ("stgcn", "tgcn")]
    assert [c for c in cells if c.dataset == "bike-sharing" and c.model == "lstm-per-node"]
    oracle = {c.dataset for c in cells if c.model == "bayes-optimal"}
    assert oracle == {"synthetic"}
    from stlab.study.jobs import next_visit_model

    with pytest.raises(ValueError, match="only the synthetic city"):
        next_visit_model("bayes-optimal", {}, 0, epochs=1, dataset="gowalla-nyc")


@pytest.mark.real_data
def test_a_behaviour_log_is_studied_as_next_item():
    from stlab.study.jobs import behaviour_log

    events = behaviour_log("movielens-100k", smoke=True)
    assert list(events.columns) == ["user_id", "poi_id", "timestamp", "lat", "lon"]
    assert events["user_id"].nunique() == 300 and (events["lat"] == 0).all()
    result = run_job(Job(Cell("next-visit", "movielens-100k", "stan", "markov"), {"smoothing": 1.0}, 0, smoke=True))
    assert 0 < result.test_metrics["MRR"] <= 1 and result.details["test_queries"] > 0
    with pytest.raises(ValueError, match="unknown behaviour log"):
        behaviour_log("netflix")


def test_the_full_gowalla_log_goes_through_duckdb(register, monkeypatch):
    """Under a global preset the study cleans and splits the worldwide file out of core, and gets
    the task the in-memory path gets."""
    from stlab.chapters import chapter_checkins
    from stlab.cleaning import CleaningConfig
    from stlab.study import jobs, presets

    rng = np.random.default_rng(0)
    lines = []
    for user in range(30):
        for k in range(40):
            poi = int(rng.integers(0, 12))
            stamp = pd.Timestamp("2010-01-01", tz="UTC") + pd.Timedelta(hours=7 * k + user % 5)
            lines.append(f"{user}\t{stamp:%Y-%m-%dT%H:%M:%SZ}\t{40.7 + poi / 1000:.6f}\t{-74.0 + poi / 1000:.6f}\t{poi}")
    calls = []
    real = jobs._out_of_core_task
    monkeypatch.setattr(jobs, "_out_of_core_task", lambda *a: calls.append(a[0]) or real(*a))
    register("gowalla", {"loc-gowalla_totalCheckins.txt": ("\n".join(lines) + "\n").encode()})
    jobs.next_visit_task.cache_clear()
    task = jobs.next_visit_task("gowalla", "book")
    cleaning = CleaningConfig(min_user_checkins=jobs.MIN_CHECKINS, min_poi_checkins=jobs.MIN_CHECKINS)
    expected = presets.prepare_task(chapter_checkins("gowalla").checkins, "book", cleaning=cleaning)
    jobs.next_visit_task.cache_clear()
    assert calls == ["gowalla"]
    np.testing.assert_array_equal(task.queries("test").target, expected.queries("test").target)
    np.testing.assert_array_equal(task.queries("val").history_poi, expected.queries("val").history_poi)
    assert len(task.queries("test")) > 0


def test_a_compacted_store_reads_resumes_and_keeps_the_chosen_runs(tmp_path):
    from stlab.study.report import final_runs, leaderboard

    runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    store = ResultsStore(tmp_path)
    before = leaderboard(store, "synthetic", "book", num_resamples=200)
    chosen = set(final_runs(store)["run_id"])
    assert store.compact(keep_queries=chosen) == {"runs": 5, "runs with queries": len(chosen)}
    assert len(list((tmp_path / "runs").glob("*.parquet"))) == 1 == len(list((tmp_path / "queries").glob("*.parquet")))
    assert len(store) == 5 and len(store.runs()) == 5
    pd.testing.assert_frame_equal(leaderboard(store, "synthetic", "book", num_resamples=200), before)
    again = runner.run_study(TINY, tmp_path, executor="local", progress=False, log=lambda _: None)
    assert again.finished == 0 and again.skipped == 5
    dropped = sorted(set(store.runs()["run_id"]) - chosen)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        store.query_values(dropped[:1])
