"""Spatio-temporal features of behaviour logs, computed from the past only.

Every feature of an event uses that event and events *before* it -- never later ones -- so the
same code can build training and evaluation inputs without leaking the future
(``tests/test_features.py`` checks this by deleting future events and recomputing).

Introduced in chapter 2 (Time and place).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088
#: Hours in a day and in a week: the two seasons of hourly behaviour (shared by every module).
HOURS_PER_DAY = 24
HOURS_PER_WEEK = 7 * HOURS_PER_DAY
_GEOHASH_ALPHABET = np.array(list("0123456789bcdefghjkmnpqrstuvwxyz"))


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def cyclic_encode(values: np.ndarray | pd.Series, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Map a periodic quantity onto the unit circle: ``(sin 2 pi v / P, cos 2 pi v / P)``.

    23:00 and 01:00 end up close, as they are in time; a raw hour number puts them 22 apart.
    """
    angle = 2 * np.pi * np.asarray(values, dtype=np.float64) / period
    return np.sin(angle), np.cos(angle)


def clock_features(positions: np.ndarray, periods: Sequence[int]) -> np.ndarray:
    """``[T, 2 P]`` float64 sine and cosine of ``2 pi position / period`` for each period, interleaved.

    The clock inputs of the neural forecasters: ``positions`` are row numbers (or hours of the
    week), ``periods`` for example ``(HOURS_PER_DAY, HOURS_PER_WEEK)`` for hourly rows or
    ``(288,)`` for the time of day of 5-minute rows. Columns are ``sin p1, cos p1, sin p2, ...``
    (:func:`cyclic_encode` of each period); no period gives ``[T, 0]``.

    Used by chapters 6, 7 (:mod:`stlab.models.windows`) and 10 (:mod:`stlab.models.torch.stgraph`).
    """
    positions = np.asarray(positions, dtype=np.float64)
    columns: list[np.ndarray] = []
    for period in periods:
        columns += cyclic_encode(positions, period)
    return np.stack(columns, axis=-1) if columns else np.zeros((len(positions), 0))


def local_times(timestamps: pd.Series, timezone: str | None = None, tz_offset_min: pd.Series | None = None) -> pd.Series:
    """Local wall-clock times (naive) from UTC times, via a zone name or per-event offsets."""
    ts = pd.to_datetime(timestamps, utc=True)
    if tz_offset_min is not None:
        offsets = pd.to_timedelta(pd.Series(tz_offset_min).astype("float64").fillna(0).to_numpy(), unit="min")
        return pd.Series(ts.dt.tz_localize(None).to_numpy() + offsets, index=ts.index)
    if timezone is None:
        return ts.dt.tz_localize(None)
    return ts.dt.tz_convert(timezone).dt.tz_localize(None)


def time_features(timestamps: pd.Series, timezone: str | None = None) -> pd.DataFrame:
    """Calendar features in local time: hour, weekday and season, raw and on the circle.

    Returns:
        ``hour, dayofweek, is_weekend, hour_sin, hour_cos, dow_sin, dow_cos, doy_sin, doy_cos``;
        the hour includes minutes (14:30 -> 14.5) so the circle is continuous.
    """
    local = local_times(timestamps, timezone)
    hour = local.dt.hour + local.dt.minute / 60 + local.dt.second / 3600
    dow = local.dt.day_of_week
    doy = local.dt.day_of_year - 1
    out = pd.DataFrame({"hour": hour, "dayofweek": dow, "is_weekend": dow >= 5}, index=timestamps.index)
    out["hour_sin"], out["hour_cos"] = cyclic_encode(hour, 24)
    out["dow_sin"], out["dow_cos"] = cyclic_encode(dow + hour / 24, 7)
    out["doy_sin"], out["doy_cos"] = cyclic_encode(doy, 365.25)
    return out


