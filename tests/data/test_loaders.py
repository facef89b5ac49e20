"""Every loader on small files generated here, registered with their own checksums."""

from __future__ import annotations

import gzip
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from stlab.data import (NYC_BBOX, BBox, DataNotFoundError, load_bike_sharing, load_checkins, load_foursquare,
                        load_gowalla, load_los_loop, load_metr_la_graph, load_montevideo_bus, load_movielens,
                        load_graph_series, load_taobao, read_graph_series, restricted_unpickle, subgraph)
from stlab.data.errors import DataValidationError

GOWALLA_ROWS = (
    "0\t2010-10-12T00:21:28Z\t40.6438845363\t-73.78280639649999\t23261\n"
    "0\t2010-10-11T20:21:20Z\t40.74137425\t-73.9881052167\t16907\n"
    "1\t2010-10-10T10:00:00Z\t40.70\t-74.00\t16907\n"
    "2\t2010-10-10T11:00:00Z\t51.50\t-0.12\t99\n"  # London: outside the NYC box
)


def test_gowalla_nyc_subset(register):
    register("gowalla-nyc", {"gowalla_events_nyc_bbox.tsv.gz": gzip.compress(GOWALLA_ROWS.encode())})
    checkins = load_gowalla("nyc")
    assert len(checkins) == 4 and checkins["user_id"].tolist() == [0, 0, 1, 2]
    assert checkins["timestamp"].is_monotonic_increasing is False  # sorted per user, not globally
    assert checkins.loc[0, "timestamp"] == pd.Timestamp("2010-10-11T20:21:20Z")
    inner = load_gowalla("nyc", bbox=BBox(-74.01, 40.69, -73.98, 40.75))
    assert inner["poi_id"].tolist() == [16907, 16907]


def test_gowalla_nyc_is_cut_from_the_full_file_when_no_subset_exists(register):
    register("gowalla", {"loc-gowalla_totalCheckins.txt": GOWALLA_ROWS.encode()})
    checkins = load_gowalla("nyc")
    assert len(checkins) == 3 and NYC_BBOX.contains(checkins["lat"], checkins["lon"]).all()
    assert len(load_gowalla("full")) == 4


def test_gowalla_missing_everywhere_explains_both():
    with pytest.raises(DataNotFoundError, match="(?s)gowalla-nyc.*worldwide file.*snap.stanford.edu"):
        load_gowalla("nyc")


def test_foursquare_latin1_with_offsets(register):
    text = ("470\t49bbd6c0f964a520f4531fe3\t4bf58dd8d48988d127951735\tArts & Crafts Store\t40.71981\t-74.00258"
            "\t-240\tTue Apr 03 18:00:09 +0000 2012\n"
            "979\t4a43c0aef964a520c6a61fe3\t4bf58dd8d48988d1df941735\tCaf\xe9\t40.60679\t-74.04417\t-240"
            "\tTue Apr 03 18:00:25 +0000 2012\n")
    register("foursquare-tsmc2014", {"dataset_TSMC2014_NYC.txt": text.encode("latin-1")})
    checkins = load_foursquare("NYC")
    assert checkins["category"].tolist() == ["Arts & Crafts Store", "Café"]
    assert checkins["tz_offset_min"].tolist() == [-240, -240]
    assert checkins["timestamp"].iloc[0] == pd.Timestamp("2012-04-03T18:00:09Z")
    assert load_checkins("foursquare-nyc").shape == checkins.shape


def test_taobao(register):
    rows = "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,buy,1511561733\n2,5,6,cart,1511572885\n"
    register("taobao-userbehavior", {"UserBehavior_head.csv": rows.encode()})
    events = load_taobao("head")
    assert events["behavior"].tolist() == ["pv", "buy", "cart"]
    assert list(events["behavior"].cat.categories) == ["pv", "cart", "fav", "buy"]
    assert events["timestamp"].iloc[0] == pd.Timestamp(1511544070, unit="s", tz="UTC")


def test_taobao_unknown_behaviour(register):
    register("taobao-userbehavior", {"UserBehavior_head.csv": b"1,2,3,like,1511544070\n"})
    with pytest.raises(DataValidationError, match="unknown behaviour"):
        load_taobao("head")


