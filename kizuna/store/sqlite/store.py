"""SQLite backend: the embedded default, one file in the node's data directory.

Reads use one connection per thread; writes take a process-wide lock and then
``BEGIN IMMEDIATE``, which also serialises writers in other processes on the same file.

A reader connection lives as long as its thread: the server's worker threads come and go (anyio ends
a thread idle for 10 s and starts another when work arrives), and each connection holds a page cache
of up to ``cache_size``; kept beyond its thread, it would hold that memory for nothing. With up to 40
threads reading at once per process, the caches alone could reach 40 × ``cache_size``:
``SOFT_HEAP_LIMIT`` bounds SQLite's memory in the whole process instead. Past it, a connection reuses
its own least recently used cache pages rather than taking more.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kizuna.stix.timestamps import now_micros
from kizuna.store.base import AddResult, FeedRow, NewVersion, Outcome, StoreError, unique_conflict
from kizuna.store.search_index import SqliteSearchIndex, holds
from kizuna.store.sql import SqlStore, effective_schema_version
from kizuna.store.sqlite.checkpoints import BACKSTOP_PAGES, CHECKPOINT_EVERY, Checkpointer
from kizuna.store.sqlite.migrations import MIGRATIONS

log = logging.getLogger("kizuna.store")

#: SQLite's heap in one process (every connection's page cache, statements, in-memory temporary
#: tables), in bytes: four connections' full caches. It is process-wide, so every connection sets the
#: same value; a single reader keeps its whole 64 MiB cache.
SOFT_HEAP_LIMIT = 256 * 1024 * 1024

_MMAP_PRAGMA = "PRAGMA mmap_size = 134217728"  # file pages mapped by a reader (a feed walk maps none)
#: The writer's page cache, a quarter of a reader's. It fills with the pages writes touch and keeps them: the
#: audit records of what a million-indicator feed build served (some 35 MB) left 64 MiB of pages no one reads
#: again in a serving process, a fifth of its peak. Ingest does not miss the rest: into a collection of a million
#: objects it ran as fast with 8, 16 or 64 MiB (the pages it misses come from the operating system's cache).
_WRITER_CACHE_PRAGMA = "PRAGMA cache_size = -16384"  # KiB
_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 30000",
    "PRAGMA cache_size = -65536",
    _MMAP_PRAGMA,
    "PRAGMA temp_store = MEMORY",
    f"PRAGMA soft_heap_limit = {SOFT_HEAP_LIMIT}",
)


class _Reader:
    """One thread's reader connection, held only by that thread's local storage: when the thread ends,
    its storage goes, and with it the connection (closed, its cache freed)."""

    __slots__ = ("conn", "__weakref__")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        self.conn.close()


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/path.db`` names ``/abs/path.db`` (the URL's path is the file path)."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not an SQLite URL: {url!r} (expected sqlite:///absolute/path/to/file.db)")
    return Path("/" + url[len("sqlite:///"):].lstrip("/"))


def private_parent(path: Path) -> None:
    """Make the directory the file ``path`` goes in, if it is missing: its owner's alone, as the node's tokens and
    markings inside require (one that exists keeps the mode it has)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o700)


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file not to be a database, or a damaged one (not a query's own mistake)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class SqliteStore(SqlStore):
    search_index = SqliteSearchIndex()

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self._atomic = threading.local()
        self.path = path_from_url(url)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory: an SQLite store is a file (sqlite:///path/to/kizuna.db)")
        if not create and not self.path.exists():
            raise StoreError(f"the SQLite store {self.path} does not exist: restore the node from a backup "
                             "(`kizuna restore`) or point kizuna.toml's store at the file")
        private_parent(self.path)
        if not self.path.exists():  # SQLite gives its -wal and -shm files the database file's permissions
            self.path.touch(mode=0o600)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._create = create
        try:
            self._writer = self._connect()  # its pragmas read the file's header: garbage is found here
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        # The log is checkpointed by a thread of its own (store/sqlite/checkpoints.py), not in the commits.
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._writer.execute(_WRITER_CACHE_PRAGMA)
        self._checkpointer = Checkpointer(self._connect)
        self._commits = 0  # since the last checkpoint was asked for
        self._versions_written = False  # by the transaction under way (under the write lock)
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()  # the live threads' readers, for close()
        self._readers_lock = threading.Lock()
        self._start_search_backlog()

    def _unreadable(self, exc: sqlite3.DatabaseError) -> StoreError:
        """A file SQLite cannot read, said as the other store errors say what is wrong."""
        if not _damaged(exc):  # locked, or not to be opened: the file itself may well be whole
            return StoreError(f"cannot read the SQLite store {self.path}: {exc}")
        what = (f"{self.path} is not an SQLite database" if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_NOTADB
                else f"the SQLite store {self.path} is damaged ({exc})")
        # A node's store, not a file given to `init`: what it held is lost unless a backup holds it.
        return StoreError(what if self._create else f"{what}: restore the node from a backup (`kizuna restore`) "
                          "or point kizuna.toml's store at the node's file")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        conn.create_function("kizuna_holds", 2, holds, deterministic=True)  # searches (store/search_index.py)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = _Reader(self._connect())
            self._local.reader = reader
            with self._readers_lock:
                self._readers.add(reader)
        cur = reader.conn.cursor()
        try:
            yield cur
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise self._unreadable(exc) from None
            raise
        finally:
            cur.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._write_lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException as exc:
                self._versions_written = False
                cur.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError) and str(exc).startswith("UNIQUE constraint failed: "):
                    raise unique_conflict(str(exc).removeprefix("UNIQUE constraint failed: ")) from exc
                if isinstance(exc, sqlite3.DatabaseError) and _damaged(exc):
                    raise self._unreadable(exc) from None
                raise
            else:
                cur.execute("COMMIT")
                # A checkpoint after each batch of versions, and after every CHECKPOINT_EVERY other commits (the
                # audit record of each page served, statuses): not one per served page.
                self._commits += 1
                if self._versions_written or self._commits >= CHECKPOINT_EVERY:
                    self._versions_written = False
                    self._commits = 0
                    self._checkpointer.wake()
            finally:
                cur.close()

    def _lock_collection(self, cur: Any, collection_pk: int) -> tuple[int, int]:
        # BEGIN IMMEDIATE already holds the database write lock.
        cur.execute("SELECT last_added FROM collections WHERE pk = ?", (collection_pk,))
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"collection {collection_pk} does not exist")
        return int(row[0]), now_micros()

    def feed_rows(self, collection_pk: int, added_after: int | None, limit: int) -> list[FeedRow]:
        """As every SQL store reads them; at the end of a walk (a batch shorter than asked) this thread's page
        cache is let go. A feed reads every indicator row of a collection once, so afterwards the cache (up to
        64 MiB a reader) holds pages nobody asked for, in each server thread that happened to build a feed.
        (Letting go after every batch kept the peak lower but cost a fifth more time: the walk's own pages.)
        During the walk the reader maps none of the file: mapped pages it touched (up to ``mmap_size``,
        128 MiB) would count in the server's resident memory beside the cache, for pages read once. (A walk
        given up early leaves its reader unmapped until that thread's next walk ends or the thread does: its
        reads are then only a little slower.)"""
        if added_after is None:  # a walk's first batch
            with self._reader() as cur:
                cur.execute("PRAGMA mmap_size = 0")
        rows = super().feed_rows(collection_pk, added_after, limit)
        if len(rows) < limit:
            with self._reader() as cur:
                cur.execute("PRAGMA shrink_memory")
                cur.execute(_MMAP_PRAGMA)
        return rows

    # -- what a write asks of the log's checkpoints -------------------------------------------
    def add_versions(self, collection_pk: int, versions: Sequence[NewVersion]) -> list[AddResult]:
        results = super().add_versions(collection_pk, versions)
        if any(result.outcome is Outcome.ADDED for result in results):
            self._versions_written = True
        return results

    def lean_reads(self) -> None:
        """This thread's reader maps none of the file and caches 2 MiB: for a thread that scans once and ends
        (the stored shapes' learner, the start-up warm-up), whose mapped pages would otherwise count in the
        process's resident memory for as long as its connection lives."""
        with self._reader() as cur:
            cur.execute("PRAGMA mmap_size = 0")
            cur.execute("PRAGMA cache_size = -2048")

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
        self._close_search_backlog((sqlite3.Error, StoreError))
        self._checkpointer.stop()
        with self._readers_lock:
            for reader in list(self._readers):
                reader.conn.close()
            self._readers.clear()
        self._writer.close()
