"""What the console's Browse page lists: a collection's objects as one principal sees them, filtered by
type, TLP, producer and time added, paged, with counts.

Everything is read through ``Node.viewer_for`` and the TAXII reader, so a hidden object is in no list
and in no count. TLP and producer are decided on the copy the principal receives (after redaction).
Counting walks the visible objects; beyond ``SCAN_LIMIT`` rows the counts say "at least".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from kizuna.core.audit import pack_served
from kizuna.core.browse import Acting, _producer_names
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.store.base import Collection, VersionRow

SCAN_LIMIT = 200_000
#: The TLP filter value for objects without a TLP marking.
NO_TLP = "none"
_NAME_FIELDS = ("name", "pattern", "value", "path", "key", "number", "user_id", "relationship_type")


@dataclass(frozen=True, slots=True)
class Criteria:
    types: tuple[str, ...] = ()
    tlp: str | None = None  # a TLP token ("amber+strict") or NO_TLP
    producer: str | None = None  # an identity id
    added_after: int | None = None  # µs, exclusive
    after: int | None = None  # paging: the date_added of the last entry already shown
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Entry:
    row: VersionRow
    obj: dict[str, Any]
    tlp: TlpLevel | None
    name: str | None


@dataclass
class Listing:
    collection: Collection
    entries: list[Entry]
    total: int  # visible objects matching every criterion
    complete: bool  # False: more than SCAN_LIMIT objects, counts are lower bounds
    next_after: int | None
    types: Counter[str] = field(default_factory=Counter)  # over the visible objects added in the period
    tlps: Counter[str] = field(default_factory=Counter)
    producers: Counter[str] = field(default_factory=Counter)
    producer_names: dict[str, str] = field(default_factory=dict)


def tlp_of(obj: dict[str, Any]) -> TlpLevel | None:
    levels = [LEVEL_BY_ANY_ID[ref] for ref in obj.get("object_marking_refs", ()) if ref in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


def display_name(obj: dict[str, Any]) -> str | None:
    return next((str(obj[f]) for f in _NAME_FIELDS if isinstance(obj.get(f), str | int)), None)


def readable_collections(node: Node, principal: Principal) -> list[Collection]:
    return [c for root in node.store.list_api_roots() for c in node.collections_for(principal, root.name)
            if principal.can_read(c)]


def find_readable(node: Node, principal: Principal, ref: str) -> Collection:
    """A collection the principal may read, by id or alias; any other is reported as absent."""
    for collection in readable_collections(node, principal):
        if ref in (collection.id, collection.alias):
            return collection
    raise NotFound("no such collection")


class _Bounded(Protocol):
    complete: bool


def scan(
    node: Node, viewer: Viewer, filters: Filters, limit: int, result: _Bounded
) -> Iterator[tuple[VersionRow, bytes]]:
    """Every object of the viewer's collection that ``filters`` select and the viewer sees (its copy), in
    date_added order, page by page through the TAXII reader; stops after ``limit`` objects and then sets
    ``result.complete`` to False."""
    filters = replace(filters, limit=node.reader.max_limit)
    scanned = 0
    while True:
        page = node.reader.page(viewer, Endpoint.OBJECTS, filters)
        yield from page.items
        scanned += len(page.items)
        if not page.more:
            return
        if scanned >= limit:
            result.complete = False
            return
        filters = replace(filters, next=page.next)


def browse(node: Node, principal: Principal, collection: Collection, criteria: Criteria) -> Listing:
    viewer = node.viewer_for(principal, collection)
    listing = Listing(collection, [], 0, True, None)
    filters = Filters(added_after=criteria.added_after)
    for row, body in scan(node, viewer, filters, SCAN_LIMIT, listing):
        obj = orjson.loads(body)
        level = tlp_of(obj)
        tlp = level.token if level is not None else NO_TLP
        producer = obj.get("created_by_ref") if isinstance(obj.get("created_by_ref"), str) else None
        listing.types[row.type] += 1
        listing.tlps[tlp] += 1
        if producer:
            listing.producers[producer] += 1
        if (criteria.types and row.type not in criteria.types) or (
            criteria.tlp and criteria.tlp != tlp) or (criteria.producer and criteria.producer != producer):
            continue
        listing.total += 1
        if criteria.after is not None and row.date_added <= criteria.after:
            continue
        if len(listing.entries) < criteria.limit:
            listing.entries.append(Entry(row, obj, level, display_name(obj)))
        elif listing.next_after is None:
            listing.next_after = listing.entries[-1].row.date_added
    acting = Acting(principal, "console")
    listing.producer_names = _producer_names(node, acting, collection, set(listing.producers))
    node.audit.record("egress", principal.key, {
        "collection": collection.id, "endpoint": "console-browse",
        "served": pack_served([e.row.stix_id for e in listing.entries], [e.row.version for e in listing.entries]),
    })
    return listing
