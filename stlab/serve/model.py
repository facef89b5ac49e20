"""The model behind the service: an online count model, its catalogue, and a cold-start answer.

:class:`Recommender` wraps :class:`stlab.online.OnlineCountModel` -- the user + Markov blend whose
counts grow with every check-in -- with what a service needs around it:

* a **catalogue**: the original ids and coordinates of users and POIs, and their indices in the
  model. Check-ins from users the service has never seen add them; a check-in at a POI it does
  not know adds the POI when it comes with coordinates (a new place), and is refused otherwise.
* each user's **recent check-ins**, from which a request becomes a
  :class:`~stlab.protocol.NextVisitQueries` row: the service ranks with exactly the model the
  prequential evaluation of :mod:`stlab.online` measures.
* a **cold-start** answer for a user with no check-in: what everyone visits at this local hour
  (:meth:`~stlab.online.OnlineCountModel.hour_popularity`), discounted by distance from where the
  user is, ``exp(-d / l)``, with ``l`` the decay length that
  :class:`~stlab.baselines.DistancePopularity` fits on the training moves.

A recommender is built from a data set (:func:`build_recommender`: load, clean, count) or loaded
from a state file (:meth:`Recommender.save` / :meth:`Recommender.load`: NumPy arrays in an
``.npz`` read with ``allow_pickle=False`` -- no object in the file can run code when loaded).

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from stlab.baselines import DistancePopularity
from stlab.chapters import chapter_checkins
from stlab.cleaning import CleaningConfig, clean_checkins
from stlab.data import BBox, WorldConfig, cached_world
from stlab.data.fetch import atomic_path, file_digest
from stlab.features import haversine_km
from stlab.online import OnlineCountModel, training_until
from stlab.protocol import NextVisitQueries, NextVisitTask, build_task
from stlab.serve.store import CheckIn
from stlab.splits import temporal_split

#: Format tag of the state files written by :meth:`Recommender.save`.
STATE_FORMAT = "stlab-serve-state-1"
#: The synthetic city of a smoke run: small enough that the service starts in about a second.
SMOKE_WORLD: dict[str, int] = {"num_users": 40, "num_pois": 100, "num_days": 14}
#: Decay length of the cold-start distance discount when too few moves are known to fit one.
DEFAULT_DISTANCE_SCALE_KM = 2.0


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the served model.

    Attributes:
        history_len: (int) recent check-ins kept per user (a request's history).
        weight: (float) the user model's share of the blend, in [0, 1].
        smoothing: (float) the Markov chain's ``a``.
        hour_bandwidth_hours: (float) smoothing of the cold-start popularity over hours.
        seed: (int) seed of the sample that fits the distance decay.
    """

    history_len: int = 20
    weight: float = 0.5
    smoothing: float = 1.0
    hour_bandwidth_hours: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")


@dataclass(frozen=True)
class Recommendation:
    """The answer to one request.

    Attributes:
        user: the user's id, as asked.
        cold_start: ``True`` when the user has no check-in yet, so the list is the cold-start
            answer (popular at this hour, near the given place) rather than the model's.
        items: ``k`` rows, best first: ``rank``, ``poi`` (id), ``score`` (the probability the
            model gives the POI; the scores of all POIs sum to one), ``lat``, ``lon``.
    """

    user: str
    cold_start: bool
    items: pd.DataFrame


class UnknownPOIError(ValueError):
    """A check-in names a POI outside the catalogue and gives no coordinates to add it."""

    def __init__(self, position: int, poi_id: str) -> None:
        self.position, self.poi_id = position, poi_id
        super().__init__(f"check-in {position}: POI {poi_id!r} is not in the catalogue; give its lat and lon to "
                         "add it as a new place")


def _key(value: object) -> str:
    """Ids are compared as text: ``7``, ``np.int64(7)`` and ``"7"`` are one id."""
    return str(value.item() if isinstance(value, np.generic) else value)


