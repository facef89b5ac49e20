"""Schemas and validation for behaviour logs.

One schema per kind of table. The check-in schema (chapter 1):

=================  ======================  ==========================================
column             dtype                   meaning
=================  ======================  ==========================================
``user_id``        int64 or string         who acted
``poi_id``         int64 or string         the place (venue, location, stop)
``timestamp``      datetime64[ns, UTC]     when, always time-zone aware, in UTC
``lat``, ``lon``   float64                 WGS84 degrees, lat in [-90, 90], lon in [-180, 180]
``category``       string (optional)       venue category
``tz_offset_min``  Int16 (optional)        local time minus UTC, in minutes, when known
=================  ======================  ==========================================

Every error names the problem, where it is (line numbers of the file when reading text), and the
fix. Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from stlab.data.errors import DataValidationError

CHECKIN_REQUIRED: tuple[str, ...] = ("user_id", "poi_id", "timestamp", "lat", "lon")
CHECKIN_OPTIONAL: tuple[str, ...] = ("category", "tz_offset_min")
CHECKIN_COLUMNS: tuple[str, ...] = CHECKIN_REQUIRED + CHECKIN_OPTIONAL

_ZONE_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_SHOWN = 5


def _lines(rows: Iterable[int], first_data_line: int) -> str:
    """Human line numbers (1-based, counting the header) of data rows, first few only."""
    rows = list(rows)
    shown = ", ".join(str(r + first_data_line) for r in rows[:_MAX_SHOWN])
    more = f" and {len(rows) - _MAX_SHOWN} more" if len(rows) > _MAX_SHOWN else ""
    return f"line{'s' if len(rows) > 1 else ''} {shown}{more}"


def check_columns(
    columns: Sequence[str],
    required: Sequence[str],
    optional: Sequence[str] = (),
    *,
    source: str,
    allow_extra: bool = False,
) -> None:
    """Raise if required columns are missing, or (unless ``allow_extra``) unexpected ones present."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing column(s) {missing}; found {list(columns)}.\n"
            f"Fix: rename your columns to {list(required)} or pass a mapping, for example "
            f"columns={{'your_name': '{missing[0]}'}}."
        )
    extra = [c for c in columns if c not in required and c not in optional]
    if extra and not allow_extra:
        raise DataValidationError(
            f"{source}: unexpected column(s) {extra}; the schema has {list(required) + list(optional)}.\n"
            "Fix: drop or rename them, or pass extra='keep' to keep them."
        )


#: How to place a local time that the clocks show twice (when they fall back): the first of the
#: two instants (daylight-saving time), the second (standard time), or leave the row out.
AmbiguousTimes = Literal["raise", "earliest", "latest", "drop"]
#: How to place a local time that never happens (skipped when the clocks spring forward): move it
#: to the first instant after the gap, to the last one before it, or leave the row out.
NonexistentTimes = Literal["raise", "shift_forward", "shift_backward", "drop"]
_AMBIGUOUS = ("raise", "earliest", "latest", "drop")
_NONEXISTENT = ("raise", "shift_forward", "shift_backward", "drop")


