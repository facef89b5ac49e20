"""Protocol presets: the book's protocol and three from the literature, as typed data.

Published next-POI results are hard to compare because each paper splits, filters and scores in
its own way. A :class:`ProtocolPreset` names one way; :func:`prepare_task` turns a raw log into a
:class:`~stlab.protocol.NextVisitTask` under it. Every next-visit model of the book takes that
task unchanged: a preset only decides which check-ins train, which are queries, and which are
dropped.

=============  ==================================================================================
``book``       The book's protocol (chapter 4): row rules, a *global* temporal split 70/10/20,
               the k-core on training events only, every later check-in a query, full ranking.
``getnext``    As GETNext (Yang et al., SIGIR 2022) and STHGCN: a global chronological split
               80/10/10; users and POIs unseen in training dropped; check-ins cut into
               trajectories at gaps of more than 24 hours; only the **last check-in of each
               validation and test trajectory** is a query.
``flashback``  As Flashback (Yang et al., IJCAI 2020): each user's check-ins in time order, the
               first 80 % train and the last 20 % test, **every position** a query. Flashback has
               no validation part; here the last eighth of each user's 80 % validates (70/10/20),
               so that no choice is made on the test part. The k-core runs on the whole log, as
               per-user protocols do.
``stan``       As STAN (Luo et al., WWW 2021): each user's **last check-in** tests, the one
               before validates, the rest train; all POIs ranked.
=============  ==================================================================================

What the presets do not copy, and why (the study chapter states it beside every comparison):
queries carry the user's last ``history_len`` check-ins, across trajectory boundaries, where
GETNext reads only the current trajectory; STAN keeps each user's last 101 check-ins and its code
evaluates the first 100 users only; Flashback drops users with fewer than 101 check-ins on its
data. Those are choices about data size, not about leakage, and the same models run the same
way under every preset.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.protocol import NextVisitTask, build_task
from stlab.splits import Split, clean_and_split, leave_last_out, per_user_split

PresetName = Literal["book", "getnext", "flashback", "stan"]
SplitKind = Literal["global", "per_user", "leave_last_out"]


@dataclass(frozen=True)
class ProtocolPreset:
    """One evaluation protocol.

    Attributes:
        name: (str) the preset's name.
        split: (str) ``"global"`` (one cutoff in time for everyone), ``"per_user"`` (each user's
            last share) or ``"leave_last_out"`` (each user's last check-ins).
        val_frac: (float) share of events (global) or of each user's events (per user) that
            validate; for ``leave_last_out``, the number of check-ins per user.
        test_frac: (float) the same for the test part.
        kcore_on: (str) ``"train"``: the k-core sees training events only; ``"whole-log"``: the
            whole log, before the split.
        trajectory_gap_hours: (float | None) a gap longer than this starts a new trajectory;
            ``None``: no trajectories.
        last_of_trajectory: (bool) only the last check-in of each evaluation trajectory (with an
            earlier check-in in the same trajectory) is a query.
        drop_unseen_users: (bool) evaluation check-ins of users without a training check-in are
            removed (POIs unseen in training are removed by the train-only k-core already).
        source: (str) where the protocol comes from.
    """

    name: PresetName
    split: SplitKind
    val_frac: float
    test_frac: float
    kcore_on: Literal["train", "whole-log"] = "train"
    trajectory_gap_hours: float | None = None
    last_of_trajectory: bool = False
    drop_unseen_users: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if self.last_of_trajectory and self.trajectory_gap_hours is None:
            raise ValueError(f"preset {self.name!r}: last_of_trajectory needs trajectory_gap_hours")
        if self.split == "global" and self.kcore_on != "train":
            raise ValueError(f"preset {self.name!r}: a global split keeps the k-core on training events")


PRESETS: dict[str, ProtocolPreset] = {
    "book": ProtocolPreset("book", "global", 0.1, 0.2, source="this book, chapter 4"),
    "getnext": ProtocolPreset("getnext", "global", 0.1, 0.1, trajectory_gap_hours=24.0, last_of_trajectory=True,
                              drop_unseen_users=True, source="GETNext (Yang et al., SIGIR 2022); STHGCN (Yan et al., SIGIR 2023)"),
    "flashback": ProtocolPreset("flashback", "per_user", 0.1, 0.2, kcore_on="whole-log",
                                source="Flashback (Yang et al., IJCAI 2020)"),
    "stan": ProtocolPreset("stan", "leave_last_out", 1, 1, kcore_on="whole-log", source="STAN (Luo et al., WWW 2021)"),
}


def get_preset(name: str) -> ProtocolPreset:
    """The preset called ``name`` (a clear error lists the known ones)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown protocol preset {name!r}; choose one of {sorted(PRESETS)}") from None


def trajectory_ids(events: pd.DataFrame, gap_hours: float) -> np.ndarray:
    """``[E]`` trajectory number of each check-in: a user's check-ins, in time order, start a new
    trajectory after a gap of more than ``gap_hours`` (and at each new user).

    ``events`` must be sorted by user, then time, with ``user`` and ``time`` (seconds) columns.
    """
    user, time = events["user"].to_numpy(), events["time"].to_numpy()
    new = np.ones(len(events), dtype=bool)
    if len(events) > 1:
        new[1:] = (user[1:] != user[:-1]) | (np.diff(time) > gap_hours * 3600.0)
    return np.cumsum(new) - 1


def _split(checkins: pd.DataFrame, preset: ProtocolPreset, cleaning: CleaningConfig) -> tuple[pd.DataFrame, Split]:
    if preset.split == "global":
        kept, split, _ = clean_and_split(checkins, cleaning, val_frac=preset.val_frac, test_frac=preset.test_frac)
        return kept, split
    cleaned, _ = clean_checkins(checkins, cleaning)
    if len(cleaned) == 0:
        raise ValueError(f"no check-ins survive cleaning (users >= {cleaning.min_user_checkins}, POIs >= "
                         f"{cleaning.min_poi_checkins} check-ins); lower the k-core thresholds")
    if preset.split == "per_user":
        return cleaned, per_user_split(cleaned, preset.val_frac, preset.test_frac)
    return cleaned, leave_last_out(cleaned, int(preset.val_frac), int(preset.test_frac))


def _drop_unseen_users(kept: pd.DataFrame, split: Split) -> tuple[pd.DataFrame, Split]:
    trained = split.train["user_id"].unique()
    val = split.val[split.val["user_id"].isin(trained)]
    test = split.test[split.test["user_id"].isin(trained)]
    kept = pd.concat([split.train, val, test]).sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True)
    return kept, replace(split, val=val, test=test)