def test_movielens_100k(register):
    genres = "unknown|0\nAction|1\nComedy|2\n"
    register("movielens-100k", {
        "u.data": b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
        "u.user": b"196|49|M|writer|55105\n186|39|F|executive|00000\n",
        "u.item": "242|Kolya (1996)|24-Jan-1997||http://x|0|0|1\n302|L.A. Confidential (1997)|01-Jan-1997||http://y|0|1|0\n".encode("latin-1"),
        "u.genre": genres.encode(),
    })
    data = load_movielens("100k")
    assert len(data.ratings) == 2 and data.users["zip_code"].tolist() == ["55105", "00000"]  # leading zeros kept
    assert data.items.loc[0, "Comedy"] and not data.items.loc[0, "Action"]


def test_bike_sharing_hour_and_both_day_layouts(register):
    hour = ("instant,dteday,season,yr,mnth,hr,holiday,weekday,workingday,weathersit,temp,atemp,hum,windspeed,casual,registered,cnt\n"
            "1,2011-01-01,1,0,1,0,0,6,0,1,0.24,0.2879,0.81,0,3,13,16\n"
            "2,2011-01-01,1,0,1,1,0,6,0,1,0.22,0.2727,0.8,0,8,32,40\n")
    day = ("instant,dteday,season,yr,mnth,holiday,weekday,workday,weathersit,tempC,tempF,atemp,hum,windspd,casual,reg,cnt,runsum\n"
           "1,2011-01-01,Winter,0,1,0,6,0,2,0.344167,61.1,0.363625,0.805833,0.160446,331,654,985,985\n")
    register("uci-bike-sharing", {"hour.csv": hour.encode(), "day.csv": day.encode()})
    hourly = load_bike_sharing("hour")
    assert hourly["timestamp"].iloc[1] == pd.Timestamp("2011-01-01 01:00", tz="America/New_York")
    assert hourly["cnt"].tolist() == [16, 40]
    daily = load_bike_sharing("day")
    assert {"workingday", "temp", "windspeed", "registered"} <= set(daily.columns)


def test_montevideo_bus_json_layout(register):
    graph = {"directed": True, "multigraph": False, "graph": {}, "nodes": [
        {"bus_stop": 10, "in_degree": 0, "lon": 589196, "lat": 6151987, "y": [0, 1, 2], "X": {"y": [0, 1, 2]}, "id": 10},
        {"bus_stop": 11, "in_degree": 1, "lon": 589296, "lat": 6151887, "y": [3, 4, 5], "X": {"y": [3, 4, 5]}, "id": 11}],
        "links": [{"weight": 172.2, "source": 10, "target": 11}]}
    register("montevideo-bus", {"montevideo_bus.json": json.dumps(graph).encode()})
    series = load_montevideo_bus()
    assert series.values.shape == (3, 2) and series.values[2, 1] == 5
    assert series.edge_index.tolist() == [[0], [1]] and series.adjacency()[0, 1] == pytest.approx(172.2)


def test_los_loop_masks_zero_speeds(register):
    locations = b"index,sensor_id,latitude,longitude\n0,767541,34.11,-118.23\n1,773869,34.15,-118.31\n"
    register("metr-la", {"los_speed.csv": b"773869,767541\n64.4,0\n62.0,61.5\n", "los_adj.csv": b"0,1\n1,0\n",
                         "graph_sensor_locations.csv": locations})
    series = load_los_loop()
    assert np.isnan(series.values[0, 1]) and series.values[1, 1] == pytest.approx(61.5)
    assert series.node_ids.tolist() == [773869, 767541] and series.edge_index.shape == (2, 2)
    assert series.coords.tolist() == [[-118.31, 34.15], [-118.23, 34.11]]  # longitude, latitude by sensor id


def test_own_network_from_npz(tmp_path):
    values = np.arange(12, dtype=float).reshape(6, 2)
    values[2, 1] = np.nan
    path = tmp_path / "net.npz"
    np.savez(path, values=values, adjacency=np.array([[0, 1], [1, 0]]), node_ids=np.array([7, 9]))
    series = load_graph_series(str(path))
    assert series.values.shape == (6, 2) and np.isnan(series.values[2, 1]) and series.node_ids.tolist() == [7, 9]
    np.savez(tmp_path / "bad.npz", values=values)
    with pytest.raises(DataValidationError, match="lacks \\['adjacency'\\]"):
        load_graph_series(str(tmp_path / "bad.npz"))
    with pytest.raises(DataValidationError, match="no such file"):
        load_graph_series(str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="unknown network"):
        load_graph_series("atlantis")


