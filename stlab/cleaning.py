"""Cleaning rules for check-in logs, each reporting how many rows it removes.

Rules, in the order :func:`clean_checkins` applies them (chapter 1 shows each one):

1. exact duplicates -- the same row logged twice;
2. points outside the city's bounding box;
3. rapid repeats -- the same user at the same POI again within ``repeat_window_s``;
4. impossible speeds -- an event that could only be reached from the user's last kept event
   faster than ``max_speed_kmh`` (a GPS jump or a spoofed check-in);
5. iterative k-core -- keep users with at least ``min_user_checkins`` and POIs with at least
   ``min_poi_checkins`` events, repeating until both hold (removing a POI can push a user under
   the threshold and back).

Rules 1-4 judge one row at a time against its neighbours (:func:`clean_rows`), so they can run on
the whole log before a chronological split. The k-core counts events, and counts over the whole
log include the test period: :func:`clean_checkins` applies it to the whole log (a description of
the data, as in chapter 1), while evaluation uses :func:`stlab.splits.clean_and_split`, which
computes the core from training events only.

Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stlab.data import BBox
from stlab.features import haversine_km, same_as_previous


@dataclass(frozen=True)
class CleaningConfig:
    """Thresholds of the cleaning rules.

    Attributes:
        repeat_window_s: (float) seconds within which a second check-in at the same POI by the
            same user counts as a repeat.
        max_speed_kmh: (float) fastest plausible travel between consecutive check-ins.
        min_gap_s: (float) time floor used when computing speeds, so two events in the same
            second do not give an infinite speed.
        bbox: (BBox | None) the city; ``None`` skips the rule.
        min_user_checkins: (int) k-core threshold for users.
        min_poi_checkins: (int) k-core threshold for POIs.
    """

    repeat_window_s: float = 300.0
    max_speed_kmh: float = 300.0
    min_gap_s: float = 60.0
    bbox: BBox | None = None
    min_user_checkins: int = 10
    min_poi_checkins: int = 10


def drop_exact_duplicates(checkins: pd.DataFrame) -> pd.DataFrame:
    """Remove rows identical in every column to an earlier row."""
    return checkins[~checkins.duplicated(keep="first")]


def drop_outside(checkins: pd.DataFrame, bbox: BBox) -> pd.DataFrame:
    """Keep check-ins inside ``bbox``."""
    return checkins[bbox.contains(checkins["lat"].to_numpy(), checkins["lon"].to_numpy())]


def drop_rapid_repeats(checkins: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Remove a check-in if the same user checked in at the same POI less than ``window_s`` ago."""
    ordered = checkins.sort_values(["user_id", "poi_id", "timestamp"], kind="stable")
    same = same_as_previous(ordered["user_id"]) & same_as_previous(ordered["poi_id"])
    gap = ordered["timestamp"].diff().dt.total_seconds().to_numpy()
    repeat = same & (gap < window_s)  # the first row's gap is NaN: never a repeat
    return checkins.loc[ordered.index[~repeat]].sort_values(["user_id", "timestamp"], kind="stable")


def _seconds(timestamps: pd.Series) -> np.ndarray:
    """Unix seconds as float64, whatever the resolution of the datetime column."""
    return pd.DatetimeIndex(timestamps).as_unit("s").asi8.astype(np.float64)


def speeds_kmh(checkins: pd.DataFrame, min_gap_s: float = 60.0) -> np.ndarray:
    """Speed (km/h) from the same user's previous event; ``nan`` for each user's first event.

    Expects check-ins sorted by user then time. Gaps shorter than ``min_gap_s`` count as
    ``min_gap_s``: time stamps are rounded, and two check-ins in one minute are not evidence of
    infinite speed.
    """
    users = checkins["user_id"].to_numpy()
    lat, lon = checkins["lat"].to_numpy(), checkins["lon"].to_numpy()
    t = _seconds(checkins["timestamp"])
    same = users[1:] == users[:-1]
    dist = haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:])
    hours = np.maximum(t[1:] - t[:-1], min_gap_s) / 3600
    return np.r_[np.nan, np.where(same, dist / hours, np.nan)]


