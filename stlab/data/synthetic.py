"""A synthetic city: users with routines, places with categories, and the truth behind them.

The simulator is the offline default of the book and its tests. It emits check-ins in the same
schema as the real logs (with realistic dirt), aggregate region x hour counts with a region
graph, and -- unlike any real log -- the probabilities that generated each visit, so later
chapters can print the Bayes-optimal next-visit accuracy as a ceiling.

Generative story (all randomness from one seed):

1. *Places.* ``num_neighbourhoods`` centres in the city; each POI belongs to one, lies near its
   centre, has a category drawn from the neighbourhood's mix and a log-normal popularity.
2. *People.* Each user has a home and a work anchor in (usually different) neighbourhoods, an
   activity rate (log-normal: a long tail of heavy users) and category preferences that drift
   week by week (a random walk on their logits).
3. *Routines.* Event times follow a daily and weekly profile; the number of events per day is
   Poisson with the user's rate. At each event the user stands at an anchor -- work on weekday
   office hours, home early and late, else the previous place if it was under three hours ago --
   and picks POI ``i`` with probability

   .. math:: p(i \\mid u, t, a) \\propto \\pi_i \\; \\theta_{u,w(t)}[c_i] \\; h[c_i, \\tau(t)]
             \\; \\exp(-d(a, x_i) / \\ell)

   (popularity x drifting category preference x category-by-hour-of-week affinity x
   distance decay from the anchor).
4. *Dirt.* GPS jitter on every coordinate, exact duplicate rows, bursts (repeat check-ins at
   one venue seconds apart), jumps (a far venue a minute later: impossible speed) and points
   outside the city.

Introduced in chapter 1 (Behaviour logs); the ceiling is used from chapter 4 on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache, cached_property

import numpy as np
import pandas as pd

from stlab.data.graphseries import GraphSeries, read_graph_series
from stlab.data.schema import NYC_BBOX, TAOBAO_BEHAVIORS, BBox
from stlab.data.validate import validate_checkins

CATEGORIES: tuple[str, ...] = ("Food", "Coffee", "Office", "Nightlife", "Shop", "Gym", "Park", "Transit")
DIRT_KINDS: tuple[str, ...] = ("clean", "duplicate", "burst", "jump", "outside")
_KM_PER_DEG_LAT = 110.57


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A circular Gaussian bump over the 24-hour clock."""
    d = np.abs(hours - centre)
    d = np.minimum(d, 24 - d)
    return np.exp(-0.5 * (d / width) ** 2)


