"""Full-text search over what a principal may see (issue 11, "Browse and search").

The store's index (``store/search_index.py``) proposes candidate versions that contain every term;
each candidate then goes exactly where a TAXII read goes: the collection's ``Viewer`` from
``Node.viewer_for``, the default ``match[version]=last`` choice among the versions that principal sees
(``Reader.latest_choice``), and ``core/visibility.view``. When the copy the principal receives is
redacted (a granular marking, a trimmed reference list, an anonymised producer), the terms are matched
again against that copy, so a hit cannot reveal a word the principal could not read; an unredacted copy
is byte for byte the version whose text the index matched.

Results are objects, one per (collection, id), newest stored first. A ``language-content`` hit is also
a hit on the object it translates (``object_ref``), when the principal sees that object.

Counts are counts of results, never of index rows: a hidden object changes no count. Counting stops at
``count_cap`` results, then the answer is "at least N" (``count_exact`` False); hidden rows never make
that cap come sooner, so even a capped count says nothing about what is hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from kizuna.core.cursor import CursorCodec
from kizuna.core.errors import BadRequest, NotFound, alias_in_several_roots
from kizuna.core.principal import Principal
from kizuna.core.query import Choice, Reader
from kizuna.core.visibility import Viewer
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.stix.search_text import display_name, matches, query_terms, searchable_text, snippet
from kizuna.stix.timestamps import format_timestamp
from kizuna.stix.validation import is_type_name
from kizuna.store.base import Collection, SearchQuery, Store, VersionQuery, VersionRow

MAX_LIMIT: Final = 200
DEFAULT_COUNT_CAP: Final = 1000
_FIRST_BATCH: Final = 64
_MAX_BATCH: Final = 2000
#: The TLP filter value for objects without a TLP marking.
NO_TLP: Final = "none"


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """What narrows a search; empty means "any". Every filter applies to the copy the principal sees."""

    collections: tuple[str, ...] = ()  # ids or aliases
    types: tuple[str, ...] = ()
    tlp: tuple[str, ...] = ()  # TLP tokens or labels (green, TLP:AMBER+STRICT), or "none"
    producers: tuple[str, ...] = ()  # identity ids or the node's organisation names
    partner: str | None = None  # received from this federation partner
    added_from: int | None = None  # date_added, µs, inclusive
    added_before: int | None = None  # date_added, µs, exclusive

    def binding(self) -> str:
        return orjson.dumps([self.collections, self.types, self.tlp, self.producers, self.partner,
                             self.added_from, self.added_before]).decode()


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    type: str
    name: str | None
    snippet: str
    collection: str  # the collection's id
    collection_title: str
    tlp: str | None  # label, e.g. TLP:GREEN
    modified: str  # the version found, as a STIX timestamp
    version: int  # the same, µs
    added: str
    producer: str | None  # created_by_ref as the principal sees it
    via: str | None = None  # the language-content whose text matched, when found through a translation


@dataclass(frozen=True, slots=True)
class SearchResults:
    hits: list[SearchHit]
    count: int
    count_exact: bool  # False: there are at least ``count`` results
    next: str | None  # cursor for the next page


@dataclass(frozen=True, slots=True)
class _Wanted:
    """The filters, resolved: what a hit must be."""

    terms: tuple[str, ...]
    types: frozenset[str] | None
    levels: frozenset[TlpLevel | None] | None
    producers: frozenset[str] | None
    filters: SearchFilters


class Searcher:
    """Runs searches for a node; ``viewer_for`` is ``Node.viewer_for``, the one way to a Viewer."""

    def __init__(
        self, store: Store, reader: Reader, cursors: CursorCodec,
        viewer_for: Callable[[Principal, Collection], Viewer],
    ) -> None:
        self._store = store
        self._reader = reader
        self._cursors = cursors
        self._viewer_for = viewer_for

    def search(
        self, principal: Principal, text: str, filters: SearchFilters = SearchFilters(), limit: int = 20,
        cursor: str | None = None, count_cap: int = DEFAULT_COUNT_CAP,
    ) -> SearchResults:
        terms = query_terms(text)
        if isinstance(terms, str):
            raise BadRequest(terms)
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        unnamed = next((kind for kind in filters.types if not is_type_name(kind)), None)
        if unnamed is not None:  # 'Malware' would find nothing, as if nothing were there
            raise BadRequest(f"{unnamed!r} is not a STIX type name (lower-case, e.g. malware)")
        wanted = _Wanted(terms, frozenset(filters.types) or None, _levels(filters.tlp),
                         self._producers(filters.producers), filters)
        collections = self._collections(principal, filters.collections)
        scope = "|".join((principal.key, "search", " ".join(terms), filters.binding()))
        before = self._cursors.decode(scope, cursor) if cursor is not None else None
        page: list[SearchHit] = []
        more, last_seq = False, None
        scan = self._scan(principal, collections, wanted)
        for seq, found in scan.hits(before):
            if len(page) == limit:
                more = True
                break
            page.append(scan.hit(found))
            last_seq = seq
        if cursor is None:  # the page's scan goes on to count
            counted = len(page) + int(more)
            counter = scan
        else:
            counted, counter = 0, self._scan(principal, collections, wanted)
        exact = True
        for _ in counter.rest(first=cursor is not None):
            if counted >= count_cap:
                exact = False
                break
            counted += 1
        token = self._cursors.encode(scope, last_seq) if more and last_seq is not None else None
        return SearchResults(page, counted, exact, token)

    def _scan(self, principal: Principal, collections: list[Collection], wanted: _Wanted) -> _Scan:
        return _Scan(self._store, self._reader, lambda c: self._viewer_for(principal, c), collections, wanted)

    def _collections(self, principal: Principal, refs: Sequence[str]) -> list[Collection]:
        readable = [c for c in self._store.list_collections() if principal.can_read(c)]
        if not refs:
            return readable
        chosen: list[Collection] = []
        for ref in refs:
            found = [c for c in readable if ref in (c.id, c.alias)]
            if not found:  # not readable is told exactly as not existing
                raise NotFound(f"no collection {ref!r}")
            if len(found) > 1:  # an alias is unique within its API root only
                raise BadRequest(alias_in_several_roots(ref, found))
            chosen += [c for c in found if c not in chosen]
        return chosen

    def _producers(self, refs: Sequence[str]) -> frozenset[str] | None:
        ids: set[str] = set()
        for ref in refs:
            org = self._store.get_organisation(ref)
            if org is not None:
                ids.add(org.id)
            elif ref.startswith("identity--"):
                ids.add(ref)
            else:
                raise BadRequest(f"no organisation {ref!r} (give a name or an identity id)")
        return frozenset(ids) or None


def _levels(values: Sequence[str]) -> frozenset[TlpLevel | None] | None:
    levels: set[TlpLevel | None] = set()
    for value in values:
        if value.strip().lower() == NO_TLP:
            levels.add(None)
            continue
        level = TlpLevel.from_token(value.strip().removeprefix("TLP:").removeprefix("tlp:"))
        if level is None:
            raise BadRequest(f"unknown TLP level {value!r} (clear, green, amber, amber+strict, red or none)")
        levels.add(level)
    return frozenset(levels) or None


def tlp_level(obj: dict[str, Any]) -> TlpLevel | None:
    """The most restrictive TLP level among an object's markings."""
    refs = obj.get("object_marking_refs")
    levels = [LEVEL_BY_ANY_ID[ref] for ref in refs or () if isinstance(ref, str) and ref in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


@dataclass(slots=True)
class _Found:
    """A result as the walk finds it; the hit (name, snippet) is only built for the page served."""

    pk: int
    row: VersionRow
    body: bytes  # what the principal receives
    obj: dict[str, Any] | None = None  # parsed when a filter, a redaction or a translation needed it
    text: str | None = None  # the matched text (a translation's, when found through one)
    via: str | None = None

    def parsed(self) -> dict[str, Any]:
        if self.obj is None:
            self.obj = orjson.loads(self.body)
        return self.obj


class _Scan:
    """One walk down the index, newest first, yielding each visible result once."""

    def __init__(self, store: Store, reader: Reader, viewer_for: Callable[[Collection], Viewer],
                 collections: list[Collection], wanted: _Wanted) -> None:
        self._store, self._reader_of, self._viewer_for = store, reader, viewer_for
        self._by_pk = {c.pk: c for c in collections}
        self._readers: dict[int, tuple[Viewer, Choice]] = {}
        self._wanted = wanted
        self._needs_object = wanted.levels is not None or wanted.producers is not None
        self._seen: set[tuple[int, str]] = set()
        self._targets: dict[tuple[int, str], tuple[VersionRow, bytes] | None] = {}
        self._iter: Iterator[tuple[int, _Found]] | None = None

    def _reader(self, pk: int) -> tuple[Viewer, Choice]:
        found = self._readers.get(pk)
        if found is None:
            viewer = self._viewer_for(self._by_pk[pk])
            found = self._readers[pk] = (viewer, self._reader_of.latest_choice(viewer))
        return found

    def hits(self, before: int | None) -> Iterator[tuple[int, _Found]]:
        self._iter = self._walk(before)
        return self._iter

    def rest(self, first: bool) -> Iterator[tuple[int, _Found]]:
        """The hits the page's walk has not reached yet, or with ``first`` every hit from the top."""
        if first or self._iter is None:
            return self._walk(None)
        return self._iter

    def _walk(self, before: int | None) -> Iterator[tuple[int, _Found]]:
        filters = self._wanted.filters
        query = SearchQuery(
            tuple(self._by_pk), self._wanted.terms,
            types=tuple(sorted(self._wanted.types)) if self._wanted.types else None,
            producers=tuple(sorted(self._wanted.producers)) if self._wanted.producers else None,
            partner=filters.partner, added_from=filters.added_from, added_before=filters.added_before,
            before_seq=before, limit=_FIRST_BATCH,
        )
        while True:
            rows = self._store.search_versions(query)
            for pk in {pk for pk, _ in rows}:
                viewer, choice = self._reader(pk)
                mine = [row for at, row in rows if at == pk]
                viewer.prefetch(mine)
                choice.prepare(mine)
                self._prefetch_targets(pk, [row for row in mine if row.type == "language-content"])
            for pk, row in rows:
                for found in self._hits(pk, row):
                    yield row.seq, found
            if len(rows) < query.limit:
                return
            query = replace(query, before_seq=rows[-1][1].seq, limit=min(query.limit * 4, _MAX_BATCH))

    def _hits(self, pk: int, row: VersionRow) -> Iterator[_Found]:
        _, choice = self._reader(pk)
        body = choice.body(row)
        if body is None:
            return
        found = _Found(pk, row, body)
        translation = row.type == "language-content"
        if body is not row.body:  # redacted for this principal: only what it receives may match
            found.text = searchable_text(found.parsed())
            if not matches(found.text, self._wanted.terms):
                return
        if self._passes(found, checked_by_store=not translation) and self._first(found):
            yield found
        target = found.parsed().get("object_ref") if translation else None
        if isinstance(target, str):
            latest = self._latest(pk, target)
            if latest is not None:
                via = _Found(pk, *latest, text=found.text or searchable_text(found.parsed()), via=row.stix_id)
                if self._passes(via, checked_by_store=False) and self._first(via):
                    yield via

    def _first(self, found: _Found) -> bool:
        key = (found.pk, found.row.stix_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _prefetch_targets(self, pk: int, translations: list[VersionRow]) -> None:
        """The objects a batch's translations refer to, looked up together instead of one by one."""
        refs = {ref for row in translations if isinstance(ref := orjson.loads(row.body).get("object_ref"), str)}
        wanted = sorted(ref for ref in refs if (pk, ref) not in self._targets)
        _, choice = self._reader(pk)
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            rows = self._store.query_versions(VersionQuery(collection_pk=pk, ids=tuple(chunk), limit=100_000))
            choice.prepare(rows)
            chosen: dict[str, tuple[VersionRow, bytes]] = {}
            for row in rows:
                body = choice.body(row)
                if body is not None:
                    chosen[row.stix_id] = (row, body)
            for ref in chunk:
                self._targets[(pk, ref)] = chosen.get(ref)

    def _latest(self, pk: int, object_id: str) -> tuple[VersionRow, bytes] | None:
        """The version of ``object_id`` this principal reads by default, if it sees one."""
        if (pk, object_id) not in self._targets:
            self._prefetch_targets_by_id(pk, object_id)
        return self._targets[(pk, object_id)]

    def _prefetch_targets_by_id(self, pk: int, object_id: str) -> None:
        _, choice = self._reader(pk)
        rows = self._store.query_versions(VersionQuery(collection_pk=pk, ids=(object_id,), limit=1000))
        choice.prepare(rows)
        self._targets[(pk, object_id)] = next(
            ((row, body) for row in rows if (body := choice.body(row)) is not None), None
        )

    def _passes(self, found: _Found, checked_by_store: bool) -> bool:
        wanted, filters, row = self._wanted, self._wanted.filters, found.row
        if wanted.types is not None and row.type not in wanted.types:
            return False
        if self._needs_object:
            obj = found.parsed()
            if wanted.levels is not None and tlp_level(obj) not in wanted.levels:
                return False
            if wanted.producers is not None and obj.get("created_by_ref") not in wanted.producers:
                return False
        if filters.added_from is not None and row.date_added < filters.added_from:
            return False
        if filters.added_before is not None and row.date_added >= filters.added_before:
            return False
        if filters.partner is not None and not checked_by_store:
            return (row.version, filters.partner) in self._store.provenance_of(found.pk, row.stix_id)
        return True

    def hit(self, found: _Found) -> SearchHit:
        """What a listing shows of a result on the page served."""
        obj, row = found.parsed(), found.row
        text = found.text if found.text is not None else searchable_text(obj)
        collection = self._by_pk[found.pk]
        level = tlp_level(obj)
        producer = obj.get("created_by_ref")
        return SearchHit(
            id=row.stix_id, type=row.type, name=display_name(obj), snippet=snippet(text, self._wanted.terms),
            collection=collection.id, collection_title=collection.title,
            tlp=level.label if level is not None else None, modified=format_timestamp(row.version), version=row.version,
            added=format_timestamp(row.date_added), producer=producer if isinstance(producer, str) else None,
            via=found.via,
        )
