"""Checkpointing SQLite's write-ahead log in the background.

In WAL mode a commit appends pages to the log, and a checkpoint copies them into the database file. By
default the connection that commits runs the checkpoint itself whenever the log passes 1,000 pages: with
envelopes of 1,000 objects that was nearly every commit of a TAXII POST, in the request's own thread. Here
the writer's automatic checkpoint is set far out (``BACKSTOP_PAGES``, a bound on the log should this thread
fall behind) and one daemon thread per store, on a connection of its own, runs a PASSIVE checkpoint after
each commit that stored object versions and after every ``CHECKPOINT_EVERY`` others: it copies what no
reader still needs, never blocks the writer, and runs in SQLite's C code, beside the request threads (the
Python lock is released). bench/README.md, "Ingest at the floor", has the figures.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("kizuna.store")

#: Log pages (4 KiB) past which the writer checkpoints in its own commit, as SQLite does by default at 1,000.
BACKSTOP_PAGES = 65536
#: Commits without new object versions (an audit record per page served, say) between two checkpoints asked
#: of the thread: one per small commit cost a read-out about a tenth more server CPU.
CHECKPOINT_EVERY = 64


class Checkpointer:
    """One background thread per store (per process) that runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own
    connection each time it is woken; several wake-ups while it works make one more checkpoint."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._asked = 0  # wake-ups so far
        self._done = 0  # wake-ups answered by a finished checkpoint
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def wake(self) -> None:
        """Checkpoint soon (after a commit)."""
        with self._lock:
            if self._stopping:
                return
            # A forked server worker inherits the store but not its threads: it starts its own.
            if self._thread is None or self._pid != os.getpid():
                self._thread = threading.Thread(target=self._run, name="kizuna-checkpoint", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
            self._asked += 1
            self._wake.notify()

    def wait(self, timeout: float = 30.0) -> bool:
        """Until every wake-up so far has been answered by a checkpoint (tests); False on timeout."""
        with self._lock:
            target = self._asked
            return self._wake.wait_for(lambda: self._done >= target or self._stopping, timeout)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                with self._lock:
                    self._wake.wait_for(lambda: self._asked > self._done or self._stopping)
                    if self._stopping:
                        return
                    target = self._asked
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # another process checkpointing, say: the next commit asks again
                    log.debug("background checkpoint skipped: %s", exc)
                with self._lock:
                    self._done = target
                    self._wake.notify_all()
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the thread after the checkpoint it is running, if any."""
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout=60)
