"""Chronological splits that keep the future out of training.

Two protocols (chapter 2):

* :func:`temporal_split` -- one global cutoff in time: everything before ``train_end`` trains,
  everything after evaluates. No training event comes after any evaluation event, for any
  user: the protocol closest to deployment, and the book's default.
* :func:`per_user_split` -- each user's last events evaluate ("leave last out"), as many
  papers do. Within a user the future stays out, but one user's test event may precede
  another user's training event, so popularity learnt in training can see the test period.

:func:`clean_and_split` is the book's evaluation pipeline (chapter 4): the row cleaning rules on
the whole log, the global temporal split, and the k-core computed on *training* events only, so
nothing about the test period decides which users and POIs are kept.

Introduced in chapter 2 (Time and place); every later chapter evaluates on these splits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from stlab.cleaning import CleaningConfig, clean_checkins, clean_rows, finish_report, k_core, kcore_label, report_row


@dataclass(frozen=True)
class Split:
    """Train, validation and test events, and where they were cut.

    Attributes:
        train, val, test: disjoint check-in tables.
        train_end: per user (indexed by ``user_id``), the time at or after which events are
            not training events (a single value repeated for a global split).
        val_end: per user, the time at or after which events are test events.
        protocol: ``"temporal"``, ``"per_user"`` or ``"leave_last_out"``.
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


def _check_not_empty(checkins: pd.DataFrame) -> None:
    if len(checkins) == 0:
        raise ValueError("cannot split an empty check-in table: no rows are left to split. Check the data set "
                         "and the cleaning thresholds (a k-core or bounding box can remove every row).")


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
    _check_not_empty(checkins)
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
    _check_not_empty(checkins)
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


def leave_last_out(checkins: pd.DataFrame, num_val: int = 1, num_test: int = 1, *, min_train: int = 1) -> Split:
    """Each user's last ``num_test`` events test, the ``num_val`` before them validate, the rest
    train ("leave one out", as STAN evaluates). Users with fewer than ``min_train + num_val +
    num_test`` events keep them all in training.

    Introduced in chapter 12 (The study).
    """
    if num_val < 0 or num_test < 1 or min_train < 1:
        raise ValueError(f"need num_val >= 0, num_test >= 1 and min_train >= 1; got {num_val}, {num_test}, {min_train}")
    _check_not_empty(checkins)
    ordered = checkins.sort_values(["user_id", "timestamp"], kind="stable")
    size = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    from_end = size - 1 - ordered.groupby("user_id", sort=False).cumcount().to_numpy()  # 0 = the user's last
    enough = size >= min_train + num_val + num_test
    part = np.where(enough & (from_end < num_test), 2, np.where(enough & (from_end < num_test + num_val), 1, 0))
    train, val, test = (ordered[part == k] for k in range(3))
    far = pd.Timestamp.max.tz_localize("UTC")
    users = pd.Index(ordered["user_id"].unique(), name="user_id")
    later = pd.concat([val, test])
    train_end = later.groupby("user_id")["timestamp"].min() if len(later) else pd.Series(dtype=ordered["timestamp"].dtype)
    val_end = test.groupby("user_id")["timestamp"].min()
    return Split(train=train, val=val, test=test, train_end=train_end.reindex(users).fillna(far),
                 val_end=val_end.reindex(users).fillna(far), protocol="leave_last_out")


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


KCoreScope = Literal["train", "whole-log"]