def parse_timestamps(
    values: pd.Series,
    *,
    source: str,
    timezone: str | None = None,
    first_data_line: int = 1,
    unit: str | None = None,
    ambiguous: AmbiguousTimes = "raise",
    nonexistent: NonexistentTimes = "raise",
) -> pd.Series:
    """Parse text or unix times into UTC, refusing unparseable or zone-less values.

    Time stamps with a zone (``Z``, ``+01:00``) are converted to UTC. Zone-less ones are local
    times in ``timezone``, and may be mixed with zoned ones in one column.

    Args:
        values: strings (ISO 8601 or similar) or numbers (unix time in ``unit``).
        timezone: the zone that zone-less local times are in (``"America/New_York"``);
            without it, zone-less times are an error, because guessing shifts every event.
        first_data_line: file line number of row 0, for error messages.
        unit: ``"s"`` or ``"ms"`` when ``values`` are unix times.
        ambiguous: a local time shown twice when the clocks fall back: ``"raise"`` (an error
            naming the lines), ``"earliest"``, ``"latest"`` or ``"drop"``.
        nonexistent: a local time skipped when the clocks spring forward: ``"raise"``,
            ``"shift_forward"``, ``"shift_backward"`` or ``"drop"``.

    Returns:
        UTC times, index as ``values``; rows left out by ``"drop"`` are ``NaT``.

    Raises:
        DataValidationError: unparseable values, zone-less values without ``timezone``, an
            unknown zone, or daylight-saving gaps and repeats under ``"raise"`` -- each naming
            the lines and the fix.
    """
    if ambiguous not in _AMBIGUOUS:
        raise ValueError(f"ambiguous must be one of {_AMBIGUOUS}, got {ambiguous!r}")
    if nonexistent not in _NONEXISTENT:
        raise ValueError(f"nonexistent must be one of {_NONEXISTENT}, got {nonexistent!r}")
    if unit is not None or pd.api.types.is_numeric_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero(numeric.isna().to_numpy())
        if len(bad):
            raise DataValidationError(
                f"{source}: unparseable unix time(s) {values.iloc[bad[:3]].tolist()} at "
                f"{_lines(bad, first_data_line)}.\nFix: correct or drop those rows."
            )
        return pd.to_datetime(numeric, unit=unit or "s", utc=True)
    text = values.astype("string").str.strip().reset_index(drop=True)
    has_zone = text.str.contains(_ZONE_SUFFIX, na=False).to_numpy()
    zoned = pd.to_datetime(text[has_zone], errors="coerce", utc=True, format="mixed")
    try:
        naive = pd.to_datetime(text[~has_zone], errors="coerce", format="mixed")
    except (ValueError, TypeError):  # a zone written as a name ("EST") among naive values
        naive = pd.Series(pd.NaT, index=text.index[~has_zone], dtype="datetime64[ns]")
    if isinstance(naive.dtype, pd.DatetimeTZDtype):  # zones written as names: not ours to guess
        naive = pd.Series(pd.NaT, index=naive.index, dtype="datetime64[ns]")
    bad = np.flatnonzero(pd.concat([zoned, naive]).sort_index().isna().to_numpy())
    if len(bad):
        raise DataValidationError(
            f"{source}: unparseable time stamp(s) {text.iloc[bad[:3]].tolist()} at "
            f"{_lines(bad, first_data_line)}.\nFix: use ISO 8601 (2010-10-12T00:21:28Z) or unix "
            "seconds, and correct or drop those rows."
        )
    if len(naive) and timezone is None:
        rows = np.flatnonzero(~has_zone)
        mixed = f" (while {int(has_zone.sum())} other(s) carry one)" if has_zone.any() else ""
        raise DataValidationError(
            f"{source}: {len(rows)} time stamp(s) without a time zone{mixed}, e.g. {text.iloc[rows[0]]!r}, at "
            f"{_lines(rows, first_data_line)}.\nFix: pass timezone='Area/City' naming the zone those "
            "local times are in (for example timezone='Europe/Paris', or timezone='UTC' if they are UTC), "
            "or write them in UTC with a 'Z' or an offset (2010-10-12T00:21:28Z)."
        )
    if len(naive):
        naive = _localize(naive, timezone, ambiguous, nonexistent, text=text, source=source,
                          first_data_line=first_data_line)
    parsed = pd.concat([zoned, naive]).sort_index() if len(zoned) and len(naive) else (naive if len(naive) else zoned)
    parsed.index = values.index
    return parsed


