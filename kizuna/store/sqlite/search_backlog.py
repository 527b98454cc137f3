"""Indexing SQLite's search backlog in the background (``store/search_index.py`` says why there is one).

After a write that added versions the store wakes one daemon thread, which moves the backlog into the FTS5
index in batches, each its own short write transaction, until the backlog is empty. A search empties the
backlog itself before it reads (``SqliteStore.search_versions``), and ``close`` stops the thread and
empties what is left, so a command such as ``kizuna import`` ends with every version indexed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

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
