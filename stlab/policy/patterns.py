"""Patterns mined from a check-in log: who moves from where to where at which time of day, which
users share a routine, and where check-ins concentrate.

* :class:`DaySlots` names runs of local hours ("morning", "evening", ...), the time context of
  every other function of :mod:`stlab.policy`.
* :func:`frequent_transitions` -- association rules ``A -> B`` over *consecutive* check-ins of
  one user, per slot of the day, with support, confidence and lift (Agrawal, Imielinski & Swami,
  1993; lift is Brin et al.'s "interest", 1997).
* :func:`user_clusters` -- k-means over each user's normalised hour x region profile.
* :func:`density_grid` and :func:`hotspots` -- check-ins per grid cell (optionally smoothed by a
  Gaussian kernel), and the cells that hold most of them.

Introduced in chapter 13 (Recommending and guiding).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from stlab.features import EARTH_RADIUS_KM, HOURS_PER_DAY, BBoxLike, grid_cells


# --------------------------------------------------------------------------- time of day

@dataclass(frozen=True)
class DaySlots:
    """Named slots of the local day, each a run of whole hours.

    Slot ``i`` runs from ``starts[i]`` up to the next start; the last slot runs on past midnight
    up to the first start, so with the defaults the night is 22:00--05:59.

    Attributes:
        names: (tuple[str, ...]) one name per slot, in order of start.
        starts: (tuple[int, ...]) first local hour of each slot, strictly increasing in 0..23.
    """

    names: tuple[str, ...] = ("morning", "midday", "afternoon", "evening", "night")
    starts: tuple[int, ...] = (6, 11, 14, 18, 22)

    def __post_init__(self) -> None:
        names, starts = tuple(str(n) for n in self.names), tuple(int(s) for s in self.starts)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "starts", starts)
        if not starts or len(names) != len(starts):
            raise ValueError(f"DaySlots needs one name per start hour, got {len(names)} names and {len(starts)} "
                             "starts")
        if len(set(names)) != len(names):
            raise ValueError(f"slot names must be distinct, got {names}")
        if starts[0] < 0 or starts[-1] > 23 or any(b <= a for a, b in pairwise(starts)):
            raise ValueError(f"starts must be strictly increasing hours in 0..23, got {starts}")

    @classmethod
    def even(cls, num_slots: int) -> DaySlots:
        """``num_slots`` equal slots from midnight (as :func:`stlab.graphs.time_slot` cuts the day)."""
        if not isinstance(num_slots, (int, np.integer)) or not 1 <= num_slots <= HOURS_PER_DAY:
            raise ValueError(f"num_slots must be an integer in 1..24, got {num_slots!r}")
        starts = [HOURS_PER_DAY * s // num_slots for s in range(num_slots)]
        ends = starts[1:] + [HOURS_PER_DAY]
        return cls(names=tuple(f"{a:02d}-{b:02d}h" for a, b in zip(starts, ends)), starts=tuple(starts))

    @classmethod
    def hourly(cls) -> DaySlots:
        """One slot per hour (``"00h"`` .. ``"23h"``)."""
        return cls(names=tuple(f"{h:02d}h" for h in range(HOURS_PER_DAY)), starts=tuple(range(HOURS_PER_DAY)))

    @classmethod
    def whole_day(cls) -> DaySlots:
        """A single slot: no time context."""
        return cls(names=("all day",), starts=(0,))

    @property
    def num_slots(self) -> int:
        return len(self.starts)

    def slot_of(self, hour: np.ndarray) -> np.ndarray:
        """``[N]`` int64 slot of each local hour (0--23)."""
        hour = np.asarray(hour)
        if hour.size and (not np.issubdtype(hour.dtype, np.integer) or hour.min() < 0 or hour.max() > 23):
            raise ValueError("hours must be integers in 0..23 (the local hour of the day, e.g. task.events['hour'])")
        # Hours before the first start belong to the last slot (the night runs past midnight).
        slot = np.searchsorted(np.asarray(self.starts), hour, side="right") - 1
        return np.where(slot < 0, self.num_slots - 1, slot).astype(np.int64)

    def hours(self, slot: int) -> tuple[int, ...]:
        """The local hours of slot ``slot``."""
        if not 0 <= slot < self.num_slots:
            raise ValueError(f"slot must lie in 0..{self.num_slots - 1}, got {slot}")
        return tuple(int(h) for h in np.flatnonzero(self.slot_of(np.arange(HOURS_PER_DAY)) == slot))


# --------------------------------------------------------------------------- event tables

def _column(events: pd.DataFrame, values: str | np.ndarray, what: str) -> np.ndarray:
    """A column of ``events`` by name, or an ``[N]`` array aligned with it."""
    if isinstance(values, str):
        if values not in events.columns:
            raise ValueError(f"events has no column {values!r} for the {what}; columns are {list(events.columns)}. "
                             f"Pass the column's name or an array with one {what} per event")
        return events[values].to_numpy()
    values = np.asarray(values)
    if values.shape != (len(events),):
        raise ValueError(f"the {what} array must have one value per event, shape [{len(events)}], got {values.shape}")
    return values


def _seconds(values: np.ndarray) -> np.ndarray:
    """Int64 seconds from int seconds or datetimes (timezone-aware or not)."""
    if np.issubdtype(values.dtype, np.number):
        return values.astype(np.int64)
    return pd.DatetimeIndex(values).as_unit("s").asi8


def _user_time(events: pd.DataFrame, user_column: str, time_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Users and seconds of events that must be grouped by user and in time order within a user."""
    user = _column(events, user_column, "user")
    time = _seconds(_column(events, time_column, "time"))
    starts = np.r_[True, user[1:] != user[:-1]]
    if pd.Series(user[starts]).duplicated().any() or ((np.diff(time) < 0) & ~starts[1:]).any():
        raise ValueError("events must be grouped by user and in time order within each user; "
                         f"sort with events.sort_values([{user_column!r}, {time_column!r}])")
    return user, time


