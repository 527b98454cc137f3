"""What the console's Browse page lists: a collection's objects as one principal sees them, filtered by
type, TLP, producer, the partner node they came from and time added, paged, with counts.

Everything is read through ``Node.viewer_for`` and the TAXII reader, so a hidden object is in no list
and in no count. TLP and producer are decided on the copy the principal receives (after redaction).
Counting walks the visible objects within a budget (``COUNT_BUDGET``); when it runs out the counts say
"at least", so a page costs a bounded amount of work however large the collection.

The partner a version came from (federation provenance) is the node's own bookkeeping: only the node's
own organisation filters and counts by it (``sees_provenance``), asking the store once per window of
visible rows, never once per object.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from kizuna.core.audit import pack_served, tlp_counts
from kizuna.core.browse import Acting, _producer_names
from kizuna.core.errors import BadRequest, NotFound
from kizuna.core.filters import Filters
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.stix.search_text import display_name as display_name  # one name rule for every listing
from kizuna.store.base import Collection, VersionRow

#: The TLP filter value for objects without a TLP marking.
NO_TLP = "none"


@dataclass(frozen=True, slots=True)
class Criteria:
    types: tuple[str, ...] = ()
    tlp: str | None = None  # a TLP token ("amber+strict") or NO_TLP
    producer: str | None = None  # an identity id
    partner: str | None = None  # received from this federation partner (its entry's name)
    added_after: int | None = None  # µs, exclusive
    after: int | None = None  # paging: the date_added of the last entry already shown
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Entry:
    """One visible object as the principal receives it, with what Browse filters and shows it by."""

    row: VersionRow
    obj: dict[str, Any]
    tlp: TlpLevel | None
    producer: str | None
    partner: str | None = None  # the partner node this version came from, when the reader may know it

    @property
    def name(self) -> str | None:
        return display_name(self.obj)

    @property
    def tlp_token(self) -> str:
        return self.tlp.token if self.tlp is not None else NO_TLP

    def matches(self, criteria: Criteria) -> bool:
        return _matches(criteria, self.row.type, self.tlp_token, self.producer, self.partner)


def _matches(criteria: Criteria, stix_type: str, tlp: str, producer: str | None, partner: str | None) -> bool:
    return not ((criteria.types and stix_type not in criteria.types) or (criteria.tlp and criteria.tlp != tlp)
                or (criteria.producer and criteria.producer != producer)
                or (criteria.partner and criteria.partner != partner))


@dataclass
class Listing:
    collection: Collection
    entries: list[Entry]
    total: int  # visible objects matching every criterion
    complete: bool  # False: the count walk ran out of budget, the counts are lower bounds
    next_after: int | None
    types: Counter[str] = field(default_factory=Counter)  # over the visible objects added in the period
    tlps: Counter[str] = field(default_factory=Counter)
    producers: Counter[str] = field(default_factory=Counter)
    producer_names: dict[str, str] = field(default_factory=dict)
    #: Visible objects per partner node they came from; only for a reader that ``sees_provenance``.
    partners: Counter[str] = field(default_factory=Counter)
    partner_choices: list[str] = field(default_factory=list)  # every partner entry, by name


def tlp_of(obj: dict[str, Any]) -> TlpLevel | None:
    levels = [LEVEL_BY_ANY_ID[ref] for ref in obj.get("object_marking_refs", ()) if ref in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


def readable_collections(node: Node, principal: Principal) -> list[Collection]:
    return [c for root in node.store.list_api_roots() for c in node.collections_for(principal, root.name)
            if principal.can_read(c)]


def sees_provenance(node: Node, principal: Principal) -> bool:
    """May ``principal`` filter by the partner node an object came from? The node's administrator and its
    own organisation only: which partner sent what is this node's bookkeeping, not shared data."""
    return principal.is_admin or (principal.organisation_id is not None
                                  and principal.organisation_id == node.home_organisation_id)


def partner_names(node: Node) -> list[str]:
    """The partner entries by name, as `kizuna partners list` shows them."""
    return [name for name, _ in node.store.partner_configs()]


def find_readable(node: Node, principal: Principal, ref: str) -> Collection:
    """A collection the principal may read, by id or alias; any other is reported as absent."""
    for collection in readable_collections(node, principal):
        if ref in (collection.id, collection.alias):
            return collection
    raise NotFound("no such collection")


@dataclass(frozen=True, slots=True)
class Budget:
    """How far one walk may go: always ``floor`` stored rows, then on until ``seconds`` of work (a page must
    answer quickly on a collection of millions, and each row costs a visibility decision)."""

    floor: int
    seconds: float


#: The counts and facets of Browse.
COUNT_BUDGET = Budget(floor=2_000, seconds=0.12)
#: One page of Browse under a narrow filter; when it runs out, "next" continues from where it stopped.
PAGE_BUDGET = Budget(floor=2_000, seconds=0.12)
_WINDOW = 500  # stored rows per store query, so that the time budget is checked often


@dataclass
class Walk:
    """Where a walk stopped: ``complete`` when it reached the end, else the position to continue from."""

    complete: bool = True
    position: int | None = None


