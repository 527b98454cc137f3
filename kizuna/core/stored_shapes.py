"""What the read path knows of a whole collection: every (producer, markings) pair its versions of the
column-decided types carry (its "shapes").

A partner reading out relationships must know whether each endpoint is visible to it, and the endpoints
of a page are mostly elsewhere in the collection: asked of the store, that is a look-up per endpoint id.
When the reader's policy shows every (producer, markings) pair stored in the collection whole, on the types
the columns decide, no endpoint of such a type can be hidden from it, and none needs looking up
(``core/visibility.py``). This module keeps that set of pairs per collection and process. Only the pair
decides a version of those types (the verdicts are kept per pair), so the types themselves are not kept:
a collection from a thousand producers holds some ten thousand (type, producer, markings) shapes but a
few thousand pairs of the decided types (bench/gen_stix.py at 200,000 objects: 9,925 and 2,715).

The set is learnt in bounded steps along ``date_added``, so no request pays for a scan of the whole
collection: until a step reaches the newest version the set is not used. Every write moves ``date_added``
forward (a new version, or a stored version replaced by a fuller form), so the next step sees it. A delete
only removes versions, which leaves the set a superset of what is stored: still a safe answer, since a
superset the reader sees whole implies the same of the real set. A collection whose recorded newest
``date_added`` moved back (a restore) is learnt again from the start. A collection with more pairs than
``cap`` keeps only its distinct markings, judged for a version without a producer, the strictest case of each
(``core/visibility.py``); one with more markings than ``cap``, or a version whose id does not name its type, is not
summarised at all (its readers look up every endpoint).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from typing import Any, Final, NamedTuple

from kizuna.store.base import Store
from kizuna.store.view_edges import UNDECIDED_TYPES

#: (producer, markings) of a version whose type the columns decide
Shape = tuple[str | None, str | None]


class Summary(NamedTuple):
    """What a collection stores on the column-decided types, or a superset."""

    #: every (producer, markings) pair; None when there are more than the cap
    pairs: frozenset[Shape] | None
    #: every markings column: when the pairs are not kept, each is judged as if no producer made it (the strictest)
    markings: frozenset[str | None]

_STEP: Final = 50_000
#: Pairs kept per collection (about 250 bytes each): a million objects of bench/gen_stix.py from 4,552 producers
#: hold fewer than 14,000. Below the reader's verdict cache (``core/visibility.py``), which holds a verdict per pair.
_CAP: Final = 16384
_ENDPOINTS_KEY: Final = "kept-endpoints"
_ENDPOINTS: Final = 65536
log = logging.getLogger("kizuna.core")


def kept_endpoints(verdicts: dict[Any, Any], stamp: Hashable) -> dict[str, bool]:
    """Endpoint id -> visible, as a reader's earlier pages resolved them, valid while the collection's change stamp
    is ``stamp`` (its newest ``date_added`` and newest deletion: every write moves one of them forward, see
    ``store.collection_change_stamp``). Kept beside the reader's pair verdicts (``verdicts``, one policy generation,
    shared by its requests): a reader paging through relationships to the same few identities looks each up once
    per collection state, not once per page. Only verdicts that follow from stored versions alone belong here (not
    one that hangs on a version's provenance, which is recorded apart from the version)."""
    held = verdicts.get(_ENDPOINTS_KEY)
    if held is None or held[0] != stamp or len(held[1]) >= _ENDPOINTS:
        held = verdicts[_ENDPOINTS_KEY] = (stamp, {})
    kept: dict[str, bool] = held[1]
    return kept


class _Learnt:
    __slots__ = ("complete", "deleted_seen", "frozen", "markings", "reached", "shapes", "unusable", "withdrawn")

    def __init__(self) -> None:
        self.shapes: set[Shape] | None = set()  # None once past the cap: only the markings are kept
        self.markings: set[str | None] = set()
        self.frozen = Summary(frozenset(), frozenset())
        self.reached = 0
        self.complete = False
        self.unusable = False
        #: the collection's newest deletion when the kept copies of deleted versions were last read, and the
        #: newest copy's withdrawn_at then
        self.deleted_seen = 0
        self.withdrawn = 0

    def add(self, decided: list[Shape], cap: int) -> bool:
        """Take in pairs of the column-decided types; False once the set is past being usable."""
        sizes = (None if self.shapes is None else len(self.shapes), len(self.markings))
        if self.shapes is not None:
            self.shapes.update(decided)
            if len(self.shapes) > cap:
                self.shapes = None  # the markings alone from now on (core/visibility.py)
        self.markings.update(markings for _, markings in decided)
        if len(self.markings) > cap:
            self.unusable = True
            self.markings.clear()
            return False
        if sizes != (None if self.shapes is None else len(self.shapes), len(self.markings)):
            # A new summary only when it grew: a reader's verdicts on it are kept while it is the same one.
            self.frozen = Summary(None if self.shapes is None else frozenset(self.shapes), frozenset(self.markings))
        return True


class StoredShapes:
    """Per collection, the (created_by_ref, markings) of every version of a column-decided type it stores (or
    more).

    With ``background``, as a server runs it, the steps are taken by one thread of this object instead of
    by the requests: a request meets either a complete set (and takes the one usually empty step that
    keeps it up to date) or None while the thread learns, never a step of ``step`` versions of its own.
    Right after a restart of a node holding a million versions, those steps had made the first requests
    of a partner token several hundred milliseconds slower.
    """

    def __init__(self, store: Store, step: int = _STEP, cap: int = _CAP, background: bool = False) -> None:
        self._store = store
        self._step = step
        self._cap = cap
        self._lock = threading.Lock()
        self._learnt: dict[int, _Learnt] = {}
        self.background = background
        self._queue: list[int] = []  # collections waiting for the learning thread, in order
        self._thread: threading.Thread | None = None

    def of(self, collection_pk: int, deleted: int | None = None) -> Summary | None:
        """Every pair and markings stored in the collection, and those of the versions deleted from it up to
        ``deleted`` (the newest deletion of its change stamp), or None while not known.

        One step of at most ``step`` versions, and usually a query that finds nothing new."""
        found = self._stepped(collection_pk)
        if found is None or deleted is None:
            return found
        self.note_deletions(collection_pk, deleted)
        with self._lock:
            learnt = self._learnt.get(collection_pk)
            if learnt is None or learnt.unusable or learnt.deleted_seen < deleted or not learnt.complete:
                return None  # the deleted versions' pairs not taken in yet: every endpoint is looked up
            return learnt.frozen

    def _stepped(self, collection_pk: int) -> Summary | None:
        if not self.background:
            return self._advance(collection_pk)
        if self._needs_learning(collection_pk):
            self.learn(collection_pk)
            return None
        found = self._advance(collection_pk)  # complete: usually an empty step that keeps it current
        if found is None and self._needs_learning(collection_pk):
            self.learn(collection_pk)  # much was added since: the thread takes the steps
        return found

    def _needs_learning(self, collection_pk: int) -> bool:
        """Not known yet, or not complete (and usable), or already queued for the thread."""
        learnt = self._learnt.get(collection_pk)
        if learnt is not None and learnt.unusable:
            return False
        return learnt is None or not learnt.complete or collection_pk in self._queue

    def learn(self, collection_pk: int) -> None:
        """Have the learning thread take the collection's steps until its set is complete."""
        with self._lock:
            if collection_pk not in self._queue:
                self._queue.append(collection_pk)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._learn, name="kizuna-stored-shapes", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Learn nothing more: the thread ends after the step it is taking (before the store closes)."""
        with self._lock:
            self._queue.clear()
            self.background = False
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Until the learning thread has nothing left to learn (tests, and a clean shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _learn(self) -> None:
        self._store.lean_reads()  # its scans would otherwise map and cache the file for as long as it runs
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                collection_pk = self._queue[0]
            try:
                while True:
                    self._advance(collection_pk)
                    learnt = self._learnt.get(collection_pk)
                    if learnt is None or learnt.unusable or learnt.complete:
                        break
            except Exception:  # noqa: BLE001 - a closed store, say: the requests' steps learn it instead
                log.debug("learning the stored shapes of collection %s stopped", collection_pk, exc_info=True)
            with self._lock:
                if collection_pk in self._queue:
                    self._queue.remove(collection_pk)

    def note_deletions(self, collection_pk: int, deleted: int | None) -> None:
        """Take in the pairs of versions deleted from the collection up to ``deleted`` (its change stamp's newest
        deletion), from their kept copies. A reference to a deleted object stays hidden from a reader who could
        not see it (core/visibility.py looks such ids up among the copies), so their pairs stay in the set even
        when it is learnt afresh from what is stored now. One query after each new deletion, none otherwise."""
        with self._lock:
            learnt = self._learnt.get(collection_pk)
            if learnt is None or learnt.unusable or deleted is None or deleted <= learnt.deleted_seen:
                return
            after = learnt.withdrawn
        shapes, reached = self._store.withdrawn_shapes(collection_pk, after)
        with self._lock:
            if self._learnt.get(collection_pk) is not learnt or learnt.withdrawn != after:
                return  # learnt afresh or taken in by another request meanwhile: the next request reads again
            if learnt.add(_decided(shapes), self._cap):
                learnt.withdrawn, learnt.deleted_seen = reached, deleted

    def _advance(self, collection_pk: int) -> Summary | None:
        """One step (the query runs outside the lock, so a request never waits for another's step)."""
        with self._lock:
            learnt = self._learnt.setdefault(collection_pk, _Learnt())
            if learnt.unusable:
                return None
            reached = learnt.reached
        found = self._store.column_shapes(collection_pk, reached, self._step)
        with self._lock:
            if self._learnt.get(collection_pk) is not learnt or learnt.reached != reached:
                return None  # another step moved on meanwhile: this answer may already be behind
            if found.last_added < learnt.reached:
                self._learnt[collection_pk] = _Learnt()  # restored to an earlier state: start over
                return None
            if not found.typed_ids:
                learnt.unusable = True
                return None
            if found.scanned:
                if not learnt.add(_decided(found.shapes), self._cap):
                    return None
                learnt.reached = found.reached
            learnt.complete = found.scanned < self._step
            return learnt.frozen if learnt.complete else None


def _decided(shapes: list[tuple[str, str | None, str | None]]) -> list[Shape]:
    """The (producer, markings) of the shapes whose type the columns decide."""
    return [(producer, markings) for kind, producer, markings in shapes if kind not in UNDECIDED_TYPES]