# --------------------------------------------------------------------------- transitions

_TRANSITION_COLUMNS = ["slot", "antecedent", "consequent", "count", "users", "support", "confidence", "lift"]


def frequent_transitions(events: pd.DataFrame, labels: str | np.ndarray = "poi", *, slots: DaySlots = DaySlots(),
                         max_gap_hours: float | None = 4.0, min_support: float = 0.0, min_count: int = 1,
                         min_users: int = 1, drop_repeats: bool = False, user_column: str = "user",
                         time_column: str = "time", hour_column: str = "hour") -> pd.DataFrame:
    """Frequent ``A -> B`` moves between consecutive check-ins of one user, per slot of the day.

    A *move* is a pair of consecutive check-ins of the same user at most ``max_gap_hours`` apart;
    its slot is the slot of the *first* check-in ("in the morning, people at A go on to B") and
    its items are the labels of the two check-ins -- the POI, its category or its grid region,
    whatever ``labels`` gives. Within slot ``s``, with ``n_s`` moves::

        support(A -> B)    = n_s(A, B) / n_s
        confidence(A -> B) = n_s(A, B) / n_s(A, .)          = P(next is B | at A, slot s)
        lift(A -> B)       = confidence / (n_s(., B) / n_s)  (> 1: B follows A more than B's share)

    Args:
        events: check-ins grouped by user and in time order (``task.train``), with user, time (int
            seconds or datetimes) and local hour columns.
        labels: the item of each check-in: a column name or an ``[N]`` array (for regions,
            ``poi_regions(task.pois, g)[task.train["poi"]]``). Check-ins with a missing label
            (``NaN``/``None``) take part in no move.
        slots: the slots of the day (:meth:`DaySlots.whole_day` for none).
        max_gap_hours: (float) longer gaps start a new trip; ``None``: no limit.
        min_support, min_count, min_users: keep rules with at least this support, this many moves
            and moves by this many distinct users (one heavy user is not a pattern).
        drop_repeats: leave out moves that stay on the same label (``A -> A``), from the counts
            *and* the denominators.
        user_column, time_column, hour_column: names of those columns in ``events``.

    Returns:
        One row per rule: ``slot`` (categorical, in slot order), ``antecedent``, ``consequent``,
        ``count``, ``users``, ``support``, ``confidence``, ``lift``; sorted by slot, then support
        (highest first), then labels.
    """
    if max_gap_hours is not None and not max_gap_hours > 0:
        raise ValueError(f"max_gap_hours must be positive (or None for no limit), got {max_gap_hours}")
    if not 0 <= min_support <= 1:
        raise ValueError(f"min_support must lie in [0, 1], got {min_support}")
    user, time = _user_time(events, user_column, time_column)
    hour = _column(events, hour_column, "local hour")
    codes, uniques = pd.factorize(pd.Series(_column(events, labels, "label")))  # missing label -> -1
    move = user[1:] == user[:-1]
    if max_gap_hours is not None:
        move &= np.diff(time) <= max_gap_hours * 3600.0
    source, dest = codes[:-1], codes[1:]
    move &= (source >= 0) & (dest >= 0)
    if drop_repeats:
        move &= source != dest
    moves = pd.DataFrame({"slot": slots.slot_of(hour[:-1][move]), "a": source[move], "b": dest[move],
                          "user": user[:-1][move]})
    if moves.empty:
        return pd.DataFrame(columns=_TRANSITION_COLUMNS)
    rules = moves.groupby(["slot", "a", "b"]).agg(count=("user", "size"), users=("user", "nunique")).reset_index()
    slot_moves = moves.groupby("slot").size()
    from_a = moves.groupby(["slot", "a"]).size().rename("from_a")
    to_b = moves.groupby(["slot", "b"]).size().rename("to_b")
    rules = rules.join(from_a, on=["slot", "a"]).join(to_b, on=["slot", "b"])
    n = slot_moves.reindex(rules["slot"]).to_numpy(dtype=np.float64)
    rules["support"] = rules["count"] / n
    rules["confidence"] = rules["count"] / rules["from_a"]
    rules["lift"] = rules["confidence"] / (rules["to_b"] / n)
    keep = (rules["support"] >= min_support) & (rules["count"] >= min_count) & (rules["users"] >= min_users)
    rules = rules[keep].sort_values(["slot", "support", "a", "b"], ascending=[True, False, True, True])
    uniques = np.asarray(uniques, dtype=object)
    return pd.DataFrame({
        "slot": pd.Categorical.from_codes(rules["slot"].to_numpy(), categories=list(slots.names)),
        "antecedent": uniques[rules["a"].to_numpy()], "consequent": uniques[rules["b"].to_numpy()],
        "count": rules["count"].to_numpy(), "users": rules["users"].to_numpy(),
        "support": rules["support"].to_numpy(), "confidence": rules["confidence"].to_numpy(),
        "lift": rules["lift"].to_numpy()})


