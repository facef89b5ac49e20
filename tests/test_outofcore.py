"""The DuckDB pipeline gives exactly what the pandas one gives, writes atomically, and names bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stlab.cleaning import CleaningConfig
from stlab.data import NYC_BBOX, DataNotFoundError, DataValidationError
from stlab.outofcore import OutOfCoreSplit, _Run, clean_and_split_duckdb
from stlab.splits import clean_and_split

START = pd.Timestamp("2024-01-01", tz="UTC")


def _messy_log(seed: int = 0, *, users: int = 60, pois: int = 40, events: int = 2500, poi_kind: str = "int",
               unit: str = "us") -> pd.DataFrame:
    """A month of check-ins in New York with every kind of problem the rules look for, shuffled."""
    rng = np.random.default_rng(seed)
    poi_lat, poi_lon = rng.uniform(40.60, 40.85, pois + 3), rng.uniform(-74.05, -73.80, pois + 3)

    def at(user, poi, seconds):
        poi = np.asarray(poi)
        return pd.DataFrame({"user_id": np.asarray(user), "poi_id": poi,
                             "timestamp": START + pd.to_timedelta(np.asarray(seconds), unit="s"),
                             "lat": poi_lat[poi], "lon": poi_lon[poi]})

    def later(n):
        return rng.integers(27 * 86400, 30 * 86400, n)

    base = at(rng.integers(0, users, events), np.minimum(rng.zipf(1.6, events) - 1, pois - 1),
              rng.integers(0, 30 * 86400, events))

    def pick(n):
        return base.iloc[rng.integers(0, len(base), n)].copy()

    duplicates = pick(60)
    repeats = pick(80)
    repeats["timestamp"] += pd.to_timedelta(rng.integers(0, 400, 80), unit="s")  # some within 300 s
    same_time = pick(40)
    same_time["lat"] += 1e-4  # same user, POI and second, other coordinates: the first in the file stays
    other_poi = pick(40)
    other_poi["poi_id"] = (other_poi["poi_id"] + 1) % pois  # same user and second at another POI
    other_poi["lat"], other_poi["lon"] = poi_lat[other_poi["poi_id"]], poi_lon[other_poi["poi_id"]]
    jumps = pick(40)
    jumps["timestamp"] += pd.to_timedelta(rng.integers(0, 240, 40), unit="s")
    jumps["lat"] += 0.09  # 10 km within four minutes: too fast
    outside = pick(30)
    outside["lat"] += 2.0
    sparse = at(np.repeat(users + np.arange(8), 4), rng.integers(0, 3, 32),  # too few training events:
                np.where(np.tile([True, True, False, False], 8), rng.integers(0, 86400, 32), later(32)))
    newcomers = at(users + 10 + rng.integers(0, 5, 50), rng.integers(0, 5, 50), later(50))
    new_places = at(rng.integers(0, users, 30), pois + rng.integers(0, 3, 30), later(30))
    log = pd.concat([base, duplicates, repeats, same_time, other_poi, jumps, outside, sparse, newcomers,
                     new_places], ignore_index=True)
    log = log.iloc[rng.permutation(len(log))].reset_index(drop=True)
    log["category"] = pd.Series(np.where(rng.random(len(log)) < 0.02, "bar", "cafe"), dtype="str")
    if poi_kind == "str":
        log["poi_id"] = ("p" + log["poi_id"].astype(str)).astype("str")
    log["timestamp"] = log["timestamp"].dt.as_unit(unit)
    return log


CONFIG = CleaningConfig(bbox=NYC_BBOX, min_user_checkins=5, min_poi_checkins=5)


def _assert_same(result: OutOfCoreSplit, expected: tuple) -> None:
    kept, split, report = expected
    pd.testing.assert_frame_equal(result.report, report)
    got_kept, got = result.load()
    pd.testing.assert_frame_equal(got_kept, kept)
    for part in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(got, part), getattr(split, part))
        assert result.rows[part] == len(getattr(split, part))
    pd.testing.assert_series_equal(got.train_end, split.train_end, check_dtype=False)
    pd.testing.assert_series_equal(got.val_end, split.val_end, check_dtype=False)
    assert result.train_end == split.train_end.iloc[0] and result.val_end == split.val_end.iloc[0]
    assert result.rows["kept"] == len(kept)


@pytest.mark.parametrize("seed, options, config, cutoffs", [
    (0, {}, CONFIG, {}),
    (1, {"poi_kind": "str", "unit": "ns"}, CONFIG, {}),
    (2, {}, CleaningConfig(min_user_checkins=3, min_poi_checkins=8, repeat_window_s=90.0, max_speed_kmh=60.0), {}),
    (3, {"poi_kind": "str"}, CleaningConfig(min_user_checkins=4, min_poi_checkins=4, repeat_window_s=0,
                                            max_speed_kmh=1e9), {"train_end": "2024-01-20", "val_end": "2024-01-25"}),
])
def test_duckdb_matches_pandas_exactly(tmp_path, seed, options, config, cutoffs):
    log = _messy_log(seed, **options)
    log.to_parquet(tmp_path / "log.parquet")
    expected = clean_and_split(log, config, **cutoffs)
    result = clean_and_split_duckdb(tmp_path / "log.parquet", tmp_path / "out", config, batch_rows=97, **cutoffs)
    _assert_same(result, expected)
    report = result.report
    if config is CONFIG:  # every rule had work to do
        assert (report["removed"] > 0).all(), report
    _assert_same(OutOfCoreSplit.read(tmp_path / "out"), expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "report.csv", "split.json", "test.parquet", "train.parquet", "val.parquet"]


def test_text_files_match_too(tmp_path):
    log = _messy_log(4)
    expected = clean_and_split(log, CONFIG)
    renamed = log.rename(columns={"poi_id": "venue", "timestamp": "time"})
    renamed.assign(time=renamed["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        tmp_path / "log.tsv.gz", sep="\t", index=False)
    result = clean_and_split_duckdb(tmp_path / "log.tsv.gz", tmp_path / "out", CONFIG,
                                    columns={"venue": "poi_id", "time": "timestamp"})
    _assert_same(result, expected)

    snap = log[["user_id", "timestamp", "lat", "lon", "poi_id"]]  # SNAP's layout, no header row
    snap.assign(timestamp=snap["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        tmp_path / "snap.txt", sep="\t", index=False, header=False)
    kept, _, report = clean_and_split(snap, CONFIG)
    result = clean_and_split_duckdb(tmp_path / "snap.txt", tmp_path / "snap", CONFIG, format="snap")
    pd.testing.assert_frame_equal(result.report, report)
    pd.testing.assert_frame_equal(result.load()[0], kept)



def test_a_glob_reads_its_files_in_name_order(tmp_path):
    log = _messy_log(7)
    (tmp_path / "log").mkdir()
    for i, chunk in enumerate((log.iloc[:1000], log.iloc[1000:2000], log.iloc[2000:])):
        chunk.to_parquet(tmp_path / "log" / f"part-{i}.parquet")
    result = clean_and_split_duckdb(tmp_path / "log" / "part-*.parquet", tmp_path / "out", CONFIG)
    _assert_same(result, clean_and_split(log, CONFIG))

def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_interrupted_run_leaves_the_previous_result_whole(tmp_path, monkeypatch):
    _messy_log(5).to_parquet(tmp_path / "log.parquet")
    out = tmp_path / "out"
    clean_and_split_duckdb(tmp_path / "log.parquet", out, CONFIG)
    before = _files(out)
    written = []

    def failing_write(self, index, path):
        if index == 2:
            raise OSError("disk full")
        written.append(path.name)
        original(self, index, path)

    original = _Run.write_part
    monkeypatch.setattr(_Run, "write_part", failing_write)
    for folder in (out, tmp_path / "fresh"):
        with pytest.raises(OSError, match="disk full"):
            clean_and_split_duckdb(tmp_path / "log.parquet", folder, CleaningConfig(min_user_checkins=3))
    assert written and all(name.startswith(".") and name.endswith(".part") for name in written)
    assert _files(out) == before  # no part replaced, nothing left behind (temporary files, DuckDB's folder)
    assert list((tmp_path / "fresh").iterdir()) == []


def test_bad_input_is_named_with_its_fix(tmp_path):
    good = _messy_log(6)
    out = tmp_path / "out"
    with pytest.raises(DataNotFoundError, match="no check-in file"):
        clean_and_split_duckdb(tmp_path / "missing.parquet", out)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        clean_and_split_duckdb(tmp_path / "empty.csv", out)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataValidationError, match="cannot read it.*\nFix"):
        clean_and_split_duckdb(tmp_path / "broken.parquet", out)
    good.drop(columns="lat").to_parquet(tmp_path / "no_lat.parquet")
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['lat'\].*\nFix.*columns="):
        clean_and_split_duckdb(tmp_path / "no_lat.parquet", out)
    good.to_csv(tmp_path / "headless.csv", index=False, header=False)
    with pytest.raises(DataValidationError, match="names="):
        clean_and_split_duckdb(tmp_path / "headless.csv", out)
    good.assign(timestamp=good["timestamp"].dt.tz_localize(None)).to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(DataValidationError, match="no zone"):
        clean_and_split_duckdb(tmp_path / "naive.parquet", out)
    local = good["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    good.assign(timestamp=local).to_csv(tmp_path / "local.csv", index=False)
    with pytest.raises(DataValidationError, match="zone-less time stamps.*row 0.*\nFix.*'Z'"):
        clean_and_split_duckdb(tmp_path / "local.csv", out)
    good.assign(timestamp=local.where(good.index == 3, local + "Z")).to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(DataValidationError, match="1 missing, unparseable or zone-less time stamps.*row 3"):
        clean_and_split_duckdb(tmp_path / "mixed.csv", out)
    good.assign(lon=good["lon"].where(good.index != 7)).to_parquet(tmp_path / "gap.parquet")
    with pytest.raises(DataValidationError, match="1 missing or non-numeric values in 'lon' .*row 7"):
        clean_and_split_duckdb(tmp_path / "gap.parquet", out)
    good.assign(lat=good["lat"].where(good.index != 5, 140.0)).to_parquet(tmp_path / "swapped.parquet")
    with pytest.raises(DataValidationError, match="1 lat value.*outside.*row 5.*\nFix.*swapped"):
        clean_and_split_duckdb(tmp_path / "swapped.parquet", out)
    good.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(ValueError, match="no training events survive the k-core.*lower min_user_checkins"):
        clean_and_split_duckdb(tmp_path / "log.parquet", out, CleaningConfig(min_user_checkins=10_000))
    far_away = CleaningConfig(bbox=type(NYC_BBOX)(lon_min=0.0, lat_min=0.0, lon_max=1.0, lat_max=1.0))
    with pytest.raises(ValueError, match="empty check-in table"):
        clean_and_split_duckdb(tmp_path / "log.parquet", out, far_away)
    with pytest.raises(ValueError, match="val_frac"):
        clean_and_split_duckdb(tmp_path / "log.parquet", out, test_frac=0.0)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(DataNotFoundError, match="no split.json"):
        OutOfCoreSplit.read(out)