def _localize(naive: pd.Series, timezone: str, ambiguous: str, nonexistent: str, *, text: pd.Series,
              source: str, first_data_line: int) -> pd.Series:
    """Local times in ``timezone`` to UTC, with an error of its own for daylight-saving gaps and repeats."""
    try:
        either = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").isna().to_numpy()
    except Exception as err:  # an unknown zone name; pandas raises several kinds
        raise DataValidationError(f"{source}: cannot use timezone={timezone!r}: {err}\n"
                                  "Fix: name an IANA zone such as 'Europe/Paris' or 'UTC'.") from None
    skipped = naive.dt.tz_localize(timezone, ambiguous=np.ones(len(naive), bool), nonexistent="NaT").isna().to_numpy()
    repeated = either & ~skipped
    positions = naive.index.to_numpy()
    if skipped.any() and nonexistent == "raise":
        rows = positions[skipped]
        raise DataValidationError(
            f"{source}: {len(rows)} local time(s) that never happen in {timezone} (the clocks spring forward "
            f"over them), e.g. {text.iloc[rows[0]]!r}, at {_lines(rows, first_data_line)}.\nFix: pass "
            "nonexistent='shift_forward' (to the first time after the gap), 'shift_backward' (to the last "
            "time before it) or 'drop' (leave those rows out)."
        )
    if repeated.any() and ambiguous == "raise":
        rows = positions[repeated]
        raise DataValidationError(
            f"{source}: {len(rows)} local time(s) that happen twice in {timezone} (the clocks fall back), "
            f"e.g. {text.iloc[rows[0]]!r}, at {_lines(rows, first_data_line)}.\nFix: pass "
            "ambiguous='earliest' (the first, daylight-saving time), 'latest' (the second, standard "
            "time) or 'drop' (leave those rows out)."
        )
    earliest = {"earliest": True, "latest": False}
    ambiguous_arg = np.full(len(naive), earliest[ambiguous]) if ambiguous in earliest else "NaT"
    nonexistent_arg = nonexistent if nonexistent.startswith("shift") else "NaT"
    return naive.dt.tz_localize(timezone, ambiguous=ambiguous_arg, nonexistent=nonexistent_arg).dt.tz_convert("UTC")


def check_ids(table: pd.DataFrame, columns: Sequence[str], *, source: str, first_data_line: int) -> pd.DataFrame:
    """Strip identifiers read as text and refuse blank ones (an empty user or place is no id)."""
    out = table
    for column in columns:
        if pd.api.types.is_numeric_dtype(table[column]):
            continue
        text = table[column].astype("string").str.strip()
        blank = np.flatnonzero((text.isna() | (text == "")).to_numpy())
        if len(blank):
            raise DataValidationError(
                f"{source}: {len(blank)} blank {column!r} value(s) at {_lines(blank, first_data_line)}.\n"
                f"Fix: every check-in needs {'who made it' if column == 'user_id' else 'the place'}; "
                "fill those in or drop those lines."
            )
        out = out.assign(**{column: text})
    return out


def looks_like_data(tokens: Sequence[str]) -> bool:
    """Whether a header line is in fact a data row: it holds a number or a date."""
    for token in tokens:
        token = str(token).strip()
        if _DATE_START.match(token) or pd.notna(pd.to_numeric(token, errors="coerce")):
            return True
    return False