def _plain(value: object) -> int | str:
    """A JSON-friendly id: Python ``int`` for integer ids, ``str`` for the rest."""
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


class Recommender:
    """An online count model with its catalogue, users' recent check-ins and cold start.

    Not thread-safe: the service calls it under a lock. Build one with :meth:`from_task`,
    :func:`build_recommender` or :meth:`load`.

    Attributes:
        model: the :class:`~stlab.online.OnlineCountModel`.
        timezone: the city's zone (for the local hour of a request).
        config: the :class:`ServeConfig`.
        distance_scale_km: the cold-start decay length ``l``.
        base_fingerprint: a digest of the model as built, before any check-in posted to the
            service: the event log records it, so a log is only replayed into the model it
            was written for.
        service_events: check-ins learned through :meth:`learn` since the model was built.
    """

    def __init__(self, model: OnlineCountModel, *, user_ids: Sequence[object], poi_ids: Sequence[object],
                 poi_lat: np.ndarray, poi_lon: np.ndarray, timezone: str, config: ServeConfig,
                 distance_scale_km: float, history_poi: np.ndarray, history_time: np.ndarray,
                 base_fingerprint: str | None = None, service_events: int = 0) -> None:
        U, P, L = len(user_ids), len(poi_ids), config.history_len
        if (model.num_users, model.num_pois) != (U, P):
            raise ValueError(f"the model has {model.num_users} users and {model.num_pois} POIs, the catalogue "
                             f"{U} and {P}")
        if history_poi.shape != (U, L) or history_time.shape != (U, L):
            raise ValueError(f"histories must be [users, history_len] = [{U}, {L}], got {history_poi.shape} "
                             f"and {history_time.shape}")
        self.model, self.timezone, self.config = model, timezone, config
        self.distance_scale_km = float(distance_scale_km)
        self.user_ids: list[int | str] = [_plain(u) for u in user_ids]
        self.poi_ids: list[int | str] = [_plain(p) for p in poi_ids]
        self._user_index = {_key(u): i for i, u in enumerate(self.user_ids)}
        self._poi_index = {_key(p): i for i, p in enumerate(self.poi_ids)}
        if len(self._user_index) != U or len(self._poi_index) != P:
            raise ValueError("user and POI ids must be unique (as text)")
        self.poi_lat = np.asarray(poi_lat, dtype=np.float64)
        self.poi_lon = np.asarray(poi_lon, dtype=np.float64)
        self.history_poi = np.asarray(history_poi, dtype=np.int64)
        self.history_time = np.asarray(history_time, dtype=np.int64)
        self.service_events = int(service_events)
        self.base_fingerprint = base_fingerprint or self._fingerprint()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_task(cls, task: NextVisitTask, config: ServeConfig = ServeConfig(), *,
                  through: int | None = None) -> Recommender:
        """The model of ``task``'s check-ins: every event before ``through`` seconds is learned
        (``None``: every event, whatever its part -- a service learns from all it has)."""
        learned = training_until(task, np.iinfo(np.int64).max if through is None else through)
        model = OnlineCountModel(weight=config.weight, smoothing=config.smoothing,
                                 hour_bandwidth_hours=config.hour_bandwidth_hours).fit(learned)
        train = learned.train
        L = config.history_len
        # Each user's last L learned check-ins, oldest first, right-aligned as in the protocol.
        from_end = train.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
        keep = from_end < L
        history_poi = np.full((task.num_users, L), -1, dtype=np.int64)
        history_time = np.zeros((task.num_users, L), dtype=np.int64)
        rows, cols = train["user"].to_numpy()[keep], L - 1 - from_end[keep]
        history_poi[rows, cols] = train["poi"].to_numpy()[keep]
        history_time[rows, cols] = train["time"].to_numpy()[keep]
        return cls(model, user_ids=list(task.user_ids), poi_ids=list(task.pois["poi_id"]),
                   poi_lat=task.pois["lat"].to_numpy(), poi_lon=task.pois["lon"].to_numpy(), timezone=task.timezone,
                   config=config, distance_scale_km=_distance_scale(task, config.seed),
                   history_poi=history_poi, history_time=history_time)

    # ------------------------------------------------------------------ catalogue
    @property
    def name(self) -> str:
        return self.model.name

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_pois(self) -> int:
        return len(self.poi_ids)

    @property
    def num_events(self) -> int:
        """Check-ins the model has learned, from the data set and the service."""
        return self.model.num_events_

    def user_index(self, user_id: object) -> int | None:
        return self._user_index.get(_key(user_id))

    def poi_index(self, poi_id: object) -> int | None:
        return self._poi_index.get(_key(poi_id))

    def is_known(self, user_id: object) -> bool:
        """Whether the user has a learned check-in (else requests get the cold-start answer)."""
        index = self.user_index(user_id)
        return index is not None and bool(self.model.last_poi_[index] >= 0)

    def check(self, check_ins: Sequence[CheckIn]) -> list[UnknownPOIError]:
        """What would stop :meth:`learn`: check-ins at unknown POIs without coordinates. A new
        POI given coordinates by an earlier check-in of the batch counts as known."""
        added: set[str] = set()
        problems = []
        for position, c in enumerate(check_ins):
            key = _key(c.poi_id)
            if key in self._poi_index or key in added:
                continue
            if c.lat is None or c.lon is None:
                problems.append(UnknownPOIError(position, c.poi_id))
            else:
                added.add(key)
        return problems

    # ------------------------------------------------------------------ learning
    def learn(self, check_ins: Sequence[CheckIn]) -> None:
        """Add check-ins to the counts and to the users' recent check-ins; new users and (with
        coordinates) new POIs join the catalogue.

        Raises:
            UnknownPOIError: a POI outside the catalogue without coordinates (nothing is learned).
        """
        problems = self.check(check_ins)
        if problems:
            raise problems[0]
        if not check_ins:
            return
        users, pois = np.empty(len(check_ins), np.int64), np.empty(len(check_ins), np.int64)
        new_lat, new_lon = [], []
        for i, c in enumerate(check_ins):
            u = self._user_index.setdefault(_key(c.user_id), len(self.user_ids))
            if u == len(self.user_ids):
                self.user_ids.append(_plain(c.user_id))
            p = self._poi_index.setdefault(_key(c.poi_id), len(self.poi_ids))
            if p == len(self.poi_ids):
                self.poi_ids.append(_plain(c.poi_id))
                new_lat.append(c.lat)
                new_lon.append(c.lon)
            users[i], pois[i] = u, p
        if new_lat:
            self.poi_lat = np.concatenate([self.poi_lat, np.asarray(new_lat, np.float64)])
            self.poi_lon = np.concatenate([self.poi_lon, np.asarray(new_lon, np.float64)])
        extra_users = self.num_users - len(self.history_poi)
        if extra_users:
            L = self.config.history_len
            self.history_poi = np.concatenate([self.history_poi, np.full((extra_users, L), -1, np.int64)])
            self.history_time = np.concatenate([self.history_time, np.zeros((extra_users, L), np.int64)])
        self.model.grow(self.num_users, self.num_pois)
        times = np.asarray([int(c.time) for c in check_ins], dtype=np.int64)
        hours = self._local(times)[0]
        self.model.learn(pd.DataFrame({"user": users, "poi": pois, "time": times, "hour": hours}))
        self._remember(users, pois, times)
        self.service_events += len(check_ins)

    def _remember(self, users: np.ndarray, pois: np.ndarray, times: np.ndarray) -> None:
        """Keep each user's ``history_len`` latest check-ins (a late one slots in by time)."""
        L = self.config.history_len
        for u in np.unique(users):
            mine = users == u
            old = self.history_poi[u] >= 0
            poi = np.concatenate([self.history_poi[u][old], pois[mine]])
            when = np.concatenate([self.history_time[u][old], times[mine]])
            order = np.argsort(when, kind="stable")[-L:]
            self.history_poi[u] = -1
            self.history_time[u] = 0
            self.history_poi[u, L - len(order):] = poi[order]
            self.history_time[u, L - len(order):] = when[order]

    def _local(self, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(hour, day of week)`` in the city's zone of each time (``[N]`` each)."""
        if len(seconds) <= 16:  # a request's few: zoneinfo is a hundred times quicker than pandas here
            zone = ZoneInfo(self.timezone)
            local = [datetime.fromtimestamp(int(t), zone) for t in seconds]
            return (np.array([t.hour for t in local], dtype=np.int64),
                    np.array([t.weekday() for t in local], dtype=np.int64))
        index = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True)).tz_convert(self.timezone)
        return index.hour.to_numpy().astype(np.int64), index.day_of_week.to_numpy().astype(np.int64)

    # ------------------------------------------------------------------ recommending
    def rank(self, user_id: object, seconds: int, *, lat: float | None = None, lon: float | None = None,
             k: int = 10) -> tuple[np.ndarray, np.ndarray, bool]:
        """:meth:`recommend` as arrays: ``([k] POI indices best first, [k] scores, cold start)``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hour, day_of_week = (int(v[0]) for v in self._local(np.asarray([seconds], dtype=np.int64)))
        cold = not self.is_known(user_id)
        if cold:
            scores = self.cold_start_scores(hour, lat, lon)
        else:
            query = self._query(self.user_index(user_id), seconds, hour, day_of_week)  # type: ignore[arg-type]
            scores = self.model.score(query)[0]
        # A stable sort of every POI, not stlab.metrics.top_k: its partial sort may break a tie at
        # the k-th place either way, and a service must give the same first items whatever k is.
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top], cold

    def recommend(self, user_id: object, when: datetime | pd.Timestamp | int, *, lat: float | None = None,
                  lon: float | None = None, k: int = 10) -> Recommendation:
        """The ``k`` POIs most likely to be ``user_id``'s next check-in at ``when``.

        Args:
            user_id: the user; one without a check-in gets the cold-start answer.
            when: a zone-aware time, or seconds since the epoch.
            lat, lon: where the user is (degrees); used by the cold-start answer, which without
                them is popularity at this hour alone.
            k: how many POIs (at most the catalogue's size).
        """
        top, scores, cold = self.rank(user_id, _seconds(when), lat=lat, lon=lon, k=k)
        items = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "poi": [self.poi_ids[i] for i in top],
                              "score": scores, "lat": self.poi_lat[top], "lon": self.poi_lon[top]})
        return Recommendation(user=_key(user_id), cold_start=cold, items=items)

    def _query(self, user: int, seconds: int, hour: int, day_of_week: int) -> NextVisitQueries:
        """One query: the user's recent check-ins up to ``seconds``, right-aligned."""
        L = self.config.history_len
        poi, when = self.history_poi[user], self.history_time[user]
        before = (poi >= 0) & (when <= seconds)  # a request about the past must not see later check-ins
        history_poi = np.full((1, L), -1, dtype=np.int64)
        history_time = np.zeros((1, L), dtype=np.int64)
        n = int(before.sum())
        if n:
            history_poi[0, L - n:] = poi[before]
            history_time[0, L - n:] = when[before]
        return NextVisitQueries(
            user=np.array([user]), time=np.array([seconds]), hour=np.array([hour]), day_of_week=np.array([day_of_week]),
            history_poi=history_poi, history_time=history_time, history_in_train=history_poi >= 0,
            target=np.zeros(1, dtype=np.int64), user_seen=np.array([True]))

    def cold_start_scores(self, hour: int, lat: float | None = None, lon: float | None = None) -> np.ndarray:
        """``[P]`` probabilities for a user with no check-in: popularity at this local hour,
        times ``exp(-d / l)`` from ``(lat, lon)`` when given."""
        log_scores = np.log(self.model.hour_popularity(np.array([hour]))[0])
        if lat is not None and lon is not None:
            distance = haversine_km(lat, lon, self.poi_lat, self.poi_lon)  # [P]
            log_scores = log_scores - distance / self.distance_scale_km
        # Normalised in log space: far from every POI, exp(-d / l) alone would underflow to zero.
        weights = np.exp(log_scores - log_scores.max())
        return weights / weights.sum()

    # ------------------------------------------------------------------ state files
    def _arrays(self) -> dict[str, np.ndarray]:
        def ids(values: list[int | str]) -> tuple[np.ndarray, np.ndarray]:
            return np.array([str(v) for v in values], dtype=str), np.array([isinstance(v, int) for v in values], bool)

        user_ids, user_is_int = ids(self.user_ids)
        poi_ids, poi_is_int = ids(self.poi_ids)
        meta = {"format": STATE_FORMAT, "config": asdict(self.config), "model": self.model.params(),
                "timezone": self.timezone, "distance_scale_km": self.distance_scale_km,
                "base_fingerprint": getattr(self, "base_fingerprint", ""), "service_events": self.service_events}
        return {"meta": np.array(json.dumps(meta, sort_keys=True)), "user_ids": user_ids, "user_id_is_int": user_is_int,
                "poi_ids": poi_ids, "poi_id_is_int": poi_is_int, "poi_lat": self.poi_lat, "poi_lon": self.poi_lon,
                "history_poi": self.history_poi, "history_time": self.history_time,
                **{f"model.{name}": value for name, value in self.model.state_dict().items()}}

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, value in sorted(self._arrays().items()):
            if name == "meta":
                meta = json.loads(str(value))
                meta.pop("base_fingerprint", None)
                value = np.array(json.dumps(meta, sort_keys=True))
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> str:
        """Write the whole state to an ``.npz`` file (atomically: a temporary file, then a
        rename) and return its sha256. Only arrays and a JSON string are stored."""
        path = Path(path)
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, **self._arrays())
        return file_digest(path)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a state written by :meth:`save` (``np.load(allow_pickle=False)``: arrays only).

        Raises:
            ValueError: not a state file of this format.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no model state at {path}; write one with --save-state (or Recommender.save)")
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        try:
            meta = json.loads(str(arrays["meta"]))
        except (KeyError, ValueError):
            raise ValueError(f"{path} is not a model state written by Recommender.save") from None
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} holds format {meta.get('format')!r}; this version reads {STATE_FORMAT!r}")
        model = OnlineCountModel(**meta["model"]).load_state_dict(
            {name[len("model."):]: value for name, value in arrays.items() if name.startswith("model.")})

        def ids(values: np.ndarray, is_int: np.ndarray) -> list[int | str]:
            return [int(v) if flag else str(v) for v, flag in zip(values.tolist(), is_int.tolist())]

        return cls(model, user_ids=ids(arrays["user_ids"], arrays["user_id_is_int"]),
                   poi_ids=ids(arrays["poi_ids"], arrays["poi_id_is_int"]), poi_lat=arrays["poi_lat"],
                   poi_lon=arrays["poi_lon"], timezone=meta["timezone"], config=ServeConfig(**meta["config"]),
                   distance_scale_km=meta["distance_scale_km"], history_poi=arrays["history_poi"],
                   history_time=arrays["history_time"], base_fingerprint=meta["base_fingerprint"] or None,
                   service_events=meta["service_events"])


