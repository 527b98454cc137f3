"""Indexing the search backlog in the background (``store/search_index.py`` says why there is one).

Both backends write a new version's searchable text to ``search_backlog`` in the transaction that stores
the version, and move it into the search index afterwards. After a commit that added versions the store
wakes one daemon thread, which moves the backlog into the index in batches, each its own short write
transaction, until the backlog is empty. A search first indexes what was waiting when it began
(``SearchBacklog.index_search_backlog``), so it never misses a stored version, and ``close`` stops the
thread and indexes what is left, so a command such as ``kizuna import`` ends with every version indexed.
A crash leaves the backlog in the database, for the next search or wake-up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kizuna.store.search_index import SearchIndex

log = logging.getLogger("kizuna.store")

#: Backlog rows indexed per transaction: large enough that FTS5 writes few segments, small enough that a
#: POST waiting for the write lock waits a few tens of milliseconds at most.
BATCH = 2000


class BacklogIndexer:
    """One background thread per store that calls ``drain_batch`` (which indexes up to ``BATCH`` rows and
    returns how many it indexed) until the backlog is empty, each time it is woken."""

    def __init__(self, drain_batch: Callable[[], int]) -> None:
        self._drain_batch = drain_batch
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._added_here = False  # whether this store added versions (left rows in the backlog)

    def wake(self) -> None:
        with self._lock:
            self._added_here = True
            if self._stopping:
                return
            # A forked server worker inherits the store but not its threads: it starts its own.
            if self._thread is None or self._pid != os.getpid():
                self._wake = threading.Event()
                self._thread = threading.Thread(target=self._run, name="kizuna-search-backlog", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            if self._stopping:
                return
            try:
                while not self._stopping and self._drain_batch() >= BATCH:
                    pass
            except Exception:  # noqa: BLE001 - the backlog stays and the next search or wake-up indexes it
                log.exception("indexing the search backlog failed; a search will retry")

    def stop(self) -> bool:
        """Stop the thread after the batch it is indexing, if any; return whether this store added
        versions, and so may have left rows in the backlog."""
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout=60)
        return self._added_here


class SearchBacklog:
    """The store's side of the backlog, inherited by ``SqlStore``: each backend starts the indexer in its
    ``__init__`` and lets it go in ``close``; adding versions wakes it and a search first indexes what waits."""

    search_index: SearchIndex
    _indexer: BacklogIndexer

    if TYPE_CHECKING:  # provided by store/transactions.py; declared only for the type checker
        def _read(self) -> AbstractContextManager[Any]: ...
        def _write(self) -> AbstractContextManager[Any]: ...
        def _after_commit(self, work: Callable[[], None]) -> None: ...

    def _start_search_backlog(self) -> None:
        self._indexer = BacklogIndexer(self._index_backlog_batch)

    def _versions_added(self) -> None:
        """Wake the indexer once the versions just added are committed (before, it would not see them)."""
        self._after_commit(self._indexer.wake)

    def _index_backlog_batch(self, through: int | None = None) -> int:
        with self._write() as cur:
            return self.search_index.drain(cur, BATCH, through)

    def index_search_backlog(self) -> int:
        """Index every version that waits in the search backlog now; return how many were indexed here.

        Versions stored while this runs are left to the thread: on a busy node, a search would otherwise
        chase every new write before it could answer."""
        with self._read() as cur:
            cur.execute("SELECT MAX(seq) FROM search_backlog")
            high = cur.fetchone()[0]
        if high is None:
            return 0
        done = 0
        while True:
            moved = self._index_backlog_batch(int(high))
            done += moved
            # A batch can come back empty while older rows wait: every row it took was deleted meanwhile.
            if not moved and not self._waiting(int(high)):
                return done

    def _waiting(self, through: int) -> bool:
        with self._read() as cur:
            cur.execute("SELECT 1 FROM search_backlog WHERE seq <= ? LIMIT 1", (through,))
            return cur.fetchone() is not None

    def _close_search_backlog(self, errors: tuple[type[BaseException], ...]) -> None:
        if self._indexer.stop():  # this process stored versions: it ends with every one of them searchable
            try:
                self.index_search_backlog()
            except errors as exc:
                # Nothing is lost: the backlog is in the database and the next search indexes it.
                log.warning("search backlog left for the next search: %s", exc)