def scan(
    node: Node, viewer: Viewer, filters: Filters, budget: Budget, walk: Walk
) -> Iterator[tuple[VersionRow, bytes]]:
    """Every object of the viewer's collection that ``filters`` select and the viewer sees (its copy), in
    date_added order, window by window through the TAXII reader, within ``budget``; when the budget ends
    the walk early, ``walk`` says so and where it stopped."""
    for items in scan_windows(node, viewer, filters, budget, walk):
        yield from items


def scan_windows(
    node: Node, viewer: Viewer, filters: Filters, budget: Budget, walk: Walk
) -> Iterator[list[tuple[VersionRow, bytes]]]:
    """:func:`scan`, one window's visible objects at a time (for questions asked once per window)."""
    deadline = time.monotonic() + budget.seconds
    scanned = 0
    while True:
        items, position = node.reader.window(viewer, filters, _WINDOW)
        yield items
        scanned += _WINDOW
        if position is None:
            return
        if scanned >= budget.floor and time.monotonic() > deadline:
            walk.complete, walk.position = False, position
            return
        filters = replace(filters, added_after=position)


def _entry(row: VersionRow, body: bytes, partner: str | None = None) -> Entry:
    obj = orjson.loads(body)
    producer = obj.get("created_by_ref")
    return Entry(row, obj, tlp_of(obj), producer if isinstance(producer, str) else None, partner)


class _Provenance:
    """The partner each visible row of a window came from, asked of the store once per window, and only
    for a reader that may know it (otherwise every row is "from no partner")."""

    def __init__(self, node: Node, collection: Collection, known: bool) -> None:
        self._node, self._pk, self._known = node, collection.pk, known

    def of(self, items: list[tuple[VersionRow, bytes]]) -> dict[tuple[str, int], str]:
        if not self._known or not items:
            return {}
        return self._node.store.partners_of(self._pk, [(row.stix_id, row.version) for row, _ in items])


class _Facets:
    """TLP and producer of a visible copy, from the row's columns when the copy is the stored object
    unchanged and has no granular markings (the common case: no parsing), else from the copy itself."""

    def __init__(self) -> None:
        self._tlp_of_markings: dict[str | None, str] = {}

    def of(self, row: VersionRow, body: bytes) -> tuple[str, str | None]:
        if body is not row.body or b'"granular_markings"' in body:
            entry = _entry(row, body)
            return entry.tlp_token, entry.producer
        token = self._tlp_of_markings.get(row.markings)
        if token is None:
            refs = orjson.loads(row.markings) if row.markings else []
            level = tlp_of({"object_marking_refs": refs})
            token = self._tlp_of_markings[row.markings] = level.token if level is not None else NO_TLP
        return token, row.created_by_ref


def _fill_page(node: Node, viewer: Viewer, criteria: Criteria, listing: Listing, provenance: _Provenance) -> None:
    """The page: from the position on, until it is full or PAGE_BUDGET runs out (then "next" continues
    from where the walk stopped)."""
    start = max(criteria.added_after or 0, criteria.after or 0) or None
    paged = Walk()
    for items in scan_windows(node, viewer, Filters(types=criteria.types or None, added_after=start),
                              PAGE_BUDGET, paged):
        partners = provenance.of(items)
        for row, body in items:
            seen = _entry(row, body, partners.get((row.stix_id, row.version)))
            if not seen.matches(criteria):
                continue
            if len(listing.entries) == criteria.limit:
                listing.next_after = listing.entries[-1].row.date_added
                return
            listing.entries.append(seen)
    if not paged.complete:
        listing.next_after = paged.position  # the page is not full yet: continue from here


def browse(node: Node, principal: Principal, collection: Collection, criteria: Criteria) -> Listing:
    """One page of matching objects after ``criteria.after``, and the counts over the period.

    Two bounded walks through the reader: the counts (the visible objects added in the period, within
    COUNT_BUDGET), and the page (from the position on, until the page is full or PAGE_BUDGET runs out;
    then "next" continues from where the walk stopped)."""
    viewer = node.viewer_for(principal, collection)
    listing = Listing(collection, [], 0, True, None)
    known = sees_provenance(node, principal)
    if known:
        listing.partner_choices = partner_names(node)
    if criteria.partner is not None and criteria.partner not in listing.partner_choices:
        raise BadRequest("no such partner")  # a reader that may not filter by partner is told the same
    provenance = _Provenance(node, collection, known)
    facets = _Facets()
    counted = Walk()
    for items in scan_windows(node, viewer, Filters(added_after=criteria.added_after), COUNT_BUDGET, counted):
        partners = provenance.of(items)
        for row, body in items:
            tlp, producer = facets.of(row, body)
            partner = partners.get((row.stix_id, row.version))
            listing.types[row.type] += 1
            listing.tlps[tlp] += 1
            if producer:
                listing.producers[producer] += 1
            if partner:
                listing.partners[partner] += 1
            listing.total += _matches(criteria, row.type, tlp, producer, partner)
    listing.complete = counted.complete
    _fill_page(node, viewer, criteria, listing, provenance)
    acting = Acting(principal, "console")
    listing.producer_names = _producer_names(node, acting, collection, set(listing.producers))
    node.audit.record("egress", principal.key, {
        "collection": collection.id, "endpoint": "console-browse",
        "tlp": tlp_counts(e.row for e in listing.entries),
        "served": pack_served([e.row.stix_id for e in listing.entries], [e.row.version for e in listing.entries]),
    })
    return listing
