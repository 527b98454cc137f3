"""Reading a collection: filtered, paged, and every row through the visibility check."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kizuna.core.cursor import CursorCodec
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.visibility import Viewer, view
from kizuna.store.base import Store, VersionQuery, VersionRow, VersionSelector

# Hidden rows are skipped without a tell, so a page may need more than one fetch.
_REFILL = 1000
_MAX_FETCH = 10000


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


class Reader:
    def __init__(self, store: Store, cursors: CursorCodec, default_limit: int, max_limit: int) -> None:
        self._store = store
        self._cursors = cursors
        self.default_limit = default_limit
        self.max_limit = max_limit

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
        versions = VersionSelector(all=True) if endpoint is Endpoint.VERSIONS else filters.versions
        query = VersionQuery(
            collection_pk=viewer.collection.pk,
            ids=(object_id,) if object_id is not None else filters.ids,
            types=filters.types,
            versions=versions,
            spec_versions=filters.spec_versions,
            added_after=after,
            limit=limit + 1,
        )
        items, more = self._collect(viewer, query, limit)
        if object_id is not None and not items and not self._exists(viewer, object_id):
            raise NotFound("no such object in this collection")
        token = self._cursors.encode(scope, items[-1][0].date_added) if more else None
        return Page(items, more, token)

    def _collect(
        self, viewer: Viewer, query: VersionQuery, limit: int
    ) -> tuple[list[tuple[VersionRow, bytes]], bool]:
        items: list[tuple[VersionRow, bytes]] = []
        scanned = 0
        while True:
            rows = self._store.query_versions(query)
            scanned += len(rows)
            viewer.prefetch(rows)
            for row in rows:
                body = view(viewer, row)
                if body is None:
                    continue
                if len(items) == limit:
                    return items, True
                items.append((row, body))
            if len(rows) < query.limit:
                return items, False
            # Size the next fetch by the share of rows this viewer has seen so far, so a page
            # with a few hidden rows costs one small extra query, not a full refill.
            share = max(len(items) / scanned, 0.02)
            wanted = int((limit + 1 - len(items)) / share) + 8
            query = replace(query, added_after=rows[-1].date_added, limit=min(max(wanted, 32), _MAX_FETCH))

    def _exists(self, viewer: Viewer, object_id: str) -> bool:
        query = VersionQuery(
            collection_pk=viewer.collection.pk, ids=(object_id,),
            versions=VersionSelector(all=True), limit=_REFILL,
        )
        items, _ = self._collect(viewer, query, 1)
        return bool(items)

    def visible_versions(self, viewer: Viewer, object_id: str, filters: Filters) -> list[VersionRow]:
        """Every version of one object that ``viewer`` sees and the filters select (for DELETE)."""
        query = VersionQuery(
            collection_pk=viewer.collection.pk, ids=(object_id,), versions=filters.versions,
            spec_versions=filters.spec_versions, limit=_REFILL,
        )
        rows: list[VersionRow] = []
        while True:
            batch = self._store.query_versions(query)
            rows.extend(row for row in batch if view(viewer, row) is not None)
            if len(batch) < query.limit:
                return rows
            query = replace(query, added_after=batch[-1].date_added)
