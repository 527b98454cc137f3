"""An operation as a signed-in token sees it: what the console's operation pages show.

The console (kizuna/web) may not import this room (they are siblings); ``kizuna/app.py`` hands these
two functions over as ``app.state.operations``. An operation is shown to a token that may read its
watchlist collection (its partners, the node's own analysts and operators); any other is absent.
Everything listed is read through `Node.read` as that token (ops/reading.py), so the policy decides
which alerts, incidents and reports appear, exactly as for a TAXII read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kizuna.core.listing import readable_collections
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.ops.alerts import SHIFT_REPORT_MARK, Alert
from kizuna.ops.arrivals import alerts_of
from kizuna.ops.incidents import assigned_to, contacts_of, determination_of, status_of
from kizuna.ops.reading import latest_objects
from kizuna.ops.records import Operation
from kizuna.ops.workspace import describe, list_operations

ALERT_LIMIT = 200  # newest first; the CLI's `ops alerts --json` gives them all


@dataclass(frozen=True)
class IncidentRow:
    id: str
    name: str
    status: str
    determination: str | None
    assigned_to: str
    modified: str


@dataclass
class OperationBoard:
    summary: dict[str, Any]  # ops/workspace.describe: dates, state, partners (with token states), collections
    alerts: list[Alert] = field(default_factory=list)
    alerts_total: int = 0
    incidents: list[IncidentRow] = field(default_factory=list)
    #: The newest shift report the token may see: id, name, published, and ``names`` by language (from the
    #: language-content objects of that version, as the dashboard names reports).
    shift_report: dict[str, Any] | None = None


def _readable(node: Node, principal: Principal) -> set[str]:
    return {c.id for c in readable_collections(node, principal)}


def visible_operations(node: Node, principal: Principal) -> list[Operation]:
    """The operations whose watchlist collection the token may read, newest first."""
    readable = _readable(node, principal)
    return [o for o in reversed(list_operations(node)) if o.collections.get("watchlist") in readable]


def operation_board(node: Node, principal: Principal, slug: str) -> OperationBoard | None:
    """One operation for the token, or None when it may not see it (the page then says 404)."""
    readable = _readable(node, principal)
    operation = next((o for o in list_operations(node) if o.slug == slug), None)
    if operation is None or operation.collections.get("watchlist") not in readable:
        return None
    summary = describe(node, operation)
    summary["collections"] = {role: c for role, c in summary["collections"].items() if c["id"] in readable}
    board = OperationBoard(summary)
    if not {operation.collections["intel"], operation.collections["incidents"]} <= readable:
        return board
    found = alerts_of(node, operation, principal=principal)
    board.alerts, board.alerts_total = found[::-1][:ALERT_LIMIT], len(found)
    names = {o.id: o.name for o in node.store.list_organisations()}
    collection = node.find_collection(operation.collections["incidents"])
    incidents: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for _, obj in latest_objects(node, collection, ("incident", "relationship", "report", "language-content"),
                                 principal):
        {"incident": incidents, "relationship": relationships, "report": reports,
         "language-content": contents}[obj["type"]].append(obj)
    contacts = contacts_of(relationships, names)
    board.incidents = sorted((IncidentRow(i["id"], i.get("name", i["id"]), status_of(i), determination_of(i),
                                          assigned_to(i, contacts), i["modified"]) for i in incidents),
                             key=lambda row: row.modified, reverse=True)
    shift = [r for r in reports if r.get(SHIFT_REPORT_MARK)]
    if shift:
        newest = max(shift, key=lambda r: r["created"])
        board.shift_report = {"id": newest["id"], "name": newest.get("name"), "published": newest.get("published"),
                              "names": _translated_names(newest, contents)}
    return board


def _translated_names(report: dict[str, Any], contents: list[dict[str, Any]]) -> dict[str, str]:
    """The report's name by language, from the language-content objects for its version (a newer one wins)."""
    names: dict[str, str] = {}
    for content in sorted(contents, key=lambda c: str(c.get("modified", ""))):
        translated = content.get("contents")
        if (content.get("object_ref") != report["id"] or not isinstance(translated, dict)
                or content.get("object_modified", report["modified"]) != report["modified"]):
            continue
        for language, properties in translated.items():
            if isinstance(properties, dict) and isinstance(properties.get("name"), str):
                names[str(language)] = properties["name"]
    return names
