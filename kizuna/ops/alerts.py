"""Alerts of an operation: objects in its intel and incidents collections that refer to its assets.

Alerts are computed from what is stored, not kept: every run reads the collections (or, with
``since``, only what was added after it, plus the older objects the new ones point at) through
`Node.read` (the one visibility check) and applies the watchlist (ops/watch.py), so an alert cannot
outlive or contradict the objects that raise it, and nothing had to be hooked into ingest. Objects
that only point at others (sightings, reports, incidents, relationships) are judged after the
objects they point at, so a sighting of a matching indicator raises a ``relationship`` alert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.ops.assets import ASSET_TYPES
from kizuna.ops.reading import latest_objects
from kizuna.ops.records import Operation, load_lookalikes
from kizuna.ops.watch import VALUE_TYPES, Hit, Watchlist, refs_of
from kizuna.stix.timestamps import format_timestamp

#: Objects that only refer to others; they are judged once the objects they refer to are known.
_POINTERS = ("sighting", "report", "incident", "relationship", "grouping", "note", "opinion", "observed-data")
#: Definitions and translations: never activity, never an alert.
NOT_ACTIVITY = ("marking-definition", "extension-definition", "language-content")
#: Set on the operation's own shift reports, which refer to alerting objects without being news.
SHIFT_REPORT_MARK = "x_kizuna_shift_report"
_ID_BATCH = 200  # ids per read of older objects that new ones point at
_RULE_ORDER = {"exact": 0, "containment": 1, "lookalike": 2, "relationship": 3}


@dataclass(frozen=True)
class Alert:
    asset: str
    rule: str
    object_id: str
    object_type: str
    object_name: str | None
    producer: str | None
    matched: str
    collection: str
    added: str
    fuzzer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def watchlist_of(node: Node, operation: Operation, principal: Principal = NODE_ADMIN) -> Watchlist:
    collection = node.find_collection(operation.collections["watchlist"])
    assets = [obj for _, obj in latest_objects(node, collection, ASSET_TYPES, principal)
              if obj["id"] != operation.identity_id]
    return Watchlist(assets, load_lookalikes(node.store, operation.slug))


def alerts_of(node: Node, operation: Operation, since: int | None = None,
              principal: Principal = NODE_ADMIN) -> list[Alert]:
    """Alerts on objects added after ``since`` (µs; all when None), strongest rule first per object,
    from what ``principal`` may see (the console passes the signed-in token's)."""
    watch = watchlist_of(node, operation, principal)
    names = {o.id: o.name for o in node.store.list_organisations()}
    found: list[Alert] = []
    matched: dict[str, Hit] = {}
    pointers: list[tuple[str, int, dict[str, Any]]] = []

    def judge(role: str, added: int, obj: dict[str, Any], raise_alert: bool = True) -> None:
        hits = sorted(set(watch.hits(obj, matched)), key=lambda h: (_RULE_ORDER[h.rule], h.asset))
        if not hits:
            return
        matched.setdefault(obj["id"], hits[0])
        if not raise_alert or obj.get("type") in VALUE_TYPES:  # a bare value is evidence, not an alert
            return
        producer = obj.get("created_by_ref")
        seen: set[str] = set()
        for hit in hits:
            if hit.asset in seen:  # one alert per object and asset: the strongest rule
                continue
            seen.add(hit.asset)
            found.append(Alert(hit.asset, hit.rule, obj["id"], obj["type"], obj.get("name"),
                               names.get(producer, producer) if producer else None, hit.value, role,
                               format_timestamp(added), hit.fuzzer))

    collections = {role: node.find_collection(operation.collections[role]) for role in ("intel", "incidents")}
    read: set[str] = set()
    for role, collection in collections.items():
        for added, obj in latest_objects(node, collection, principal=principal, added_after=since):
            read.add(obj["id"])
            if obj.get("type") in NOT_ACTIVITY or obj.get(SHIFT_REPORT_MARK):
                continue
            if obj.get("type") in _POINTERS:
                pointers.append((role, added, obj))
            else:
                judge(role, added, obj)
    if since is not None:
        # New sightings and reports may point at older objects: judge those (without alerting) first.
        older = sorted({ref for _, _, obj in pointers for ref in refs_of(obj)} - read - set(watch.names))
        for start in range(0, len(older), _ID_BATCH):
            for role, collection in collections.items():
                for added, obj in latest_objects(node, collection, principal=principal,
                                                 ids=tuple(older[start:start + _ID_BATCH])):
                    judge(role, added, obj, raise_alert=False)
    for role, added, obj in pointers:
        judge(role, added, obj)
    return sorted(found, key=lambda a: a.added)
