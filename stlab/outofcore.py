"""Cleaning and the chronological split out of core, on DuckDB, for logs too big for pandas.

:func:`stlab.splits.clean_and_split` holds the whole log in memory several times over (sorts,
copies, group counts). That is fine for a city; the full SNAP Gowalla file (6.4 M check-ins) is
tight and a 100 M-event log does not fit. :func:`clean_and_split_duckdb` runs the same pipeline
(``kcore_on="train"``) in SQL on DuckDB, which works within a memory limit and spills to disk, and
writes the training, validation and test events as Parquet files. It gives exactly what the pandas
pipeline gives -- the same kept rows, parts, cutoffs and cleaning report -- and
:meth:`OutOfCoreSplit.load` reads the parts back into a :class:`~stlab.splits.Split` when they fit.

How each rule of :mod:`stlab.cleaning` is matched. Rows keep their position in the input (file
order; for a glob, files in name order) as a hidden column, because pandas breaks ties by it:

* **exact duplicates** -- ``GROUP BY`` every column, keeping the first position;
* **outside the city** -- the same inclusive comparisons as :meth:`stlab.data.BBox.contains`;
* **rapid repeats** -- ``lag`` over each user and POI ordered by time, then position (pandas'
  stable sort); the gap is the difference in the times' unit divided in float by that unit's ticks
  per second, as pandas computes it;
* **impossible speeds** -- this rule compares an event with the user's last *kept* event, so it is
  sequential, not a window function. SQL computes each step's speed from the previous event in the
  order pandas uses (user, time, POI, position: the order repeat removal leaves) and marks every
  user with a step that could exceed the limit (a safety margin covers rounding); only those users'
  events are streamed back, in that order and in batches of whole users, through the pandas rule
  itself (:func:`stlab.cleaning.drop_impossible_speeds`). Exact by construction; the Python time it
  costs is what pandas spends on the same users;
* **the cutoffs** -- the event-count quantiles of :func:`stlab.splits.temporal_split`, found from a
  cumulative count per distinct time instead of a sort of the whole log;
* **the k-core on training events** -- on (user, POI, count) pairs, one ``CREATE TABLE`` per round
  until a round removes nothing (at most 100 rounds, as :func:`stlab.cleaning.k_core`);
* **the rule for later events** -- a validation or test event is kept when its POI is in the
  training core and its user is in the core or has no training event.

Input is checked as :func:`stlab.data.read_checkins` checks it: missing values in the five schema
columns, coordinates out of range, zone-less time stamps (text without ``Z`` or an offset, or naive
Parquet times) and unparseable values are errors, not rows to drop. Text times are read at
microsecond resolution; Parquet nanosecond times keep their nanoseconds.

Every output file is written under a temporary name beside its final one and renamed only when all
of them are complete (the manifest last), so an interrupted run leaves no half-written part under a
final name. A killed process can leave hidden ``.*.part`` files and a ``.duckdb-*`` work folder in
``out_dir`` (or ``work_dir``); they are safe to delete.

Introduced in chapter 12 (The study).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from stlab.cleaning import CleaningConfig, drop_impossible_speeds, finish_report, kcore_label
from stlab.data.errors import DataNotFoundError, DataValidationError
from stlab.data.fetch import atomic_path
from stlab.data.loaders import SNAP_CHECKIN_NAMES
from stlab.data.validate import CHECKIN_REQUIRED
from stlab.features import EARTH_RADIUS_KM
from stlab.splits import Split, temporal_split

PathLike = str | os.PathLike[str]
PARTS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "split.json"
REPORT = "report.csv"
_ROW = "__row"  # the hidden input position
_MAX_ROUNDS = 100  # as stlab.cleaning.k_core
_SPEED_MARGIN = 1e-6  # relative slack of the SQL speed screen, far above float rounding
_ZONED = r"(Z|z|[+-]\d\d(:?\d\d)?)\s*$"  # text time stamps must end with a zone


@dataclass(frozen=True)
class OutOfCoreSplit:
    """Where :func:`clean_and_split_duckdb` wrote a split, and what it found.

    Attributes:
        paths: the Parquet file of each part, by name (``train``, ``val``, ``test``); each is sorted
            by user, then time.
        report_path: the cleaning report as CSV.
        manifest_path: cutoffs, row counts and settings as JSON (written last).
        train_end, val_end: the global cutoffs (UTC): ``train < train_end <= val < val_end <= test``.
        report: one row per rule, as :func:`stlab.splits.clean_and_split` reports it.
        rows: row counts: ``raw`` (the source), ``kept``, ``train``, ``val`` and ``test``.
    """

    paths: dict[str, Path]
    report_path: Path
    manifest_path: Path
    train_end: pd.Timestamp
    val_end: pd.Timestamp
    report: pd.DataFrame
    rows: dict[str, int]

    def load(self) -> tuple[pd.DataFrame, Split]:
        """Read the parts into memory: the kept check-ins (sorted by user then time, index reset)
        and their :class:`~stlab.splits.Split` -- what ``clean_and_split`` returns before its
        report. Needs memory for the kept rows a few times over."""
        parts = []
        for name in PARTS:
            part = pd.read_parquet(self.paths[name])
            if len(part) != self.rows[name]:
                raise DataValidationError(
                    f"{self.paths[name]}: {len(part):,} rows, but the manifest says {self.rows[name]:,}.\n"
                    "Fix: the folder holds parts of different runs; run clean_and_split_duckdb again.")
            parts.append(part)
        kept = pd.concat(parts, ignore_index=True).sort_values(["user_id", "timestamp"], kind="stable",
                                                               ignore_index=True)
        unit = kept["timestamp"].dt.unit
        return kept, temporal_split(kept, train_end=self.train_end.as_unit(unit),
                                    val_end=self.val_end.as_unit(unit))

    @classmethod
    def read(cls, out_dir: PathLike) -> OutOfCoreSplit:
        """The split that :func:`clean_and_split_duckdb` wrote to ``out_dir``, from its manifest."""
        out = Path(out_dir)
        manifest_path = out / MANIFEST
        if not manifest_path.is_file():
            raise DataNotFoundError(f"no {MANIFEST} in {out}: no complete out-of-core split was written there.\n"
                                    "Fix: run clean_and_split_duckdb with this out_dir.")
        manifest = json.loads(manifest_path.read_text())
        return cls(paths={name: out / file for name, file in manifest["files"].items()},
                   report_path=out / REPORT, manifest_path=manifest_path,
                   train_end=pd.Timestamp(manifest["train_end"]), val_end=pd.Timestamp(manifest["val_end"]),
                   report=pd.read_csv(out / REPORT, index_col="rule"), rows=manifest["rows"])


def clean_and_split_duckdb(
    source: PathLike,
    out_dir: PathLike,
    config: CleaningConfig = CleaningConfig(),
    *,
    val_frac: float = 0.1,
    test_frac: float = 0.2,
    train_end: pd.Timestamp | str | None = None,
    val_end: pd.Timestamp | str | None = None,
    columns: dict[str, str] | None = None,
    names: Sequence[str] | None = None,
    format: Literal["snap"] | None = None,
    sep: str | None = None,
    memory_limit: str = "2GB",
    threads: int | None = None,
    work_dir: PathLike | None = None,
    batch_rows: int = 500_000,
) -> OutOfCoreSplit:
    """Clean a check-in log and split it in time out of core: ``clean_and_split(..., kcore_on="train")``
    on DuckDB (the module docstring says how each rule is matched).

    Args:
        source: a Parquet file (``.parquet``, ``.pq``) or delimited text (CSV, TSV, gzipped or
            not), or a glob of such files, in the check-in schema (``user_id, poi_id, timestamp,
            lat, lon``; other columns are kept and count for exact duplicates, as in pandas).
        out_dir: where ``train.parquet``, ``val.parquet``, ``test.parquet``, ``report.csv`` and
            ``split.json`` go (created if needed; earlier results there are replaced).
        config: the thresholds, as for :func:`stlab.splits.clean_and_split`.
        val_frac, test_frac, train_end, val_end: the cutoffs, as for
            :func:`stlab.splits.temporal_split`.
        columns: a mapping from the file's column names to schema names.
        names: the column names, in order, of a text file without a header row.
        format: ``"snap"`` -- SNAP's Gowalla/Brightkite layout (TAB-separated ``user, time, lat,
            lon, location`` without a header).
        sep: the delimiter of a text file (DuckDB detects it by default).
        memory_limit: DuckDB's memory limit (``"2GB"``, ``"500MB"``); beyond it DuckDB spills.
        threads: DuckDB's threads (default: one per core).
        work_dir: where DuckDB spills what does not fit in ``memory_limit`` (default: a hidden
            folder in ``out_dir``, removed at the end); it may need free space of a few times the
            log's size in Parquet.
        batch_rows: rows per batch streamed through the speed rule.

    Raises:
        DataNotFoundError: no file at ``source``.
        DataValidationError: a file DuckDB cannot read, no rows, a missing column, or values the
            schema forbids -- each with the fix.
        ValueError: bad fractions or cutoffs, nothing left after the row rules, or no training event
            surviving the k-core (the messages of :func:`stlab.splits.clean_and_split`).
    """
    import duckdb

    if not (0 <= val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"need 0 <= val_frac, 0 < test_frac and val_frac + test_frac < 1; got {val_frac}, {test_frac}")
    cutoffs = _explicit_cutoffs(train_end, val_end)
    reader, label = _reader(source, names=names, format=format, sep=sep)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".duckdb-", dir=work_dir if work_dir is not None else out))
    settings: dict[str, Any] = {"memory_limit": memory_limit, "temp_directory": str(scratch / "spill")}
    if threads is not None:
        settings["threads"] = int(threads)
    try:
        con = duckdb.connect(":memory:", config=settings)  # its tables spill to temp_directory too
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            run = _Run(con, label, config)
            return run.clean_and_split(reader, columns or {}, out, val_frac=val_frac, test_frac=test_frac,
                                       cutoffs=cutoffs, batch_rows=batch_rows)
        finally:
            con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _explicit_cutoffs(train_end: pd.Timestamp | str | None,
                      val_end: pd.Timestamp | str | None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Both cutoffs in UTC when both are given (as :func:`stlab.splits.temporal_split` reads them)."""
    if train_end is None or val_end is None:
        return None
    t1, t2 = pd.Timestamp(train_end), pd.Timestamp(val_end)
    t1 = t1.tz_convert("UTC") if t1.tzinfo else t1.tz_localize("UTC")
    t2 = t2.tz_convert("UTC") if t2.tzinfo else t2.tz_localize("UTC")
    if t2 < t1:
        raise ValueError(f"val_end {t2} is before train_end {t1}")
    return t1, t2


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reader(source: PathLike, *, names: Sequence[str] | None, format: Literal["snap"] | None,
            sep: str | None) -> tuple[str, str]:
    """The DuckDB table function that reads ``source``, and a name for it in messages."""
    if format not in (None, "snap"):
        raise ValueError(f"format must be 'snap' or None, got {format!r}")
    text = os.fspath(source)
    label = Path(text).name
    pattern = any(ch in text for ch in "*?[")
    matches = sorted(glob.glob(text)) if pattern else ([text] if Path(text).is_file() else [])
    if not matches:
        raise DataNotFoundError(f"no check-in file at {text}.\nFix: check the path (or the glob pattern).")
    empty = [m for m in matches if os.path.getsize(m) == 0]
    if empty:
        raise DataValidationError(f"{Path(empty[0]).name}: the file is empty.\nFix: re-download or re-export it.")
    if Path(matches[0]).suffix.lower() in (".parquet", ".pq"):
        return f"read_parquet({_text(text)})", label
    if format == "snap":
        names, sep = names or SNAP_CHECKIN_NAMES, sep or "\t"
    options = [_text(text)]
    if names is not None:
        options += ["header = false", "names = [" + ", ".join(_text(n) for n in names) + "]"]
    else:
        options.append("header = true")
    if sep is not None:
        options.append(f"delim = {_text(sep)}")
    return f"read_csv({', '.join(options)})", label


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _haversine_sql(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """:func:`stlab.features.haversine_km` in SQL (used only to screen users, with a margin)."""
    a = (f"pow(sin(radians({lat2} - {lat1}) / 2), 2) + cos(radians({lat1})) * cos(radians({lat2})) "
         f"* pow(sin(radians({lon2} - {lon1}) / 2), 2)")
    return f"2 * {EARTH_RADIUS_KM!r} * asin(sqrt(least(greatest({a}, 0.0), 1.0)))"


def _double(value: float) -> str:
    """A float as an exact SQL literal (``inf`` included)."""
    return f"CAST({_text(repr(float(value)))} AS DOUBLE)"


class _Run:
    """One run of the pipeline on an open DuckDB connection (each step a table of its database)."""

    def __init__(self, con: Any, label: str, config: CleaningConfig) -> None:
        self.con, self.label, self.config = con, label, config
        self.columns: list[str] = []
        self.unit = "us"  # of the time stamps: "ns" for nanosecond Parquet times
        self.report: list[dict[str, object]] = []

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        row = self.con.execute(sql, list(params)).fetchone()
        assert row is not None
        return row

    def step(self, name: str, before: int, table: str, sql: str) -> int:
        """Apply one row rule (``CREATE TABLE table AS sql``) and add its report row; the rows left."""
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS {sql}")
        rows, users, pois = self.one(f"SELECT count(*), count(DISTINCT user_id), count(DISTINCT poi_id) FROM {table}")
        self.report.append({"rule": name, "rows_before": before, "removed": before - rows, "rows_after": rows,
                            "users": users, "pois": pois})
        return rows

    # ------------------------------------------------------------------ input
    def read_source(self, reader: str, mapping: dict[str, str]) -> int:
        """Read the source into table ``raw`` in the schema's names and types; its row count."""
        import duckdb

        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        except duckdb.Error as err:
            raise DataValidationError(
                f"{self.label}: DuckDB cannot read it: {_first_line(err)}\n"
                "Fix: check that the file is complete Parquet or delimited text (re-export or re-download it); "
                "for text give sep=, and names= when it has no header row.") from None
        found = [row[0] for row in described]
        types = {row[0]: str(row[1]) for row in described}
        unknown = sorted(set(mapping) - set(found))
        if unknown:
            raise DataValidationError(f"{self.label}: columns= names {unknown}, which the file does not have; "
                                      f"found {found}.\nFix: map the file's own column names to schema names.")
        renamed = [mapping.get(c, c) for c in found]
        missing = [c for c in CHECKIN_REQUIRED if c not in renamed]
        if missing:
            hint = ("" if reader.startswith("read_parquet") else
                    " A text file without a header row needs names=[...] (format='snap' for SNAP's layout).")
            raise DataValidationError(
                f"{self.label}: missing column(s) {missing}; found {found}.\nFix: rename your columns to "
                f"{list(CHECKIN_REQUIRED)} or pass a mapping, for example columns={{'your_name': '{missing[0]}'}}.{hint}")
        clash = sorted({c for c in renamed if renamed.count(c) > 1} | {c for c in renamed if c.startswith("__")})
        if clash:
            raise DataValidationError(f"{self.label}: column name(s) {clash} repeated or reserved after renaming.\n"
                                      "Fix: rename or drop those columns (columns=...).")
        if reader.startswith("read_csv"):  # DuckDB would read zone-less text as UTC: parse it here instead
            time_column = found[renamed.index("timestamp")]
            reader = reader[:-1] + f", types = {{{_text(time_column)}: 'VARCHAR'}})"
            types[time_column] = "VARCHAR"
        select = [f"{self._cast(src, dst, types[src])} AS {_quote(dst)}" for src, dst in zip(found, renamed)]
        self.columns = renamed
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE raw AS SELECT {', '.join(select)} FROM {reader}")
        except duckdb.Error as err:
            raise DataValidationError(
                f"{self.label}: DuckDB could not read every row: {_first_line(err)}\n"
                "Fix: repair or drop the rows named; for text, a column whose type changes after the first rows "
                "may need cleaning first.") from None
        return self.check()

    def _cast(self, src: str, dst: str, kind: str) -> str:
        column = _quote(src)
        if dst in ("lat", "lon"):
            return f"TRY_CAST({column} AS DOUBLE)"
        if dst != "timestamp":
            return column
        upper = kind.upper()
        if upper in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMPTZ_NS"):
            self.unit = "ns" if upper.endswith("_NS") else "us"
            return column
        if upper.startswith("TIMESTAMP") or upper == "DATE":
            raise DataValidationError(
                f"{self.label}: time stamps ({src!r}, {kind}) have no zone.\nFix: write them with their zone: "
                "text ending in 'Z' or an offset such as '+01:00', or zone-aware Parquet times (pandas: "
                ".dt.tz_localize(your_zone).dt.tz_convert('UTC') before writing the file).")
        if upper in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                     "UBIGINT", "FLOAT", "DOUBLE") or upper.startswith("DECIMAL"):
            return f"to_timestamp(CAST({column} AS DOUBLE))"  # unix seconds, as read_checkins reads them
        if upper == "VARCHAR":  # ISO 8601 with a zone, or unix seconds
            return (f"CASE WHEN regexp_full_match(trim({column}), '[0-9]{{9,11}}') THEN to_timestamp(CAST({column} AS "
                    f"DOUBLE)) WHEN regexp_matches({column}, {_text(_ZONED)}) THEN TRY_CAST({column} AS TIMESTAMPTZ) END")
        raise DataValidationError(f"{self.label}: time stamps ({src!r}) have type {kind}.\n"
                                  "Fix: store UTC times with a zone, ISO 8601 text with a zone, or unix seconds.")

    def check(self) -> int:
        """The schema's checks on ``raw`` (as read_checkins makes them); its row count."""
        parts = ["count(*)"]
        for column in CHECKIN_REQUIRED:
            parts += [f"count(*) FILTER (WHERE {_quote(column)} IS NULL)",
                      f"min(rowid) FILTER (WHERE {_quote(column)} IS NULL)"]
        for column, bound in (("lat", 90), ("lon", 180)):
            bad = f"isnan({column}) OR abs({column}) > {bound}"
            parts += [f"count(*) FILTER (WHERE {bad})", f"min(rowid) FILTER (WHERE {bad})"]
        counts = self.one(f"SELECT {', '.join(parts)} FROM raw")
        if counts[0] == 0:
            raise DataValidationError(f"{self.label}: the file has no rows.\nFix: check the file or the glob.")
        for i, column in enumerate(CHECKIN_REQUIRED):
            nulls, first = counts[1 + 2 * i], counts[2 + 2 * i]
            if nulls:
                what = {"timestamp": "missing, unparseable or zone-less time stamps",
                        "lat": "missing or non-numeric values", "lon": "missing or non-numeric values"}
                raise DataValidationError(
                    f"{self.label}: {nulls:,} {what.get(column, 'missing values')} in {column!r} (the first at data "
                    f"row {first}).\nFix: drop or repair those rows before cleaning; time stamps need a zone "
                    "('Z' or '+01:00') or must be unix seconds.")
        for j, (column, bound) in enumerate((("lat", 90), ("lon", 180))):
            bad, first = counts[1 + 2 * len(CHECKIN_REQUIRED) + 2 * j], counts[2 + 2 * len(CHECKIN_REQUIRED) + 2 * j]
            if bad:
                raise DataValidationError(
                    f"{self.label}: {bad:,} {column} value(s) outside [-{bound}, {bound}] (the first at data row "
                    f"{first}).\nFix: latitude and longitude may be swapped, or in another projection; convert to "
                    "WGS84 degrees.")
        return int(counts[0])

    # ------------------------------------------------------------------ the row rules
    def row_rules(self, total: int, batch_rows: int) -> int:
        """Rules 1-4 of :func:`stlab.cleaning.clean_rows` into table ``rows``; the rows left."""
        config, cols = self.config, ", ".join(_quote(c) for c in self.columns)
        n = self.step("exact duplicates", total, "dedup",
                      f"SELECT {cols}, min(rowid) AS {_ROW} FROM raw GROUP BY ALL")
        self.con.execute("DROP TABLE raw")
        current = "dedup"
        if config.bbox is not None:
            box = config.bbox
            n = self.step("outside the city", n, "inside",
                          f"SELECT * FROM dedup WHERE lat >= {_double(box.lat_min)} AND lat <= {_double(box.lat_max)} "
                          f"AND lon >= {_double(box.lon_min)} AND lon <= {_double(box.lon_max)}")
            current = "inside"
        # pandas' gap: the difference in the column's unit, divided by that unit per second, in float.
        epoch, per_second = ("epoch_ns", "1e9") if self.unit == "ns" else ("epoch_us", "1e6")
        gap = (f'({epoch}("timestamp") - {epoch}(lag("timestamp") OVER (PARTITION BY user_id, poi_id '
               f'ORDER BY "timestamp", {_ROW}))) / {per_second}')
        n = self.step(f"repeats within {config.repeat_window_s:g} s", n, "unrepeated",
                      f"SELECT * FROM {current} QUALIFY coalesce({gap} >= {_double(config.repeat_window_s)}, true)")
        self.con.execute(f"DROP TABLE {current}")
        dropped = self.too_fast(batch_rows)
        self.con.execute("CREATE OR REPLACE TABLE too_fast (row_id BIGINT)")
        if len(dropped):
            self.con.register("too_fast_rows", pd.DataFrame({"row_id": dropped}))
            self.con.execute("INSERT INTO too_fast SELECT row_id FROM too_fast_rows")
            self.con.unregister("too_fast_rows")
        n = self.step(f"speed over {config.max_speed_kmh:g} km/h", n, "rows",
                      f"SELECT * FROM unrepeated WHERE {_ROW} NOT IN (SELECT row_id FROM too_fast)")
        self.con.execute("DROP TABLE unrepeated")
        return n

    def too_fast(self, batch_rows: int) -> np.ndarray:
        """Positions of the events :func:`stlab.cleaning.drop_impossible_speeds` removes from
        ``unrepeated``: users screened in SQL, then judged by the pandas rule, in pandas' order."""
        config = self.config
        keys = f'"timestamp", poi_id, {_ROW}'
        seconds = 'epoch_ns("timestamp") // 1000000000'
        # pandas floors times to whole seconds, so its gap is at least this one less a second; a
        # step is screened in when it could be too fast at that gap (km / hours > limit, hours >= 0).
        hours = f"greatest(({seconds}) - (lag({seconds}) OVER w) - 1, {_double(config.min_gap_s)}, 0) / 3600"
        km = _haversine_sql("lag(lat) OVER w", "lag(lon) OVER w", "lat", "lon")
        self.con.execute(
            "CREATE OR REPLACE TABLE fast_users AS SELECT DISTINCT user_id FROM ("
            f"SELECT user_id, {km} * {1 + _SPEED_MARGIN!r} > {_double(config.max_speed_kmh)} * {hours} AS fast "
            f"FROM unrepeated WINDOW w AS (PARTITION BY user_id ORDER BY {keys})) WHERE fast")
        stream = self.con.sql(f'SELECT {_ROW}, user_id, "timestamp", lat, lon FROM unrepeated '
                              f"WHERE user_id IN (SELECT user_id FROM fast_users) ORDER BY user_id, {keys}")
        dropped: list[np.ndarray] = []
        carry: pd.DataFrame | None = None
        for batch in stream.to_arrow_reader(batch_rows):
            frame = batch.to_pandas()
            if carry is not None:
                frame = pd.concat([carry, frame], ignore_index=True)
            users = frame["user_id"].to_numpy()
            start = int(np.flatnonzero(np.r_[True, users[1:] != users[:-1]])[-1])  # the last user may go on
            dropped.append(self._judge(frame.iloc[:start]))
            carry = frame.iloc[start:].reset_index(drop=True)
        if carry is not None:
            dropped.append(self._judge(carry))
        return np.concatenate(dropped) if dropped else np.empty(0, dtype=np.int64)

    def _judge(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.empty(0, dtype=np.int64)
        kept = drop_impossible_speeds(frame, self.config.max_speed_kmh, self.config.min_gap_s)
        return frame[_ROW].to_numpy()[~frame.index.isin(kept.index)].astype(np.int64)

    # ------------------------------------------------------------------ split and core
    def cutoffs(self, n: int, val_frac: float, test_frac: float) -> tuple[int, int]:
        """Epoch nanoseconds of the event-count quantiles, as :func:`stlab.splits.temporal_split` sets them."""
        k1 = int(n * (1 - val_frac - test_frac))
        k2 = min(int(n * (1 - test_frac)), n - 1)
        t1, t2 = self.one(
            'WITH c AS (SELECT epoch_ns("timestamp") AS t, count(*) AS n FROM rows GROUP BY t), '
            "s AS (SELECT t, sum(n) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING) AS upto FROM c) "
            "SELECT min(t) FILTER (WHERE upto > ?), min(t) FILTER (WHERE upto > ?) FROM s", (k1, k2))
        return int(t1), int(t2)

    def k_core(self, t1: int) -> int:
        """The iterative k-core of the training events into table ``core`` (user, POI, count); its events."""
        config = self.config
        self.con.execute('CREATE OR REPLACE TABLE core AS SELECT user_id, poi_id, count(*) AS n FROM rows '
                         'WHERE epoch_ns("timestamp") < ? GROUP BY user_id, poi_id', [t1])
        self.con.execute("CREATE OR REPLACE TABLE trained_users AS SELECT DISTINCT user_id FROM core")
        size = self.one("SELECT count(*) FROM core")[0]
        for _ in range(_MAX_ROUNDS):
            self.con.execute(
                "CREATE OR REPLACE TABLE core_next AS SELECT * FROM core WHERE user_id IN (SELECT user_id FROM core "
                f"GROUP BY user_id HAVING sum(n) >= {int(config.min_user_checkins)}) AND poi_id IN (SELECT poi_id "
                f"FROM core GROUP BY poi_id HAVING sum(n) >= {int(config.min_poi_checkins)})")
            left = self.one("SELECT count(*) FROM core_next")[0]
            if left == size:
                break
            self.con.execute("DROP TABLE core")
            self.con.execute("ALTER TABLE core_next RENAME TO core")
            size = left
        events = self.one("SELECT coalesce(sum(n), 0) FROM core")[0]
        if events == 0:
            raise ValueError(f"no training events survive the k-core (users >= {config.min_user_checkins}, "
                             f"POIs >= {config.min_poi_checkins} training check-ins); lower min_user_checkins / "
                             "min_poi_checkins or give training a larger share (val_frac, test_frac).")
        return int(events)

    def later_rule(self, t1: int, t2: int) -> dict[str, int]:
        """Mark each event's part and whether it is kept (table ``final``); add the report rows."""
        self.con.execute("CREATE OR REPLACE TABLE core_users AS SELECT DISTINCT user_id FROM core")
        self.con.execute("CREATE OR REPLACE TABLE core_pois AS SELECT DISTINCT poi_id FROM core")
        self.con.execute(
            "CREATE OR REPLACE TABLE final AS SELECT *, "
            'CASE WHEN epoch_ns("timestamp") < ? THEN 0 WHEN epoch_ns("timestamp") < ? THEN 1 ELSE 2 END AS __part, '
            "(user_id IN (SELECT user_id FROM core_users) OR user_id NOT IN (SELECT user_id FROM trained_users)) "
            "AS __user_ok, poi_id IN (SELECT poi_id FROM core_pois) AS __poi_ok FROM rows", [t1, t2])
        self.con.execute("DROP TABLE rows")
        # Training events have a training user, so "user ok" is "user in the core" for them.
        core, users_ok, kept = ("__part > 0 OR (__user_ok AND __poi_ok)", "__part > 0 AND __user_ok",
                                "__user_ok AND __poi_ok")
        stats = self.one(
            "SELECT count(*) FILTER (WHERE __part = 0), count(*) FILTER (WHERE __part = 0 AND __user_ok AND __poi_ok), "
            f"count(*) FILTER (WHERE __part > 0), count(*) FILTER (WHERE {users_ok}), "
            f"count(*) FILTER (WHERE __part > 0 AND {kept}), "
            f"count(DISTINCT user_id) FILTER (WHERE {core}), count(DISTINCT poi_id) FILTER (WHERE {core}), "
            f"count(DISTINCT user_id) FILTER (WHERE ({users_ok}) OR (__part = 0 AND {kept})), "
            f"count(DISTINCT poi_id) FILTER (WHERE ({users_ok}) OR (__part = 0 AND {kept})), "
            f"count(DISTINCT user_id) FILTER (WHERE {kept}), count(DISTINCT poi_id) FILTER (WHERE {kept}), "
            + ", ".join(f"count(*) FILTER (WHERE __part = {i} AND {kept})" for i in range(3)) + " FROM final")
        train_before, train_after, later, later_users, later_kept = stats[:5]
        for name, before, after, (users, pois) in (
                (f"{kcore_label(self.config)}, training events only", train_before, train_after, stats[5:7]),
                ("later events of users the core removed", later, later_users, stats[7:9]),
                ("later events at POIs outside the training core", later_users, later_kept, stats[9:11])):
            self.report.append({"rule": name, "rows_before": before, "removed": before - after,
                                "rows_after": after, "users": users, "pois": pois})
        return {name: int(count) for name, count in zip(PARTS, stats[11:14])}

    def write_part(self, index: int, path: Path) -> None:
        """Write one part, sorted as pandas leaves it (user, time, POI, input position), to ``path``."""
        cols = ", ".join(_quote(c) for c in self.columns)
        self.con.execute(f'COPY (SELECT {cols} FROM final WHERE __part = {index} AND __user_ok AND __poi_ok '
                         f'ORDER BY user_id, "timestamp", poi_id, {_ROW}) TO {_text(str(path))} (FORMAT parquet)')

    # ------------------------------------------------------------------ the whole run
    def clean_and_split(self, reader: str, mapping: dict[str, str], out: Path, *, val_frac: float,
                        test_frac: float, cutoffs: tuple[pd.Timestamp, pd.Timestamp] | None,
                        batch_rows: int) -> OutOfCoreSplit:
        total = self.read_source(reader, mapping)
        n = self.row_rules(total, batch_rows)
        if n == 0:
            raise ValueError("cannot split an empty check-in table: no rows are left to split. Check the data set "
                             "and the cleaning thresholds (a k-core or bounding box can remove every row).")
        if cutoffs is None:
            t1, t2 = self.cutoffs(n, val_frac, test_frac)
        else:
            t1, t2 = (int(t.as_unit("ns").value) for t in cutoffs)
        self.k_core(t1)
        counts = self.later_rule(t1, t2)
        report = finish_report(self.report, total)
        train_end, val_end = (pd.Timestamp(t, unit="ns", tz="UTC") for t in (t1, t2))
        rows = {"raw": total, "kept": sum(counts.values()), **counts}
        paths = {name: out / f"{name}.parquet" for name in PARTS}
        manifest = {"source": self.label, "files": {name: path.name for name, path in paths.items()},
                    "train_end": train_end.isoformat(), "val_end": val_end.isoformat(), "rows": rows,
                    "val_frac": val_frac, "test_frac": test_frac, "config": asdict(self.config)}
        with ExitStack() as stack:  # renamed in the reverse order: the parts, the report, the manifest last
            manifest_tmp = stack.enter_context(atomic_path(out / MANIFEST))
            report_tmp = stack.enter_context(atomic_path(out / REPORT))
            for index, name in enumerate(PARTS):
                self.write_part(index, stack.enter_context(atomic_path(paths[name])))
            report.to_csv(report_tmp)
            manifest_tmp.write_text(json.dumps(manifest, indent=1) + "\n")
            (out / MANIFEST).unlink(missing_ok=True)  # parts of two runs are never described as one
        return OutOfCoreSplit(paths=paths, report_path=out / REPORT, manifest_path=out / MANIFEST,
                              train_end=train_end, val_end=val_end, report=report, rows=rows)