# --------------------------------------------------------------------------- user clusters

@dataclass(frozen=True)
class UserClusters:
    """Users grouped by when and where they check in.

    Attributes:
        users: ``[U]`` user of each row (values of the events' user column), sorted.
        labels: ``[U]`` cluster of each user; cluster 0 is the largest.
        profiles: ``[U, T, R]`` each user's share of check-ins per time bin and region (sums to 1).
        centroids: ``[C, T, R]`` mean profile of each cluster (sums to 1): one heatmap per cluster.
        sizes: ``[C]`` users per cluster.
        inertia: (float) sum of squared distances of profiles to their centroid (k-means' objective).
        time_labels: (tuple[str, ...]) name of each time bin (``T`` of them).
    """

    users: np.ndarray
    labels: np.ndarray
    profiles: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray
    inertia: float
    time_labels: tuple[str, ...]

    @property
    def num_clusters(self) -> int:
        return len(self.sizes)

    def centroid_frame(self, cluster: int) -> pd.DataFrame:
        """``[T, R]`` centroid of ``cluster`` as a table (time bins x regions), for a heatmap."""
        if not 0 <= cluster < self.num_clusters:
            raise ValueError(f"cluster must lie in 0..{self.num_clusters - 1}, got {cluster}")
        return pd.DataFrame(self.centroids[cluster], index=pd.Index(self.time_labels, name="time"))


