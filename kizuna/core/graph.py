"""The relationship graph of the console's object page: the object, the objects one and two
relationships away, and the relationships between them, as one principal sees them.

The relationships come hop by hop from the store's reference index (store/object_refs.py): those
pointing at the object, then those pointing at the objects they reach, two indexed questions however
large the collection. Each is read through the principal's viewer (its latest visible version, as
TAXII's default), so a relationship the principal may not see is not an edge. Every endpoint is then
read through the same viewer: an object the principal may not see is no node, and an edge that would
lead to it is dropped, so a hidden neighbour leaves no trace, not even a dangling edge, and is not
walked through to the second hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.audit import pack_served, tlp_counts
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.listing import display_name, tlp_of
from kizuna.core.node import Node
from kizuna.core.object_view import locate, referring
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer
from kizuna.store.base import VersionRow

#: At most this many relationship versions are looked at per hop (then the graph says it is not complete).
HOP_LIMIT = 2_000
#: At most this many nodes are drawn: a graph of thousands is unreadable, and each node is one read.
MAX_NODES = 150
HOPS = 2


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    type: str
    name: str
    tlp: str | None
    hops: int  # 0 for the object itself


@dataclass(frozen=True, slots=True)
class GraphEdge:
    id: str
    source: str
    target: str
    relationship_type: str


@dataclass
class Graph:
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    complete: bool = True  # False: the walk ran out of budget or the graph was cut at MAX_NODES

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": n.id, "type": n.type, "name": n.name, "tlp": n.tlp, "hops": n.hops} for n in self.nodes],
            "edges": [{"id": e.id, "source": e.source, "target": e.target, "relationship_type": e.relationship_type}
                      for e in self.edges],
            "complete": self.complete,
        }


def relationship_graph(node: Node, principal: Principal, object_id: str, collection_ref: str | None = None) -> Graph:
    """The two-hop graph around ``object_id``; NotFound when the principal may not see the object."""
    viewer, _ = locate(node, principal, object_id, collection_ref)
    graph = Graph()
    hops = {object_id: 0}
    seen = _visible(node, viewer, [object_id])
    if object_id not in seen:
        raise NotFound("no such object")
    edges: dict[str, tuple[VersionRow, GraphEdge]] = {}
    frontier = [object_id]
    for depth in range(1, HOPS + 1):
        found, complete = _relationships(node, viewer, frontier)
        graph.complete &= complete
        reached: set[str] = set()
        for row, edge in found:
            edges.setdefault(edge.id, (row, edge))
            reached |= {edge.source, edge.target} - hops.keys()
        added = []
        for ref in sorted(reached):
            if len(hops) >= MAX_NODES:
                graph.complete = False
                break
            hops[ref] = depth
            added.append(ref)
        seen.update(_visible(node, viewer, added))
        frontier = [ref for ref in added if ref in seen]  # a hidden object is not walked through
    graph.nodes = [GraphNode(ref, obj["type"], display_name(obj) or ref, _tlp_token(obj), hops[ref])
                   for ref, obj in sorted(seen.items(), key=lambda pair: (hops[pair[0]], pair[0]))]
    graph.edges = sorted((edge for _, edge in edges.values() if edge.source in seen and edge.target in seen),
                         key=lambda edge: edge.id)
    drawn = {edge.id for edge in graph.edges}
    shown = [row for row, _ in edges.values() if row.stix_id in drawn]
    # The relationships drawn leave the node with this graph: one egress record names them.
    node.audit.record("egress", principal.key, {
        "collection": viewer.collection.id, "endpoint": "console-graph", "tlp": tlp_counts(shown),
        "served": pack_served([row.stix_id for row in shown], [row.version for row in shown]),
    })
    return graph


def _tlp_token(obj: dict[str, Any]) -> str | None:
    level = tlp_of(obj)
    return level.token if level is not None else None


def _relationships(node: Node, viewer: Viewer, ends: list[str]) -> tuple[list[tuple[VersionRow, GraphEdge]], bool]:
    """The relationships the viewer sees (its latest visible version of each) with an end among ``ends``,
    and whether every candidate was looked at."""
    if not ends:
        return [], True
    found, complete = referring(node, viewer, ends, ("relationship",), HOP_LIMIT)
    wanted = set(ends)
    edges = []
    for row, obj in found:
        source, target = obj.get("source_ref"), obj.get("target_ref")
        if isinstance(source, str) and isinstance(target, str) and wanted & {source, target}:
            edges.append((row, GraphEdge(row.stix_id, source, target, str(obj.get("relationship_type", "")))))
    return edges, complete


def _visible(node: Node, viewer: Viewer, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The viewer's copies of the objects among ``ids`` it may see (latest versions), by id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 200):
        chunk = tuple(ids[start:start + 200])
        page = node.reader.page(viewer, Endpoint.OBJECTS, Filters(ids=chunk, limit=len(chunk)))
        for _, body in page.items:
            obj = orjson.loads(body)
            found[obj["id"]] = obj
    return found
