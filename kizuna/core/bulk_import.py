"""The process settings of a bulk import: what `Node.import_objects` holds for the length of one."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

#: How long a thread may keep Python's GIL while another waits for it during a bulk import (Python's default:
#: 5 ms). A store's background threads (SQLite's search backlog) take the one write lock and then need the GIL
#: between their statements; with the importing thread busy in Python, each statement's return waited up to the
#: whole interval with the write lock held, while the importer waited for that lock (docs/decisions.md).
_BULK_SWITCH_INTERVAL_S = 0.001


_bulk_lock = threading.Lock()
_bulk = {"under_way": 0, "found": 0.0}  # imports under way, and the interval the first of them found


@contextlib.contextmanager
def gil_shared_sooner() -> Iterator[None]:
    # Imports may overlap (a server's threads): the first sets the interval, the last one out restores it.
    with _bulk_lock:
        if not _bulk["under_way"]:
            _bulk["found"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_bulk["found"], _BULK_SWITCH_INTERVAL_S))
        _bulk["under_way"] += 1
    try:
        yield
    finally:
        with _bulk_lock:
            _bulk["under_way"] -= 1
            if not _bulk["under_way"]:
                sys.setswitchinterval(_bulk["found"])