def user_profiles(events: pd.DataFrame, regions: str | np.ndarray, *, num_regions: int | None = None,
                  slots: DaySlots | None = None, min_events: int = 1, user_column: str = "user",
                  hour_column: str = "hour") -> tuple[np.ndarray, np.ndarray]:
    """Each user's share of check-ins per time bin and region.

    Normalising each user's counts to sum to one makes a profile say *how* a user spends the
    day, not how much they check in, so heavy users do not dominate the clusters.

    Args:
        events: check-ins with a user and a local hour column (``task.train``).
        regions: region of each check-in, integers ``0 .. R - 1`` (column name or ``[N]`` array).
        num_regions: ``R``; ``None``: the largest region + 1.
        slots: time bins; ``None``: the 24 hours.
        min_events: (int) users with fewer check-ins are left out.

    Returns:
        ``(users [U], profiles [U, T, R])``.
    """
    user = _column(events, user_column, "user")
    region = _column(events, regions, "region")
    if region.size and (not np.issubdtype(region.dtype, np.integer) or region.min() < 0):
        raise ValueError("regions must be non-negative integers (e.g. poi_regions(task.pois, g)[events['poi']])")
    R = int(region.max()) + 1 if num_regions is None and region.size else int(num_regions or 0)
    if region.size and region.max() >= R:
        raise ValueError(f"a region id is {int(region.max())} but num_regions is {R}")
    slots = slots or DaySlots.hourly()
    T = slots.num_slots
    users, row = np.unique(user, return_inverse=True)
    counts = np.zeros((len(users), T * R))
    np.add.at(counts, (row, slots.slot_of(_column(events, hour_column, "local hour")) * R + region), 1.0)
    totals = counts.sum(axis=1)
    keep = totals >= max(min_events, 1)
    return users[keep], (counts[keep] / totals[keep, None]).reshape(-1, T, R)


def user_clusters(events: pd.DataFrame, regions: str | np.ndarray, *, num_clusters: int = 4,
                  num_regions: int | None = None, slots: DaySlots | None = None, min_events: int = 5,
                  seed: int = 0, n_init: int = 10, user_column: str = "user",
                  hour_column: str = "hour") -> UserClusters:
    """K-means (scikit-learn, seeded) over the users' normalised hour x region profiles.

    Clusters are renumbered by size (0 = largest) and each centroid is the mean profile of its
    members, so it is itself a distribution over time and place. Arguments as
    :func:`user_profiles`; ``n_init`` restarts of k-means keep the best.
    """
    from sklearn.cluster import KMeans  # imported here: only this function needs scikit-learn

    users, profiles = user_profiles(events, regions, num_regions=num_regions, slots=slots, min_events=min_events,
                                    user_column=user_column, hour_column=hour_column)
    if not 1 <= num_clusters <= len(users):
        raise ValueError(f"num_clusters must lie in 1..{len(users)} (the users with at least {min_events} check-ins), "
                         f"got {num_clusters}; lower num_clusters or min_events")
    X = profiles.reshape(len(users), -1)  # [U, T * R]
    raw = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit_predict(X)
    sizes = np.bincount(raw, minlength=num_clusters)
    order = np.lexsort((np.arange(num_clusters), -sizes))  # largest first; equal sizes keep k-means' order
    labels = np.argsort(order)[raw]
    centroids = np.stack([X[labels == c].mean(axis=0) for c in range(num_clusters)])  # [C, T * R]
    inertia = float(((X - centroids[labels]) ** 2).sum())
    return UserClusters(users=users, labels=labels, profiles=profiles,
                        centroids=centroids.reshape(num_clusters, *profiles.shape[1:]), sizes=sizes[order],
                        inertia=inertia, time_labels=(slots or DaySlots.hourly()).names)


# --------------------------------------------------------------------------- hotspots