def _seconds(when: datetime | pd.Timestamp | int) -> int:
    """Seconds since the epoch of a zone-aware time (or of seconds already)."""
    if isinstance(when, (int, np.integer)):
        return int(when)
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        raise ValueError(f"time {when} has no zone; give an offset, such as 2024-05-01T18:30:00+02:00")
    return math.floor(stamp.timestamp())


def _distance_scale(task: NextVisitTask, seed: int) -> float:
    """The decay length that best explains the training moves (chapter 4's distance baseline)."""
    moves = int((task.train["user"].to_numpy()[1:] == task.train["user"].to_numpy()[:-1]).sum())
    if moves < 10:  # too few moves to choose a length from
        return DEFAULT_DISTANCE_SCALE_KM
    scale = float(DistancePopularity(seed=seed).fit(task).scale_km_)
    return scale if math.isfinite(scale) else DEFAULT_DISTANCE_SCALE_KM


# --------------------------------------------------------------------------- data sets

@dataclass(frozen=True)
class ServiceData:
    """The check-ins a service is built from.

    Attributes:
        checkins: raw check-ins in the check-in schema.
        timezone: the city's zone.
        bbox: the city's box (``None``: no box rule when cleaning).
        min_checkins: the k-core threshold for users and POIs when cleaning.
        label: what was loaded, for ``/health``.
    """

    checkins: pd.DataFrame
    timezone: str
    bbox: BBox | None
    min_checkins: int
    label: str


