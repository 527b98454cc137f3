"""SQLite reader connections and memory: a connection lives as long as the thread that reads through
it, and SQLite's heap in a process is bounded however many threads read.

``kizuna serve`` reads from a pool of worker threads that anyio ends when idle and replaces when work
arrives. A reader connection kept past its thread held its page cache (up to 64 MiB) for nothing,
one more after every quiet spell. What connections hold open is visible
from outside: file descriptors on the store file, counted in /proc/self/fd (SQLite reuses the
descriptor of a closed connection for the next one, so the count stays level when connections end,
and rises by one per connection that is never closed).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from kizuna.store.sqlite.store import SOFT_HEAP_LIMIT, SqliteStore


def open_on(path: Path) -> int:
    """File descriptors of this process open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue  # closed between listing and reading
    return count


def read(store: SqliteStore) -> None:
    with store._read() as cur:  # the path every read method takes
        cur.execute("SELECT COUNT(*) FROM collections")
        assert cur.fetchone() is not None


def read_in_a_thread(store: SqliteStore) -> None:
    failures: list[BaseException] = []

    def one_read() -> None:
        try:
            read(store)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=one_read)
    thread.start()
    thread.join()
    assert not failures, failures


def test_a_reader_connection_ends_with_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "kizuna.db"
    store = SqliteStore(f"sqlite:///{path}")
    try:
        store.migrate()
        read_in_a_thread(store)
        after_one = open_on(path)
        for _ in range(20):  # threads come and go, as a server's idle workers do
            read_in_a_thread(store)
        assert open_on(path) == after_one  # before: one more descriptor (and page cache) per thread
    finally:
        store.close()
    assert open_on(path) == 0  # close() closes the readers of threads still alive too


def test_sqlite_memory_is_bounded_per_process(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'kizuna.db'}")
    try:
        # The limit is process-wide: any connection reads it back, even one the store did not open.
        other = sqlite3.connect(":memory:")
        try:
            assert other.execute("PRAGMA soft_heap_limit").fetchone()[0] == SOFT_HEAP_LIMIT
        finally:
            other.close()
    finally:
        store.close()


def _mmap_size(store: SqliteStore) -> int:
    with store._read() as cur:
        cur.execute("PRAGMA mmap_size")
        return int(cur.fetchone()[0])


def test_a_feed_walk_maps_none_of_the_file_and_its_reader_maps_again_after(tmp_path: Path) -> None:
    """A feed reads every indicator row once: while it walks, the reader maps none of the file (mapped pages
    it touched would count in the server's resident memory beside its cache); the walk's end restores it."""
    from kizuna.core.node import Node

    node = Node.init(tmp_path / "node", org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("Feed")
        stamp = "2026-12-05T00:00:00.000Z"
        node.import_objects(collection, [
            {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
             "created": stamp, "modified": stamp, "valid_from": stamp, "pattern_type": "stix",
             "pattern": f"[ipv4-addr:value = '198.51.100.{n}']"} for n in range(10)])
        store = node.store
        assert isinstance(store, SqliteStore)
        mapped = _mmap_size(store)
        assert mapped > 0
        first = store.feed_rows(collection.pk, None, 4)
        assert len(first) == 4 and _mmap_size(store) == 0  # mid-walk
        rest = store.feed_rows(collection.pk, first[-1][3], 100)
        assert len(rest) == 6 and _mmap_size(store) == mapped  # the walk ended
    finally:
        node.close()


_WRITE_40_MB = """
import ctypes, ctypes.util, sys
from kizuna.store.sqlite.store import SqliteStore
sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3"))  # the library the sqlite3 module is linked to
sqlite.sqlite3_memory_used.restype = ctypes.c_int64
store = SqliteStore(sys.argv[1])
store.migrate()
with store._write() as cur:
    cur.execute("CREATE TABLE filler (body BLOB)")
for _ in range(10):  # ten commits of 4 MB, as the audit records of a large feed build are written
    with store._write() as cur:
        cur.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,) for _ in range(1000)])
print(sqlite.sqlite3_memory_used())
store.close()
"""


def test_the_writer_keeps_a_bounded_cache_of_what_it_wrote(tmp_path: Path) -> None:
    """The writer's page cache keeps the pages it wrote: 40 MB of writes (a million-indicator feed build audits
    some 35 MB of egress) left 44 MB of SQLite heap with a reader-sized cache, a fifth of a serving process's
    peak. Run in a process of its own, so that no other test's connection counts."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WRITE_40_MB, f"sqlite:///{tmp_path / 'kizuna.db'}"],
                          capture_output=True, text=True, timeout=120, check=True)
    used = int(done.stdout.strip())
    assert 4 * 2**20 < used < 24 * 2**20, used  # above 4 MiB: the library measured is the one in use