def clean_and_split(checkins: pd.DataFrame, config: CleaningConfig = CleaningConfig(), *, val_frac: float = 0.1,
                    test_frac: float = 0.2, train_end: pd.Timestamp | str | None = None,
                    val_end: pd.Timestamp | str | None = None,
                    kcore_on: KCoreScope = "train") -> tuple[pd.DataFrame, Split, pd.DataFrame]:
    """Clean a raw log and split it in time, without letting the test period decide what is kept.

    With ``kcore_on="train"`` (the book's protocol):

    1. the row rules of :func:`stlab.cleaning.clean_rows` (duplicates, bounding box, rapid
       repeats, impossible speeds) run on the whole log -- each judges a row by its neighbours,
       never by counts;
    2. the global cutoffs of :func:`temporal_split` are set on that log (event-count quantiles, or
       the times ``train_end`` and ``val_end`` when given);
    3. the iterative k-core runs on the **training events only**: the users and POIs that survive
       it, and the POI catalogue, are fixed when training ends;
    4. **the rule for later events** (validation and test): an event is kept when its POI is in the
       training core *and* its user either is in the core or has no training event at all. A POI
       first seen after training is outside the catalogue, so no model could rank it; a user the
       core removed is removed with all their later events; a user first seen after training is a
       new user, kept and reported apart as cold-start.

    With ``kcore_on="whole-log"`` the k-core runs on the whole log before the split, as much
    published next-POI work does: counts from the test period then decide which training events
    survive. It is here so that the size of that leak can be measured (chapter 4), not to be used.

    Returns:
        The kept check-ins (sorted by user then time, index reset), their :class:`Split` and a
        report with one row per rule (rows before and after, users and POIs left).
    """
    if kcore_on == "whole-log":
        cleaned, report = clean_checkins(checkins, config)
        return cleaned, temporal_split(cleaned, val_frac, test_frac, train_end=train_end, val_end=val_end), report
    if kcore_on != "train":
        raise ValueError(f"kcore_on must be 'train' or 'whole-log', got {kcore_on!r}")
    rows, report = clean_rows(checkins, config)
    cut = temporal_split(rows, val_frac, test_frac, train_end=train_end, val_end=val_end)
    train_end, val_end = cut.train_end.iloc[0], cut.val_end.iloc[0]
    train = k_core(cut.train, config.min_user_checkins, config.min_poi_checkins)
    if len(train) == 0:
        raise ValueError(f"no training events survive the k-core (users >= {config.min_user_checkins}, "
                         f"POIs >= {config.min_poi_checkins} training check-ins); lower min_user_checkins / "
                         "min_poi_checkins or give training a larger share (val_frac, test_frac).")
    core_users, core_pois = train["user_id"].unique(), train["poi_id"].unique()
    trained_users = cut.train["user_id"].unique()
    later = pd.concat([cut.val, cut.test])
    in_catalogue = later["poi_id"].isin(core_pois)
    user_kept = later["user_id"].isin(core_users) | ~later["user_id"].isin(trained_users)
    # Each rule's row counts the events it judges; users and POIs are those left in the whole log.
    after_core = pd.concat([train, later])
    after_users = pd.concat([train, later[user_kept]])
    kept = pd.concat([train, later[user_kept & in_catalogue]])
    steps = [(f"{kcore_label(config)}, training events only", len(cut.train), train, after_core),
             ("later events of users the core removed", len(later), later[user_kept], after_users),
             ("later events at POIs outside the training core", int(user_kept.sum()),
              later[user_kept & in_catalogue], kept)]
    rows_report = []
    for name, before, after, log in steps:
        row = report_row(name, before, after)
        row.update(users=log["user_id"].nunique(), pois=log["poi_id"].nunique())
        rows_report.append(row)
    kept = kept.sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True)
    report = pd.concat([report, finish_report(rows_report, len(checkins))])
    return kept, temporal_split(kept, val_frac, test_frac, train_end=train_end, val_end=val_end), report


def _with_training(split: Split, train: pd.DataFrame) -> tuple[pd.DataFrame, Split]:
    """The log and split with ``train`` in place of the training events (later parts kept)."""
    new_split = dataclasses.replace(split, train=train)
    return pd.concat([train, split.val, split.test], ignore_index=True), new_split


def recent_training(split: Split, fraction: float) -> tuple[pd.DataFrame, Split]:
    """Keep only the most recent ``fraction`` of the training events (by time); validation and
    test are unchanged. For learning curves: how a model does with less data of the same kind.

    Returns:
        ``(checkins, split)`` to pass to :func:`stlab.protocol.build_task`. POIs and users with
        no training event left stay in the catalogue as cold ones.

    Introduced in chapter 9 (Pretrained models).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    train = split.train
    if fraction < 1 and len(train):
        cutoff = train["timestamp"].quantile(1 - fraction)
        train = train[train["timestamp"] >= cutoff]
    return _with_training(split, train.reset_index(drop=True))


def hold_out_pois(split: Split, fraction: float, *, seed: int = 0,
                  min_later: int = 1) -> tuple[pd.DataFrame, Split, np.ndarray]:
    """Make some places *new*: remove every training check-in of a seeded random ``fraction`` of
    the POIs that are visited in validation or test (at least ``min_later`` times), as if they
    had opened when training ended. Their later check-ins stay, so queries whose target is a new
    POI measure cold start. Models must then score POIs they have never seen a visit to.

    Returns:
        ``(checkins, split, new_poi_ids)``.

    Introduced in chapter 9 (Pretrained models).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    later = pd.concat([split.val, split.test])["poi_id"].value_counts()
    eligible = np.sort(later[later >= min_later].index.to_numpy())
    if len(eligible) == 0:
        raise ValueError("no POI is visited after training; nothing to hold out")
    rng = np.random.default_rng(seed)
    count = max(1, int(round(fraction * len(eligible))))
    new = np.sort(rng.choice(eligible, size=count, replace=False))
    train = split.train[~split.train["poi_id"].isin(new)].reset_index(drop=True)
    checkins, new_split = _with_training(split, train)
    return checkins, new_split, new