@dataclass(frozen=True)
class DensityGrid:
    """Check-ins per cell of a ``G x G`` grid over a box, optionally smoothed.

    Attributes:
        mass: ``[G, G]`` check-ins (or smoothed mass) per cell; row 0 is the southern edge,
            column 0 the western, cell ``row * G + col`` as :func:`stlab.features.grid_cells`.
        bbox: the box the grid divides.
        cell_area_km2: ``[G]`` area of a cell of each row (cells narrow towards the poles).
        bandwidth_km: the Gaussian kernel's standard deviation; ``None``: raw counts.
        points_outside: (int) points outside the box, left out.
    """

    mass: np.ndarray
    bbox: BBoxLike
    cell_area_km2: np.ndarray
    bandwidth_km: float | None
    points_outside: int

    @property
    def grid_size(self) -> int:
        return self.mass.shape[0]

    @property
    def share(self) -> np.ndarray:
        """``[G, G]`` share of the mass in the box held by each cell."""
        total = self.mass.sum()
        return self.mass / total if total > 0 else np.zeros_like(self.mass)

    @property
    def density(self) -> np.ndarray:
        """``[G, G]`` mass per km²."""
        return self.mass / self.cell_area_km2[:, None]

    def top_cells(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` cells with most mass: ``cell, row, col, lat, lon`` (cell centre), ``mass``,
        ``share``, ``cumulative_share``, ``density_km2``."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        G, b = self.grid_size, self.bbox
        flat = self.mass.ravel()
        cells = np.lexsort((np.arange(flat.size), -flat))[:n]  # most mass first, ties by cell number
        row, col = np.divmod(cells, G)
        share = self.share.ravel()[cells]
        return pd.DataFrame({
            "cell": cells, "row": row, "col": col,
            "lat": b.lat_min + (row + 0.5) * (b.lat_max - b.lat_min) / G,
            "lon": b.lon_min + (col + 0.5) * (b.lon_max - b.lon_min) / G,
            "mass": flat[cells], "share": share, "cumulative_share": np.cumsum(share),
            "density_km2": self.density.ravel()[cells]})


def density_grid(lat: np.ndarray, lon: np.ndarray, *, bbox: BBoxLike | None = None, grid_size: int = 20,
                 bandwidth_km: float | None = None, weights: np.ndarray | None = None) -> DensityGrid:
    """Check-ins per cell of a grid, optionally smoothed with a Gaussian kernel.

    Args:
        lat, lon: ``[N]`` coordinates of check-ins (or of POIs with ``weights`` = visits).
        bbox: the box; ``None``: the points' extent. Points outside it are left out and counted
            in :attr:`DensityGrid.points_outside`.
        grid_size: (int) cells per side.
        bandwidth_km: (float) standard deviation of a Gaussian kernel that spreads each cell's mass
            over its neighbours (a kernel density estimate on the grid); mass spread beyond the box
            is lost, so shares are of the mass that stays inside. ``None``: raw counts.
        weights: ``[N]`` weight of each point (default 1).
    """
    from scipy.ndimage import gaussian_filter

    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError(f"lat and lon must be 1-D arrays of one shape, got {lat.shape} and {lon.shape}")
    if not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
    if bandwidth_km is not None and not bandwidth_km > 0:
        raise ValueError(f"bandwidth_km must be positive (or None for raw counts), got {bandwidth_km}")
    weights = np.ones_like(lat) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != lat.shape or (weights < 0).any():
        raise ValueError(f"weights must be non-negative, one per point ([{len(lat)}]), got shape {weights.shape}")
    if bbox is None:
        if lat.size == 0:
            raise ValueError("no points and no bbox: nothing to place a grid on")
        from stlab.data import BBox

        pad_lat, pad_lon = max(np.ptp(lat) * 1e-6, 1e-9), max(np.ptp(lon) * 1e-6, 1e-9)
        bbox = BBox(lon_min=lon.min() - pad_lon, lat_min=lat.min() - pad_lat,
                    lon_max=lon.max() + pad_lon, lat_max=lat.max() + pad_lat)
    cell = grid_cells(lat, lon, bbox, grid_size)
    inside = cell >= 0
    mass = np.bincount(cell[inside], weights=weights[inside], minlength=grid_size ** 2).reshape(grid_size, grid_size)
    # Exact area of a latitude-longitude cell on the sphere: R^2 dlon (sin lat_top - sin lat_bottom).
    edges = np.radians(np.linspace(bbox.lat_min, bbox.lat_max, grid_size + 1))
    dlon = np.radians(bbox.lon_max - bbox.lon_min) / grid_size
    area = EARTH_RADIUS_KM ** 2 * dlon * np.diff(np.sin(edges))  # [G]
    if bandwidth_km is not None:
        height_km = np.radians(bbox.lat_max - bbox.lat_min) / grid_size * EARTH_RADIUS_KM
        width_km = float(area.mean() / height_km)
        mass = gaussian_filter(mass, sigma=(bandwidth_km / height_km, bandwidth_km / width_km), mode="constant")
    return DensityGrid(mass=mass, bbox=bbox, cell_area_km2=area, bandwidth_km=bandwidth_km,
                       points_outside=int((~inside).sum()))


def hotspots(lat: np.ndarray, lon: np.ndarray, *, top: int = 10, bbox: BBoxLike | None = None, grid_size: int = 20,
             bandwidth_km: float | None = None, weights: np.ndarray | None = None) -> pd.DataFrame:
    """The ``top`` cells of :func:`density_grid` (same arguments) with their share of check-ins.

    ``cumulative_share`` says how concentrated the city is: "the top 10 of 400 cells hold 45 %".
    """
    grid = density_grid(lat, lon, bbox=bbox, grid_size=grid_size, bandwidth_km=bandwidth_km, weights=weights)
    return grid.top_cells(top)