def load_service_data(data: str = "synthetic", *, smoke: bool = False, seed: int = 0, timezone: str | None = None,
                      bbox: BBox | None = None, min_checkins: int | None = None) -> ServiceData:
    """The check-ins named by ``data``: ``"synthetic"`` (the synthetic city; with ``smoke`` a
    :data:`SMOKE_WORLD`-sized one), a registered data set (``"gowalla-nyc"``, ...) or the path of
    a check-in file.

    Args:
        timezone: the city's IANA zone (the service ranks by local hour); default: the registered
            city's zone; a file of yours must name it.
        bbox: the city's box, for the cleaning rule that drops far-away check-ins; default: the
            registered city's box, or inferred from a file's check-ins
            (:func:`stlab.chapters.chapter_checkins`).
        min_checkins: k-core threshold (default 3 in smoke runs, else 5).

    Raises:
        ValueError: an unknown data set, or a file without a ``timezone``.
    """
    threshold = min_checkins if min_checkins is not None else (3 if smoke else 5)
    if data == "synthetic":
        config = WorldConfig(seed=seed, **(SMOKE_WORLD if smoke else {}))
        label = f"synthetic city (seed {seed}{', smoke size' if smoke else ''})"
        return ServiceData(cached_world(config).checkins, timezone or config.timezone, bbox or config.bbox,
                           threshold, label)
    # Registered cities know their zone and box; a file of yours must name its zone.
    city = chapter_checkins(data, seed=seed, smoke=smoke, timezone=timezone, bbox=bbox)
    return ServiceData(city.checkins, city.timezone, city.bbox, threshold, city.dataset)


def build_recommender(data: ServiceData, config: ServeConfig = ServeConfig()) -> Recommender:
    """Clean the check-ins and count every one of them into a :class:`Recommender`.

    The k-core runs on the whole log: with no test period to protect, a service may use it all.
    The temporal split is only the shape a task needs (and what the distance decay is fitted on:
    its training moves); every event is learned.
    """
    cleaned, _ = clean_checkins(data.checkins, CleaningConfig(bbox=data.bbox, min_user_checkins=data.min_checkins,
                                                              min_poi_checkins=data.min_checkins))
    if cleaned.empty:
        raise ValueError(f"no check-in of {data.label} survives cleaning (k-core {data.min_checkins}); lower "
                         "--min-checkins")
    task = build_task(cleaned, temporal_split(cleaned, val_frac=0.0, test_frac=0.1), timezone=data.timezone,
                      history_len=config.history_len)
    return Recommender.from_task(task, config)


__all__ = ["DEFAULT_DISTANCE_SCALE_KM", "SMOKE_WORLD", "STATE_FORMAT", "Recommendation", "Recommender",
           "ServeConfig", "ServiceData", "UnknownPOIError", "build_recommender", "load_service_data"]
