"""Every bad input named in the data layer's contract gets its own clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from stlab.data import DataNotFoundError, DataValidationError, read_checkins, validate_checkins

HEADER = "user_id,timestamp,lat,lon,poi_id\n"
GOOD = HEADER + "1,2010-10-12T00:21:28Z,40.64,-73.78,23261\n2,2010-10-12T01:00:00Z,40.74,-73.99,16907\n"


def write(tmp_path, text: str, name: str = "log.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_reads_into_the_schema(tmp_path):
    checkins = read_checkins(write(tmp_path, GOOD))
    assert list(checkins.columns) == ["user_id", "poi_id", "timestamp", "lat", "lon"]
    assert str(checkins["timestamp"].dt.tz) == "UTC"
    assert checkins["user_id"].dtype == "int64"


def test_parquet_and_tsv_and_string_ids(tmp_path):
    frame = pd.DataFrame({"user_id": ["a", "b"], "timestamp": pd.to_datetime(["2010-01-01", "2010-01-02"], utc=True),
                          "lat": [40.7, 40.8], "lon": [-74.0, -73.9], "poi_id": ["x", "y"], "category": ["Food", "Park"]})
    frame.to_parquet(tmp_path / "log.parquet")
    assert read_checkins(tmp_path / "log.parquet")["user_id"].tolist() == ["a", "b"]
    tsv = write(tmp_path, GOOD.replace(",", "\t"), "log.tsv")
    assert len(read_checkins(tsv)) == 2


def test_unix_seconds_are_accepted(tmp_path):
    checkins = read_checkins(write(tmp_path, HEADER + "1,1286842888,40.64,-73.78,5\n"))
    assert checkins["timestamp"].iloc[0] == pd.Timestamp("2010-10-12T00:21:28Z")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "empty"),
        (HEADER, "no data rows"),
        ("user_id,timestamp,lat,poi_id\n1,2010-10-12T00:21:28Z,40.6,5\n", r"missing column\(s\) \['lon'\]"),
        (HEADER.strip() + ",mood\n1,2010-10-12T00:21:28Z,40.6,-73.7,5,happy\n", r"unexpected column\(s\) \['mood'\]"),
        (HEADER + "1,2010-10-12T00:21:28Z,north,-73.7,5\n", "'lat' should hold float64 numbers.*line 2"),
        (HEADER + "1,2010-10-12T00:21:28Z,40.6,-73.7,5\n1,yesterday-ish Z,40.6,-73.7,5\n", "unparseable time stamp.*line 3"),
        (HEADER + "1,2010-10-12 08:21:28,40.6,-73.7,5\n", "without a time zone.*line 2.*timezone="),
        (HEADER + "1,2010-10-12T00:21:28Z,140.6,-73.7,5\n", r"lat value\(s\) outside \[-90, 90\].*swapped"),
        (HEADER + "1,2010-10-12T00:21:28Z,40.6,-190.0,5\n", r"lon value\(s\) outside \[-180, 180\]"),
        (GOOD + HEADER + "3,2010-10-12T02:00:00Z,40.7,-73.9,7\n", "header row.*repeated.*line 4"),
        (GOOD + "3,2010-10-12T02:00:00Z,40.7\n", "truncated line.*line 4"),
        (GOOD + "3,2010-10-12T02:00:00Z,40.7,-73.9,7,9,9\n", "line 4 has 7 fields, expected 5"),
    ],
    ids=["empty-file", "header-only", "missing-column", "unexpected-column", "wrong-type", "unparseable-time",
         "zone-less-time", "lat-out-of-range", "lon-out-of-range", "duplicated-header", "truncated-line",
         "too-many-fields"],
)
def test_each_bad_input_has_a_clear_error(tmp_path, text, pattern):
    with pytest.raises(DataValidationError, match=f"(?s){pattern}") as err:
        read_checkins(write(tmp_path, text))
    assert "Fix" in str(err.value) or "empty" in str(err.value) or "no data rows" in str(err.value)


def test_extra_columns_can_be_kept_or_ignored(tmp_path):
    path = write(tmp_path, HEADER.strip() + ",mood\n1,2010-10-12T00:21:28Z,40.6,-73.7,5,happy\n")
    assert "mood" in read_checkins(path, extra="keep").columns
    assert "mood" not in read_checkins(path, extra="ignore").columns


def test_column_mapping_and_timezone(tmp_path):
    path = write(tmp_path, "uid,when,latitude,longitude,venue\n7,2024-05-02 08:10:00,40.75,-73.97,1\n")
    checkins = read_checkins(path, columns={"uid": "user_id", "when": "timestamp", "latitude": "lat",
                                            "longitude": "lon", "venue": "poi_id"}, timezone="America/New_York")
    assert checkins["timestamp"].iloc[0] == pd.Timestamp("2024-05-02T12:10:00Z")


def test_unknown_timezone_is_explained(tmp_path):
    with pytest.raises(DataValidationError, match="timezone='Mars/Olympus'"):
        read_checkins(write(tmp_path, HEADER + "1,2010-10-12 08:21:28,40.6,-73.7,5\n"), timezone="Mars/Olympus")


def test_wrong_encoding_is_explained(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "1,2010-10-12T00:21:28Z,40.6,-73.7,Caf\xe9\n").encode("latin-1"))
    with pytest.raises(DataValidationError, match="encoding='latin-1'"):
        read_checkins(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="no check-in file"):
        read_checkins(tmp_path / "nope.csv")


def test_validate_checkins_rejects_naive_times_and_nulls():
    frame = pd.DataFrame({"user_id": [1], "poi_id": [2], "timestamp": [pd.Timestamp("2010-01-01")],
                          "lat": [40.0], "lon": [-74.0]})
    with pytest.raises(DataValidationError, match="time-zone-aware"):
        validate_checkins(frame)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    frame.loc[0, "lat"] = float("nan")
    with pytest.raises(DataValidationError, match="missing value"):
        validate_checkins(frame)
    with pytest.raises(DataValidationError, match="empty"):
        validate_checkins(frame.iloc[:0])
