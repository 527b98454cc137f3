"""The relationship graph of the console's object page: the object, the objects one and two
relationships away, and the relationships between them, as one principal sees them.

Relationships are walked through the principal's viewer (``core.listing.scan`` within a Budget), so a
relationship the principal may not see is not an edge. Every endpoint is then read through the same
viewer: an object the principal may not see is no node, and an edge that would lead to it is dropped,
so a hidden neighbour leaves no trace, not even a dangling edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.audit import pack_served, tlp_counts
from kizuna.core.errors import NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.listing import Budget, Walk, display_name, scan, tlp_of
from kizuna.core.node import Node
from kizuna.core.object_view import locate
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer
from kizuna.store.base import VersionRow

#: How far the walk over the collection's relationships goes for one graph.
GRAPH_BUDGET = Budget(floor=2_000, seconds=0.15)
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
    edges, rows, walk = _relationships(node, viewer)
    graph = Graph(complete=walk.complete)
    hops = {object_id: 0}
    frontier = {object_id}
    for depth in range(1, HOPS + 1):
        reached = {other for edge in edges for end, other in ((edge.source, edge.target), (edge.target, edge.source))
                   if end in frontier and other not in hops}
        for ref in sorted(reached):
            if len(hops) >= MAX_NODES:
                graph.complete = False
                break
            hops[ref] = depth
        frontier = reached & hops.keys()
    seen = _visible(node, viewer, sorted(hops))
    if object_id not in seen:
        raise NotFound("no such object")
    graph.nodes = [GraphNode(ref, obj["type"], display_name(obj) or ref, _tlp_token(obj), hops[ref])
                   for ref, obj in sorted(seen.items(), key=lambda pair: (hops[pair[0]], pair[0]))]
    graph.edges = [edge for edge in edges if edge.source in seen and edge.target in seen]
    drawn = {edge.id for edge in graph.edges}
    shown = [row for row in rows if row.stix_id in drawn]
    # The relationships drawn leave the node with this graph: one egress record names them.
    node.audit.record("egress", principal.key, {
        "collection": viewer.collection.id, "endpoint": "console-graph", "tlp": tlp_counts(shown),
        "served": pack_served([row.stix_id for row in shown], [row.version for row in shown]),
    })
    return graph


def _tlp_token(obj: dict[str, Any]) -> str | None:
    level = tlp_of(obj)
    return level.token if level is not None else None


def _relationships(node: Node, viewer: Viewer) -> tuple[list[GraphEdge], list[VersionRow], Walk]:
    """Every relationship of the collection the viewer sees (its latest visible version), within budget."""
    walk = Walk()
    latest: dict[str, tuple[VersionRow, GraphEdge]] = {}
    for row, body in scan(node, viewer, Filters(types=("relationship",)), GRAPH_BUDGET, walk):
        obj = orjson.loads(body)
        source, target = obj.get("source_ref"), obj.get("target_ref")
        if not (isinstance(source, str) and isinstance(target, str)):
            continue
        known = latest.get(row.stix_id)
        if known is None or known[0].version <= row.version:
            latest[row.stix_id] = (row, GraphEdge(row.stix_id, source, target, str(obj.get("relationship_type", ""))))
    return [edge for _, edge in latest.values()], [row for row, _ in latest.values()], walk


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
