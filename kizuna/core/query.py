"""Reading a collection: filtered, paged, and every row through the visibility check."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kizuna.core.cursor import CursorCodec
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.visibility import Viewer, sees, view
from kizuna.store.base import Store, VersionQuery, VersionRow, VersionSelector

# Hidden rows are skipped without a tell, so a page may need more than one fetch.
_REFILL = 1000
_MAX_FETCH = 10000
#: What one page may spend reading, per object it asks for (``limit + 1``): stored rows, and time. A reader
#: who sees few of a collection's rows (a partner's token on relationships whose endpoints it mostly may not
#: see) would otherwise read tens of thousands of rows, for hundreds of milliseconds, to fill one page of 100.
#: A page stops when its next fetch (at most ``_CHUNK`` rows or two pages' worth) would pass the rows, or at
#: its pace so far end past the time, and is served with what it found, ``more`` true and a ``next`` that
#: continues after the last row read (TAXII 2.1 §3.7: a server may return fewer objects than ``limit``;
#: ``more`` says there may be more). A reader who sees every row never reaches them: its page is one fetch of
#: ``limit + 1`` rows. Settings ``page_rows_per_object`` and ``page_microseconds_per_object`` in
#: ``kizuna.toml``; a small page still may read ``ROWS_FLOOR`` rows for ``SECONDS_FLOOR`` (a page of one would
#: otherwise stop after one fetch), and no page stops for time before it has read ``_CHUNK`` rows (a small
#: collection pages alike on any machine).
ROWS_PER_OBJECT = 20
SECONDS_PER_OBJECT = 0.0001
ROWS_FLOOR = 1000
SECONDS_FLOOR = 0.005
_CHUNK = 200
_EVERY = 1 << 62  # no page limit: every selected version
_ALL = VersionSelector(all=True)
#: Every stored version of some ids in a collection, oldest version first.
Siblings = Callable[[int, Sequence[str]], dict[str, list[VersionRow]]]


@dataclass(frozen=True, slots=True)
class _Budget:
    rows: int
    started: float  # time.perf_counter()
    deadline: float
    chunk: int  # rows per fetch after the first


@dataclass(frozen=True, slots=True)
class Page:
    items: list[tuple[VersionRow, bytes]]
    more: bool
    next: str | None

    @property
    def first_added(self) -> int | None:
        return self.items[0][0].date_added if self.items else None

    @property
    def last_added(self) -> int | None:
        return self.items[-1][0].date_added if self.items else None


def _overruns(budget: _Budget, scanned: int, wanted: int) -> bool:
    """Whether reading ``wanted`` more rows, at the pace of the ``scanned`` so far, would end past the deadline:
    a page stops before its budget rather than one fetch after it."""
    now = time.perf_counter()
    return now + (now - budget.started) / scanned * wanted > budget.deadline


class Reader:
    def __init__(
        self, store: Store, cursors: CursorCodec, default_limit: int, max_limit: int,
        rows_per_object: int = ROWS_PER_OBJECT, seconds_per_object: float = SECONDS_PER_OBJECT,
    ) -> None:
        self._store = store
        self._cursors = cursors
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.rows_per_object = rows_per_object
        self.seconds_per_object = seconds_per_object
        self.rows_floor = ROWS_FLOOR
        self.seconds_floor = SECONDS_FLOOR

    def page(
        self, viewer: Viewer, endpoint: Endpoint, filters: Filters, object_id: str | None = None
    ) -> Page:
        scope = "|".join((
            viewer.principal.key, viewer.collection.id, endpoint.value, object_id or "", filters.binding()
        ))
        after = filters.added_after
        if filters.next is not None:
            after = self._cursors.decode(scope, filters.next)
        limit = min(filters.limit or self.default_limit, self.max_limit)
        versions = _ALL if endpoint is Endpoint.VERSIONS else filters.versions
        query = VersionQuery(
            collection_pk=viewer.collection.pk,
            ids=(object_id,) if object_id is not None else filters.ids,
            types=filters.types,
            versions=versions,
            spec_versions=filters.spec_versions,
            added_after=after,
            limit=limit + 1,
        )
        # Pages of named ids read only those ids' versions: no bound is needed, and callers that read a chunk of
        # ids as one page rely on getting every visible one.
        asked = limit + 1
        started = time.perf_counter()
        budget = None if query.ids is not None else _Budget(
            max(self.rows_floor, self.rows_per_object * asked), started,
            started + max(self.seconds_floor, self.seconds_per_object * asked), max(_CHUNK, 2 * asked),
        )
        items, more, stop = self._collect(viewer, query, limit, budget)
        if object_id is not None and not items and not self._exists(viewer, object_id):
            raise NotFound("no such object in this collection")
        token = self._cursors.encode(scope, stop) if stop is not None else None
        return Page(items, more, token)

    def _collect(
        self, viewer: Viewer, query: VersionQuery, limit: int, budget: _Budget | None = None,
    ) -> tuple[list[tuple[VersionRow, bytes]], bool, int | None]:
        """Up to ``limit`` items, whether there may be more, and the ``date_added`` the next page continues
        after (None when there is no more)."""
        items: list[tuple[VersionRow, bytes]] = []
        scanned = 0
        choose = Choice(viewer, query.versions, self._siblings)
        while True:
            rows = self._store.query_versions(query)
            scanned += len(rows)
            viewer.prefetch(rows)
            choose.prepare(rows)
            for row in rows:
                body = choose.body(row)
                if body is None:
                    continue
                if len(items) == limit:
                    return items, True, items[-1][0].date_added
                items.append((row, body))
            if len(rows) < query.limit:
                return items, False, None
            # Size the next fetch by the share of rows this viewer has seen so far, so a page
            # with a few hidden rows costs one small extra query, not a full refill.
            share = max(len(items) / scanned, 0.02)
            wanted = min(max(int((limit + 1 - len(items)) / share) + 8, 32), _MAX_FETCH)
            if budget is not None:
                wanted = min(wanted, budget.rows - scanned, budget.chunk)
                if wanted <= 0 or (scanned >= _CHUNK and _overruns(budget, scanned, wanted)):
                    return items, True, rows[-1].date_added
            query = replace(query, added_after=rows[-1].date_added, limit=wanted)

    def window(self, viewer: Viewer, filters: Filters, rows: int) -> tuple[list[tuple[VersionRow, bytes]], int | None]:
        """What ``viewer`` receives of the next ``rows`` stored rows that ``filters`` select after
        ``filters.added_after`` (one store query, so the work is bounded however few rows the viewer may
        see), and the ``date_added`` to continue from (None: nothing more). For walks that must stop in
        time, such as the console's counts; TAXII pages use :meth:`page`."""
        query = VersionQuery(
            collection_pk=viewer.collection.pk, ids=filters.ids, types=filters.types, versions=filters.versions,
            spec_versions=filters.spec_versions, added_after=filters.added_after, limit=rows,
        )
        found = self._store.query_versions(query)
        viewer.prefetch(found)
        choose = Choice(viewer, query.versions, self._siblings)
        choose.prepare(found)
        items = [(row, body) for row in found if (body := choose.body(row)) is not None]
        return items, found[-1].date_added if len(found) == rows else None

    def _siblings(self, collection_pk: int, ids: Sequence[str]) -> dict[str, list[VersionRow]]:
        """Every stored version of ``ids``, oldest version first, for choosing among them."""
        found: dict[str, list[VersionRow]] = {}
        for start in range(0, len(ids), 200):
            for row in self._store.query_versions(VersionQuery(
                collection_pk=collection_pk, ids=tuple(ids[start:start + 200]), versions=_ALL, limit=100_000,
            )):
                found.setdefault(row.stix_id, []).append(row)
        for rows in found.values():
            rows.sort(key=lambda row: row.version)
        return found

    def _exists(self, viewer: Viewer, object_id: str) -> bool:
        query = VersionQuery(
            collection_pk=viewer.collection.pk, ids=(object_id,), versions=_ALL, limit=_REFILL,
        )
        items, _, _ = self._collect(viewer, query, 1)
        return bool(items)

    def latest_choice(self, viewer: Viewer) -> Choice:
        """What TAXII's default ``match[version]=last`` serves ``viewer`` of scanned rows (core/search.py)."""
        return Choice(viewer, VersionSelector.latest(), self._siblings)

    def visible_versions(self, viewer: Viewer, object_id: str, filters: Filters) -> list[VersionRow]:
        """Every version of one object that ``viewer`` sees and the filters select (for DELETE)."""
        query = VersionQuery(
            collection_pk=viewer.collection.pk, ids=(object_id,), versions=filters.versions,
            spec_versions=filters.spec_versions, limit=_REFILL,
        )
        items, _, _ = self._collect(viewer, query, _EVERY)
        return [row for row, _ in items]


