"""Every chapter runs on a reader's own data, in smoke mode: a check-in file from another city,
with string ids and zone-less local times (so the chapter must be told the time zone), and a
network of the reader's own as an ``.npz``. Both are generated here, so no data set is needed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .test_chapters import ROOT, execute_with_nbval, smoke_notebook

CHECKIN_CHAPTERS = ["01-behaviour-logs", "02-time-and-place", "03-counting-behaviour", "04-next-visit-baselines",
                    "05-lstm-from-equations", "06-recurrent-keras", "07-recurrent-pytorch", "08-self-attention",
                    "09-pretrained-models",
                    "10-graph-convolutions", "12-the-study", "13-recommending-and-guiding", "14-testing-and-running"]
NETWORK_CHAPTERS = ["11-spatiotemporal-graphs"]


@pytest.fixture(scope="module")
def paris_checkins(tmp_path_factory) -> Path:
    """A small simulated city moved to Paris: ids as strings, times as Paris wall-clock times without a zone."""
    from stlab.chapters import SMOKE_WORLD
    from stlab.data import SyntheticWorld, WorldConfig

    world = SyntheticWorld(WorldConfig(seed=7, **SMOKE_WORLD))  # not the seed the chapters are developed on
    frame = world.checkins.copy()
    frame["lat"] = frame["lat"] - 40.75 + 48.85
    frame["lon"] = frame["lon"] + 73.98 + 2.35
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("Europe/Paris").dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    frame["poi_id"] = "p" + frame["poi_id"].astype(str)
    path = tmp_path_factory.mktemp("own") / "paris.csv"
    frame[["user_id", "timestamp", "lat", "lon", "poi_id"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def own_network(tmp_path_factory) -> Path:
    """A ring of 12 sensors with a daily cycle, noise and missing readings, 10 days of hourly steps."""
    rng = np.random.default_rng(3)
    steps, nodes = 24 * 10, 12
    hour = np.arange(steps)[:, None] % 24
    values = 50 + 20 * np.sin(2 * np.pi * (hour - 8) / 24) + rng.normal(0, 3, (steps, nodes)) + np.arange(nodes)
    values[rng.random(values.shape) < 0.02] = np.nan
    adjacency = np.zeros((nodes, nodes))
    for i in range(nodes):
        adjacency[i, (i + 1) % nodes] = adjacency[(i + 1) % nodes, i] = 1.0
    path = tmp_path_factory.mktemp("own") / "ring.npz"
    np.savez(path, values=values.astype(np.float32), adjacency=adjacency.astype(np.float32))
    return path


def run_chapter(stem: str, parameters: dict, folder: Path) -> None:
    chapter = ROOT / "chapters" / f"{stem}.md"
    (folder / "_admonition").symlink_to(ROOT / "chapters" / "_admonition")
    notebook = smoke_notebook(chapter, folder, parameters)
    env = {key: value for key, value in os.environ.items() if key not in ("STLAB_DATASET", "STLAB_DATA")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    execute_with_nbval(notebook, env, timeout=900)


@pytest.mark.book
@pytest.mark.parametrize("stem", CHECKIN_CHAPTERS)
def test_chapter_runs_on_a_readers_checkin_file(stem, paris_checkins, tmp_path):
    run_chapter(stem, {"dataset": str(paris_checkins), "timezone": "Europe/Paris", "smoke": True, "seed": 0}, tmp_path)


@pytest.mark.book
@pytest.mark.parametrize("stem", NETWORK_CHAPTERS)
def test_chapter_runs_on_a_readers_network(stem, own_network, tmp_path):
    setup = {"minutes_per_step": 60, "window": 12, "horizon": 6, "report_steps": (1, 3, 6), "step": 6, "season": 24,
             "average_season": 24, "unit": "readings"}
    run_chapter(stem, {"dataset": str(own_network), "smoke": True, "seed": 0, **setup}, tmp_path)