def category_hour_affinity() -> np.ndarray:
    """``[num_categories, 168]`` affinity of each category to each hour of the week (Mon 0h = 0)."""
    how = np.arange(168)
    hour, weekend = how % 24, (how // 24) >= 5
    h = hour.astype(float)
    rows = {
        "Food": _bump(h, 12.5, 1.2) + 1.2 * _bump(h, 19.5, 1.5) + 0.1,
        "Coffee": 1.5 * _bump(h, 8.5, 1.3) + 0.6 * _bump(h, 15, 1.5) + 0.05,
        "Office": np.where(weekend, 0.05, 1.5 * _bump(h, 13, 3.0)) + 0.02,
        "Nightlife": 1.5 * _bump(h, 23, 2.0) * np.where(weekend | (how // 24 == 4), 2.0, 1.0) + 0.02,
        "Shop": _bump(h, 15, 3.0) * np.where(weekend, 1.8, 1.0) + 0.03,
        "Gym": _bump(h, 7, 1.0) + _bump(h, 18.5, 1.2) + 0.02,
        "Park": _bump(h, 14, 3.0) * np.where(weekend, 2.5, 0.6) + 0.02,
        "Transit": 1.3 * _bump(h, 8, 1.0) * ~weekend + 1.3 * _bump(h, 17.5, 1.2) * ~weekend + 0.15,
    }
    return np.stack([rows[c] for c in CATEGORIES])


def activity_profile() -> np.ndarray:
    """``[168]`` probability of an event falling in each hour of the week."""
    how = np.arange(168)
    h, weekend = (how % 24).astype(float), (how // 24) >= 5
    weekday_shape = 0.6 * _bump(h, 8.5, 1.5) + 1.0 * _bump(h, 12.5, 1.5) + 1.1 * _bump(h, 19, 2.5) + 0.03
    weekend_shape = 0.9 * _bump(h, 13.5, 3.0) + 1.0 * _bump(h, 21, 2.5) + 0.04
    profile = np.where(weekend, 1.1 * weekend_shape, weekday_shape)
    return profile / profile.sum()


@dataclass(frozen=True)
class WorldConfig:
    """Settings of the synthetic city (defaults: about 30,000 check-ins in two months).

    Attributes:
        seed: (int) seed of every random draw.
        num_users: (int) users.
        num_pois: (int) places.
        num_neighbourhoods: (int) clusters of places.
        num_days: (int) days simulated, from ``start``.
        start: (str) first local day, ISO date.
        timezone: (str) the city's zone; events are stored in UTC.
        bbox: (BBox) the city; default New York City.
        events_per_day: (float) mean events per user per day (individual rates vary log-normally).
        distance_scale_km: (float) ``l`` in the distance decay ``exp(-d / l)``.
        preference_drift: (float) weekly standard deviation of the preference random walk (logits).
        gps_jitter_m: (float) standard deviation of coordinate noise, metres.
        duplicate_rate, burst_rate, jump_rate, outside_rate: (float) dirt, per clean event.
    """

    seed: int = 0
    num_users: int = 250
    num_pois: int = 600
    num_neighbourhoods: int = 10
    num_days: int = 56
    start: str = "2010-03-01"
    timezone: str = "America/New_York"
    bbox: BBox = NYC_BBOX
    events_per_day: float = 2.0
    distance_scale_km: float = 1.5
    preference_drift: float = 0.25
    gps_jitter_m: float = 25.0
    duplicate_rate: float = 0.01
    burst_rate: float = 0.03
    jump_rate: float = 0.005
    outside_rate: float = 0.002

    def __post_init__(self) -> None:
        for name in ("num_users", "num_pois", "num_neighbourhoods", "num_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldConfig.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class SyntheticWorld:
    """A simulated city and its check-ins. Everything is generated when constructed.

    Attributes:
        config: the settings.
        pois: ``poi_id, lat, lon, category, neighbourhood, popularity``.
        users: ``user_id, home_lat, home_lon, work_lat, work_lon, rate``.
        visits: the clean visits in time order per user, with the generating context
            (``anchor`` kind, ``prev_poi``) -- the truth.
        checkins: what a logging system would record: visits plus dirt, in the check-in schema.
        dirt: for each row of ``checkins``, which kind of dirt it is (``"clean"`` if none).

    Example:
        >>> world = SyntheticWorld(WorldConfig(num_users=20, num_pois=50, num_days=7))
        >>> sorted(world.checkins.columns)[:3]
        ['category', 'lat', 'lon']
    """

    config: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.config.seed)
        self._make_places()
        self._make_people()
        self.visits = self._simulate_visits()
        self.checkins, self.dirt = self._add_dirt(self.visits)

    # ------------------------------------------------------------------ geometry
    @cached_property
    def _km_per_deg_lon(self) -> float:
        lat0 = 0.5 * (self.config.bbox.lat_min + self.config.bbox.lat_max)
        return 111.32 * np.cos(np.radians(lat0))

    def _dist_km(self, lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
        """Equirectangular distance, accurate to well under 1 % inside a city."""
        dy = (lat1 - lat2) * _KM_PER_DEG_LAT
        dx = (lon1 - lon2) * self._km_per_deg_lon
        return np.sqrt(dx**2 + dy**2)

    def _clip(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = self.config.bbox
        return np.clip(lat, b.lat_min, b.lat_max), np.clip(lon, b.lon_min, b.lon_max)

    # ------------------------------------------------------------------ places and people
    def _make_places(self) -> None:
        cfg, rng, b = self.config, self._rng, self.config.bbox
        k = cfg.num_neighbourhoods
        # Centres away from the box edges; the first neighbourhood is downtown (offices, transit).
        self.centres = np.column_stack([
            rng.uniform(b.lat_min + 0.2 * (b.lat_max - b.lat_min), b.lat_max - 0.2 * (b.lat_max - b.lat_min), k),
            rng.uniform(b.lon_min + 0.25 * (b.lon_max - b.lon_min), b.lon_max - 0.25 * (b.lon_max - b.lon_min), k),
        ])
        sizes = rng.dirichlet(np.full(k, 2.0))
        hood = rng.choice(k, size=cfg.num_pois, p=sizes)
        spread_km = rng.uniform(0.6, 1.6, k)[hood]
        lat = self.centres[hood, 0] + rng.normal(0, 1, cfg.num_pois) * spread_km / _KM_PER_DEG_LAT
        lon = self.centres[hood, 1] + rng.normal(0, 1, cfg.num_pois) * spread_km / self._km_per_deg_lon
        lat, lon = self._clip(lat, lon)
        mix = rng.dirichlet(np.full(len(CATEGORIES), 0.7), size=k)
        mix[0, CATEGORIES.index("Office")] += 1.0
        mix[0, CATEGORIES.index("Transit")] += 0.5
        mix /= mix.sum(axis=1, keepdims=True)
        category = np.array([rng.choice(len(CATEGORIES), p=mix[h]) for h in hood])
        self.pois = pd.DataFrame({
            "poi_id": np.arange(cfg.num_pois, dtype=np.int64), "lat": lat, "lon": lon,
            "category": pd.Categorical.from_codes(category, CATEGORIES),
            "neighbourhood": hood, "popularity": rng.lognormal(0.0, 1.0, cfg.num_pois),
        })
        self._poi_cat = category
        self._log_pop = np.log(self.pois["popularity"].to_numpy())
        self._log_affinity = np.log(category_hour_affinity())[category].T  # [168, P]

    def _make_people(self) -> None:
        cfg, rng = self.config, self._rng
        k, n = cfg.num_neighbourhoods, cfg.num_users
        home_hood = rng.integers(0, k, n)
        work_weights = np.ones(k)
        work_weights[0] = k  # many people work downtown
        work_hood = rng.choice(k, size=n, p=work_weights / work_weights.sum())

        def near(hood: np.ndarray, km: float) -> tuple[np.ndarray, np.ndarray]:
            lat = self.centres[hood, 0] + rng.normal(0, km / _KM_PER_DEG_LAT, n)
            lon = self.centres[hood, 1] + rng.normal(0, km / self._km_per_deg_lon, n)
            return self._clip(lat, lon)

        home_lat, home_lon = near(home_hood, 1.0)
        work_lat, work_lon = near(work_hood, 0.5)
        rate = cfg.events_per_day * rng.lognormal(-0.32, 0.8, n)  # mean of lognormal(-0.32, 0.8) is 1
        self.users = pd.DataFrame({
            "user_id": np.arange(n, dtype=np.int64), "home_lat": home_lat, "home_lon": home_lon,
            "work_lat": work_lat, "work_lon": work_lon, "rate": rate,
        })
        num_weeks = cfg.num_days // 7 + 1
        base = np.log(rng.dirichlet(np.full(len(CATEGORIES), 1.0), size=n))
        steps = rng.normal(0, cfg.preference_drift, size=(n, num_weeks, len(CATEGORIES)))
        steps[:, 0] = 0.0
        logits = base[:, None, :] + np.cumsum(steps, axis=1)
        # log theta_{u,w}[c]: a distribution over categories per user and week.
        self._log_pref = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))  # [U, W, C]
        pois_lat, pois_lon = self.pois["lat"].to_numpy(), self.pois["lon"].to_numpy()
        self._dist_home = self._dist_km(home_lat[:, None], home_lon[:, None], pois_lat, pois_lon)  # [U, P]
        self._dist_work = self._dist_km(work_lat[:, None], work_lon[:, None], pois_lat, pois_lon)  # [U, P]
        self._dist_poi = self._dist_km(pois_lat[:, None], pois_lon[:, None], pois_lat, pois_lon)   # [P, P]

    # ------------------------------------------------------------------ the truth
    @cached_property
    def _start(self) -> pd.Timestamp:
        return pd.Timestamp(self.config.start, tz=self.config.timezone)

    def _local_clock(self, timestamps: pd.Series | pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """Hour of week (Mon 0h = 0) and week number since the start, from UTC times."""
        local = pd.DatetimeIndex(timestamps).tz_convert(self.config.timezone)
        how = (local.day_of_week * 24 + local.hour).to_numpy()
        days = (local.normalize().tz_localize(None) - self._start.tz_localize(None)).days.to_numpy()
        return how, np.clip(days // 7, 0, self._log_pref.shape[1] - 1)

    @staticmethod
    def anchor_kind(how: np.ndarray, gap_hours: np.ndarray) -> np.ndarray:
        """Where a user stands before choosing: 0 = home, 1 = work, 2 = the previous place."""
        hour, weekday = how % 24, how // 24 < 5
        work = weekday & (hour >= 9) & (hour < 18)
        home = (hour < 8) | (hour >= 22) | ~(gap_hours < 3.0)
        return np.where(work, 1, np.where(home, 0, 2))

    def next_visit_log_probs(
        self,
        user_ids: np.ndarray,
        timestamps: pd.Series | pd.DatetimeIndex,
        prev_poi: np.ndarray,
        prev_time: pd.Series | pd.DatetimeIndex,
    ) -> np.ndarray:
        """The true ``log p(i | u, t, previous visit)`` over all POIs.

        Args:
            user_ids: ``[n]`` users.
            timestamps: ``[n]`` times of the visits to predict (UTC).
            prev_poi: ``[n]`` each user's previous POI (``-1`` if none).
            prev_time: ``[n]`` time of that previous visit (``NaT`` if none).

        Returns:
            ``[n, num_pois]`` log-probabilities; each row sums to one after ``exp``.
        """
        user_ids, prev_poi = np.asarray(user_ids), np.asarray(prev_poi)
        how, week = self._local_clock(timestamps)
        gap = (pd.DatetimeIndex(timestamps) - pd.DatetimeIndex(prev_time)).total_seconds().to_numpy() / 3600
        kind = self.anchor_kind(how, np.where(prev_poi < 0, np.inf, np.nan_to_num(gap, nan=np.inf)))
        return self._log_probs(user_ids, how, week, kind, prev_poi)

    def _log_probs(self, user_ids: np.ndarray, how: np.ndarray, week: np.ndarray, kind: np.ndarray,
                   prev_poi: np.ndarray) -> np.ndarray:
        """``[n, P]`` log-probabilities from precomputed clock, anchor kind and previous POI."""
        dist = np.where(kind[:, None] == 0, self._dist_home[user_ids],
                        np.where(kind[:, None] == 1, self._dist_work[user_ids],
                                 self._dist_poi[np.maximum(prev_poi, 0)]))  # [n, P]
        logits = (self._log_pop[None, :] + self._log_pref[user_ids, week][:, self._poi_cat]
                  + self._log_affinity[how] - dist / self.config.distance_scale_km)  # [n, P]
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def bayes_optimal_accuracy(self, visits: pd.DataFrame | None = None, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
        """Expected Acc@k of the Bayes-optimal predictor that knows the generating model.

        No model can beat this in expectation: it ranks POIs by their true probability. For each
        visit, the expected hit rate at ``k`` is the sum of the ``k`` largest probabilities.

        Args:
            visits: rows of :attr:`visits` to evaluate (for example a test split); default all.
        """
        visits = self.visits if visits is None else visits
        totals = {k: 0.0 for k in ks}
        for start in range(0, len(visits), 4096):
            chunk = visits.iloc[start:start + 4096]
            logp = self.next_visit_log_probs(chunk["user_id"].to_numpy(), chunk["timestamp"],
                                             chunk["prev_poi"].to_numpy(), chunk["prev_time"])
            top = -np.sort(-np.exp(logp), axis=1)
            cumulative = np.cumsum(top, axis=1)
            for k in ks:
                totals[k] += float(cumulative[:, min(k, top.shape[1]) - 1].sum())
        return {f"Acc@{k}": totals[k] / max(len(visits), 1) for k in ks}

    # ------------------------------------------------------------------ simulation
    def _simulate_visits(self) -> pd.DataFrame:
        cfg, rng = self.config, self._rng
        profile = activity_profile()
        day_of_week_mass = profile.reshape(7, 24).sum(axis=1) * 7  # mean 1 over the week
        rows_user, rows_time = [], []
        start_dow = self._start.day_of_week
        for user, rate in enumerate(self.users["rate"].to_numpy()):
            for day in range(cfg.num_days):
                dow = (start_dow + day) % 7
                count = rng.poisson(rate * day_of_week_mass[dow])
                if count == 0:
                    continue
                hour_p = profile[dow * 24:(dow + 1) * 24]
                hours = rng.choice(24, size=count, p=hour_p / hour_p.sum())
                seconds = np.sort(hours * 3600 + rng.integers(0, 3600, count))
                rows_user.append(np.full(count, user))
                rows_time.append(day * 86400 + seconds)
        user_ids = np.concatenate(rows_user)
        offsets = np.concatenate(rows_time)
        local_naive = self._start.tz_localize(None) + pd.to_timedelta(offsets, unit="s")
        timestamps = (pd.DatetimeIndex(local_naive)
                      .tz_localize(cfg.timezone, ambiguous="NaT", nonexistent="shift_forward")
                      .tz_convert("UTC"))
        keep = ~timestamps.isna()
        user_ids, timestamps = user_ids[keep], timestamps[keep]
        order = np.lexsort((timestamps.as_unit("ns").asi8, user_ids))
        user_ids, timestamps = user_ids[order], timestamps[order]

        # Times are fixed first, so clock and anchor kind are known for every visit; only the
        # previous place (used when the anchor is "previous") depends on earlier choices.
        n = len(user_ids)
        new_user = np.r_[True, user_ids[1:] != user_ids[:-1]]
        ts_values = timestamps.as_unit("ns").asi8
        prev_ns = np.r_[0, ts_values[:-1]]
        gap = np.where(new_user, np.inf, (ts_values - prev_ns) / 3.6e12)
        how, week = self._local_clock(timestamps)
        kind = self.anchor_kind(how, gap)
        poi = np.empty(n, dtype=np.int64)
        prev_poi = np.full(n, -1, dtype=np.int64)
        uniforms = rng.random(n)
        chunk = 2048
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            sl = slice(start, stop)
            # Rows whose anchor is not the previous place do not depend on it: one matrix op.
            logp = self._log_probs(user_ids[sl], how[sl], week[sl], np.where(kind[sl] == 2, 0, kind[sl]),
                                   prev_poi[sl])
            for i in range(start, stop):
                if not new_user[i]:
                    prev_poi[i] = poi[i - 1]
                row = logp[i - start]
                if kind[i] == 2:
                    row = self._log_probs(user_ids[i:i + 1], how[i:i + 1], week[i:i + 1], kind[i:i + 1],
                                          prev_poi[i:i + 1])[0]
                poi[i] = min(int(np.searchsorted(np.cumsum(np.exp(row)), uniforms[i])), cfg.num_pois - 1)
        prev_time = pd.DatetimeIndex(np.where(new_user, np.datetime64("NaT"), prev_ns.astype("datetime64[ns]")),
                                     tz="UTC")
        return pd.DataFrame({
            "user_id": user_ids.astype(np.int64), "poi_id": poi, "timestamp": timestamps,
            "prev_poi": prev_poi, "prev_time": prev_time,
            "anchor": pd.Categorical.from_codes(kind, ["home", "work", "previous"]),
        })

    def _add_dirt(self, visits: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        cfg, rng = self.config, self._rng
        n = len(visits)
        pois = self.pois
        lat = pois["lat"].to_numpy()[visits["poi_id"]]
        lon = pois["lon"].to_numpy()[visits["poi_id"]]
        jitter = cfg.gps_jitter_m / 1000.0
        base = pd.DataFrame({
            "user_id": visits["user_id"].to_numpy(), "poi_id": visits["poi_id"].to_numpy(),
            "timestamp": visits["timestamp"].to_numpy(),
            "lat": lat + rng.normal(0, jitter / _KM_PER_DEG_LAT, n),
            "lon": lon + rng.normal(0, jitter / self._km_per_deg_lon, n),
        })
        base["timestamp"] = pd.to_datetime(base["timestamp"], utc=True)
        parts, kinds = [base], [np.full(n, "clean")]

        def pick(rate: float) -> np.ndarray:
            return np.flatnonzero(rng.random(n) < rate)

        dup = pick(cfg.duplicate_rate)
        parts.append(base.iloc[dup])
        kinds.append(np.full(len(dup), "duplicate"))

        burst = base.iloc[pick(cfg.burst_rate)].copy()
        burst["timestamp"] += pd.to_timedelta(rng.integers(5, 120, len(burst)), unit="s")
        burst["lat"] += rng.normal(0, jitter / _KM_PER_DEG_LAT, len(burst))
        parts.append(burst)
        kinds.append(np.full(len(burst), "burst"))

        # A far venue a minute later: more than 10 km in under 90 s, over 400 km/h.
        jump = base.iloc[pick(cfg.jump_rate)].copy()
        far = self._dist_poi[jump["poi_id"].to_numpy()]
        target = np.array([rng.choice(np.flatnonzero(row > 10.0)) if (row > 10.0).any() else row.argmax()
                           for row in far], dtype=np.int64)
        jump["poi_id"] = target
        jump["lat"], jump["lon"] = pois["lat"].to_numpy()[target], pois["lon"].to_numpy()[target]
        jump["timestamp"] += pd.to_timedelta(rng.integers(20, 90, len(jump)), unit="s")
        parts.append(jump)
        kinds.append(np.full(len(jump), "jump"))

        outside = base.iloc[pick(cfg.outside_rate)].copy()
        outside["lat"] += rng.choice([-1, 1], len(outside)) * rng.uniform(0.5, 2.0, len(outside))
        outside["timestamp"] += pd.to_timedelta(rng.integers(600, 7200, len(outside)), unit="s")
        parts.append(outside)
        kinds.append(np.full(len(outside), "outside"))

        checkins = pd.concat(parts, ignore_index=True)
        dirt = np.concatenate(kinds)
        checkins["category"] = pois["category"].astype("string").to_numpy()[checkins["poi_id"]]
        local = checkins["timestamp"].dt.tz_convert(cfg.timezone)
        checkins["tz_offset_min"] = (local.dt.tz_localize(None) - checkins["timestamp"].dt.tz_localize(None)) \
            .dt.total_seconds().div(60).astype("Int16")
        order = np.lexsort((checkins["timestamp"].to_numpy(), checkins["user_id"].to_numpy()))
        checkins = checkins.iloc[order].reset_index(drop=True)
        dirt_series = pd.Series(pd.Categorical(dirt[order], DIRT_KINDS), name="dirt")
        return validate_checkins(checkins, source="synthetic world"), dirt_series

    # ------------------------------------------------------------------ aggregates
    def region_series(self, grid_size: int = 6, freq: str = "h") -> GraphSeries:
        """Counts of clean visits per region (a ``grid_size`` x ``grid_size`` grid) and period.

        Regions are grid cells over the city's box; two regions are linked when their cells share
        an edge (weight 1). Cells that never see a POI are dropped.
        """
        from stlab.features import grid_cells

        b = self.config.bbox
        poi_cell = grid_cells(self.pois["lat"], self.pois["lon"], b, grid_size)
        cells = np.unique(poi_cell)
        visit_cell = poi_cell[self.visits["poi_id"].to_numpy()]
        index = pd.date_range(self._start.tz_convert("UTC"), periods=self.config.num_days * 24 if freq == "h"
                              else self.config.num_days, freq=freq)
        binned = self.visits["timestamp"].dt.floor(freq)
        counts = (pd.DataFrame({"t": binned, "cell": visit_cell}).groupby(["t", "cell"]).size()
                  .unstack(fill_value=0).reindex(index=index, columns=cells, fill_value=0))
        row, col = cells // grid_size, cells % grid_size
        adjacency = ((np.abs(row[:, None] - row[None, :]) + np.abs(col[:, None] - col[None, :])) == 1)
        centres = np.column_stack([b.lat_min + (row + 0.5) * (b.lat_max - b.lat_min) / grid_size,
                                   b.lon_min + (col + 0.5) * (b.lon_max - b.lon_min) / grid_size])
        series = read_graph_series(counts.to_numpy(), adjacency.astype(np.float32), timestamps=index,
                                   node_ids=cells, coords=centres, name="synthetic region counts")
        return replace(series, coord_crs="EPSG:4326 lat, lon (cell centres)")


@cache
def cached_world(config: WorldConfig) -> SyntheticWorld:
    """The synthetic city of ``config``, generated once per process and shared.

    A notebook that needs both the check-ins and the true probabilities thus generates the city
    once. Treat the returned world as read-only.
    """
    return SyntheticWorld(config)


def simulate_behaviour_log(num_users: int = 2000, num_items: int = 3000, num_events: int = 40_000,
                           seed: int = 0, start: str = "2017-11-26 01:00") -> pd.DataFrame:
    """A Taobao-like user x item log (pv, cart, fav, buy) with a known mechanism, for offline runs.

    Each event picks a user (activity is log-normal), then an item: with probability 0.3 one the
    user touched before, else an item by Zipf popularity. The chance of a strong action
    (cart/fav/buy, shares 0.5/0.3/0.2) rises with the user's propensity, the item's appeal and the
    number of earlier touches of the item by the user:
    ``logit p = -2.6 + user + item + 0.8 log(1 + touches)``.

    Returns:
        ``user_id, item_id, category_id, behavior, timestamp`` like :func:`stlab.data.load_taobao`.
    """
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0, 1.0, num_users)
    propensity = rng.normal(0, 0.7, num_users)
    appeal = rng.normal(0, 0.7, num_items)
    category = rng.integers(0, max(num_items // 30, 1), num_items)
    item_weight = 1.0 / np.arange(1, num_items + 1) ** 0.9
    users = rng.choice(num_users, num_events, p=activity / activity.sum())
    fresh = rng.choice(num_items, num_events, p=item_weight / item_weight.sum())
    history: dict[int, list[int]] = {}
    touches: dict[tuple[int, int], int] = {}
    items = np.empty(num_events, dtype=np.int64)
    strong = np.empty(num_events, dtype=bool)
    for n, user in enumerate(users):
        past = history.setdefault(int(user), [])
        item = int(past[rng.integers(len(past))]) if past and rng.random() < 0.3 else int(fresh[n])
        before = touches.get((int(user), item), 0)
        logit = -2.6 + propensity[user] + appeal[item] + 0.8 * np.log1p(before)
        strong[n] = rng.random() < 1.0 / (1.0 + np.exp(-logit))
        items[n], touches[(int(user), item)] = item, before + 1
        past.append(item)
    kind = np.where(strong, rng.choice([1, 2, 3], num_events, p=[0.5, 0.3, 0.2]), 0)
    seconds = np.sort(rng.uniform(0, 7200, num_events)).astype(np.int64)
    return pd.DataFrame({
        "user_id": users.astype(np.int64), "item_id": items, "category_id": category[items].astype(np.int64),
        "behavior": pd.Categorical.from_codes(kind, categories=list(TAOBAO_BEHAVIORS), ordered=True),
        "timestamp": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
    })


def simulate_road_network(num_nodes: int = 40, num_days: int = 7, *, steps_per_day: int = 96,
                          seed: int = 0) -> GraphSeries:
    """Speeds on a simulated road network whose congestion travels along its edges.

    The network is a chain of road segments with a few cross links (each node joined to its
    successor, and every fifth node to the node ten places on). Congestion ``c`` is born at the
    nodes with a morning and an evening peak plus random incidents, and moves one edge per step
    with damping, so a node's future depends on its neighbours' present -- the situation in
    which a graph model should beat one model per node. Speeds are
    ``free_flow * (1 - 0.6 * c)`` plus noise, in mph; a few readings are missing (``NaN``).

    Shapes:
        ``values``: ``[num_days * steps_per_day, num_nodes]``.
    """
    if num_nodes < 12 or num_days < 2 or steps_per_day < 24:
        raise ValueError("simulate_road_network needs num_nodes >= 12, num_days >= 2 and steps_per_day >= 24")
    rng = np.random.default_rng(seed)
    num_steps = num_days * steps_per_day
    adjacency = np.zeros((num_nodes, num_nodes))
    for i in range(num_nodes - 1):
        adjacency[i, i + 1] = adjacency[i + 1, i] = 1.0
    for i in range(0, num_nodes - 10, 5):
        adjacency[i, i + 10] = adjacency[i + 10, i] = 0.5
    flow = adjacency / adjacency.sum(axis=0, keepdims=True)  # share of each neighbour's congestion
    day_fraction = (np.arange(num_steps) % steps_per_day) / steps_per_day
    peaks = 0.5 * np.exp(-((day_fraction - 8 / 24) / 0.04) ** 2) + 0.4 * np.exp(-((day_fraction - 17.5 / 24) / 0.05) ** 2)
    exposure = rng.uniform(0.3, 1.0, num_nodes)  # how strongly each segment feels the rush hours
    incidents = (rng.random((num_steps, num_nodes)) < 2.0 / steps_per_day) * rng.uniform(0.5, 1.0, (num_steps, num_nodes))
    congestion = np.zeros((num_steps, num_nodes))
    for t in range(1, num_steps):
        spread = congestion[t - 1] @ flow  # what arrives from the neighbours
        congestion[t] = np.clip(0.55 * congestion[t - 1] + 0.4 * spread + 0.3 * peaks[t] * exposure + incidents[t]
                                + rng.normal(0, 0.02, num_nodes), 0, 1)
    free_flow = rng.uniform(55, 68, num_nodes)
    speeds = free_flow * (1 - 0.6 * congestion) + rng.normal(0, 1.0, (num_steps, num_nodes))
    speeds[rng.random(speeds.shape) < 0.01] = np.nan
    timestamps = pd.date_range("2024-03-04", periods=num_steps, freq=pd.Timedelta(days=1) / steps_per_day,
                               tz="America/Los_Angeles")
    return read_graph_series(speeds, adjacency, timestamps=timestamps, name="simulated road network")
