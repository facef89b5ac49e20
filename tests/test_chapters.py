"""What the chapters share: each data set's city, smoke sizes, and check-ins from a name or a file."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from stlab import chapters
from stlab.chapters import (DATASET_CITY, SMOKE_WORLD, ChapterCheckins, chapter_checkins, chapter_world,
                            infer_bbox)
from stlab.data import NYC_BBOX, BBox


def test_synthetic_city_is_shared_and_registered():
    world = chapter_world(0, True)
    assert world is chapter_world(0, True) and world.config.num_users == SMOKE_WORLD["num_users"]
    city = chapter_checkins("synthetic", seed=0, smoke=True)
    assert isinstance(city, ChapterCheckins)
    assert (city.dataset, city.timezone, city.bbox) == ("synthetic", "America/New_York", NYC_BBOX)
    pd.testing.assert_frame_equal(city.checkins, world.checkins)
    city.checkins.loc[0, "lat"] = 0.0  # a chapter's edits never reach the shared world
    assert world.checkins.loc[0, "lat"] != 0.0


def test_explicit_timezone_and_bbox_win():
    city = chapter_checkins("synthetic", smoke=True, timezone="UTC", bbox=(-74.1, 40.6, -73.8, 40.9))
    assert city.timezone == "UTC" and city.bbox == BBox(-74.1, 40.6, -73.8, 40.9)
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        chapter_checkins("synthetic", smoke=True, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="lon_min, lat_min, lon_max, lat_max"):
        chapter_checkins("synthetic", smoke=True, bbox=(1.0, 2.0))


def test_every_registered_city_has_a_real_zone():
    from zoneinfo import ZoneInfo

    for timezone, _ in DATASET_CITY.values():
        ZoneInfo(timezone)


def paris_log(tmp_path, num_rows=1500):
    """A reader's file: zone-less Paris times, three users, one check-in from a trip to New York."""
    rng = np.random.default_rng(0)
    lines = ["user_id,timestamp,lat,lon,poi_id"]
    for i in range(num_rows):
        lines.append(f"{i % 3},2024-05-{1 + i % 28:02d} 09:{i % 60:02d}:00,{48.85 + rng.normal(0, 0.02):.5f},"
                     f"{2.35 + rng.normal(0, 0.03):.5f},{i % 40}")
    lines.append("0,2024-05-30 09:00:00,40.75,-73.97,99")
    path = tmp_path / "paris.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_needs_its_time_zone(tmp_path):
    path = paris_log(tmp_path, 10)
    with pytest.raises(ValueError, match='(?s)timezone="Europe/Paris".*timezone="UTC"'):
        chapter_checkins(str(path))


def test_a_file_with_its_zone_gets_local_times_and_an_inferred_box(tmp_path):
    path = paris_log(tmp_path)
    city = chapter_checkins(str(path), timezone="Europe/Paris")
    assert city.timezone == "Europe/Paris" and len(city.checkins) == 1501
    first = city.checkins.sort_values("timestamp")["timestamp"].iloc[0]
    assert first == pd.Timestamp("2024-05-01 09:00", tz="Europe/Paris")  # localised, then UTC
    # The trip to New York does not stretch the box over the Atlantic.
    assert 2.0 < city.bbox.lon_min < 2.35 < city.bbox.lon_max < 2.7
    assert 48.6 < city.bbox.lat_min < 48.85 < city.bbox.lat_max < 49.1
    utc = chapter_checkins(str(path), timezone="UTC", bbox=BBox(2.0, 48.0, 3.0, 49.5))
    assert utc.bbox == BBox(2.0, 48.0, 3.0, 49.5)
    assert (utc.checkins["timestamp"] - city.checkins["timestamp"]).dt.total_seconds().eq(7200).all()


def test_smoke_keeps_the_lowest_user_ids_and_the_full_box(tmp_path, monkeypatch):
    path = paris_log(tmp_path)
    full = chapter_checkins(str(path), timezone="Europe/Paris")
    monkeypatch.setattr(chapters, "SMOKE_USERS", 2)
    smoke = chapter_checkins(str(path), timezone="Europe/Paris", smoke=True)
    assert sorted(smoke.checkins["user_id"].unique()) == [0, 1] and smoke.bbox == full.bbox


def test_read_options_reach_the_reader(tmp_path):
    path = tmp_path / "snap.txt"
    path.write_text("0\t2010-10-12T00:21:28Z\t40.64\t-73.78\t23261\n1\t2010-10-11T20:21:20Z\t40.74\t-73.99\t16907\n")
    city = chapter_checkins(str(path), timezone="America/New_York", read_options={"format": "snap"})
    assert len(city.checkins) == 2


def test_registered_data_smoke_slice(register, monkeypatch):
    rows = "".join(f"{u}\t2010-10-1{u}T00:21:28Z\t40.70\t-73.90\t{u}\n" for u in (5, 1, 3))
    register("gowalla-nyc", {"gowalla_events_nyc_bbox.tsv.gz": gzip.compress(rows.encode())})
    monkeypatch.setattr(chapters, "SMOKE_USERS", 2)
    city = chapter_checkins("gowalla-nyc", smoke=True)
    assert city.checkins["user_id"].tolist() == [1, 3]
    assert (city.timezone, city.bbox) == ("America/New_York", NYC_BBOX)


def test_unknown_data_set_is_named():
    with pytest.raises(ValueError, match="unknown check-in data set 'atlantis'"):
        chapter_checkins("atlantis")


def test_infer_bbox_pads_a_single_place():
    box = infer_bbox(pd.DataFrame({"lat": [48.85] * 3, "lon": [2.35] * 3}))
    assert box.lat_min < 48.85 < box.lat_max and box.lon_min < 2.35 < box.lon_max


def test_bike_rentals_fall_back_to_the_simulated_series_when_the_files_are_absent(capsys):
    rentals, simulated = chapters.chapter_bike_rentals("my-own-file.csv", seed=0, num_days=14)
    assert simulated and len(rentals) == 14 * 24 and "not at hand" in capsys.readouterr().out
    rentals, simulated = chapters.chapter_bike_rentals("synthetic", seed=0, num_days=14)
    assert simulated and len(rentals) == 14 * 24


def test_venue_names_for_the_synthetic_city_a_file_and_an_unknown_place(tmp_path):
    synthetic = chapters.venue_names(np.array([0, 1, 10**9]), "synthetic", smoke=True)
    assert synthetic.iloc[0].endswith(f"district {chapter_world(0, True).pois.loc[0, 'neighbourhood']}")
    assert synthetic.iloc[2] == ""  # no such place
    log = pd.DataFrame({"user_id": [1, 2, 3], "poi_id": [7, 7, 8], "name": ["Café Flore", "Café Flore", None]})
    city = ChapterCheckins(checkins=log, dataset="mine.csv", timezone="Europe/Paris", bbox=None)
    named = chapters.venue_names(np.array([8, 7]), "mine.csv", city=city)
    assert named.tolist() == ["", "Café Flore"]


def test_gowalla_venue_names_are_empty_when_the_file_is_absent():
    assert chapters.venue_names(np.array([1, 2]), "gowalla-nyc").tolist() == ["", ""]
