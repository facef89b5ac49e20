"""The real data sets in $STLAB_DATA: checksums and the row counts their publishers state."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.data import (REGISTRY, fetch_file, load_bike_sharing, load_gowalla, load_gowalla_venues, load_los_loop,
                        load_metr_la_graph, load_montevideo_bus, load_movielens, load_taobao)

pytestmark = pytest.mark.real_data


def test_every_local_file_matches_the_registry():
    checked = 0
    for dataset in REGISTRY.values():
        for entry in dataset.files:
            if entry.sha256 is None:
                continue
            try:
                fetch_file(dataset, entry.name, download=False)
                checked += 1
            except FileNotFoundError:
                pass
    assert checked >= 19


def test_gowalla_nyc():
    checkins = load_gowalla("nyc")
    assert len(checkins) == 138_957
    assert checkins["user_id"].nunique() == 7_115 and checkins["poi_id"].nunique() == 21_509
    assert str(checkins["timestamp"].min().date()) == "2009-04-23"
    assert len(load_gowalla_venues()) == 30_366


def test_other_real_loaders():
    assert len(load_taobao("head")) == 4_321 and load_taobao("head")["user_id"].nunique() == 43
    assert len(load_taobao("slice")) == 96_168
    movielens = load_movielens("100k")
    assert len(movielens.ratings) == 100_000 and len(movielens.users) == 943 and len(movielens.items) == 1_682
    assert len(load_bike_sharing("hour")) == 17_379 and len(load_bike_sharing("day")) == 731
    bus = load_montevideo_bus()
    assert bus.values.shape == (744, 675) and bus.edge_index.shape == (2, 690)
    speeds = load_los_loop()
    assert speeds.values.shape == (2_016, 207)
    graph = load_metr_la_graph()
    assert graph.adjacency.shape == (207, 207) and np.allclose(np.diag(graph.adjacency), 1.0)