def first_line(path: Path, encoding: str = "utf-8") -> str:
    """The first line of a (possibly gzipped) text file, without its line end."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding=encoding, errors="replace", newline="") as fh:
            return fh.readline().rstrip("\r\n")
    except (OSError, EOFError):
        return ""


def validate_checkins(checkins: pd.DataFrame, *, source: str = "check-ins", allow_extra: bool = True) -> pd.DataFrame:
    """Check a check-in table against the schema; return it unchanged if it passes.

    Raises:
        DataValidationError: empty table, missing or unexpected columns, nulls, wrong types,
            zone-less times, or coordinates out of range -- with the offending rows and the fix.
    """
    if len(checkins) == 0:
        raise DataValidationError(f"{source}: the table is empty.\nFix: check the file or the filters applied.")
    check_columns(list(checkins.columns), CHECKIN_REQUIRED, CHECKIN_OPTIONAL, source=source,
                  allow_extra=allow_extra)
    for column in CHECKIN_REQUIRED:
        nulls = np.flatnonzero(checkins[column].isna().to_numpy())
        if len(nulls):
            raise DataValidationError(
                f"{source}: {len(nulls)} missing value(s) in {column!r} at rows {nulls[:_MAX_SHOWN].tolist()}.\n"
                "Fix: drop or fill those rows before loading."
            )
    ts = checkins["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise DataValidationError(
            f"{source}: 'timestamp' has dtype {ts.dtype}, expected time-zone-aware datetimes in UTC.\n"
            "Fix: parse with stlab.data.parse_timestamps (or pd.to_datetime(..., utc=True))."
        )
    for column, bound in (("lat", 90.0), ("lon", 180.0)):
        values = checkins[column]
        if not pd.api.types.is_float_dtype(values) and not pd.api.types.is_integer_dtype(values):
            raise DataValidationError(
                f"{source}: {column!r} has dtype {values.dtype}, expected numbers (degrees).\n"
                "Fix: convert with pd.to_numeric and drop rows that are not numbers."
            )
        out = np.flatnonzero((values.abs() > bound).to_numpy())
        if len(out):
            raise DataValidationError(
                f"{source}: {len(out)} {column} value(s) outside [-{bound:g}, {bound:g}] at rows "
                f"{out[:_MAX_SHOWN].tolist()} (e.g. {values.iloc[out[0]]}).\n"
                "Fix: latitude and longitude may be swapped, or in another projection; "
                "convert to WGS84 degrees."
            )
    return checkins


def read_delimited(
    path: Path,
    *,
    names: Sequence[str] | None,
    sep: str,
    source: str | None = None,
    encoding: str = "utf-8",
    compression: str | None = "infer",
) -> tuple[pd.DataFrame, int]:
    """Read a delimited text file as strings, catching the ways text files go wrong.

    Args:
        names: column names for a file without a header; ``None`` when the first line is one.

    Returns:
        The table (all columns as strings) and the file line number of its first data row.

    Raises:
        DataValidationError: empty file, lines with too few (truncated) or too many fields,
            or header rows repeated inside the data (files concatenated with their headers).
    """
    source = source or str(path)
    has_header = names is None
    first_data_line = 2 if has_header else 1
    try:
        table = pd.read_csv(
            path, sep=sep, header=0 if has_header else None, names=names, dtype=str,
            keep_default_na=False, na_values=[], encoding=encoding, compression=compression,
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{source}: the file is empty.\nFix: re-download or re-export it.") from None
    except pd.errors.ParserError as err:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        detail = (
            f"line {match.group(2)} has {match.group(3)} fields, expected {match.group(1)}"
            if match else str(err).strip()
        )
        raise DataValidationError(
            f"{source}: {detail}.\nFix: check the separator ({sep!r}) and quoting on that line."
        ) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(
            f"{source}: not valid {encoding} text ({err.reason} at byte {err.start}).\n"
            "Fix: pass the file's encoding, for example encoding='latin-1'."
        ) from None
    if len(table) == 0:
        raise DataValidationError(f"{source}: the file has no data rows.\nFix: re-download or re-export it.")
    # The parser pads short lines silently: count each line's fields to catch truncation.
    expected = table.shape[1]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, newline="") as fh:
        rows = csv.reader(fh, delimiter=sep)
        if has_header:
            next(rows, None)
        short = [i for i, fields in enumerate(r for r in rows if r) if len(fields) < expected]
    if short:
        raise DataValidationError(
            f"{source}: {len(short)} truncated line(s) with fewer than {expected} fields at "
            f"{_lines(short, first_data_line)}.\nFix: the file was cut short or edited; "
            "re-download it, or drop those lines."
        )
    header_tokens = [str(c).strip().lower() for c in table.columns]
    lowered = table.apply(lambda col: col.str.strip().str.lower())
    repeated = np.flatnonzero((lowered == header_tokens).all(axis=1).to_numpy())
    if not has_header:
        # Without a header we still catch a stray header line: a non-numeric token where every
        # other row has a number, in the first column.
        first = table.iloc[:, 0].str.strip()
        numeric = pd.to_numeric(first, errors="coerce").notna()
        if numeric.mean() > 0.99 and (~numeric).any():
            repeated = np.union1d(repeated, np.flatnonzero((~numeric).to_numpy()))
    if len(repeated):
        raise DataValidationError(
            f"{source}: header row(s) repeated inside the data at {_lines(repeated, first_data_line)} "
            f"(e.g. {table.iloc[repeated[0]].tolist()}).\nFix: the file looks like several files "
            "concatenated with their headers; remove those lines."
        )
    return table, first_data_line


def coerce_numeric(table: pd.DataFrame, columns: Mapping[str, str], *, source: str, first_data_line: int) -> pd.DataFrame:
    """Convert string columns to numbers, naming the lines with values that are not numbers."""
    out = table.copy()
    for column, dtype in columns.items():
        values = pd.to_numeric(out[column].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise DataValidationError(
                f"{source}: column {column!r} should hold {dtype} numbers, but has "
                f"{out[column].iloc[bad[:3]].tolist()} at {_lines(bad, first_data_line)}.\n"
                "Fix: correct those values or drop those lines."
            )
        if dtype.startswith("int") and not np.all(np.mod(values.to_numpy(), 1) == 0):
            raise DataValidationError(f"{source}: column {column!r} should hold integers.")
        out[column] = values.astype(dtype)
    return out