def fourier_terms(t: np.ndarray, period: float, order: int, prefix: str = "f") -> pd.DataFrame:
    """Fourier basis ``sin(2 pi k t / P), cos(2 pi k t / P)`` for ``k = 1..order``.

    Args:
        t: times in any unit (for example hours since an origin).
        period: the period in the same unit (24 for daily, 168 for weekly seasonality in hours).
        order: number of harmonics ``K``; ``2K`` columns.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    t = np.asarray(t, dtype=np.float64)
    cols: dict[str, np.ndarray] = {}
    for k in range(1, order + 1):
        cols[f"{prefix}_sin{k}"], cols[f"{prefix}_cos{k}"] = cyclic_encode(k * t, period)
    return pd.DataFrame(cols)


def grid_cells(lat: np.ndarray | pd.Series, lon: np.ndarray | pd.Series, bbox: BBoxLike, grid_size: int) -> np.ndarray:
    """Index of the ``grid_size`` x ``grid_size`` cell of a box holding each point (row-major from
    the south-west corner); ``-1`` for points outside the box."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    row = np.floor((lat - bbox.lat_min) / (bbox.lat_max - bbox.lat_min) * grid_size).astype(np.int64)
    col = np.floor((lon - bbox.lon_min) / (bbox.lon_max - bbox.lon_min) * grid_size).astype(np.int64)
    # Points on the north or east edge belong to the last cell.
    row = np.where(lat == bbox.lat_max, grid_size - 1, row)
    col = np.where(lon == bbox.lon_max, grid_size - 1, col)
    inside = (row >= 0) & (row < grid_size) & (col >= 0) & (col < grid_size)
    return np.where(inside, row * grid_size + col, -1)


