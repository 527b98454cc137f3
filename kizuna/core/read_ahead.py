"""Reading the next page of a TAXII read-out while the client takes in the one it was just sent.

A client pages through a collection one request at a time: it cannot ask for page n+1 before it has parsed
page n and found its ``next``. Server and client therefore take turns, and on a machine with a core for
each the read-out runs at the speed of both added together. Once a client follows a ``next`` cursor (it
is paging, not peeking at a first page), the server computes the page after the one it answers with, in
a thread of its own, and keeps it for the request that names that cursor.

A kept page is served only if nothing it was decided on may have changed: the same principal (grants,
agreement binding), the same policy generation (every change to agreements, organisations, options,
marking definitions and partner entries bumps it), the same change stamps (newest ``date_added`` and newest
deletion) of every collection of the node, since a reference is decided by the collections that hold its
target (core/elsewhere.py), and at most ``KEEP_S`` seconds old; otherwise it is dropped and the page
computed afresh.
The generation and stamp are read, in that thread, before the page is computed, so a write that lands
while it is being computed makes it stale too. A kept page is audited as egress when it is served, never when computed:
what the client never asked for never left. At most ``KEPT`` pages are kept, so a client that stops
paging costs one page of work and its memory for a few seconds.

Behind a balancer that sends a client's requests to several server processes in turn, the next page is
mostly asked of another process, and work read ahead is work wasted. So each process watches the cursor
requests it answers: when fewer than one in ``HIT_SHARE`` of the last ``WINDOW`` found their page computed
ahead, it reads ahead only for every ``PROBE``-th request, until pages are taken again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Final

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.principal import Principal
from kizuna.core.query import Page
from kizuna.core.visibility import Viewer
from kizuna.store.base import Collection

#: Seconds a page computed ahead may wait for its request.
KEEP_S: Final = 2.0
#: Pages computed ahead and kept at once (one per client paging at the same time is what helps).
KEPT: Final = 8
#: The endpoints whose read-outs are paged through end to end.
PAGED: Final = frozenset({Endpoint.OBJECTS, Endpoint.MANIFEST})
#: Cursor requests remembered, whether they found their page computed ahead; below one in ``HIT_SHARE`` found
#: (with at least ``MIN_KNOWN`` known), pages are read ahead only for every ``PROBE``-th request.
WINDOW: Final = 32
MIN_KNOWN: Final = 8
HIT_SHARE: Final = 3
PROBE: Final = 8

#: (principal key, collection pk, endpoint, object id, filter binding, page size, cursor)
_Key = tuple[str, int, str, str, str, int | None, str]
#: Computes one page for a principal: (page, the viewer that decided it, whose counts the audit records).
Compute = Callable[[Principal, Collection, Endpoint, Filters, str | None], tuple[Page, Viewer]]


@dataclass(frozen=True, slots=True)
class _Computed:
    page: Page
    viewer: Viewer  # the viewer that decided it, whose counts the audit records
    generation: int  # the policy generation and collections' stamps read before it was computed
    stamp: Hashable


@dataclass(frozen=True, slots=True)
class _Ahead:
    principal: Principal
    started: float
    page: Future[_Computed]


def _key(principal: Principal, collection: Collection, endpoint: Endpoint, filters: Filters,
         object_id: str | None) -> _Key:
    return (principal.key, collection.pk, endpoint.value, object_id or "", filters.binding(), filters.limit,
            filters.next or "")


class ReadAhead:
    """The pages computed ahead for the clients paging now, and the thread that computes them."""

    def __init__(self, compute: Compute, generation: Callable[[], int],
                 stamp: Callable[[], Hashable]) -> None:
        self._compute, self._generation, self._stamp = compute, generation, stamp
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kizuna-read-ahead")
        self._kept: OrderedDict[_Key, _Ahead] = OrderedDict()
        self._lock = threading.Lock()
        self._found: deque[bool] = deque(maxlen=WINDOW)  # whether each recent cursor request had a page kept
        self._held_back = 0
        #: Pages by outcome: ``served`` (kept and still exact), ``stale`` (dropped), ``queued`` (not started when
        #: asked for: read by the request instead), ``failed`` (computing raised); and ``held back`` (not read
        #: ahead: few pages were taken of late).
        self.outcomes: Counter[str] = Counter()

    def take(self, viewer: Viewer, endpoint: Endpoint, filters: Filters,
             object_id: str | None) -> tuple[Page, Viewer] | None:
        """The page computed ahead for this request, if one was and it is still exactly what would be read
        now; None otherwise (the caller reads it itself)."""
        if filters.next is None or endpoint not in PAGED:
            return None
        with self._lock:
            ahead = self._kept.pop(_key(viewer.principal, viewer.collection, endpoint, filters, object_id), None)
            self._found.append(ahead is not None)
        if ahead is None:
            return None
        if ahead.page.cancel():  # still queued behind another client's page: reading it now is no slower
            self.outcomes["queued"] += 1
            return None
        try:
            computed = ahead.page.result()
        except Exception:  # noqa: BLE001 - the request reads the page itself and meets the error there
            self.outcomes["failed"] += 1
            return None
        if (ahead.principal != viewer.principal or time.monotonic() - ahead.started > KEEP_S
                or self._generation() != computed.generation or self._stamp() != computed.stamp):
            self.outcomes["stale"] += 1
            return None
        self.outcomes["served"] += 1
        return computed.page, computed.viewer

    def after(self, viewer: Viewer, endpoint: Endpoint, filters: Filters, object_id: str | None,
              page: Page) -> None:
        """Start computing the page after ``page``, which answered a request that followed a cursor."""
        if filters.next is None or endpoint not in PAGED or not page.more or page.next is None:
            return
        if not self._worth_it():
            self.outcomes["held back"] += 1
            return
        following = replace(filters, next=page.next)
        key = _key(viewer.principal, viewer.collection, endpoint, following, object_id)
        started = time.monotonic()
        try:
            future = self._executor.submit(self._computed, viewer.principal, viewer.collection, endpoint, following,
                                           object_id)
        except RuntimeError:  # shut down: the node is closing
            return
        with self._lock:
            self._kept[key] = _Ahead(viewer.principal, started, future)
            while len(self._kept) > KEPT:
                _, dropped = self._kept.popitem(last=False)
                dropped.page.cancel()

    def _computed(self, principal: Principal, collection: Collection, endpoint: Endpoint, filters: Filters,
                  object_id: str | None) -> _Computed:
        # In the read-ahead thread, not the request's: the generation and stamp first, then the page.
        generation, stamp = self._generation(), self._stamp()
        page, viewer = self._compute(principal, collection, endpoint, filters, object_id)
        return _Computed(page, viewer, generation, stamp)

    def _worth_it(self) -> bool:
        with self._lock:
            found = self._found
            if len(found) < MIN_KNOWN or sum(found) * HIT_SHARE >= len(found):
                return True
            self._held_back += 1
            return self._held_back % PROBE == 0

    def wait(self) -> None:
        """Until every page started has been computed (tests synchronise on this, never on time)."""
        with self._lock:
            pending = [ahead.page for ahead in self._kept.values()]
        for future in pending:
            try:
                future.result()
            except Exception:  # noqa: BLE001,S110 - take() reports it
                pass

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._kept.clear()
