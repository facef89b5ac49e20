"""Series builders: complete hourly clocks, filled as documented."""

from __future__ import annotations

import pandas as pd

from stlab.data import NYC_BBOX
from stlab.data.series import hourly_bike_series, region_hour_counts, synthetic_rentals



def test_region_hour_counts_is_complete_and_in_local_time():
    times = pd.to_datetime(["2010-03-14 05:30", "2010-03-14 07:10", "2010-03-14 07:20"], utc=True)
    checkins = pd.DataFrame({"timestamp": times, "lat": [40.7, 40.7, 40.88], "lon": [-74.0, -74.0, -73.75]})
    counts = region_hour_counts(checkins, NYC_BBOX, grid_size=4, timezone="America/New_York")
    assert counts.index.freq == "h" and str(counts.index.tz) == "America/New_York"
    assert len(counts) == 3 and counts.to_numpy().sum() == 3  # 05, 06, 07 UTC; DST begins in between
    assert list(counts.index.hour) == [0, 1, 3]


def test_hourly_bike_series_fills_missing_hours():
    table = pd.DataFrame({
        "timestamp": pd.to_datetime(["2011-01-01 00:00", "2011-01-01 02:00", None]).tz_localize("America/New_York"),
        "season": 1, "yr": 0, "mnth": 1, "hr": [0, 2, 3], "holiday": 0, "weekday": 6, "workingday": 0,
        "weathersit": [1, 2, 2], "temp": [0.2, 0.3, 0.4], "atemp": 0.2, "hum": 0.5, "windspeed": 0.1,
        "casual": [1, 2, 3], "registered": [4, 5, 6], "cnt": [5, 7, 9]})
    series = hourly_bike_series(table)
    assert list(series["cnt"]) == [5, 0, 7, 9] and list(series["observed"]) == [True, False, True, True]
    assert series["temp"].iloc[1] == 0.2 and series.index.freq == "h"
    assert synthetic_rentals(14).index.freq == "h"