def test_subgraph_keeps_edges_among_the_chosen_nodes():
    adjacency = np.array([[0, 1, 0], [1, 0, 2], [0, 2, 0]], dtype=float)
    series = read_graph_series(np.arange(9.0).reshape(3, 3), adjacency)
    part = subgraph(series, np.array([1, 2]))
    assert part.values.tolist() == [[1, 2], [4, 5], [7, 8]]
    assert part.adjacency().tolist() == [[0, 2], [2, 0]]


def test_simulated_road_network_is_seeded():
    a, b = load_graph_series("synthetic", smoke=True, seed=3), load_graph_series("synthetic", smoke=True, seed=3)
    assert np.array_equal(a.values, b.values, equal_nan=True) and a.values.shape == (384, 30)
    assert 0 < np.isnan(a.values).mean() < 0.05 and np.allclose(a.adjacency(), a.adjacency().T)


def test_metr_la_pickle_is_read_with_a_restricted_unpickler(register):
    ids = ["773869", "767541"]
    payload = pickle.dumps([ids, {s: i for i, s in enumerate(ids)}, np.array([[1.0, 0.5], [0.2, 1.0]], dtype=np.float32)],
                           protocol=2)
    locations = b"index,sensor_id,latitude,longitude\n0,767541,34.11,-118.23\n1,773869,34.15,-118.31\n"
    register("metr-la", {"adj_mx.pkl": payload, "graph_sensor_locations.csv": locations})
    graph = load_metr_la_graph()
    assert graph.adjacency[0, 1] == pytest.approx(0.5)
    assert graph.locations["sensor_id"].tolist() == ids  # reordered like the adjacency


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


def test_restricted_unpickler_refuses_code():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        restricted_unpickle(pickle.dumps(_Exploit()))


def test_read_graph_series_checks_shapes():
    with pytest.raises(DataValidationError, match="adjacency has shape"):
        read_graph_series(np.zeros((5, 3)), np.zeros((2, 2)))
    with pytest.raises(DataValidationError, match="non-negative"):
        read_graph_series(np.zeros((5, 2)), -np.ones((2, 2)))
    series = read_graph_series(pd.DataFrame(np.ones((4, 2)), columns=["a", "b"]), np.array([[0, 1], [1, 0]]))
    assert series.node_ids.tolist() == ["a", "b"] and series.edge_index.shape == (2, 2)


def test_read_graph_series_refuses_infinite_values_but_keeps_missing_ones():
    values = np.ones((5, 2))
    values[1, 0] = np.nan
    assert np.isnan(read_graph_series(values, np.eye(2)).values[1, 0])
    values[3, 1] = np.inf
    with pytest.raises(DataValidationError, match="(?s)1 infinite value.*time step 3, node 1.*NaN"):
        read_graph_series(values, np.eye(2))


def test_read_graph_series_refuses_node_ids_of_the_wrong_length():
    with pytest.raises(DataValidationError, match=r"(?s)3 node id\(s\).*for 2 nodes.*one id per value column"):
        read_graph_series(np.ones((5, 2)), np.eye(2), node_ids=np.array([7, 8, 9]))
    with pytest.raises(DataValidationError, match="node id"):
        read_graph_series(pd.DataFrame(np.ones((4, 2)), columns=["a", "b"]), np.eye(2), node_ids=["a"])
    with pytest.raises(DataValidationError, match="coordinates"):
        read_graph_series(np.ones((5, 2)), np.eye(2), coords=np.zeros((3, 2)))


def test_load_checkins_dispatch(tmp_path):
    with pytest.raises(ValueError, match="unknown check-in data set"):
        load_checkins("atlantis")
    path = tmp_path / "mine.csv"
    path.write_text("user_id,timestamp,lat,lon,poi_id\n1,2010-10-12T00:21:28Z,40.64,-73.78,5\n")
    assert len(load_checkins(str(path))) == 1


def test_the_data_layer_imports_one_way():
    """No module of stlab.data imports one that imports it back, even lazily inside a function."""
    import ast
    from pathlib import Path

    import stlab.data

    folder = Path(stlab.data.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stlab.data.")}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, {m: graph[m] for m in cycles}
    assert "loaders" not in graph["synthetic"] and "chapters" not in str(graph)
