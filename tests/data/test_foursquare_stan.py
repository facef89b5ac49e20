"""Foursquare NYC as STAN publishes it: two .npy files, minutes from an assumed origin."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stlab.data import (CHECKIN_COLUMNS, CHECKIN_DATASETS, REGISTRY, STAN_NYC_ORIGIN, ChecksumError,
                        DataValidationError, load_checkins, load_foursquare_stan)

VISITS = np.array([[2, 3, 61], [1, 2, 1_441], [1, 1, 1], [2, 3, 61]], dtype=np.int32)  # a duplicate row
PLACES = np.array([[1, 40.75, -73.99], [2, 40.70, -74.01], [3, 40.80, -73.95]], dtype=np.float64)


def npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.fixture
def stan(register):
    """Register generated ``NYC.npy`` / ``NYC_POI.npy`` bytes under the real entry."""

    def _stan(visits: bytes | np.ndarray = VISITS, places: bytes | np.ndarray = PLACES) -> None:
        files = {"NYC.npy": visits, "NYC_POI.npy": places}
        register("foursquare-nyc-stan", {k: v if isinstance(v, bytes) else npy(v) for k, v in files.items()})

    return _stan


def test_registry_entry():
    entry = REGISTRY["foursquare-nyc-stan"]
    assert entry.kind == "checkins" and "foursquare-nyc-stan" in CHECKIN_DATASETS
    assert [f.name for f in entry.files] == ["NYC.npy", "NYC_POI.npy"]
    for f in entry.files:
        assert f.sha256 and len(f.sha256) == 64 and f.size
        assert f.url == ("https://raw.githubusercontent.com/yingtaoluo/Spatial-Temporal-Attention-Network-for-POI-"
                         f"Recommendation/8b82f2840e7f435a25398e1d42a835fc4129a4e2/data/{f.name}")
    assert "TSMC" in entry.citation and "WWW 2021" in entry.citation and "2012-04-03 18:00" in entry.notes


def test_schema_time_origin_and_coordinates(stan):
    stan()
    checkins = load_foursquare_stan()
    assert list(checkins.columns) == [c for c in CHECKIN_COLUMNS if c in checkins.columns]
    assert list(checkins.columns) == ["user_id", "poi_id", "timestamp", "lat", "lon"]
    assert str(checkins["timestamp"].dt.tz) == "UTC"
    # sorted by user then time; duplicates kept as published
    assert checkins[["user_id", "poi_id"]].values.tolist() == [[1, 1], [1, 2], [2, 3], [2, 3]]
    assert checkins["timestamp"].tolist() == [STAN_NYC_ORIGIN, STAN_NYC_ORIGIN + pd.Timedelta(days=1),
                                              *[STAN_NYC_ORIGIN + pd.Timedelta(hours=1)] * 2]
    assert STAN_NYC_ORIGIN == pd.Timestamp("2012-04-03T18:00:00Z")
    assert checkins[["lat", "lon"]].values.tolist() == [[40.75, -73.99], [40.70, -74.01], [40.80, -73.95],
                                                       [40.80, -73.95]]
    assert load_checkins("foursquare-nyc-stan").equals(checkins)


def test_another_origin(stan):
    stan()
    local = load_foursquare_stan(origin=pd.Timestamp("2012-04-03 14:00", tz="America/New_York"))
    assert local["timestamp"].iloc[0] == pd.Timestamp("2012-04-03T18:00:00Z")
    shifted = load_checkins("foursquare-nyc-stan", origin="2012-04-04T00:00:00Z")
    assert shifted["timestamp"].iloc[0] == pd.Timestamp("2012-04-04T00:00:00Z")
    with pytest.raises(ValueError, match="no time zone"):
        load_foursquare_stan(origin="2012-04-03 18:00")


@pytest.mark.parametrize("visits, places, message", [
    (VISITS[:, :2], PLACES, r"NYC\.npy: shape \(4, 2\), expected \(rows, 3\)"),
    (VISITS.astype(np.float64), PLACES, r"NYC\.npy: dtype float64, expected integers"),
    (VISITS, PLACES.astype(np.int32), r"NYC_POI\.npy: dtype int32, expected floats"),
    (VISITS, PLACES.ravel(), r"NYC_POI\.npy: shape \(9,\)"),
    (VISITS, PLACES[:2], r"1 POI id\(s\) without coordinates in NYC_POI\.npy, e\.g\. \[3\]"),
])
def test_wrong_shape_or_dtype_is_named_with_the_fix(stan, visits, places, message):
    stan(visits, places)
    with pytest.raises(DataValidationError, match=message) as err:
        load_foursquare_stan()
    assert "Fix:" in str(err.value)


def test_pickles_and_object_arrays_are_refused(stan):
    stan(npy(VISITS.astype(object), allow_pickle=True))
    with pytest.raises(DataValidationError, match=r"(?s)NYC\.npy: not a plain \.npy array.*Fix:"):
        load_foursquare_stan()
    stan(places=pickle.dumps(PLACES))
    with pytest.raises(DataValidationError, match=r"NYC_POI\.npy: not a plain \.npy array"):
        load_foursquare_stan()


def test_checksum_is_checked_on_every_use(stan, tmp_path):
    stan()
    load_foursquare_stan()
    (tmp_path / "local-data" / "foursquare-nyc-stan" / "NYC.npy").write_bytes(npy(VISITS[::-1].copy()))
    with pytest.raises(ChecksumError, match="foursquare-nyc-stan"):
        load_foursquare_stan()


@pytest.mark.real_data
def test_real_files():
    if not (Path(os.environ["STLAB_DATA"]) / "foursquare-nyc-stan" / "NYC.npy").is_file():
        pytest.skip("STLAB_DATA holds no foursquare-nyc-stan/NYC.npy")
    checkins = load_foursquare_stan()
    assert len(checkins) == 147_938
    assert checkins["user_id"].nunique() == 1_083 and checkins["poi_id"].nunique() == 5_135
    first, last = checkins["timestamp"].min(), checkins["timestamp"].max()
    assert first == STAN_NYC_ORIGIN
    assert round((last - first) / pd.Timedelta(days=1), 1) == 318.4
    # the collection's last day in UTC, which is still the evening of 15 February in New York
    assert str(last.date()) == "2013-02-16"
    assert str(last.tz_convert("America/New_York").date()) == "2013-02-15"
    assert checkins.duplicated().sum() == 458
