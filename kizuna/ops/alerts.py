"""Alerts of an operation: objects in its intel and incidents collections that refer to its assets.

Alerts are judged once, as objects arrive: `watch_arrivals` registers a listener on the node's ingest
(core/ingest.py) that judges each added batch against the watchlist (ops/watch.py) once it is stored (in
the post's or sync page's transaction, and for a bulk import right after each batch's commit), and keeps
the matches in ``ops_alerts`` (schema step 18), with a watermark per collection of what was judged, the
rows and the watermark in one transaction. Reading them (`alerts_of`: `ops alerts`, the shift report,
the console) first catches up on anything the listener did not judge (a process that ran without it, or
a watchlist changed since: then every object is judged again), then filters the stored rows through
`Node.read`, the one visibility check: a principal sees an alert only on an object, and an asset, it may
see. So the table is a cache of what the stored objects say and can always be rebuilt from them.

Objects that only point at others (sightings, reports, incidents, relationships) are judged after the
other objects of their batch and inherit the match of what they point at, in the batch or stored
before it, so a sighting of a matching indicator raises a ``relationship`` alert.
`judge_stored` is the former way, judging every stored object on each call; it stays as the
reference the stored alerts are tested against.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.ops.assets import ASSET_TYPES
from kizuna.ops.reading import latest_objects
from kizuna.ops.records import Operation, load_lookalikes, lookalikes_version
from kizuna.ops.watch import VALUE_TYPES, Hit, Watchlist, refs_of
from kizuna.stix.search_text import display_name
from kizuna.stix.timestamps import format_timestamp

#: Objects that only refer to others; they are judged once the objects they refer to are known.
POINTERS = ("sighting", "report", "incident", "relationship", "grouping", "note", "opinion", "observed-data")
#: Definitions and translations: never activity, never an alert.
NOT_ACTIVITY = ("marking-definition", "extension-definition", "language-content")
#: Set on the operation's own shift reports, which refer to alerting objects without being news.
SHIFT_REPORT_MARK = "x_kizuna_shift_report"
_ID_BATCH = 200  # ids per read of older objects that new ones point at
RULE_ORDER = {"exact": 0, "containment": 1, "lookalike": 2, "relationship": 3}


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
    #: For a relationship alert: what ``matched`` (an id) is called, the asset's value or the object's name,
    #: when the reader may see it (listings show names, not ids).
    matched_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: The node administrator's watchlists, reused while the watchlist collection and the lookalike set
#: are unchanged (a long-running process judges batch after batch; rebuilding 10k assets and 100k
#: lookalikes each time would cost more than judging). Only for the administrator, who sees every
#: asset whatever the agreements say; a token's watchlist is built per call.
_WATCHLISTS: weakref.WeakKeyDictionary[Node, dict[str, tuple[tuple[Any, ...], Watchlist]]] = \
    weakref.WeakKeyDictionary()


def watch_fingerprint(node: Node, operation: Operation, watch_pk: int | None = None) -> list[Any]:
    """What changes whenever the watchlist does: its collection's newest addition and deletion, and the
    lookalike set's mark (two index lookups and a setting). ``watch_pk``: the collection's key, when the
    caller knows it (the ingest listener: one look-up fewer per batch)."""
    if watch_pk is None:
        watch_pk = node.find_collection(operation.collections["watchlist"]).pk
    return [*node.store.collection_change_stamp(watch_pk), lookalikes_version(node.store, operation.slug)]


def watchlist_of(node: Node, operation: Operation, principal: Principal = NODE_ADMIN,
                 fingerprint: Sequence[Any] | None = None) -> Watchlist:
    """The operation's watchlist as ``principal`` sees it; ``fingerprint``: the watchlist's
    `watch_fingerprint` when the caller has just taken it."""
    fingerprint = tuple(watch_fingerprint(node, operation) if fingerprint is None else fingerprint)
    cached = _WATCHLISTS.get(node, {}).get(operation.slug) if principal is NODE_ADMIN else None
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    collection = node.find_collection(operation.collections["watchlist"])
    assets = [obj for _, obj in latest_objects(node, collection, ASSET_TYPES, principal)
              if obj["id"] != operation.identity_id]
    watch = Watchlist(assets, load_lookalikes(node.store, operation.slug))
    if principal is NODE_ADMIN:
        _WATCHLISTS.setdefault(node, {})[operation.slug] = (fingerprint, watch)
    return watch


class AlertJudge:
    """Judges an operation's objects as they are read; ``finish`` gives the alerts. Objects that only
    point at others are judged last, once what they point at is known."""

    def __init__(self, node: Node, operation: Operation, principal: Principal = NODE_ADMIN) -> None:
        self.node, self.operation, self.principal = node, operation, principal
        self.watch = watchlist_of(node, operation, principal)
        self.names = {o.id: o.name for o in node.store.list_organisations()}
        self.found: list[Alert] = []
        self.matched: dict[str, Hit] = {}
        self.pointers: list[tuple[str, int, dict[str, Any]]] = []
        self.read: set[str] = set()
        self.named: dict[str, str | None] = {}  # what each object read is called, for relationship alerts

    def see(self, role: str, added: int, obj: dict[str, Any], new: bool = True) -> None:
        """One object read from the ``role`` collection; ``new`` when it was added in the period the
        alerts are for (an older one only lends its match to new objects pointing at it)."""
        self.read.add(obj["id"])
        kind = obj.get("type")
        if kind in NOT_ACTIVITY or obj.get(SHIFT_REPORT_MARK):
            return
        if kind in POINTERS:
            if new:
                self.pointers.append((role, added, obj))
        else:
            self._judge(role, added, obj, raise_alert=new)

    def finish(self, follow_older: bool = False) -> list[Alert]:
        """The alerts, oldest first. ``follow_older``: first read (through the visibility check) the older
        objects that new pointers refer to and that were not seen."""
        if follow_older:
            collections = [(role, self.node.find_collection(self.operation.collections[role]))
                           for role in ("intel", "incidents")]
            older = sorted({ref for _, _, obj in self.pointers for ref in refs_of(obj)} - self.read
                           - set(self.watch.names))
            for start in range(0, len(older), _ID_BATCH):
                for role, collection in collections:
                    for added, obj in latest_objects(self.node, collection, principal=self.principal,
                                                     ids=tuple(older[start:start + _ID_BATCH])):
                        self._judge(role, added, obj, raise_alert=False)
        for role, added, obj in self.pointers:
            self._judge(role, added, obj)
        return sorted(self.found, key=lambda a: a.added)

    def _judge(self, role: str, added: int, obj: dict[str, Any], raise_alert: bool = True) -> None:
        self.named[obj["id"]] = display_name(obj)
        hits = sorted(set(self.watch.hits(obj, self.matched)), key=lambda h: (RULE_ORDER[h.rule], h.asset))
        if not hits:
            return
        self.matched.setdefault(obj["id"], hits[0])
        if not raise_alert or obj.get("type") in VALUE_TYPES:  # a bare value is evidence, not an alert
            return
        producer = obj.get("created_by_ref")
        seen: set[str] = set()
        for hit in hits:
            if hit.asset in seen:  # one alert per object and asset: the strongest rule
                continue
            seen.add(hit.asset)
            self.found.append(Alert(hit.asset, hit.rule, obj["id"], obj["type"], obj.get("name"),
                                    self.names.get(producer, producer) if producer else None, hit.value, role,
                                    format_timestamp(added), hit.fuzzer,
                                    (self.watch.names.get(hit.value) or self.named.get(hit.value))
                                    if hit.rule == "relationship" else None))


def judge_stored(node: Node, operation: Operation, since: int | None = None,
                 principal: Principal = NODE_ADMIN) -> list[Alert]:
    """Alerts on objects added after ``since`` (µs; all when None), strongest rule first per object,
    judged now from every stored object ``principal`` may see, without the stored alerts (ops/arrivals.py
    keeps those; this is what they are tested against)."""
    judge = AlertJudge(node, operation, principal)
    for role in ("intel", "incidents"):
        collection = node.find_collection(operation.collections[role])
        for added, obj in latest_objects(node, collection, principal=principal, added_after=since):
            judge.see(role, added, obj)
    return judge.finish(follow_older=since is not None)
