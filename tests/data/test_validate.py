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


@pytest.mark.parametrize(("row", "column"), [(",2010-10-12T00:21:28Z,40.6,-73.7,5", "user_id"),
                                             ("7,2010-10-12T00:21:28Z,40.6,-73.7,   ", "poi_id")])
def test_blank_ids_are_named_with_their_lines(tmp_path, row, column):
    text = GOOD + row + "\n"
    with pytest.raises(DataValidationError, match=f"(?s)blank '{column}'.*line 4.*Fix"):
        read_checkins(write(tmp_path, text))


def test_string_ids_are_stripped(tmp_path):
    checkins = read_checkins(write(tmp_path, HEADER + " ann ,2010-10-12T00:21:28Z,40.6,-73.7, cafe\n"))
    assert checkins["user_id"].tolist() == ["ann"] and checkins["poi_id"].tolist() == ["cafe"]


MIXED = HEADER + "1,2024-05-02T12:10:00Z,40.75,-73.97,1\n1,2024-05-02 09:10:00,40.75,-73.97,2\n"


def test_zone_less_stamps_mixed_with_zoned_ones_are_localised(tmp_path):
    checkins = read_checkins(write(tmp_path, MIXED), timezone="America/New_York")
    assert checkins["timestamp"].tolist() == [pd.Timestamp("2024-05-02T12:10:00Z"), pd.Timestamp("2024-05-02T13:10:00Z")]


def test_zone_less_stamps_mixed_with_zoned_ones_need_a_timezone(tmp_path):
    with pytest.raises(DataValidationError, match=r"(?s)1 time stamp\(s\) without a time zone \(while 1 other.*line 3.*timezone="):
        read_checkins(write(tmp_path, MIXED))


def test_an_unparseable_stamp_is_called_unparseable(tmp_path):
    with pytest.raises(DataValidationError, match=r"(?s)unparseable time stamp\(s\) \['next tuesday'\] at line 3") as err:
        read_checkins(write(tmp_path, GOOD.replace("2010-10-12T01:00:00Z", "next tuesday")))
    assert "without a time zone" not in str(err.value)


SPRING = HEADER + "1,2024-03-10 01:30:00,40.75,-73.97,1\n1,2024-03-10 02:30:00,40.75,-73.97,2\n"
AUTUMN = HEADER + "1,2024-11-03 00:30:00,40.75,-73.97,1\n1,2024-11-03 01:30:00,40.75,-73.97,2\n"


def test_daylight_saving_gap_has_its_own_error_and_choices(tmp_path):
    path = write(tmp_path, SPRING)
    with pytest.raises(DataValidationError, match="(?s)never happen.*'2024-03-10 02:30:00'.*line 3.*nonexistent='shift_forward'"):
        read_checkins(path, timezone="America/New_York")
    forward = read_checkins(path, timezone="America/New_York", nonexistent="shift_forward")
    assert forward["timestamp"].iloc[1] == pd.Timestamp("2024-03-10T07:00:00Z")  # 03:00 EDT
    backward = read_checkins(path, timezone="America/New_York", nonexistent="shift_backward")
    assert backward["timestamp"].iloc[1] < pd.Timestamp("2024-03-10T07:00:00Z")
    assert len(read_checkins(path, timezone="America/New_York", nonexistent="drop")) == 1


def test_daylight_saving_repeat_has_its_own_error_and_choices(tmp_path):
    path = write(tmp_path, AUTUMN)
    with pytest.raises(DataValidationError, match="(?s)happen twice.*'2024-11-03 01:30:00'.*line 3.*ambiguous='earliest'"):
        read_checkins(path, timezone="America/New_York")
    earliest = read_checkins(path, timezone="America/New_York", ambiguous="earliest")
    latest = read_checkins(path, timezone="America/New_York", ambiguous="latest")
    assert earliest["timestamp"].iloc[1] == pd.Timestamp("2024-11-03T05:30:00Z")  # 01:30 EDT
    assert latest["timestamp"].iloc[1] == pd.Timestamp("2024-11-03T06:30:00Z")  # 01:30 EST
    assert len(read_checkins(path, timezone="America/New_York", ambiguous="drop")) == 1
    with pytest.raises(ValueError, match="ambiguous must be one of"):
        read_checkins(path, timezone="America/New_York", ambiguous="NaT")


SNAP_ROWS = "0\t2010-10-12T00:21:28Z\t40.64\t-73.78\t23261\n0\t2010-10-11T20:21:20Z\t40.74\t-73.99\t16907\n"


def test_a_file_without_a_header_says_so_and_how_to_read_it(tmp_path):
    path = write(tmp_path, SNAP_ROWS, "loc-gowalla_totalCheckins.txt")
    with pytest.raises(DataValidationError, match=r"(?s)header row is missing.*names=\['user_id'.*format='snap'"):
        read_checkins(path)
    snap = read_checkins(path, format="snap")
    assert snap["poi_id"].tolist() == [16907, 23261] and len(snap) == 2
    named = read_checkins(path, names=["user_id", "timestamp", "lat", "lon", "poi_id"])
    pd.testing.assert_frame_equal(named, snap)
    with pytest.raises(DataValidationError, match="4 names given.*5 fields"):
        read_checkins(path, names=["user_id", "timestamp", "lat", "lon"])


def test_snap_format_reads_gzip(tmp_path):
    import gzip

    path = tmp_path / "snap.txt.gz"
    path.write_bytes(gzip.compress(SNAP_ROWS.encode()))
    assert len(read_checkins(path, format="snap")) == 2
