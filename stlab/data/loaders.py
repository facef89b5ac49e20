"""Loaders: registered data sets as tidy tables with one documented schema per kind.

============================  ===============================================================
kind                          loader and schema
============================  ===============================================================
check-ins                     :func:`load_gowalla`, :func:`load_foursquare`, :func:`read_checkins`
                              -> check-in schema (see :mod:`stlab.data.validate`)
e-commerce behaviour          :func:`load_taobao` -> user_id, item_id, category_id,
                              behavior (pv/cart/fav/buy), timestamp (UTC)
ratings with time             :func:`load_movielens` -> :class:`RatingsData`
counts                        :func:`load_bike_sharing` -> one row per hour or day
graph time series             :func:`load_montevideo_bus`, :func:`load_los_loop`,
                              :func:`read_graph_series` -> :class:`GraphSeries`
sensor graph                  :func:`load_metr_la_graph` -> :class:`SensorGraph`
============================  ===============================================================

:func:`load_checkins` dispatches on a data-set name, including ``"synthetic"``.
Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

import dataclasses

import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from stlab.data.cache import cached_frame
from stlab.data.errors import DataNotFoundError, DataValidationError
from stlab.data.fetch import fetch, fetch_file, file_digest
from stlab.data.validate import (
    CHECKIN_COLUMNS,
    CHECKIN_OPTIONAL,
    CHECKIN_REQUIRED,
    check_columns,
    coerce_numeric,
    parse_timestamps,
    read_delimited,
    validate_checkins,
)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class BBox:
    """A latitude/longitude bounding box in WGS84 degrees (edges included)."""

    lon_min: float
    lat_min: float
    lon_max: float
    lat_max: float

    def __post_init__(self) -> None:
        if not (self.lon_min < self.lon_max and self.lat_min < self.lat_max):
            raise ValueError(f"empty bounding box {self}: need lon_min < lon_max and lat_min < lat_max")

    def contains(self, lat: Any, lon: Any) -> np.ndarray:
        """Boolean mask of points inside the box."""
        lat, lon = np.asarray(lat), np.asarray(lon)
        return (lat >= self.lat_min) & (lat <= self.lat_max) & (lon >= self.lon_min) & (lon <= self.lon_max)


#: The New York City box used to cut the Gowalla NYC subset.
NYC_BBOX = BBox(lon_min=-74.2589, lat_min=40.4774, lon_max=-73.7004, lat_max=40.9176)

def _finish_checkins(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Order columns by the schema, sort by user then time, and validate."""
    columns = [c for c in CHECKIN_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in CHECKIN_COLUMNS]
    frame = frame[columns + extra].sort_values(["user_id", "timestamp"], kind="stable")
    return validate_checkins(frame.reset_index(drop=True), source=source)


# --------------------------------------------------------------------------- Gowalla
_GOWALLA_NAMES = ["user_id", "timestamp", "lat", "lon", "poi_id"]
_GOWALLA_DTYPES = {"user_id": "int64", "lat": "float64", "lon": "float64", "poi_id": "int64"}


