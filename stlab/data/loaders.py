"""Loaders: registered data sets as tidy tables with one documented schema per kind.

============================  ===============================================================
kind                          loader and schema
============================  ===============================================================
check-ins                     :func:`load_gowalla`, :func:`load_foursquare`,
                              :func:`load_foursquare_stan`, :func:`read_checkins`
                              -> check-in schema (see :mod:`stlab.data.validate`)
e-commerce behaviour          :func:`load_taobao` -> user_id, item_id, category_id,
                              behavior (pv/cart/fav/buy), timestamp (UTC)
ratings with time             :func:`load_movielens` -> :class:`RatingsData`
counts                        :func:`load_bike_sharing` -> one row per hour or day
graph time series             :func:`load_montevideo_bus`, :func:`load_los_loop`,
                              :func:`~stlab.data.graphseries.read_graph_series`
                              -> :class:`~stlab.data.graphseries.GraphSeries`
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
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from stlab.data.cache import cached_frame
from stlab.data.errors import DataNotFoundError, DataValidationError
from stlab.data.fetch import fetch, fetch_file, file_digest
from stlab.data.graphseries import GraphSeries, read_graph_series, subgraph
from stlab.data.schema import NYC_BBOX, TAOBAO_BEHAVIORS, BBox
from stlab.data.synthetic import SyntheticWorld, WorldConfig, simulate_road_network
from stlab.data.validate import (
    CHECKIN_COLUMNS,
    CHECKIN_OPTIONAL,
    CHECKIN_REQUIRED,
    AmbiguousTimes,
    NonexistentTimes,
    check_columns,
    check_ids,
    coerce_numeric,
    first_line,
    looks_like_data,
    parse_timestamps,
    read_delimited,
    validate_checkins,
)

PathLike = str | os.PathLike[str]


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


# --------------------------------------------------------------------------- Foursquare NYC (STAN)
#: Minute 1 of STAN's ``NYC.npy``. Its authors do not state the origin of their minute counts;
#: this is the first check-in of the raw TSMC2014 NYC file (Tue Apr 03 18:00:09 +0000 2012, to the
#: minute), from which STAN derived the data. With it the last check-in falls on the collection's
#: last day (2013-02-16 UTC) and the daily trough of check-ins near 04:00 New York time; any other
#: origin shifts every time stamp by the same amount.
STAN_NYC_ORIGIN = pd.Timestamp("2012-04-03 18:00", tz="UTC")


def _read_npy(path: Path, *, columns: str, kind: Literal["i", "f"]) -> np.ndarray:
    """A 2-D, three-column numeric array from ``path``; pickles and object arrays are refused."""
    wanted = "integers" if kind == "i" else "floats"
    fix = (f"Fix: use the registered file, or save a plain {wanted} array of rows [{columns}] with "
           "np.save(path, array).")
    try:
        array = np.load(path, allow_pickle=False)  # arrays only: a pickle could run code
    except (ValueError, OSError, EOFError) as err:
        raise DataValidationError(f"{path.name}: not a plain .npy array ({err}).\n{fix}") from None
    if not isinstance(array, np.ndarray):
        raise DataValidationError(f"{path.name}: holds several arrays (an .npz archive), expected one.\n{fix}")
    kinds = "iu" if kind == "i" else "f"
    if array.dtype.kind not in kinds:
        raise DataValidationError(f"{path.name}: dtype {array.dtype}, expected {wanted}.\n{fix}")
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise DataValidationError(f"{path.name}: shape {array.shape}, expected (rows, 3) with rows [{columns}].\n{fix}")
    return array


def load_foursquare_stan(
    *,
    path: PathLike | None = None,
    origin: pd.Timestamp | str = STAN_NYC_ORIGIN,
    download: bool | None = None,
) -> pd.DataFrame:
    """Foursquare NYC check-ins as preprocessed by STAN (Luo, Liu & Liu, WWW 2021).

    ``NYC.npy`` holds rows ``[user, poi, minutes]``, ``NYC_POI.npy`` rows ``[poi, lat, lon]``;
    each check-in gets its POI's coordinates. Rows are kept as published, duplicates included.

    Args:
        path: a folder to look in first.
        origin: the instant of minute 1 (zone-aware); default :data:`STAN_NYC_ORIGIN`.
        download: allow downloads (default: yes unless ``STLAB_OFFLINE=1``).

    Returns:
        The check-in schema (integer ids, UTC times) sorted by user and time; there are no
        categories or time-zone offsets.

    Raises:
        DataValidationError: a file that is not a three-column numeric array, or check-ins at POIs
            that ``NYC_POI.npy`` does not locate.
    """
    start = pd.Timestamp(origin)
    if start.tzinfo is None:
        raise ValueError(f"origin {origin!r} has no time zone; give one, for example "
                         "pd.Timestamp('2012-04-03 18:00', tz='UTC')")
    files = fetch("foursquare-nyc-stan", ["NYC.npy", "NYC_POI.npy"], path=path, download=download)
    visits = _read_npy(files["NYC.npy"], columns="user, poi, minutes", kind="i").astype(np.int64)
    places = _read_npy(files["NYC_POI.npy"], columns="poi, lat, lon", kind="f")
    place_ids = places[:, 0].astype(np.int64)
    if not np.array_equal(place_ids, places[:, 0]) or len(np.unique(place_ids)) != len(place_ids):
        raise DataValidationError("NYC_POI.npy: the POI ids in column 0 must be distinct whole numbers.\n"
                                  "Fix: use the registered file.")
    row = pd.Index(place_ids).get_indexer(visits[:, 1])
    if (row < 0).any():
        unknown = np.unique(visits[row < 0, 1])
        raise DataValidationError(f"NYC.npy: {len(unknown)} POI id(s) without coordinates in NYC_POI.npy, "
                                  f"e.g. {unknown[:5].tolist()}.\nFix: use the two registered files together.")
    frame = pd.DataFrame({
        "user_id": visits[:, 0], "poi_id": visits[:, 1],
        "timestamp": start.tz_convert("UTC") + pd.to_timedelta(visits[:, 2] - 1, unit="min"),
        "lat": places[row, 1], "lon": places[row, 2],
    })
    return _finish_checkins(frame, source="foursquare-nyc-stan (NYC.npy)")


# --------------------------------------------------------------------------- generic files
#: Columns of SNAP's check-in files (Gowalla, Brightkite): TAB-separated, no header row.
SNAP_CHECKIN_NAMES: tuple[str, ...] = tuple(_GOWALLA_NAMES)


def read_checkins(
    path: PathLike,
    *,
    columns: dict[str, str] | None = None,
    names: Sequence[str] | None = None,
    format: Literal["snap"] | None = None,
    sep: str | None = None,
    timezone: str | None = None,
    ambiguous: AmbiguousTimes = "raise",
    nonexistent: NonexistentTimes = "raise",
    extra: Literal["error", "keep", "ignore"] = "error",
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read your own check-in log (CSV, TSV or Parquet) into the check-in schema.

    The file needs a header with ``user_id, timestamp, lat, lon, poi_id`` and optionally
    ``category`` and ``tz_offset_min`` (rename yours with ``columns``); a file without a header
    row needs ``names`` (or ``format="snap"`` for SNAP's layout). Time stamps must carry a zone
    (``Z`` or ``+01:00``) or be unix seconds; zone-less local times need ``timezone``.

    Args:
        path: the file; ``.parquet`` is read as Parquet, anything else as delimited text
            (gzipped or not).
        columns: a mapping from your column names to schema names.
        names: the column names, in order, of a text file without a header row.
        format: ``"snap"`` -- SNAP's Gowalla/Brightkite layout: TAB-separated ``user, time, lat,
            lon, location`` without a header (``SNAP_CHECKIN_NAMES``).
        sep: the delimiter; by default tab for ``.tsv`` (and for a first line with tabs but no
            commas), comma otherwise.
        timezone: zone of zone-less local time stamps, for example ``"America/New_York"``; they
            may be mixed with zoned ones.
        ambiguous: local times shown twice when the clocks fall back (only with ``timezone``):
            ``"raise"``, ``"earliest"``, ``"latest"`` or ``"drop"`` (leave the rows out).
        nonexistent: local times skipped when the clocks spring forward: ``"raise"``,
            ``"shift_forward"``, ``"shift_backward"`` or ``"drop"``.
        extra: what to do with columns the schema does not know.
        encoding: the text encoding.

    Raises:
        DataValidationError: with the line numbers and the fix, for every problem listed in
            :mod:`stlab.data.validate`, blank user or place ids, a missing header row, and
            daylight-saving gaps or repeats.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no check-in file at {path}.\nFix: check the path.")
    if format not in (None, "snap"):
        raise ValueError(f"format must be 'snap' or None, got {format!r}")
    source = path.name
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        if len(table) == 0:
            raise DataValidationError(f"{source}: the file has no rows.")
        first = 0
    else:
        if path.stat().st_size == 0:
            raise DataValidationError(f"{source}: the file is empty.\nFix: re-download or re-export it.")
        line = first_line(path, encoding)
        if format == "snap":
            names, sep = names or SNAP_CHECKIN_NAMES, sep or "\t"
        if sep is None:
            sep = "\t" if ".tsv" in path.suffixes or ("\t" in line and "," not in line) else ","
        if names is not None and len(line.split(sep)) != len(names):
            raise DataValidationError(
                f"{source}: {len(names)} names given ({list(names)}) but the first line has "
                f"{len(line.split(sep))} fields separated by {sep!r}.\nFix: name every column, in order."
            )
        table, first = read_delimited(path, names=names, sep=sep, source=source, encoding=encoding)
        table.columns = [str(c).strip() for c in table.columns]
        known = set(CHECKIN_COLUMNS) | set(columns or {})
        if names is None and not known & set(table.columns) and looks_like_data(line.split(sep)):
            raise DataValidationError(
                f"{source}: the header row is missing: the first line, {line[:80]!r}, is data.\n"
                f"Fix: name the columns in their order, for example names={list(SNAP_CHECKIN_NAMES)}; "
                "for SNAP's Gowalla layout (TAB-separated user, time, lat, lon, location) pass format='snap'."
            )
    if columns:
        table = table.rename(columns=columns)
    check_columns(list(table.columns), CHECKIN_REQUIRED, CHECKIN_OPTIONAL, source=source,
                  allow_extra=extra != "error")
    if extra == "ignore":
        table = table[[c for c in table.columns if c in CHECKIN_COLUMNS]]
    table = check_ids(table, ("user_id", "poi_id"), source=source, first_data_line=first)
    numeric = {"lat": "float64", "lon": "float64"}
    if "tz_offset_min" in table.columns:
        numeric["tz_offset_min"] = "int16"
    text_cols = [c for c in numeric if not pd.api.types.is_numeric_dtype(table[c])]
    table = coerce_numeric(table, {c: numeric[c] for c in text_cols}, source=source, first_data_line=first)
    if not isinstance(table["timestamp"].dtype, pd.DatetimeTZDtype):
        ts = table["timestamp"]
        is_unix = pd.api.types.is_numeric_dtype(ts) or ts.astype(str).str.fullmatch(r"\d{9,11}").all()
        table["timestamp"] = parse_timestamps(ts, source=source, timezone=timezone, first_data_line=first,
                                              unit="s" if is_unix else None, ambiguous=ambiguous,
                                              nonexistent=nonexistent)
        table = table[table["timestamp"].notna()]  # rows left out by ambiguous/nonexistent="drop"
    for col in ("user_id", "poi_id"):
        if not pd.api.types.is_integer_dtype(table[col]):
            as_int = pd.to_numeric(table[col], errors="coerce")
            table[col] = as_int.astype("int64") if as_int.notna().all() else table[col].astype("string")
    if "category" in table.columns:
        table["category"] = table["category"].astype("string")
    return _finish_checkins(table, source=source)


# --------------------------------------------------------------------------- Taobao
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
CHECKIN_DATASETS = ("gowalla-nyc", "gowalla", "foursquare-nyc", "foursquare-tky", "foursquare-nyc-stan",
                    "synthetic")


def load_checkins(dataset: str = "gowalla-nyc", *, seed: int = 0, path: PathLike | None = None,
                  **options: Any) -> pd.DataFrame:
    """Check-ins of a named data set, or of a file of yours, in the check-in schema.

    Args:
        dataset: one of ``CHECKIN_DATASETS``, or a path to a CSV/TSV/Parquet file.
        seed: seed of the synthetic world (``dataset="synthetic"``).
        path: a folder to look in first for registered files.
        options: passed to the loader (``bbox=``; :func:`read_checkins` arguments such as
            ``timezone=`` for a file; :class:`~stlab.data.synthetic.WorldConfig` fields for the
            synthetic world).
    """
    if dataset == "synthetic":
        return SyntheticWorld(WorldConfig(seed=seed, **options)).checkins
    if dataset == "gowalla-nyc":
        return load_gowalla("nyc", path=path, **options)
    if dataset == "gowalla":
        return load_gowalla("full", path=path, **options)
    if dataset in ("foursquare-nyc", "foursquare-tky"):
        return load_foursquare(dataset.split("-")[1].upper(), path=path)  # type: ignore[arg-type]
    if dataset == "foursquare-nyc-stan":
        return load_foursquare_stan(path=path, **options)
    candidate = Path(dataset)
    if candidate.suffix in {".csv", ".tsv", ".parquet", ".gz"} or candidate.exists():
        return read_checkins(candidate, **options)
    raise ValueError(f"unknown check-in data set {dataset!r}; use one of {CHECKIN_DATASETS} or a file path")
