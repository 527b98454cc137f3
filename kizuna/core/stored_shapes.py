"""What the read path knows of a whole collection: every (type, producer, markings) its versions carry.

A partner reading out relationships must know whether each endpoint is visible to it, and the endpoints
of a page are mostly elsewhere in the collection: asked of the store, that is a look-up per endpoint id.
When the reader's policy shows every (producer, markings) pair stored in the collection whole, on the types
the columns decide, no endpoint of such a type can be hidden from it, and none needs looking up
(``core/visibility.py``). This module keeps that set of shapes per collection and process.

The set is learnt in bounded steps along ``date_added``, so no request pays for a scan of the whole
collection: until a step reaches the newest version the set is not used. Every write moves ``date_added``
forward (a new version, or a stored version replaced by a fuller form), so the next step sees it. A delete
only removes versions, which leaves the set a superset of what is stored: still a safe answer, since a
superset the reader sees whole implies the same of the real set. A collection whose recorded newest
``date_added`` moved back (a restore) is learnt again from the start. A collection with more shapes than
``cap``, or a version whose id does not name its type, is not summarised at all (its readers look up every
endpoint, as before).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any, Final

from kizuna.store.base import Store

Shape = tuple[str, str | None, str | None]
_STEP: Final = 50_000
_CAP: Final = 4096
_ENDPOINTS_KEY: Final = "kept-endpoints"
_ENDPOINTS: Final = 65536


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
    __slots__ = ("complete", "frozen", "reached", "shapes", "unusable")

    def __init__(self) -> None:
        self.shapes: set[Shape] = set()
        self.frozen: frozenset[Shape] = frozenset()
        self.reached = 0
        self.complete = False
        self.unusable = False


class StoredShapes:
    """Per collection, the (type, created_by_ref, markings) of every version it stores (or more)."""

    def __init__(self, store: Store, step: int = _STEP, cap: int = _CAP) -> None:
        self._store = store
        self._step = step
        self._cap = cap
        self._lock = threading.Lock()
        self._learnt: dict[int, _Learnt] = {}

    def of(self, collection_pk: int) -> frozenset[Shape] | None:
        """Every shape stored in the collection (a superset after deletes), or None while not known.

        One step of at most ``step`` versions, and usually a query that finds nothing new."""
        with self._lock:
            learnt = self._learnt.setdefault(collection_pk, _Learnt())
            if learnt.unusable:
                return None
            found = self._store.column_shapes(collection_pk, learnt.reached, self._step)
            if found.last_added < learnt.reached:
                learnt = self._learnt[collection_pk] = _Learnt()  # restored to an earlier state: start over
                return None
            if not found.typed_ids:
                learnt.unusable = True
                return None
            if found.scanned:
                learnt.shapes.update(found.shapes)
                if len(learnt.shapes) > self._cap:
                    learnt.unusable = True
                    learnt.shapes.clear()
                    return None
                learnt.frozen = frozenset(learnt.shapes)
                learnt.reached = found.reached
            learnt.complete = found.scanned < self._step
            return learnt.frozen if learnt.complete else None
