"""The process settings of bulk work: what `Node.import_objects` holds for the length of one, and the cyclic
garbage collector of a process that parses objects in bulk."""

from __future__ import annotations

import contextlib
import gc
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


#: Container objects allocated (less those freed) between two young-generation collections; Python's default is
#: 700. Parsing one TAXII envelope of 1,000 objects allocates some 10,000, all of them alive until it is stored.
_YOUNG_COLLECTION_EVERY = 10_000


def set_aside_long_lived() -> None:
    """Keep the garbage collector's full collections off everything allocated so far, and collect less often.

    A server or import process parses objects in bulk; those survive their request's young collections and,
    every few envelopes, start a full collection, which walked every object of the process: its modules, the
    app, the compiled policy, the warninglists (a `kizuna import` of 100,000 CSV lines spent 1.0 s of its 12 s
    in such walks, a server 6-10% of its ingest CPU: bench/README.md). Freezing moves what exists now into a
    generation the collector never walks; it is still freed when its last reference goes, and only cyclic
    garbage among it stays, so this is called once a process has set up (or, in the one-shot `kizuna import`,
    before each file's objects are stored), never per request."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_COLLECTION_EVERY, older, oldest)
