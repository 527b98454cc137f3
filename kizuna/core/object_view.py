"""What the console's object page shows: every version of one object the principal sees, the
relationships to and from it, its sightings, and the names of the objects they point at.

Each part is read through ``Node.read`` / the TAXII reader with the principal's viewer, so a
relationship or sighting the principal may not see, or one pointing at a hidden object, is not
there; an object the principal may not see raises the same NotFound as one that does not exist.

The relationships and sightings come from the store's reference index (store/object_refs.py): one
indexed question for the versions that point at the object, each then chosen (the reader's latest
visible version, as TAXII's default) and decided by the same viewer. The page costs the same on a
collection of a million objects as on one of a hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.audit import pack_served, tlp_counts
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters, is_stix_id
from kizuna.core.listing import display_name, readable_collections
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer
from kizuna.store.base import Collection, VersionRow, VersionSelector

#: At most this many relationship and sighting versions are looked at for one object page (a hub object,
#: such as a malware family with thousands of indicators, says the list is not complete).
RELATED_LIMIT = 2_000
_ALL = VersionSelector(all=True)


@dataclass
class ObjectView:
    collection: Collection
    versions: list[tuple[VersionRow, dict[str, Any]]]  # oldest first
    relationships: list[dict[str, Any]] = field(default_factory=list)
    sightings: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # visible objects referred to -> display name
    complete: bool = True  # False: too many relationships and sightings to look through them all

    @property
    def latest(self) -> dict[str, Any]:
        return self.versions[-1][1]


def object_view(node: Node, principal: Principal, object_id: str, collection_ref: str | None = None) -> ObjectView:
    viewer, items = locate(node, principal, object_id, collection_ref)
    versions = sorted(((row, orjson.loads(body)) for row, body in items), key=lambda pair: pair[0].version)
    view = ObjectView(viewer.collection, versions)
    _related(node, viewer, object_id, view)
    return view


def locate(
    node: Node, principal: Principal, object_id: str, collection_ref: str | None = None
) -> tuple[Viewer, list[tuple[VersionRow, bytes]]]:
    """The viewer of the first readable collection (or the one named) in which the principal sees the
    object, and every version it sees; NotFound, the same for hidden and absent, otherwise."""
    if not is_stix_id(object_id):
        raise NotFound("no such object")
    for collection in readable_collections(node, principal):
        if collection_ref and collection_ref not in (collection.id, collection.alias):
            continue
        viewer = node.viewer_for(principal, collection)
        try:
            page = node.read(viewer, Endpoint.OBJECT, Filters(versions=_ALL, limit=node.reader.max_limit), object_id)
        except NotFound:
            continue
        return viewer, list(page.items)
    raise NotFound("no such object")


def referring(
    node: Node, viewer: Viewer, refs: Sequence[str], types: Sequence[str], limit: int
) -> tuple[list[tuple[VersionRow, dict[str, Any]]], bool]:
    """The versions of ``types`` pointing at any of ``refs`` that the viewer reads by default (its latest
    visible version of each, its own copy, parsed), and whether every such version was looked at."""
    rows = node.store.referencing(viewer.collection.pk, refs, types, limit + 1)
    complete = len(rows) <= limit
    rows = rows[:limit]
    viewer.prefetch(rows)
    choice = node.reader.latest_choice(viewer)
    choice.prepare(rows)
    return [(row, orjson.loads(body)) for row in rows if (body := choice.body(row)) is not None], complete


def _related(node: Node, viewer: Viewer, object_id: str, view: ObjectView) -> None:
    found, view.complete = referring(node, viewer, (object_id,), ("relationship", "sighting"), RELATED_LIMIT)
    shown: list[VersionRow] = []
    for row, obj in found:
        # The reader's copy decides: the latest version it sees may point elsewhere than an older one.
        if row.type == "relationship" and object_id in (obj.get("source_ref"), obj.get("target_ref")):
            view.relationships.append(obj)
            shown.append(row)
        elif row.type == "sighting" and obj.get("sighting_of_ref") == object_id:
            view.sightings.append(obj)
            shown.append(row)
    # The relationships and sightings leave the node on this page: one egress record names them.
    node.audit.record("egress", viewer.principal.key, {
        "collection": viewer.collection.id, "endpoint": "console-related", "tlp": tlp_counts(shown),
        "served": pack_served([row.stix_id for row in shown], [row.version for row in shown]),
    })
    wanted = {obj.get(ref) for obj in view.relationships for ref in ("source_ref", "target_ref")}
    wanted |= {obj.get("created_by_ref") for obj in (v for _, v in view.versions)}
    for _, version in view.versions:  # the markings' statements, shown instead of their ids
        wanted |= set(version.get("object_marking_refs", ()))
        wanted |= {g.get("marking_ref") for g in version.get("granular_markings", ()) if isinstance(g, dict)}
    for sighting in view.sightings:
        wanted |= set(sighting.get("where_sighted_refs", ())) | set(sighting.get("observed_data_refs", ()))
    ids = sorted(ref for ref in wanted if isinstance(ref, str) and ref != object_id)
    view.names = names_of(node, viewer, ids)


def names_of(node: Node, viewer: Viewer, ids: list[str]) -> dict[str, str]:
    """Display names of the objects among ``ids`` that the viewer sees, and of the node's organisations
    (whose names every token of the node may read, as `kizuna objects` and the TAXII producers show)."""
    names = node.identity_names(ids)
    missing = [ref for ref in ids if ref not in names]
    for start in range(0, len(missing), 200):
        chunk = tuple(missing[start:start + 200])
        page = node.reader.page(viewer, Endpoint.OBJECTS, Filters(ids=chunk, limit=len(chunk)))
        for _, body in page.items:
            obj = orjson.loads(body)
            name = display_name(obj)
            if name is not None:
                names[obj["id"]] = name
    return names
