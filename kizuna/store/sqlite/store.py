"""SQLite backend: the embedded default, one file in the node's data directory.

Reads use one connection per thread; writes take a process-wide lock and then
``BEGIN IMMEDIATE``, which also serialises writers in other processes on the same file.
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kizuna.stix.timestamps import now_micros
from kizuna.store.base import StoreError
from kizuna.store.search_index import SqliteSearchIndex
from kizuna.store.sql import SqlStore, effective_schema_version
from kizuna.store.sqlite.migrations import MIGRATIONS

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 30000",
    "PRAGMA cache_size = -65536",
    "PRAGMA mmap_size = 134217728",
    "PRAGMA temp_store = MEMORY",
)


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/path.db`` names ``/abs/path.db`` (the URL's path is the file path)."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not an SQLite URL: {url!r} (expected sqlite:///absolute/path/to/file.db)")
    return Path("/" + url[len("sqlite:///"):].lstrip("/"))


class SqliteStore(SqlStore):
    search_index = SqliteSearchIndex()

    def __init__(self, url: str) -> None:
        self.url = url
        self._atomic = threading.local()
        self.path = path_from_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        cur = conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._write_lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def _lock_collection(self, cur: Any, collection_pk: int) -> tuple[int, int]:
        # BEGIN IMMEDIATE already holds the database write lock.
        cur.execute("SELECT last_added FROM collections WHERE pk = ?", (collection_pk,))
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"collection {collection_pk} does not exist")
        return int(row[0]), now_micros()

    def migrate(self) -> int:
        with self._write() as cur:  # BEGIN IMMEDIATE: one migrator at a time
            return self._apply_migrations(cur, MIGRATIONS)

    def schema_versions(self) -> tuple[int, int]:
        # A new connection that may not create the file: one held open since start-up would keep
        # answering from a file that was since removed or replaced.
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=5)
            try:
                applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the SQLite store {self.path}: {exc}") from exc
        return effective_schema_version(applied, [v for v, _ in MIGRATIONS]), MIGRATIONS[-1][0]

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()