def drop_impossible_speeds(checkins: pd.DataFrame, max_speed_kmh: float, min_gap_s: float = 60.0) -> pd.DataFrame:
    """Remove each event that could only be reached from the user's last *kept* event faster than
    ``max_speed_kmh``.

    Comparing with the last kept event, not the previous raw one, matters: after a GPS jump
    A -> J -> B, J is dropped and B is judged from A, so the genuine B survives.
    """
    users = checkins["user_id"].to_numpy()
    lat, lon = checkins["lat"].to_numpy(), checkins["lon"].to_numpy()
    t = _seconds(checkins["timestamp"])
    # Only users with at least one fast step need the sequential pass.
    fast = np.nan_to_num(speeds_kmh(checkins, min_gap_s), nan=0.0) > max_speed_kmh
    keep = np.ones(len(checkins), dtype=bool)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    for start, end in zip(starts, ends, strict=True):
        if not fast[start:end].any():
            continue
        last = start
        for i in range(start + 1, end):
            hours = max(t[i] - t[last], min_gap_s) / 3600
            if haversine_km(lat[last], lon[last], lat[i], lon[i]) / hours > max_speed_kmh:
                keep[i] = False
            else:
                last = i
    return checkins[keep]


def k_core(checkins: pd.DataFrame, min_user_checkins: int, min_poi_checkins: int, max_rounds: int = 100) -> pd.DataFrame:
    """Iteratively keep users and POIs with enough check-ins until both thresholds hold."""
    out = checkins
    for _ in range(max_rounds):
        user_counts = out["user_id"].map(out["user_id"].value_counts())
        poi_counts = out["poi_id"].map(out["poi_id"].value_counts())
        keep = (user_counts >= min_user_checkins) & (poi_counts >= min_poi_checkins)
        if keep.all():
            return out
        out = out[keep]
    return out


def kcore_label(config: CleaningConfig) -> str:
    """The report's name of the k-core rule."""
    return f"k-core (users >= {config.min_user_checkins}, POIs >= {config.min_poi_checkins})"


def report_row(name: str, before: int, after: pd.DataFrame) -> dict[str, object]:
    """One row of a cleaning report: rows before and after a rule, and the users and POIs left."""
    return {"rule": name, "rows_before": before, "removed": before - len(after), "rows_after": len(after),
            "users": after["user_id"].nunique(), "pois": after["poi_id"].nunique()}


def finish_report(rows: list[dict[str, object]], total: int) -> pd.DataFrame:
    """The report table, with each rule's removals as a share of the ``total`` raw rows."""
    report = pd.DataFrame(rows).set_index("rule")
    report["removed_pct"] = (100 * report["removed"] / max(total, 1)).round(2)
    return report


def clean_rows(checkins: pd.DataFrame, config: CleaningConfig = CleaningConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the row rules (1-4), which never count events over the log; no k-core.

    Returns:
        The kept check-ins sorted by user, then time (index reset), and a report with one row per rule.
    """
    return _apply(checkins, _row_steps(config))


def clean_checkins(checkins: pd.DataFrame, config: CleaningConfig = CleaningConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply every rule in order, the k-core over the *whole* log.

    Use this to describe a data set (chapter 1). For evaluation use
    :func:`stlab.splits.clean_and_split`: a k-core over the whole log lets test-period counts
    decide which training events survive.

    Returns:
        The cleaned check-ins (index reset) and a report with one row per rule: rows before,
        rows removed, and the users and POIs left.
    """
    steps = _row_steps(config)
    steps.append((kcore_label(config), lambda d: k_core(d, config.min_user_checkins, config.min_poi_checkins)))
    return _apply(checkins, steps)


def _row_steps(config: CleaningConfig) -> list:
    steps = [("exact duplicates", drop_exact_duplicates)]
    if config.bbox is not None:
        steps.append(("outside the city", lambda d: drop_outside(d, config.bbox)))
    steps += [
        (f"repeats within {config.repeat_window_s:g} s", lambda d: drop_rapid_repeats(d, config.repeat_window_s)),
        (f"speed over {config.max_speed_kmh:g} km/h", lambda d: drop_impossible_speeds(d, config.max_speed_kmh, config.min_gap_s)),
    ]
    return steps


def _apply(checkins: pd.DataFrame, steps: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    current = checkins.sort_values(["user_id", "timestamp"], kind="stable")
    for name, rule in steps:
        before = len(current)
        current = rule(current)
        rows.append(report_row(name, before, current))
    return current.reset_index(drop=True), finish_report(rows, len(checkins))