class Choice:
    """Which rows of a scan ``match[version]`` selects for one viewer, and what the viewer receives of them.

    ``first`` and ``last`` are chosen among the versions the viewer may see: a version it cannot see is to
    it as absent as any hidden object (docs/policy.md, "Each principal sees its own history").  The store
    returns the stored first/last versions (settled: served when visible, as any row) and the few earlier
    or later versions that some reader might see in their place (``store/view_edges.py``); only those are
    weighed against the object's other versions, looked up once per scanned batch.
    """

    __slots__ = ("_all", "_exact", "_first", "_last", "_lookup", "_siblings", "_viewer")

    def __init__(self, viewer: Viewer, selector: VersionSelector, lookup: Siblings) -> None:
        self._viewer = viewer
        self._all, self._first, self._last = selector.all, selector.first, selector.last
        self._exact = frozenset(selector.exact)
        self._lookup = lookup
        self._siblings: dict[str, list[VersionRow]] = {}

    def _settled(self, row: VersionRow) -> bool:
        # Inlined where it runs per row of every page: this is the common case's only extra work.
        return bool(
            self._all or (self._last and row.is_last) or (self._first and row.is_first) or row.version in self._exact
        )

    def prepare(self, rows: Sequence[VersionRow]) -> None:
        """Look up, in one go, the other versions of the batch's objects whose choice depends on the viewer:
        only of rows the viewer sees (``body`` serves no other), so a partner who sees a fifth of a page's
        candidates looks up a fifth of their objects, and none when it sees none of them."""
        viewer = self._viewer
        if viewer.policy is None or self._all:
            return  # a reader who sees every version: the stored first/last are its own
        settled = self._settled
        wanted = [row.stix_id for row in rows
                  if not settled(row) and row.stix_id not in self._siblings and sees(viewer, row)]
        if wanted:
            self._siblings.update(self._lookup(self._viewer.collection.pk, list(dict.fromkeys(wanted))))

    def body(self, row: VersionRow) -> bytes | None:
        """What the viewer receives of ``row``, or None when it is hidden or not selected."""
        if self._all or (self._last and row.is_last) or (self._first and row.is_first) or row.version in self._exact:
            return view(self._viewer, row)
        viewer = self._viewer
        if viewer.policy is None or not sees(viewer, row):
            return None
        others = self._siblings.get(row.stix_id, ())
        if not (
            (self._last and not any(o.version > row.version and sees(viewer, o) for o in others))
            or (self._first and not any(o.version < row.version and sees(viewer, o) for o in others))
        ):
            return None
        return view(viewer, row)
