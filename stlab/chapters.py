"""What the book's chapters share: each data set's city, the smoke sizes, and the check-ins a chapter studies.

The data layer (:mod:`stlab.data`) knows files and schemas; this module knows the book: which
time zone turns a data set's UTC times into local hours, which box is its city, and how small a
smoke run (the tests) makes each data set. Chapters call :func:`chapter_checkins` right after
their parameters cell::

    city = chapter_checkins(settings.dataset, seed=settings.seed, smoke=settings.smoke)
    checkins_raw, timezone, city_bbox = city.checkins, city.timezone, city.bbox

Introduced in chapter 1 (Behaviour logs); used by every chapter that reads check-ins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from stlab.data import (NYC_BBOX, BBox, DataNotFoundError, SyntheticWorld, WorldConfig, cached_world,
                        load_bike_sharing, load_checkins, load_gowalla_venues, read_checkins)
from stlab.data.series import hourly_bike_series, synthetic_rentals

#: Tokyo's 23 wards and their neighbours, as Foursquare TSMC2014's Tokyo file covers them.
TKY_BBOX = BBox(lon_min=139.47, lat_min=35.51, lon_max=139.91, lat_max=35.87)

#: Local time zone and bounding box of each named check-in data set's city; ``None``: no one city.
DATASET_CITY: dict[str, tuple[str, BBox | None]] = {
    "gowalla-nyc": ("America/New_York", NYC_BBOX),
    "synthetic": ("America/New_York", NYC_BBOX),
    "foursquare-nyc": ("America/New_York", NYC_BBOX),
    "foursquare-nyc-stan": ("America/New_York", NYC_BBOX),
    "foursquare-tky": ("Asia/Tokyo", TKY_BBOX),
    "gowalla": ("UTC", None),
}
#: Users kept in smoke mode (the lowest ids), so a chapter runs in seconds.
SMOKE_USERS = 300
#: Size of the synthetic city in smoke mode (fields of :class:`~stlab.data.WorldConfig`).
SMOKE_WORLD: dict[str, int] = {"num_users": 60, "num_pois": 200, "num_days": 21}
#: Share of check-ins left outside an inferred box, at each edge, and the padding added to it.
BBOX_QUANTILE = 0.001
BBOX_PAD = 0.05


@dataclass(frozen=True)
class ChapterCheckins:
    """The check-ins a chapter studies, with the city they belong to.

    Attributes:
        checkins: raw check-ins in the check-in schema (:mod:`stlab.data.validate`), not cleaned.
        dataset: the data set's name, or the path of the reader's file.
        timezone: IANA zone that turns the UTC times into local hours (``"America/New_York"``).
        bbox: the city's box -- given, registered, or inferred from the data (see
            :func:`infer_bbox`); ``None`` for a data set that is not one city (worldwide Gowalla).
    """

    checkins: pd.DataFrame
    dataset: str
    timezone: str
    bbox: BBox | None


def chapter_world(seed: int = 0, smoke: bool = False) -> SyntheticWorld:
    """The synthetic city the chapters use: default size, or ``SMOKE_WORLD`` in smoke mode.

    Generated once per process (:func:`stlab.data.cached_world`), so a chapter that needs both
    the check-ins and the true probabilities makes the city once. Treat it as read-only.
    """
    return cached_world(WorldConfig(seed=seed, **(SMOKE_WORLD if smoke else {})))


def infer_bbox(checkins: pd.DataFrame, *, quantile: float = BBOX_QUANTILE, pad: float = BBOX_PAD) -> BBox:
    """The box holding a city's check-ins, robust to a few far-away points.

    Takes the ``quantile`` and ``1 - quantile`` quantiles of latitude and longitude (by default
    0.1% and 99.9%: a handful of check-ins from a trip abroad do not stretch the box), then pads
    each side by ``pad`` times the span (5%), at least 0.001 degrees (about 100 m), within the
    valid range of degrees.
    """
    edges = []
    for column, bound in (("lon", 180.0), ("lat", 90.0)):
        low, high = np.quantile(checkins[column].to_numpy(dtype=float), [quantile, 1 - quantile])
        margin = max(pad * (high - low), 0.001)
        edges.append((max(low - margin, -bound), min(high + margin, bound)))
    (lon_min, lon_max), (lat_min, lat_max) = edges
    return BBox(lon_min=float(lon_min), lat_min=float(lat_min), lon_max=float(lon_max), lat_max=float(lat_max))


def _check_timezone(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}; name an IANA zone such as 'Europe/Paris', "
                         "'America/New_York' or 'UTC'") from None
    return timezone


def _as_bbox(bbox: tuple[float, float, float, float] | BBox) -> BBox:
    if isinstance(bbox, BBox):
        return bbox
    if len(bbox) != 4:
        raise ValueError(f"bbox is (lon_min, lat_min, lon_max, lat_max), got {bbox!r}")
    return BBox(*(float(v) for v in bbox))


def _smoke_users(checkins: pd.DataFrame) -> pd.DataFrame:
    keep = np.sort(checkins["user_id"].unique())[:SMOKE_USERS]
    return checkins[checkins["user_id"].isin(keep)].reset_index(drop=True)


def chapter_checkins(
    dataset: str,
    *,
    seed: int = 0,
    smoke: bool = False,
    timezone: str | None = None,
    bbox: tuple[float, float, float, float] | BBox | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> ChapterCheckins:
    """The check-ins a chapter studies, with their time zone and city box.

    Args:
        dataset: a name from :data:`DATASET_CITY` (``"gowalla-nyc"``, ``"synthetic"``, ...), or
            the path of your own CSV/TSV/Parquet file (read by :func:`stlab.data.read_checkins`).
        seed: seed of the synthetic city.
        smoke: a small slice, so the chapter runs in seconds: the ``SMOKE_WORLD``-sized city for
            ``"synthetic"``; the ``SMOKE_USERS`` users with the lowest ids for real data and files.
        timezone: IANA zone of the city, for local hours (and for zone-less time stamps in a
            file). Default: the registered city's zone; a file of yours must name it.
        bbox: the city's box as ``(lon_min, lat_min, lon_max, lat_max)`` or a
            :class:`~stlab.data.BBox`. Default: the registered city's box; for a file, inferred
            from all its check-ins (:func:`infer_bbox`), before the smoke slice.
        read_options: more arguments of :func:`~stlab.data.read_checkins` for a file, for
            example ``{"format": "snap"}`` or ``{"columns": {"uid": "user_id"}}``.

    Raises:
        ValueError: an unknown data set, an unknown zone, or a file without ``timezone``.
    """
    registered = DATASET_CITY.get(dataset)
    if registered is None:
        if not Path(dataset).is_file():
            raise ValueError(f"unknown check-in data set {dataset!r}: neither one of {sorted(DATASET_CITY)} "
                             "nor an existing file")
        if timezone is None:
            raise ValueError(
                f"{dataset}: name the time zone of its city, for example "
                f'chapter_checkins("{dataset}", timezone="Europe/Paris") (or timezone="UTC" to keep UTC '
                "hours), so that hours of the day and week are local. In a chapter, set timezone in the "
                "parameters cell."
            )
    timezone = _check_timezone(timezone if timezone is not None else registered[0])  # type: ignore[index]
    if dataset == "synthetic":
        checkins = chapter_world(seed, smoke).checkins.copy()
    elif registered is not None:
        checkins = load_checkins(dataset)
    else:
        checkins = read_checkins(dataset, timezone=timezone, **(read_options or {}))
    if bbox is not None:
        box = _as_bbox(bbox)
    elif registered is not None:
        box = registered[1]
    else:
        box = infer_bbox(checkins)
    if smoke and dataset != "synthetic":
        checkins = _smoke_users(checkins)
    return ChapterCheckins(checkins=checkins, dataset=dataset, timezone=timezone, bbox=box)


def venue_names(poi_ids: np.ndarray | pd.Series, dataset: str, *, city: ChapterCheckins | None = None,
                seed: int = 0, smoke: bool = False) -> pd.Series:
    """The name of each POI, aligned with ``poi_ids`` (``""`` where none is known).

    * Gowalla: the venue names published with the data (:func:`stlab.data.load_gowalla_venues`);
    * the synthetic city: its places have no names, so each is named by its category and
      neighbourhood ("Food venue in district 6") -- a stand-in that carries the category only;
    * a file of yours: its ``name`` column (the most frequent name of each POI), when it has one.

    Introduced in chapter 9 (Pretrained models).
    """
    ids = pd.Index(np.asarray(poi_ids), name="poi_id")
    names: pd.Series
    if dataset.startswith("gowalla"):
        try:
            venues = load_gowalla_venues()
        except DataNotFoundError:
            venues = pd.DataFrame({"poi_id": [], "name": []})
        names = venues.drop_duplicates("poi_id").set_index("poi_id")["name"]
    elif dataset == "synthetic":
        pois = chapter_world(seed, smoke).pois.set_index("poi_id")
        names = pois["category"].astype(str) + " venue in district " + pois["neighbourhood"].astype(str)
    elif city is not None and "name" in city.checkins.columns:
        named = city.checkins.dropna(subset=["name"])
        names = named.groupby("poi_id")["name"].agg(lambda s: s.value_counts().index[0])
    else:
        names = pd.Series(dtype="string")
    out = names.reindex(ids).astype("string").fillna("").str.strip()
    return pd.Series(out.to_numpy(dtype=object), index=ids, name="name")


def chapter_bike_rentals(dataset: str, *, seed: int = 0, num_days: int = 400) -> tuple[pd.DataFrame, bool]:
    """The hourly bike-rental series the forecasting sections use, and whether it is simulated.

    The real UCI Bike Sharing series (:func:`stlab.data.series.hourly_bike_series`) for the book's
    real data sets; the simulated stand-in (:func:`stlab.data.series.synthetic_rentals`, ``num_days``
    long) on the synthetic city, or when the bike files are not at hand -- for instance when a
    reader runs a chapter on their own check-in file without ``STLAB_DATA``. Says which it is.
    """
    if dataset != "synthetic":
        try:
            return hourly_bike_series(load_bike_sharing("hour")), False
        except DataNotFoundError as err:
            print(f"the UCI bike-sharing files are not at hand ({str(err).splitlines()[0]})")
    print("the bike-sharing series is a SIMULATED stand-in (daily profile, temperature effect, seasonal AR "
          "noise); set STLAB_DATA to a folder with uci-bike-sharing/ to use the real one")
    return synthetic_rentals(num_days=num_days, seed=seed), True
