"""Chronological splits that keep the future out of training.

Two protocols (chapter 2):

* :func:`temporal_split` -- one global cutoff in time: everything before ``train_end`` trains,
  everything after evaluates. No training event comes after any evaluation event, for any
  user: the protocol closest to deployment, and the book's default.
* :func:`per_user_split` -- each user's last events evaluate ("leave last out"), as many
  papers do. Within a user the future stays out, but one user's test event may precede
  another user's training event, so popularity learnt in training can see the test period.

Introduced in chapter 2 (Time and place); every later chapter evaluates on these splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Train, validation and test events, and where they were cut.

    Attributes:
        train, val, test: disjoint check-in tables.
        train_end: per user (indexed by ``user_id``), the time at or after which events are
            not training events (a single value repeated for a global split).
        val_end: per user, the time at or after which events are test events.
        protocol: ``"temporal"`` or ``"per_user"``.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Series
    val_end: pd.Series
    protocol: str

    def summary(self) -> pd.DataFrame:
        """Rows, users, POIs and time range of each part."""
        rows = []
        for name, part in (("train", self.train), ("val", self.val), ("test", self.test)):
            rows.append({"part": name, "events": len(part), "users": part["user_id"].nunique(),
                         "pois": part["poi_id"].nunique(),
                         "from": part["timestamp"].min() if len(part) else pd.NaT,
                         "to": part["timestamp"].max() if len(part) else pd.NaT})
        return pd.DataFrame(rows).set_index("part")


def _check_fractions(val_frac: float, test_frac: float) -> None:
    if not (0 <= val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"need 0 <= val_frac, 0 < test_frac and val_frac + test_frac < 1; "
                         f"got {val_frac}, {test_frac}")


def temporal_split(
    checkins: pd.DataFrame,
    val_frac: float = 0.1,
    test_frac: float = 0.2,
    *,
    train_end: pd.Timestamp | str | None = None,
    val_end: pd.Timestamp | str | None = None,
) -> Split:
    """Split at global time cutoffs: by event-count quantiles, or at the times given.

    Events at exactly a cutoff go to the later part, so ``train.timestamp < train_end <=
    val.timestamp < val_end <= test.timestamp``.
    """
    _check_fractions(val_frac, test_frac)
    ts = checkins["timestamp"]
    if train_end is None or val_end is None:
        ordered = ts.sort_values(ignore_index=True)
        n = len(ordered)
        t1 = ordered.iloc[int(n * (1 - val_frac - test_frac))].tz_convert("UTC")
        t2 = ordered.iloc[min(int(n * (1 - test_frac)), n - 1)].tz_convert("UTC")
    else:
        t1, t2 = pd.Timestamp(train_end), pd.Timestamp(val_end)
        t1 = t1 if t1.tzinfo else t1.tz_localize("UTC")
        t2 = t2 if t2.tzinfo else t2.tz_localize("UTC")
        if t2 < t1:
            raise ValueError(f"val_end {t2} is before train_end {t1}")
    users = pd.Index(checkins["user_id"].unique(), name="user_id")
    return Split(
        train=checkins[ts < t1], val=checkins[(ts >= t1) & (ts < t2)], test=checkins[ts >= t2],
        train_end=pd.Series(t1, index=users), val_end=pd.Series(t2, index=users), protocol="temporal",
    )


def per_user_split(checkins: pd.DataFrame, val_frac: float = 0.1, test_frac: float = 0.2, *,
                   min_train: int = 1) -> Split:
    """Each user's events in time order: the first part trains, the last ``test_frac`` tests.

    Users with too few events to give ``min_train`` training events and one test event keep all
    their events in training.
    """
    _check_fractions(val_frac, test_frac)
    ordered = checkins.sort_values(["user_id", "timestamp"], kind="stable")
    position = ordered.groupby("user_id", sort=False).cumcount().to_numpy()
    size = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    n_test = np.floor(size * test_frac).astype(int)
    n_val = np.floor(size * val_frac).astype(int)
    n_test = np.where((size - n_test - n_val >= min_train) & (n_test == 0) & (size > min_train), 1, n_test)
    n_train = size - n_val - n_test
    too_small = n_train < min_train
    n_train = np.where(too_small, size, n_train)
    n_val = np.where(too_small, 0, n_val)
    part = np.where(position < n_train, 0, np.where(position < n_train + n_val, 1, 2))
    train, val, test = (ordered[part == k] for k in range(3))
    # A user's cutoff is the time of their first non-training (first test) event; +inf if none.
    far = pd.Timestamp.max.tz_localize("UTC")
    train_end = pd.concat([val, test]).groupby("user_id")["timestamp"].min() if len(val) + len(test) else pd.Series(dtype=ordered["timestamp"].dtype)
    val_end = test.groupby("user_id")["timestamp"].min()
    users = pd.Index(ordered["user_id"].unique(), name="user_id")
    return Split(train=train, val=val, test=test,
                 train_end=train_end.reindex(users).fillna(far), val_end=val_end.reindex(users).fillna(far),
                 protocol="per_user")


def _ns(times: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch, for fast comparisons of zone-aware times."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def assert_no_leakage(split: Split) -> None:
    """Raise ``AssertionError`` if any evaluation event precedes its cutoff, or any training
    event comes after it (a tie at the cutoff is allowed: events in the same second)."""
    for name, part, cutoff in (("val", split.val, split.train_end), ("test", split.test, split.val_end)):
        if len(part):
            early = _ns(part["timestamp"]) < _ns(cutoff.reindex(part["user_id"]))
            if early.any():
                raise AssertionError(f"{early.sum()} {name} event(s) precede their cutoff")
    if len(split.train):
        late = _ns(split.train["timestamp"]) > _ns(split.train_end.reindex(split.train["user_id"]))
        if late.any():
            raise AssertionError(f"{late.sum()} training event(s) after their cutoff")
