"""Settings, inputs, relation buckets and positions of the space-time Transformer (no framework)."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.features import haversine_km
from stlab.models.attention.config import (
    DISTANCE_EDGE_RANGE_KM,
    TIME_EDGE_RANGE_HOURS,
    TransformerConfig,
    bucketize,
    distance_bucket_edges,
    encode_attention,
    pair_bucket_index,
    pairwise_intervals_and_distances,
    position_index,
    relation_buckets,
    sinusoidal_positions,
    time_bucket_edges,
)
from stlab.models.recurrent import encode_next_visit
from stlab.protocol import build_task
from stlab.splits import temporal_split


@pytest.fixture(scope="module")
def task():
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=10, seed=4))
    checkins, _ = clean_checkins(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3, min_poi_checkins=3))
    return build_task(checkins, temporal_split(checkins), timezone="America/New_York", history_len=6)


def test_bucket_edges_are_log_spaced_between_the_documented_ends():
    for edges_of, (low, high) in ((time_bucket_edges, TIME_EDGE_RANGE_HOURS),
                                  (distance_bucket_edges, DISTANCE_EDGE_RANGE_KM)):
        edges = edges_of(16)
        assert edges.shape == (15,) and edges[0] == pytest.approx(low) and edges[-1] == pytest.approx(high)
        np.testing.assert_allclose(np.diff(np.log(edges)), np.log(high / low) / 14)  # equal steps of log
    edges = time_bucket_edges(4)  # 0.25 h, ~3.9 h, 60 days
    got = bucketize(np.array([0.0, 0.2499, 0.25, 3.0, 1439.9, 1440.0, 1e6]), edges)
    assert got.tolist() == [0, 0, 1, 1, 2, 3, 3]  # an edge belongs to the bucket above it


def test_relation_buckets_of_a_hand_made_history():
    # Three check-ins 10 min, 2 h and 10 days before t, at two places 1 km apart; the query token
    # (last column) stands at the last check-in's place, at t.
    lat0, lon0 = 40.75, -73.99
    lat1 = lat0 + 1.0 / 111.195  # ~1 km north
    hours_before = np.array([[240.0, 2.0, 1 / 6, 0.0]])
    coordinates = np.array([[[lat0, lon0], [lat1, lon0], [lat0, lon0], [lat0, lon0]]])
    time_bucket, distance_bucket = relation_buckets(hours_before, coordinates, time_buckets=16, distance_buckets=16)
    assert time_bucket.shape == distance_bucket.shape == (1, 4, 4) and time_bucket.dtype.kind == "i"
    assert np.array_equal(time_bucket[0], time_bucket[0].T) and np.array_equal(distance_bucket[0], distance_bucket[0].T)
    assert (np.diag(time_bucket[0]) == 0).all() and (np.diag(distance_bucket[0]) == 0).all()
    edges_t, edges_d = time_bucket_edges(16), distance_bucket_edges(16)
    assert time_bucket[0, 3, 2] == 0  # 10 minutes: under the first edge
    assert time_bucket[0, 3, 1] == bucketize(2.0, edges_t) and time_bucket[0, 3, 0] == bucketize(240.0, edges_t)
    assert distance_bucket[0, 3, 2] == 0 and distance_bucket[0, 3, 0] == 0  # the same place
    assert distance_bucket[0, 3, 1] == bucketize(haversine_km(lat0, lon0, lat1, lon0), edges_d) == bucketize(1.0, edges_d)
    hours, km = pairwise_intervals_and_distances(hours_before, coordinates)
    assert hours[0, 0, 1] == pytest.approx(238.0) and km[0, 0, 1] == pytest.approx(1.0, rel=1e-3)
    # The query token's row alone, and the joint index the networks gather with.
    last_time, last_distance = relation_buckets(hours_before, coordinates, query_row_only=True)
    assert np.array_equal(last_time, time_bucket[:, -1:]) and np.array_equal(last_distance, distance_bucket[:, -1:])
    index = pair_bucket_index(hours_before, coordinates, distance_buckets=16)
    assert index.dtype == np.int32 and np.array_equal(index, time_bucket * 16 + distance_bucket)
    assert np.array_equal(pair_bucket_index(hours_before, coordinates, query_row_only=True), index[:, -1:])


def test_encoding_extends_the_recurrent_one(task):
    q = task.queries("test")
    x = encode_attention(task, q)
    base = encode_next_visit(task, q)
    for name in ("poi", "hour_of_week", "continuous", "target_hour_of_week", "target_gap", "visit_counts",
                 "transition_counts", "target"):
        assert np.array_equal(getattr(x, name), getattr(base, name)), name
    assert encode_attention(task, q, counts=False).visit_counts is None
    n, length = q.history_poi.shape
    assert x.hours_before.shape == (n, length + 1) and x.coordinates.shape == (n, length + 1, 2)
    padding = np.concatenate([q.history_poi < 0, np.zeros((n, 1), bool)], axis=1)
    assert (x.hours_before[padding] == 0).all() and (x.coordinates[padding] == 0).all()
    assert (x.hours_before[:, -1] == 0).all() and (x.hours_before[~padding] >= 0).all()
    np.testing.assert_allclose(x.hours_before[:, -2], (q.time - q.prev_time) / 3600.0)
    pois = task.pois[["lat", "lon"]].to_numpy()
    np.testing.assert_array_equal(x.coordinates[:, -1], pois[q.prev_poi])  # the query stands at the last POI
    np.testing.assert_array_equal(x.coordinates[:, -2], pois[q.prev_poi])
    # Histories are oldest first, so the hours before t shrink along each real history.
    real = ~padding[:, :-1]
    hours = np.where(real, x.hours_before[:, :-1], 1e18)
    assert (np.diff(hours, axis=1)[real[:, 1:] & real[:, :-1]] <= 0).all()


def test_sinusoidal_positions_and_position_index():
    table = sinusoidal_positions(21, 64)
    assert table.shape == (21, 64) and table.dtype == np.float32 and np.abs(table).max() <= 1.0
    np.testing.assert_array_equal(table[0], np.tile([0.0, 1.0], 32))  # sin 0, cos 0
    assert table[3, 0] == pytest.approx(np.sin(3.0)) and table[3, 1] == pytest.approx(np.cos(3.0))
    assert sinusoidal_positions(5, 7).shape == (5, 7)  # an odd width drops the last cosine
    assert position_index(4).tolist() == [3, 2, 1, 0]  # counted back from the query token


def test_config_is_validated_and_named():
    config = TransformerConfig()
    assert config.head_dim == config.d_model // config.num_heads
    assert config.describe()["relation_bias"] is True and set(config.describe()) >= {"loss", "components", "lr"}
    assert config.model_name("PyTorch") == "Transformer softmax+ST (PyTorch)"
    assert TransformerConfig(relation_bias=False, loss="bce").model_name("Keras") == "Transformer bce (Keras)"
    mixture = TransformerConfig(components=("explore", "repeat"))
    assert mixture.components == ("repeat", "explore")
    assert mixture.model_name("PyTorch") == "Transformer softmax+ST repeat+explore (PyTorch)"
    for bad, match in (({"d_model": 10, "num_heads": 3}, "divide"), ({"positions": "rotary"}, "positions"),
                       ({"norm": "sandwich"}, "norm"), ({"time_buckets": 1}, "buckets"),
                       ({"components": ("popularity",)}, "components"), ({"components": ()}, "components"),
                       ({"loss": "bpr"}, "loss"), ({"loss": "bce", "components": ("repeat", "explore")}, "bce"),
                       ({"dropout": 1.0}, "dropout"), ({"num_layers": 0}, "num_layers"), ({"patience": -1}, "patience")):
        with pytest.raises(ValueError, match=match):
            TransformerConfig(**bad)
