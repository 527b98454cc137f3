"""Token buckets every server process of a node shares: one row per bucket, spent with one upsert.

``kizuna serve --workers N`` runs N processes, and several hosts may serve one PostgreSQL node; a
limit kept in each process's memory lets a client that spreads its requests make N times the rate.
Here the bucket is a row (level, the time it was last spent, whether the last request was granted)
and one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` refills it, spends a request if it holds
one, and answers, so concurrent processes cannot both spend the last request.

Where the rows live:

- PostgreSQL: an UNLOGGED table in the node's database.  Buckets need no crash safety (a bucket lost
  in a crash is full again, as a forgotten one is), and an unlogged row costs no WAL.
- SQLite: a file of its own beside the store (``kizuna.limits.db``), in WAL mode without fsync.  In the
  store file every request would wait for the store's write lock, which a large POST holds for
  seconds; the limits file is only ever locked for one upsert.

The semantics are exactly ``core/limits.TokenBuckets``: up to ``burst`` requests, refilled at ``rate``
a second; a refused request spends nothing.  Rows of full buckets are deleted now and then.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

#: Seconds between deletions of full buckets, per process.
PURGE_EVERY_S = 60.0

_LEVEL = "min(:burst, b.level + (:now - b.since) * :rate)"
_UPSERT = f"""
INSERT INTO rate_buckets AS b (key, level, since, granted, full_at)
VALUES (:key, :burst - 1, :now, TRUE, :now + 1 / :rate)
ON CONFLICT (key) DO UPDATE SET
    granted = {_LEVEL} >= 1,
    level = CASE WHEN {_LEVEL} >= 1 THEN {_LEVEL} - 1 ELSE {_LEVEL} END,
    since = :now,
    full_at = :now + (:burst - CASE WHEN {_LEVEL} >= 1 THEN {_LEVEL} - 1 ELSE {_LEVEL} END) / :rate
RETURNING granted, level
"""
_TABLE = """
CREATE {unlogged} TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY, level DOUBLE PRECISION NOT NULL, since DOUBLE PRECISION NOT NULL,
    granted BOOLEAN NOT NULL, full_at DOUBLE PRECISION NOT NULL
)"""
_PURGE_LOCK = 0x6B7A726C  # advisory lock id: one process at a time creates the PostgreSQL table


class BucketRows(Protocol):
    """Where shared buckets are kept; ``upsert`` runs ``_UPSERT`` with named parameters."""

    def upsert(self, params: dict[str, Any]) -> tuple[bool, float]: ...
    def state(self, key: str) -> tuple[float, float] | None: ...
    def purge(self, now: float) -> None: ...


class SharedBuckets:
    """Named buckets of one size and rate (``prefix`` keeps the kinds apart), shared through ``rows``;
    the methods of ``core/limits.TokenBuckets``, with ``now`` on the wall clock every process shares."""

    def __init__(self, rows: BucketRows, prefix: str, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and room for one request")
        self.rows, self.prefix, self.rate, self.burst = rows, prefix, rate_per_s, burst
        self._purged = time.time()

    def _wait(self, level: float) -> float:
        return float(max(1, math.ceil((1.0 - level) / self.rate)))

    def take(self, key: str, now: float | None = None) -> float | None:
        """Spend one request from ``key``'s bucket: None if allowed, else seconds to wait."""
        now = time.time() if now is None else now
        self._maybe_purge(now)
        granted, level = self.rows.upsert(
            {"key": self.prefix + key, "burst": self.burst, "rate": self.rate, "now": now}
        )
        return None if granted else self._wait(level)

    def wait(self, key: str, now: float | None = None) -> float | None:
        """Seconds ``key`` must wait before its next request, or None; spends nothing."""
        now = time.time() if now is None else now
        found = self.rows.state(self.prefix + key)
        if found is None:
            return None
        level, since = found
        level = min(self.burst, level + (now - since) * self.rate)
        return None if level >= 1.0 else self._wait(level)

    def _maybe_purge(self, now: float) -> None:
        if now - self._purged >= PURGE_EVERY_S:
            self._purged = now
            self.rows.purge(now)


class SqliteBucketRows:
    """The rows in their own SQLite file; a connection per thread, as the store's readers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connection()  # create the file and table now, so a bad path fails at start-up

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")  # a lost bucket is a full one: nothing to keep
            conn.execute(_TABLE.format(unlogged=""))
            self._local.conn = conn
        return conn

    def upsert(self, params: dict[str, Any]) -> tuple[bool, float]:
        row = self._connection().execute(_UPSERT, params).fetchone()
        return bool(row[0]), float(row[1])

    def state(self, key: str) -> tuple[float, float] | None:
        row = self._connection().execute("SELECT level, since FROM rate_buckets WHERE key = ?", (key,)).fetchone()
        return None if row is None else (float(row[0]), float(row[1]))

    def purge(self, now: float) -> None:
        self._connection().execute("DELETE FROM rate_buckets WHERE full_at < ?", (now,))


class PostgresBucketRows:
    """The rows in an UNLOGGED table of the node's database, through the store's connection pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PURGE_LOCK,))
            conn.execute(_TABLE.format(unlogged="UNLOGGED"))
        # psycopg's named placeholders; min() is least() in PostgreSQL.
        self._upsert = _UPSERT.replace("min(", "least(").replace(":key", "%(key)s").replace(
            ":burst", "%(burst)s::float8").replace(":rate", "%(rate)s::float8").replace(":now", "%(now)s::float8")

    def upsert(self, params: dict[str, Any]) -> tuple[bool, float]:
        with self._pool.connection() as conn:
            conn.autocommit = True
            row = conn.execute(self._upsert, params).fetchone()
        return bool(row[0]), float(row[1])

    def state(self, key: str) -> tuple[float, float] | None:
        with self._pool.connection() as conn:
            conn.autocommit = True
            row = conn.execute("SELECT level, since FROM rate_buckets WHERE key = %s", (key,)).fetchone()
        return None if row is None else (float(row[0]), float(row[1]))

    def purge(self, now: float) -> None:
        with self._pool.connection() as conn:
            conn.autocommit = True
            conn.execute("DELETE FROM rate_buckets WHERE full_at < %s", (now,))


def bucket_rows(store: Any) -> BucketRows:
    """The shared bucket rows of ``store``: beside its SQLite file, or in its PostgreSQL database."""
    from kizuna.store.postgres.store import PostgresStore
    from kizuna.store.sqlite.store import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteBucketRows(store.path.with_suffix(".limits.db"))
    if isinstance(store, PostgresStore):
        return PostgresBucketRows(store._pool)
    raise TypeError(f"no shared rate limits for {type(store).__name__}")


def shared_bucket_maker(store: Any) -> Any:
    """A ``core/limits.BucketMaker`` whose buckets are rows of ``store``, opened at the first bucket made."""
    opened: list[BucketRows] = []

    def make(kind: str, rate_per_s: float, burst: float) -> SharedBuckets:
        if not opened:
            opened.append(bucket_rows(store))
        return SharedBuckets(opened[0], kind, rate_per_s, burst)

    return make
