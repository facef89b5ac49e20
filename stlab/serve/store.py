"""A durable, append-only log of check-ins in SQLite: what the service acknowledges, it keeps.

The model lives in memory; the log on disk is the truth. A request that posts check-ins is
answered only after its transaction has committed, and the database runs in write-ahead-log
mode with ``synchronous=FULL``: the log is flushed to disk at every commit, so an acknowledged
check-in survives a killed process -- and a power cut. When the service starts, it replays the
log into the model (:meth:`EventStore.replay`), so the model it serves is the one it would have
had without the crash.

Clients may name each check-in with an ``event_id``; the log keeps one row per id, so a client
that retries after a timeout cannot make a check-in count twice.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

#: Bumped when the table layout changes; a database of another version is refused.
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival: the replay order
    event_id    TEXT UNIQUE,                        -- the client's name for it (NULL: none)
    user_id     TEXT NOT NULL,
    poi_id      TEXT NOT NULL,
    time        INTEGER NOT NULL,                   -- seconds since the epoch, UTC
    lat         REAL,
    lon         REAL,
    received_at REAL NOT NULL                       -- server clock, seconds since the epoch
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class CheckIn:
    """One check-in as the service receives it.

    Attributes:
        user_id: the user's id (ids are compared as text, so ``7`` and ``"7"`` are one user).
        poi_id: the place's id (as text).
        time: seconds since the epoch (UTC).
        lat, lon: where it happened, degrees (``None`` when not given); a POI the service does
            not know joins the catalogue at these coordinates.
        event_id: the client's unique name for it, for safe retries (``None``: none).
    """

    user_id: str
    poi_id: str
    time: int
    lat: float | None = None
    lon: float | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class StoredCheckIn:
    """A check-in read back from the log, with its row id (``id``, the replay order)."""

    id: int
    check_in: CheckIn


class EventStore:
    """The check-in log of one service, in one SQLite file.

    Safe to share between threads (one connection, used under a lock). Writes are serialised;
    WAL mode lets other processes read the file while the service writes.

    Args:
        path: the database file (created with its folder if missing).
        base: a fingerprint of the model the log is replayed into (see
            :attr:`stlab.serve.model.Recommender.base_fingerprint`); recorded the first time,
            checked every later time.

    Raises:
        ValueError: the file belongs to another base model, or to another schema version.
    """

    def __init__(self, path: str | Path, *, base: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: no implicit transactions; each write says BEGIN and COMMIT itself.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused write-ahead logging (journal_mode={mode}); put the "
                               "database on a local file system")
        self._db.execute("PRAGMA synchronous=FULL")  # fsync the log at every commit: acknowledged = on disk
        self._db.executescript(_SCHEMA)
        self._check_meta("schema_version", SCHEMA_VERSION, "a database of another stlab.serve version; use a new --db")
        if base is not None:
            self.bind(base)

    def bind(self, base: str) -> None:
        """Record the model this log is replayed into, or check it is the one recorded.

        Raises:
            ValueError: the log was written for another model.
        """
        self._check_meta("base_fingerprint", base,
                         "a log written for another model (another data set, cleaning or settings); replaying "
                         "it would learn POIs and users of another catalogue. Start with the same --data and "
                         "settings, or use a new --db")

    def _check_meta(self, key: str, value: str, problem: str) -> None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            elif row[0] != value:
                raise ValueError(f"{self.path}: {problem} (its {key} is {row[0]!r}, expected {value!r})")

    def append(self, check_ins: Sequence[CheckIn]) -> list[int | None]:
        """Write check-ins in one transaction and return once it is committed (on disk).

        Returns:
            For each check-in, its row id, or ``None`` when its ``event_id`` was already in the
            log (a retry: nothing is written for it).
        """
        received = time.time()
        ids: list[int | None] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for c in check_ins:
                    row = self._db.execute(
                        "INSERT INTO events (event_id, user_id, poi_id, time, lat, lon, received_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING id",
                        (c.event_id, c.user_id, c.poi_id, int(c.time), c.lat, c.lon, received)).fetchone()
                    ids.append(None if row is None else int(row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def count(self) -> int:
        """Check-ins in the log."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def replay(self, batch_size: int = 10_000) -> Iterator[list[StoredCheckIn]]:
        """Every logged check-in in the order it arrived, ``batch_size`` at a time."""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, event_id, user_id, poi_id, time, lat, lon FROM events WHERE id > ? ORDER BY id LIMIT ?",
                    (last, batch_size)).fetchall()
            if not rows:
                return
            yield [StoredCheckIn(id=r[0], check_in=CheckIn(user_id=r[2], poi_id=r[3], time=r[4], lat=r[5], lon=r[6],
                                                           event_id=r[1])) for r in rows]
            last = rows[-1][0]

    def event_ids(self) -> set[str]:
        """The client ids of every logged check-in that has one."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT event_id FROM events WHERE event_id IS NOT NULL")}

    def close(self) -> None:
        """Close the connection (the data is already on disk)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SCHEMA_VERSION", "CheckIn", "EventStore", "StoredCheckIn"]