def geohash(lat: np.ndarray | pd.Series, lon: np.ndarray | pd.Series, precision: int = 6) -> np.ndarray:
    """Geohash strings (Niemeyer 2008), vectorised: precision 6 ~ 1.2 km x 0.6 km cells.

    Bits alternate longitude, latitude, starting with longitude; each 5 bits form one base-32
    character.
    """
    if not 1 <= precision <= 12:
        raise ValueError(f"precision must be in 1..12, got {precision}")
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    lat_lo, lat_hi = np.full_like(lat, -90.0), np.full_like(lat, 90.0)
    lon_lo, lon_hi = np.full_like(lon, -180.0), np.full_like(lon, 180.0)
    codes = np.zeros((lat.size, precision), dtype=np.int64)
    for bit in range(precision * 5):
        if bit % 2 == 0:
            mid = (lon_lo + lon_hi) / 2
            on = lon >= mid
            lon_lo, lon_hi = np.where(on, mid, lon_lo), np.where(on, lon_hi, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            on = lat >= mid
            lat_lo, lat_hi = np.where(on, mid, lat_lo), np.where(on, lat_hi, mid)
        codes[:, bit // 5] = codes[:, bit // 5] * 2 + on
    chars = _GEOHASH_ALPHABET[codes]
    return np.array(["".join(row) for row in chars], dtype=object)


def same_as_previous(values: pd.Series) -> np.ndarray:
    """``[N]`` bool: whether each value equals the one before it (``False`` for the first).

    Works for any id type -- integers, strings, pandas' nullable dtypes -- without the missing
    value that ``Series.eq(Series.shift())`` gives the first row of a string column.
    """
    array = values.to_numpy()
    return np.r_[False, array[1:] == array[:-1]].astype(bool)


def previous_event_features(checkins: pd.DataFrame) -> pd.DataFrame:
    """Distance (km) and time (s) since the same user's previous event, and whether it was the
    same place. ``NaN`` for each user's first event.

    Expects check-ins sorted by user then time (as loaders return them).
    """
    _require_sorted(checkins)
    same_user = same_as_previous(checkins["user_id"])
    dist = haversine_km(checkins["lat"].shift(), checkins["lon"].shift(), checkins["lat"], checkins["lon"])
    dt = checkins["timestamp"].diff().dt.total_seconds()
    return pd.DataFrame({
        "dist_prev_km": np.where(same_user, dist, np.nan),
        "dt_prev_s": np.where(same_user, dt, np.nan),
        "same_poi_as_prev": same_user & same_as_previous(checkins["poi_id"]),
    }, index=checkins.index)


def revisit_features(checkins: pd.DataFrame) -> pd.DataFrame:
    """How often the user has been at this POI before, and whether this is a return visit."""
    _require_sorted(checkins)
    before = checkins.groupby(["user_id", "poi_id"], sort=False).cumcount()
    return pd.DataFrame({"visits_before": before, "is_revisit": before > 0}, index=checkins.index)


def rolling_counts(checkins: pd.DataFrame, windows: Sequence[str] = ("1D", "7D")) -> pd.DataFrame:
    """Number of the user's events in each trailing window, *excluding* the current one.

    ``closed="left"`` keeps the window strictly before the event, so an event never counts
    itself or anything at or after its own time.
    """
    _require_sorted(checkins)
    out = pd.DataFrame(index=checkins.index)
    frame = pd.DataFrame({"user_id": checkins["user_id"].to_numpy(), "one": 1.0},
                         index=pd.DatetimeIndex(checkins["timestamp"]))
    for window in windows:
        counts = (frame.groupby("user_id", sort=False)["one"]
                  .rolling(window, closed="left").sum().fillna(0.0))
        out[f"events_past_{window}"] = counts.to_numpy().astype(np.int64)
    return out


def spatiotemporal_features(
    checkins: pd.DataFrame,
    *,
    timezone: str | None = None,
    bbox: BBoxLike | None = None,
    grid_size: int = 20,
    geohash_precision: int = 6,
    windows: Sequence[str] = ("1D", "7D"),
) -> pd.DataFrame:
    """All of the above in one table aligned with ``checkins`` (chapter 2's feature set)."""
    parts = [time_features(checkins["timestamp"], timezone), previous_event_features(checkins),
             revisit_features(checkins), rolling_counts(checkins, windows)]
    spatial = pd.DataFrame({"geohash": geohash(checkins["lat"], checkins["lon"], geohash_precision)},
                           index=checkins.index)
    if bbox is not None:
        spatial["grid_cell"] = grid_cells(checkins["lat"], checkins["lon"], bbox, grid_size)
    return pd.concat(parts + [spatial], axis=1)


def _require_sorted(checkins: pd.DataFrame) -> None:
    """Refuse check-ins that are not grouped by user and in time order within each user."""
    users = checkins["user_id"].to_numpy()
    starts = np.r_[True, users[1:] != users[:-1]]
    if pd.Series(users[starts]).duplicated().any():
        raise ValueError("check-ins must be grouped by user and sorted by time within user; "
                         "sort with checkins.sort_values(['user_id', 'timestamp'])")
    ts = pd.DatetimeIndex(checkins["timestamp"]).as_unit("ns").asi8
    if ((ts[1:] < ts[:-1]) & ~starts[1:]).any():
        raise ValueError("check-ins must be sorted by time within each user; "
                         "sort with checkins.sort_values(['user_id', 'timestamp'])")


class BBoxLike(Protocol):
    """Anything with the four edges of a bounding box (such as :class:`stlab.data.BBox`)."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


#: Keyword rules that give Gowalla venues (which carry only a name) a coarse category.
#: First match wins; the order puts specific words before generic ones.
VENUE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Coffee": ("starbucks", "coffee", "cafe", "café", "espresso", "dunkin", "tea "),
    "Transit": ("station", "subway", "terminal", "airport", "jfk", "laguardia", "penn ", "grand central",
                "path ", "ferry", "bus ", "port authority"),
    "Nightlife": (" bar", "pub", "lounge", "tavern", "club", "brewery", "saloon", "beer"),
    "Food": ("restaurant", "pizza", "grill", "diner", "burger", "deli", "bistro", "kitchen", "sushi",
             "taco", "bagel", "bakery", "noodle", "steak", "shack", "chipotle", "mcdonald"),
    "Gym": ("gym", "fitness", "yoga", "equinox", "crunch", "sports club", "ymca"),
    "Park": ("park", "garden", "playground", "pier", "beach", "square"),
    "Arts": ("museum", "theater", "theatre", "gallery", "cinema", "hall", "stadium", "arena"),
    "Shop": ("store", "shop", "mall", "market", "apple", "target", "whole foods", "trader joe", "macy"),
    "Education": ("university", "college", "school", "library", "nyu", "columbia"),
    "Work": ("office", "hq", "headquarters", "inc", "llc", "studio", "building", "tower"),
    "Hotel": ("hotel", "inn", "hostel", "suites"),
    "Home": ("home", "apartment", "apt", "residence"),
}


def keyword_categories(names: pd.Series, keywords: dict[str, tuple[str, ...]] = VENUE_KEYWORDS) -> pd.Series:
    """Coarse categories from venue names by keyword (``"Other"`` when nothing matches).

    A transparent, rough substitute for real categories: it misses and mislabels some venues,
    which chapter 2 measures before using it.
    """
    text = " " + names.astype("string").fillna("").str.lower() + " "
    result = pd.Series("Other", index=names.index, dtype="string")
    assigned = pd.Series(False, index=names.index)
    for category, words in keywords.items():
        pattern = "|".join(re.escape(w) for w in words)
        hit = text.str.contains(pattern, regex=True) & ~assigned
        result[hit] = category
        assigned |= hit
    return result


# --------------------------------------------------------------------------- behaviour logs

def _prior_stats(frame: pd.DataFrame, keys: list[str], label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row: events and positive labels of its ``keys`` group at strictly earlier times.

    ``frame`` must be sorted by time. Rows sharing a time stamp do not see each other: within a
    second the file order is arbitrary, and counting it would leak.
    """
    tmp = frame[keys].copy()
    tmp["_t"] = frame["timestamp"].to_numpy()
    tmp["_y"] = label
    events_before = tmp.groupby(keys, sort=False).cumcount().to_numpy()
    same_time_before = tmp.groupby([*keys, "_t"], sort=False).cumcount().to_numpy()
    positives_incl = tmp.groupby(keys, sort=False)["_y"].cumsum().to_numpy()
    same_time_incl = tmp.groupby([*keys, "_t"], sort=False)["_y"].cumsum().to_numpy()
    return events_before - same_time_before, positives_incl - same_time_incl


def behaviour_features(events: pd.DataFrame, positive: Sequence[str] = ("cart", "fav", "buy"),
                       prior_strength: float = 10.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features from the past of each event of a user x item behaviour log, and its label.

    The label says whether the event is a "strong" action (``positive`` behaviours: cart,
    favourite or buy) rather than a page view. Each feature uses only events at strictly earlier
    times: the user's and the item's and the category's earlier events and their strong-action
    rates (shrunk towards the training-free global prior ``0.1`` with ``prior_strength``
    pseudo-events), how often this user touched this item before, and the log-gap since the
    user's previous event.

    Args:
        events: ``user_id, item_id, category_id, behavior, timestamp`` (as :func:`stlab.data.load_taobao`).

    Returns:
        ``(features, label)``: a table aligned with ``events`` sorted by time, and ``[n]`` 0/1.

    Introduced in chapter 4 (Predicting the next visit), for behaviour-type prediction.
    """
    missing = {"user_id", "item_id", "category_id", "behavior", "timestamp"} - set(events.columns)
    if missing:
        raise ValueError(f"behaviour log lacks column(s) {sorted(missing)}; load it with stlab.data.load_taobao")
    frame = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    label = frame["behavior"].isin(list(positive)).to_numpy().astype(np.int64)
    prior = 0.1
    out = pd.DataFrame(index=frame.index)
    for name, keys in (("user", ["user_id"]), ("item", ["item_id"]), ("category", ["category_id"]),
                       ("user_item", ["user_id", "item_id"])):
        n, pos = _prior_stats(frame, keys, label)
        out[f"{name}_events_before"] = np.log1p(n)
        out[f"{name}_strong_rate"] = (pos + prior_strength * prior) / (n + prior_strength)
    times = pd.DatetimeIndex(frame["timestamp"]).as_unit("s").asi8
    previous = frame.assign(_t=times).groupby("user_id", sort=False)["_t"].shift()
    gap = times - previous.to_numpy(dtype=np.float64, na_value=np.nan)
    out["log_gap_s"] = np.log1p(np.nan_to_num(gap, nan=1e6))  # first event: a long gap
    out["timestamp"] = frame["timestamp"].to_numpy()
    return out, label


#: Behaviour codes of :func:`behaviour_sequences` (0 pads a history).
BEHAVIOUR_CODES = {"pv": 1, "cart": 2, "fav": 3, "buy": 4}


@dataclass(frozen=True)
class BehaviourSequences:
    """Each event's history for a sequence model, aligned with :func:`behaviour_features`.

    ``n`` events, histories of ``L`` earlier events of the same user, left-padded (most recent
    last), all strictly earlier in time than the event they describe.

    Attributes:
        behaviour: ``[n, L]`` int64 :data:`BEHAVIOUR_CODES` of the history events (0 = padding).
        log_gap: ``[n, L]`` float32 ``log1p`` seconds from each history event to the event (0 at padding).
        same_item: ``[n, L]`` float32 1 where the history event touched the event's item.
        same_category: ``[n, L]`` float32 1 where it touched the event's category.
        label: ``[n]`` int64 1 for a strong action (as :func:`behaviour_features`).
        timestamp: ``[n]`` the events' times (for the temporal split).
    """

    behaviour: np.ndarray
    log_gap: np.ndarray
    same_item: np.ndarray
    same_category: np.ndarray
    label: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


def behaviour_sequences(events: pd.DataFrame, history_len: int = 20,
                        positive: Sequence[str] = ("cart", "fav", "buy")) -> BehaviourSequences:
    """The last ``history_len`` earlier events of the same user before each event.

    Rows follow :func:`behaviour_features` (events sorted by time, stably), so its labels and
    this function's agree row by row. The history of an event holds only events at *strictly*
    earlier times: two events in the same second do not see each other (the log cannot say
    which came first). What the history carries about the event itself is only its item and
    category (which a shop knows when the page is requested), never its behaviour.

    Introduced in chapter 8 (Self-attention for the next visit), for behaviour-type prediction.
    """
    missing = {"user_id", "item_id", "category_id", "behavior", "timestamp"} - set(events.columns)
    if missing:
        raise ValueError(f"behaviour log lacks column(s) {sorted(missing)}; load it with stlab.data.load_taobao")
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    unknown = set(events["behavior"].unique()) - set(BEHAVIOUR_CODES)
    if unknown:
        raise ValueError(f"unknown behaviour(s) {sorted(unknown)}; expected {sorted(BEHAVIOUR_CODES)}")
    frame = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    seconds = pd.DatetimeIndex(frame["timestamp"]).as_unit("s").asi8
    user = pd.factorize(frame["user_id"])[0]
    # Sort by user then time (stable, so equal times keep the frame's order); positions index the frame.
    order = np.lexsort((seconds, user))
    user_sorted, seconds_sorted = user[order], seconds[order]
    group_start = np.searchsorted(user_sorted, user_sorted, side="left")
    # Events strictly before each event: the first sorted position with the same user and time.
    key = user_sorted.astype(np.float64) * 1e11 + (seconds_sorted - seconds.min())
    earlier_end = np.searchsorted(key, key, side="left")  # [n] exclusive end of the history
    steps = earlier_end[:, None] - history_len + np.arange(history_len)[None, :]  # [n, L]
    valid = steps >= group_start[:, None]
    history = order[np.where(valid, steps, 0)]  # frame rows of the history events
    codes = frame["behavior"].map(BEHAVIOUR_CODES).to_numpy(dtype=np.int64)
    items, categories = frame["item_id"].to_numpy(), frame["category_id"].to_numpy()
    this = order[:, None]
    gap = (seconds[this] - seconds[history]).astype(np.float64)
    out = np.empty_like(order)
    out[order] = np.arange(len(order))  # back to the frame's row order
    take = lambda a: a[out]  # noqa: E731 -- rows of the sorted arrays in frame order
    return BehaviourSequences(
        behaviour=take(np.where(valid, codes[history], 0)),
        log_gap=take(np.where(valid, np.log1p(np.maximum(gap, 0)), 0.0)).astype(np.float32),
        same_item=take(valid & (items[history] == items[this])).astype(np.float32),
        same_category=take(valid & (categories[history] == categories[this])).astype(np.float32),
        label=frame["behavior"].isin(list(positive)).to_numpy().astype(np.int64),
        timestamp=frame["timestamp"].to_numpy(),
    )
