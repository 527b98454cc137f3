"""Whether a ``kizuna serve`` runs on a data directory: a restore must not swap the store beneath one.

A server holds a shared ``flock`` on ``serve.lock`` in the data directory for as long as it runs (several
``serve`` processes on one directory may hold it together); a restore asks for it exclusively and is
refused while any server holds it. The kernel drops the lock with the process, so a killed server
leaves nothing stale behind, whatever the file says.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "serve.lock"


class ServingConflict(Exception):
    """A restore and a server would use one data directory at once."""


@contextmanager
def serving(data_dir: Path) -> Iterator[None]:
    """Hold the shared serve lock of ``data_dir`` while the block runs (its pid written for the operator)."""
    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServingConflict(f"a restore is replacing the node in {data_dir}; serve it once that is done"
                                  ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextmanager
def restoring(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` exclusively while a restore runs; ServingConflict if a server runs on it now."""
    if not data_dir.is_dir():
        yield  # nothing serves a directory that does not exist
        return
    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            raise ServingConflict(f"kizuna serve (pid {pid}) is running on {data_dir}: stop it before a restore, "
                                  "or it goes on serving the store the restore replaces") from None
        yield
    finally:
        os.close(descriptor)