def _parse_gowalla(path: Path, bbox: BBox | None, chunksize: int = 1_000_000) -> pd.DataFrame:
    """Read SNAP's five-column Gowalla format in chunks, keeping rows inside ``bbox``."""
    parts = []
    reader = pd.read_csv(path, sep="\t", header=None, names=_GOWALLA_NAMES, dtype=_GOWALLA_DTYPES,
                         chunksize=chunksize)
    for chunk in reader:
        if bbox is not None:
            chunk = chunk[bbox.contains(chunk["lat"].to_numpy(), chunk["lon"].to_numpy())]
        chunk["timestamp"] = pd.to_datetime(chunk["timestamp"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
        parts.append(chunk)
    return pd.concat(parts, ignore_index=True)


def load_gowalla(
    subset: Literal["nyc", "full"] = "nyc",
    *,
    bbox: BBox | None = None,
    path: PathLike | None = None,
    download: bool | None = None,
) -> pd.DataFrame:
    """Gowalla check-ins (Cho, Myers & Leskovec, KDD 2011) in the check-in schema.

    Args:
        subset: ``"nyc"`` -- the New York City cut (registered as ``gowalla-nyc``; cut from the
            worldwide file when no local copy exists); ``"full"`` -- SNAP's worldwide file.
        bbox: keep only check-ins inside this box (a city); applied after ``subset``.
        path: a folder to look in first.
        download: allow downloads (default: yes unless ``STLAB_OFFLINE=1``).

    Returns:
        Check-ins sorted by user and time; Gowalla has no categories or time-zone offsets.
    """
    if subset not in ("nyc", "full"):
        raise ValueError(f"subset must be 'nyc' or 'full', got {subset!r}")
    source_path: Path | None = None
    cut = bbox
    if subset == "nyc":
        try:
            source_path = fetch_file("gowalla-nyc", "gowalla_events_nyc_bbox.tsv.gz", path=path,
                                     download=download).path
        except DataNotFoundError as local_err:
            try:
                source_path = fetch_file("gowalla", "loc-gowalla_totalCheckins.txt", path=path,
                                         download=download).path
            except DataNotFoundError as full_err:
                raise DataNotFoundError(
                    f"{local_err}\n\nNor could the NYC cut be made from the worldwide file:\n{full_err}"
                ) from None
            cut = NYC_BBOX if bbox is None else bbox
            if bbox is not None:  # both boxes apply
                cut = BBox(max(bbox.lon_min, NYC_BBOX.lon_min), max(bbox.lat_min, NYC_BBOX.lat_min),
                           min(bbox.lon_max, NYC_BBOX.lon_max), min(bbox.lat_max, NYC_BBOX.lat_max))
    else:
        source_path = fetch_file("gowalla", "loc-gowalla_totalCheckins.txt", path=path,
                                 download=download).path
    settings = {"loader": "gowalla", "bbox": None if cut is None else vars(cut)}
    key = f"gowalla.{subset}.{'all' if cut is None else 'bbox'}"
    frame = cached_frame(key, settings, [file_digest(source_path)], lambda: _parse_gowalla(source_path, cut))
    return _finish_checkins(frame, source=f"gowalla ({source_path.name})")


def load_gowalla_venues(*, path: PathLike | None = None) -> pd.DataFrame:
    """Names and coordinates of Gowalla venues in New York City: poi_id, name, lat, lon."""
    venues_path = fetch_file("gowalla-nyc", "gowalla_venues_nyc.tsv", path=path).path
    # Venue names may contain quotes; read them verbatim.
    return pd.read_csv(venues_path, sep="\t", header=None, names=["poi_id", "name", "lat", "lon"],
                       dtype={"poi_id": "int64", "name": "string", "lat": "float64", "lon": "float64"},
                       quoting=3, keep_default_na=False)


# --------------------------------------------------------------------------- Foursquare
_TSMC_NAMES = ["user_id", "poi_id", "category_id", "category", "lat", "lon", "tz_offset_min", "utc_time"]


def load_foursquare(
    city: Literal["NYC", "TKY"] = "NYC", *, path: PathLike | None = None, download: bool | None = None
) -> pd.DataFrame:
    """Foursquare TSMC2014 check-ins (Yang et al., IEEE TSMC 2015) for New York or Tokyo.

    Returns:
        The check-in schema with ``category`` and ``tz_offset_min`` filled, plus ``category_id``.
    """
    city = city.upper()  # type: ignore[assignment]
    if city not in ("NYC", "TKY"):
        raise ValueError(f"city must be 'NYC' or 'TKY', got {city!r}")
    file_path = fetch_file("foursquare-tsmc2014", f"dataset_TSMC2014_{city}.txt", path=path,
                           download=download).path

    def build() -> pd.DataFrame:
        # The published files are Latin-1, not UTF-8 (venue names with accents).
        table, first = read_delimited(file_path, names=_TSMC_NAMES, sep="\t", encoding="latin-1",
                                      source=file_path.name)
        table = coerce_numeric(table, {"user_id": "int64", "lat": "float64", "lon": "float64",
                                       "tz_offset_min": "int16"}, source=file_path.name, first_data_line=first)
        table["timestamp"] = pd.to_datetime(table.pop("utc_time"), format="%a %b %d %H:%M:%S %z %Y", utc=True)
        table["tz_offset_min"] = table["tz_offset_min"].astype("Int16")
        for col in ("poi_id", "category", "category_id"):
            table[col] = table[col].astype("string")
        return table

    frame = cached_frame(f"foursquare.{city}", {"loader": "foursquare"}, [file_digest(file_path)], build)
    return _finish_checkins(frame, source=file_path.name)


# --------------------------------------------------------------------------- generic files
def read_checkins(
    path: PathLike,
    *,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
    timezone: str | None = None,
    extra: Literal["error", "keep", "ignore"] = "error",
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read your own check-in log (CSV, TSV or Parquet) into the check-in schema.

    The file needs a header with ``user_id, timestamp, lat, lon, poi_id`` and optionally
    ``category`` and ``tz_offset_min`` (rename yours with ``columns``). Time stamps must carry
    a zone (``Z`` or ``+01:00``) or be unix seconds; pass ``timezone`` for local times.

    Args:
        path: the file; ``.parquet`` is read as Parquet, anything else as delimited text.
        columns: a mapping from your column names to schema names.
        sep: the delimiter; by default tab for ``.tsv``, comma otherwise.
        timezone: zone of zone-less local time stamps, for example ``"America/New_York"``.
        extra: what to do with columns the schema does not know.

    Raises:
        DataValidationError: with the line numbers and the fix, for every problem listed in
            :mod:`stlab.data.validate`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no check-in file at {path}.\nFix: check the path.")
    source = path.name
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        if len(table) == 0:
            raise DataValidationError(f"{source}: the file has no rows.")
        first = 0
    else:
        if path.stat().st_size == 0:
            raise DataValidationError(f"{source}: the file is empty.\nFix: re-download or re-export it.")
        if sep is None:
            sep = "\t" if ".tsv" in path.suffixes else ","
        table, first = read_delimited(path, names=None, sep=sep, source=source, encoding=encoding)
        table.columns = [c.strip() for c in table.columns]
    if columns:
        table = table.rename(columns=columns)
    check_columns(list(table.columns), CHECKIN_REQUIRED, CHECKIN_OPTIONAL, source=source,
                  allow_extra=extra != "error")
    if extra == "ignore":
        table = table[[c for c in table.columns if c in CHECKIN_COLUMNS]]
    numeric = {"lat": "float64", "lon": "float64"}
    if "tz_offset_min" in table.columns:
        numeric["tz_offset_min"] = "int16"
    text_cols = [c for c in numeric if not pd.api.types.is_numeric_dtype(table[c])]
    table = coerce_numeric(table, {c: numeric[c] for c in text_cols}, source=source, first_data_line=first)
    if not isinstance(table["timestamp"].dtype, pd.DatetimeTZDtype):
        ts = table["timestamp"]
        is_unix = pd.api.types.is_numeric_dtype(ts) or ts.astype(str).str.fullmatch(r"\d{9,11}").all()
        table["timestamp"] = parse_timestamps(ts, source=source, timezone=timezone, first_data_line=first,
                                              unit="s" if is_unix else None)
    for col in ("user_id", "poi_id"):
        if not pd.api.types.is_integer_dtype(table[col]):
            as_int = pd.to_numeric(table[col], errors="coerce")
            table[col] = as_int.astype("int64") if as_int.notna().all() else table[col].astype("string")
    if "category" in table.columns:
        table["category"] = table["category"].astype("string")
    return _finish_checkins(table, source=source)


# --------------------------------------------------------------------------- Taobao
TAOBAO_BEHAVIORS = ("pv", "cart", "fav", "buy")
_TAOBAO_FILES = {
    "head": "UserBehavior_head.csv",
    "slice": "UserBehavior_flink_timesorted_slice.csv",
    "full": "UserBehavior.csv",
}


def load_taobao(subset: Literal["head", "slice", "full"] = "head", *, path: PathLike | None = None) -> pd.DataFrame:
    """Taobao UserBehavior (Zhu et al., KDD 2018): page views, carts, favourites and buys.

    Args:
        subset: ``"head"`` -- the first 4,321 lines (43 users, whole histories); ``"slice"`` --
            96,168 time-sorted events from two hours; ``"full"`` -- the 100 M-event file,
            placed by hand after a Tianchi login.

    Returns:
        ``user_id, item_id, category_id`` (int64), ``behavior`` (categorical pv < cart < fav < buy),
        ``timestamp`` (UTC), in file order.
    """
    if subset not in _TAOBAO_FILES:
        raise ValueError(f"subset must be one of {sorted(_TAOBAO_FILES)}, got {subset!r}")
    file_path = fetch_file("taobao-userbehavior", _TAOBAO_FILES[subset], path=path).path

    def build() -> pd.DataFrame:
        names = ["user_id", "item_id", "category_id", "behavior", "unix_time"]
        table = pd.read_csv(file_path, header=None, names=names,
                            dtype={"user_id": "int64", "item_id": "int64", "category_id": "int64",
                                   "behavior": "string", "unix_time": "int64"})
        unknown = sorted(set(table["behavior"].unique()) - set(TAOBAO_BEHAVIORS))
        if unknown:
            raise DataValidationError(f"{file_path.name}: unknown behaviour type(s) {unknown}; "
                                      f"expected {TAOBAO_BEHAVIORS}.")
        table["behavior"] = pd.Categorical(table["behavior"], categories=TAOBAO_BEHAVIORS, ordered=True)
        table["timestamp"] = pd.to_datetime(table.pop("unix_time"), unit="s", utc=True)
        return table

    return cached_frame(f"taobao.{subset}", {"loader": "taobao"}, [file_digest(file_path)], build)


# --------------------------------------------------------------------------- MovieLens
@dataclass(frozen=True)
class RatingsData:
    """Explicit feedback with time stamps.

    Attributes:
        ratings: ``user_id, item_id, rating, timestamp`` (UTC).
        users: ``user_id, age, gender, occupation, zip_code`` (a coarse location).
        items: ``item_id, title`` and one boolean column per genre.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def load_movielens(variant: Literal["100k", "1m"] = "100k", *, path: PathLike | None = None) -> RatingsData:
    """MovieLens ratings (Harper & Konstan, ACM TiiS 2015) with users' zip codes."""
    if variant == "100k":
        files = fetch("movielens-100k", ["u.data", "u.user", "u.item", "u.genre"], path=path)
        ratings = pd.read_csv(files["u.data"], sep="\t", header=None,
                              names=["user_id", "item_id", "rating", "unix_time"], dtype="int64")
        users = pd.read_csv(files["u.user"], sep="|", header=None,
                            names=["user_id", "age", "gender", "occupation", "zip_code"],
                            dtype={"user_id": "int64", "age": "int64", "gender": "category",
                                   "occupation": "category", "zip_code": "string"})
        genres = pd.read_csv(files["u.genre"], sep="|", header=None, names=["genre", "id"])["genre"].tolist()
        items = pd.read_csv(files["u.item"], sep="|", header=None, encoding="latin-1",
                            names=["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres])
        items = items.drop(columns=["video_release_date", "imdb_url"])
        items[genres] = items[genres].astype(bool)
    elif variant == "1m":
        archive = fetch_file("movielens-1m", "ml-1m.zip", path=path).path
        with zipfile.ZipFile(archive) as zf:
            def read(member: str, names: list[str]) -> pd.DataFrame:
                text = zf.read(f"ml-1m/{member}").decode("latin-1")
                return pd.read_csv(io.StringIO(text), sep="::", engine="python", header=None, names=names)
            ratings = read("ratings.dat", ["user_id", "item_id", "rating", "unix_time"])
            users = read("users.dat", ["user_id", "gender", "age", "occupation", "zip_code"])
            items = read("movies.dat", ["item_id", "title", "genres"])
        users["zip_code"] = users["zip_code"].astype("string")
        genre_dummies = items.pop("genres").str.get_dummies("|").astype(bool)
        items = pd.concat([items, genre_dummies], axis=1)
    else:
        raise ValueError(f"variant must be '100k' or '1m', got {variant!r}")
    ratings["timestamp"] = pd.to_datetime(ratings.pop("unix_time"), unit="s", utc=True)
    return RatingsData(ratings=ratings, users=users, items=items)


# --------------------------------------------------------------------------- bike sharing
# The daily file exists in two layouts: UCI's original and a variant with renamed columns.
_BIKE_DAY_RENAMES = {"workday": "workingday", "tempC": "temp", "windspd": "windspeed", "reg": "registered"}
BIKE_TIMEZONE = "America/New_York"


def load_bike_sharing(freq: Literal["hour", "day"] = "hour", *, path: PathLike | None = None) -> pd.DataFrame:
    """Capital Bikeshare rentals (Fanaee-T & Gama, 2013) per hour or per day, with weather.

    Returns:
        One row per period with a ``timestamp`` column (local Washington DC time, zone-aware),
        the calendar and weather columns of the original (``season, yr, mnth, [hr,] holiday,
        weekday, workingday, weathersit, temp, atemp, hum, windspeed``) and the counts
        ``casual, registered, cnt``. Hours with no rentals are absent from the original file
        (17,379 of 17,544 hours are present); they are not filled in here.
    """
    if freq not in ("hour", "day"):
        raise ValueError(f"freq must be 'hour' or 'day', got {freq!r}")
    file_path = fetch_file("uci-bike-sharing", f"{freq}.csv", path=path).path
    table = pd.read_csv(file_path).rename(columns=_BIKE_DAY_RENAMES)
    day = pd.to_datetime(table["dteday"])
    if freq == "hour":
        day = day + pd.to_timedelta(table["hr"], unit="h")
    # Local clock times; the nonexistent spring-forward hour never appears in the data.
    table.insert(0, "timestamp", day.dt.tz_localize(BIKE_TIMEZONE, ambiguous="NaT", nonexistent="NaT"))
    keep = ["timestamp", "season", "yr", "mnth", *(["hr"] if freq == "hour" else []), "holiday", "weekday",
            "workingday", "weathersit", "temp", "atemp", "hum", "windspeed", "casual", "registered", "cnt"]
    check_columns(list(table.columns), keep, source=file_path.name, allow_extra=True)
    return table[keep]


# --------------------------------------------------------------------------- graph series
@dataclass(frozen=True)
class GraphSeries:
    """Values observed over time at the nodes of a graph.

    Attributes:
        values: ``[T, N]`` float32 readings (``nan`` where missing).
        node_ids: ``[N]`` identifiers of the nodes, in column order.
        edge_index: ``[2, E]`` int64 source and target node positions.
        edge_weight: ``[E]`` float32 weights (meaning depends on the data set).
        timestamps: ``[T]`` time of each row, or ``None`` when unknown.
        coords: ``[N, 2]`` node coordinates (see ``coord_crs``), or ``None``.
        coord_crs: what ``coords`` are, for example ``"EPSG:4326 lat/lon"``.
        name: a short label.
    """

    values: np.ndarray
    node_ids: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    timestamps: pd.DatetimeIndex | None
    coords: np.ndarray | None
    coord_crs: str | None
    name: str

    @property
    def num_nodes(self) -> int:
        return int(self.values.shape[1])

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    def adjacency(self) -> np.ndarray:
        """Dense ``[N, N]`` weighted adjacency (row = source, column = target)."""
        adj = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        adj[self.edge_index[0], self.edge_index[1]] = self.edge_weight
        return adj


def read_graph_series(
    values: np.ndarray | pd.DataFrame,
    adjacency: np.ndarray,
    *,
    timestamps: pd.DatetimeIndex | None = None,
    node_ids: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    name: str = "graph series",
) -> GraphSeries:
    """Wrap any ``[T, N]`` matrix and ``[N, N]`` adjacency so models can use your own network.

    Raises:
        DataValidationError: shapes that disagree, a non-square or negative adjacency, or
            time stamps of the wrong length.
    """
    if isinstance(values, pd.DataFrame):
        node_ids = np.asarray(values.columns) if node_ids is None else node_ids
        if timestamps is None and isinstance(values.index, pd.DatetimeIndex):
            timestamps = values.index
        values = values.to_numpy()
    values = np.asarray(values, dtype=np.float32)
    adjacency = np.asarray(adjacency, dtype=np.float32)
    if values.ndim != 2:
        raise DataValidationError(f"{name}: values must be [time, node], got shape {values.shape}.")
    if adjacency.shape != (values.shape[1], values.shape[1]):
        raise DataValidationError(
            f"{name}: adjacency has shape {adjacency.shape} but values have {values.shape[1]} nodes.\n"
            "Fix: order the adjacency rows and columns like the value columns."
        )
    if (adjacency < 0).any() or not np.isfinite(adjacency).all():
        raise DataValidationError(f"{name}: adjacency weights must be finite and non-negative.")
    if timestamps is not None and len(timestamps) != values.shape[0]:
        raise DataValidationError(f"{name}: {len(timestamps)} time stamps for {values.shape[0]} rows.")
    src, dst = np.nonzero(adjacency)
    return GraphSeries(
        values=values,
        node_ids=np.arange(values.shape[1]) if node_ids is None else np.asarray(node_ids),
        edge_index=np.stack([src, dst]).astype(np.int64),
        edge_weight=adjacency[src, dst],
        timestamps=timestamps,
        coords=coords,
        coord_crs=None if coords is None else "given",
        name=name,
    )


def load_montevideo_bus(*, path: PathLike | None = None) -> GraphSeries:
    """Hourly passenger inflow at 675 Montevideo bus stops, October 2020, on a 690-edge graph.

    ``edge_weight`` is the distance along the bus line between consecutive stops (metres);
    ``coords`` are the stops' projected x, y (UTM zone 21S, metres), as published.
    """
    file_path = fetch_file("montevideo-bus", "montevideo_bus.json", path=path).path
    graph = json.loads(file_path.read_text())
    nodes = graph["nodes"]
    node_ids = np.array([n["id"] for n in nodes], dtype=np.int64)
    position = {int(n): i for i, n in enumerate(node_ids)}
    values = np.array([n["y"] for n in nodes], dtype=np.float32).T  # [T, N]
    links = graph["links"]
    edge_index = np.array([[position[e["source"]] for e in links], [position[e["target"]] for e in links]],
                          dtype=np.int64)
    timestamps = pd.date_range("2020-10-01", periods=values.shape[0], freq="h", tz="America/Montevideo")
    return GraphSeries(
        values=values, node_ids=node_ids, edge_index=edge_index,
        edge_weight=np.array([e["weight"] for e in links], dtype=np.float32),
        timestamps=timestamps,
        coords=np.array([[n["lon"], n["lat"]] for n in nodes], dtype=np.float64),
        coord_crs="UTM zone 21S x, y (metres)", name="Montevideo bus inflow",
    )


def load_los_loop(*, path: PathLike | None = None) -> GraphSeries:
    """LOS-LOOP: one week of 5-minute speeds (mph) at 207 Los Angeles loop detectors.

    Zero speeds in the file are missing readings; they are returned as ``nan``. The T-GCN
    paper (Zhao et al., 2019) dates the week to 1-7 March 2012.
    """
    files = fetch("metr-la", ["los_speed.csv", "los_adj.csv", "graph_sensor_locations.csv"], path=path)
    speeds = pd.read_csv(files["los_speed.csv"])
    adjacency = np.loadtxt(files["los_adj.csv"], delimiter=",", dtype=np.float32)
    values = speeds.to_numpy(dtype=np.float32)
    values[values == 0] = np.nan
    timestamps = pd.date_range("2012-03-01", periods=len(speeds), freq="5min", tz="America/Los_Angeles")
    node_ids = np.array(speeds.columns, dtype=np.int64)
    # The same 207 detectors as METR-LA, whose positions DCRNN publishes.
    locations = pd.read_csv(files["graph_sensor_locations.csv"]).set_index("sensor_id")
    if not set(node_ids) <= set(locations.index):
        raise DataValidationError("los_speed.csv names sensors that graph_sensor_locations.csv does not locate.")
    coords = locations.loc[node_ids, ["longitude", "latitude"]].to_numpy(dtype=np.float64)
    series = read_graph_series(values, adjacency, timestamps=timestamps, node_ids=node_ids, coords=coords,
                               name="LOS-LOOP speeds")
    return dataclasses.replace(series, coord_crs="longitude, latitude (degrees)")


GRAPH_SERIES_DATASETS = ("los-loop", "montevideo-bus", "synthetic")


def subgraph(series: GraphSeries, nodes: np.ndarray, *, name: str | None = None) -> GraphSeries:
    """The series at some nodes only, with the edges among them (for quick runs and tests)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    position = np.full(series.num_nodes, -1)
    position[nodes] = np.arange(len(nodes))
    keep = (position[series.edge_index[0]] >= 0) & (position[series.edge_index[1]] >= 0)
    return GraphSeries(
        values=series.values[:, nodes], node_ids=series.node_ids[nodes],
        edge_index=position[series.edge_index[:, keep]], edge_weight=series.edge_weight[keep],
        timestamps=series.timestamps, coords=None if series.coords is None else series.coords[nodes],
        coord_crs=series.coord_crs, name=name or series.name)


def load_graph_series(dataset: str, *, seed: int = 0, smoke: bool = False, path: PathLike | None = None) -> GraphSeries:
    """A network's ``[time, node]`` readings and graph: a registered one, the simulated one, or yours.

    Args:
        dataset: ``"los-loop"``, ``"montevideo-bus"``, ``"synthetic"``, or a path to an ``.npz``
            file holding ``values`` (``[T, N]``, ``NaN`` for missing) and ``adjacency``
            (``[N, N]``), and optionally ``node_ids`` -- your own network.
        seed: seed of the simulated network.
        smoke: keep a small piece (the first 30 nodes and 4 days of the simulated network), so
            that tests run in seconds.
        path: a folder to look in first for registered files.
    """
    if dataset == "synthetic":
        from stlab.data.synthetic import simulate_road_network

        return simulate_road_network(30 if smoke else 60, 4 if smoke else 14, seed=seed)
    if dataset == "los-loop":
        series = load_los_loop(path=path)
    elif dataset == "montevideo-bus":
        series = load_montevideo_bus(path=path)
    elif Path(dataset).suffix == ".npz":
        if not Path(dataset).exists():
            raise DataValidationError(f"{dataset}: no such file; give the path of an .npz with values and adjacency")
        with np.load(dataset, allow_pickle=False) as archive:  # no pickles: arrays only
            missing = {"values", "adjacency"} - set(archive.files)
            if missing:
                raise DataValidationError(f"{dataset} lacks {sorted(missing)}; save it with "
                                          "np.savez(path, values=[T, N] array, adjacency=[N, N] array)")
            series = read_graph_series(archive["values"], archive["adjacency"], name=Path(dataset).stem,
                                       node_ids=archive["node_ids"] if "node_ids" in archive.files else None)
    else:
        raise ValueError(f"unknown network {dataset!r}; use one of {GRAPH_SERIES_DATASETS} or an .npz path")
    if smoke:
        series = subgraph(series, np.arange(min(30, series.num_nodes)))
    return series


# --------------------------------------------------------------------------- METR-LA sensor graph
class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only what a NumPy adjacency pickle needs, and nothing callable else.

    ``adj_mx.pkl`` holds ``[sensor_ids, id_to_index, adjacency]``; a pickle that asks for any
    other global is refused, so a tampered file cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol 2 stores the bytes of an array; encodes text only
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a pickle: only NumPy arrays, lists, dicts and "
            "strings are admitted"
        )


def restricted_unpickle(data: bytes) -> Any:
    """Unpickle bytes that may only hold built-in containers, strings, numbers and NumPy arrays."""
    return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


@dataclass(frozen=True)
class SensorGraph:
    """A road-sensor graph: ids, positions and a weighted adjacency.

    Attributes:
        sensor_ids: ``[N]`` sensor identifiers (strings as published).
        adjacency: ``[N, N]`` float32 Gaussian-kernel weights (Li et al., ICLR 2018).
        locations: ``sensor_id, latitude, longitude`` per sensor, in adjacency order.
    """

    sensor_ids: np.ndarray
    adjacency: np.ndarray
    locations: pd.DataFrame


def load_metr_la_graph(*, path: PathLike | None = None) -> SensorGraph:
    """The METR-LA sensor graph of DCRNN (207 sensors), read with a restricted unpickler."""
    files = fetch("metr-la", ["adj_mx.pkl", "graph_sensor_locations.csv"], path=path)
    payload = restricted_unpickle(files["adj_mx.pkl"].read_bytes())
    if not (isinstance(payload, (list, tuple)) and len(payload) == 3):
        raise DataValidationError("adj_mx.pkl: expected [sensor_ids, id_to_index, adjacency].")
    sensor_ids, id_to_index, adjacency = payload
    adjacency = np.asarray(adjacency, dtype=np.float32)
    if adjacency.shape != (len(sensor_ids), len(sensor_ids)):
        raise DataValidationError(f"adj_mx.pkl: adjacency {adjacency.shape} for {len(sensor_ids)} sensors.")
    if any(id_to_index[s] != i for i, s in enumerate(sensor_ids)):
        raise DataValidationError("adj_mx.pkl: id_to_index disagrees with the order of sensor_ids.")
    locations = pd.read_csv(files["graph_sensor_locations.csv"], dtype={"sensor_id": "string"})
    locations = locations.set_index("sensor_id").loc[list(sensor_ids)].reset_index()
    return SensorGraph(np.asarray(sensor_ids), adjacency, locations[["sensor_id", "latitude", "longitude"]])


# --------------------------------------------------------------------------- dispatcher
CHECKIN_DATASETS = ("gowalla-nyc", "gowalla", "foursquare-nyc", "foursquare-tky", "synthetic")


def load_checkins(dataset: str = "gowalla-nyc", *, seed: int = 0, path: PathLike | None = None,
                  **options: Any) -> pd.DataFrame:
    """Check-ins of a named data set, or of a file of yours, in the check-in schema.

    Args:
        dataset: one of ``CHECKIN_DATASETS``, or a path to a CSV/TSV/Parquet file.
        seed: seed of the synthetic world (``dataset="synthetic"``).
        path: a folder to look in first for registered files.
        options: passed to the loader (``bbox=``, or :class:`~stlab.data.synthetic.WorldConfig`
            fields for the synthetic world).
    """
    if dataset == "synthetic":
        from stlab.data.synthetic import SyntheticWorld, WorldConfig

        return SyntheticWorld(WorldConfig(seed=seed, **options)).checkins
    if dataset == "gowalla-nyc":
        return load_gowalla("nyc", path=path, **options)
    if dataset == "gowalla":
        return load_gowalla("full", path=path, **options)
    if dataset in ("foursquare-nyc", "foursquare-tky"):
        return load_foursquare(dataset.split("-")[1].upper(), path=path)  # type: ignore[arg-type]
    candidate = Path(dataset)
    if candidate.suffix in {".csv", ".tsv", ".parquet", ".gz"} or candidate.exists():
        return read_checkins(candidate, **options)
    raise ValueError(f"unknown check-in data set {dataset!r}; use one of {CHECKIN_DATASETS} or a file path")


# --------------------------------------------------------------------------- chapter helper
#: Local time zone and bounding box of each check-in data set's city.
TKY_BBOX = BBox(lon_min=139.47, lat_min=35.51, lon_max=139.91, lat_max=35.87)
DATASET_CITY: dict[str, tuple[str, BBox | None]] = {
    "gowalla-nyc": ("America/New_York", NYC_BBOX),
    "synthetic": ("America/New_York", NYC_BBOX),
    "foursquare-nyc": ("America/New_York", NYC_BBOX),
    "foursquare-tky": ("Asia/Tokyo", TKY_BBOX),
    "gowalla": ("UTC", None),
}
#: Users kept in smoke mode (tests), so a chapter runs in seconds.
SMOKE_USERS = 300
#: Size of the synthetic city in smoke mode.
SMOKE_WORLD: dict[str, int] = {"num_users": 60, "num_pois": 200, "num_days": 21}


def load_chapter_checkins(dataset: str, *, seed: int = 0, smoke: bool = False) -> pd.DataFrame:
    """The check-ins a chapter studies: the named data set, or a small slice of it in smoke mode.

    In smoke mode the synthetic world is small (60 users, three weeks) and real data keep only
    the ``SMOKE_USERS`` users with the lowest ids, so tests run the chapter's code in seconds.
    """
    if dataset == "synthetic":
        from stlab.data.synthetic import chapter_world

        return chapter_world(seed, smoke).checkins.copy()
    checkins = load_checkins(dataset)
    if smoke:
        keep = np.sort(checkins["user_id"].unique())[:SMOKE_USERS]
        checkins = checkins[checkins["user_id"].isin(keep)].reset_index(drop=True)
    return checkins