def prepare_task(checkins: pd.DataFrame, preset: ProtocolPreset | str, *, cleaning: CleaningConfig = CleaningConfig(),
                 timezone: str = "UTC", history_len: int = 20, split: Split | None = None) -> NextVisitTask:
    """Clean, split and encode a raw log under ``preset``.

    Args:
        checkins: the raw log in the check-in schema (``user_id, poi_id, timestamp, lat, lon``).
        preset: a :class:`ProtocolPreset` or a name from :data:`PRESETS`.
        cleaning: the row rules and k-core thresholds (the same for every preset, so presets differ
            only in how they split and score).
        timezone: the city's zone, for local hours.
        history_len: check-ins of history per query.
        split: the preset's split of ``checkins`` made elsewhere -- out of core by
            :func:`stlab.outofcore.clean_and_split_duckdb` for a log too big for pandas; then
            ``checkins`` are the kept rows and only the preset's query rules are applied here.

    Returns:
        A task whose ``queries("val")`` and ``queries("test")`` are the preset's queries (its
        events carry an ``is_query`` column when the preset scores only some check-ins).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    kept, split = (checkins, split) if split is not None else _split(checkins, preset, cleaning)
    if preset.drop_unseen_users:
        kept, split = _drop_unseen_users(kept, split)
    task = build_task(kept, split, timezone=timezone, history_len=history_len)
    if preset.last_of_trajectory:
        assert preset.trajectory_gap_hours is not None  # checked by ProtocolPreset
        events = task.events
        trajectory = trajectory_ids(events, preset.trajectory_gap_hours)
        last = np.ones(len(events), dtype=bool)
        last[:-1] = trajectory[1:] != trajectory[:-1]
        has_earlier = np.zeros(len(events), dtype=bool)
        has_earlier[1:] = trajectory[1:] == trajectory[:-1]
        # Training check-ins stay queries: models learn from every position, as GETNext does.
        is_query = (events["part"].to_numpy() == 0) | (last & has_earlier)
        events = events.assign(trajectory=trajectory, is_query=is_query)
        task = replace(task, events=events)
    return task


__all__ = ["PRESETS", "PresetName", "ProtocolPreset", "get_preset", "prepare_task", "trajectory_ids"]
