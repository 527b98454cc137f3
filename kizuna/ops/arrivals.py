"""Alerts judged as objects arrive, kept in ``ops_alerts`` (schema step 18), and read back through the
visibility check (the design is in ops/alerts.py's docstring and docs/decisions.md); the same batches'
sightings counted into the sums of ``ops_sighted`` (schema steps 19 and 21, ops/activity.py).

The watermark of an operation, under the setting ``ops:alerts:<slug>``, says up to which ``date_added``
each of its collections was judged and counted, and the mark the cache was built under: the watchlist's
fingerprint and the newest deletion in the intel and incidents collections, and the highest ``seq``
judged per collection (a version found after the watermark with a lower one was moved there by a fuller
form, and the tables are rebuilt as after a deletion). The ingest listener judges
a batch only when it directly follows the watermark (nothing unjudged in between, other than
definitions) and the mark is unchanged; otherwise it leaves the batch to `refresh`, which every reader
calls first, and which rebuilds both tables when the mark changed.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.ops.activity import count_batch
from kizuna.ops.alerts import (
    NOT_ACTIVITY,
    POINTERS,
    RULE_ORDER,
    SHIFT_REPORT_MARK,
    Alert,
    watch_fingerprint,
    watchlist_of,
)
from kizuna.ops.reading import latest_objects, visible_ids
from kizuna.ops.records import INDEX_KEY, Operation, load_all
from kizuna.ops.watch import VALUE_TYPES, Hit, Watchlist, refs_of
from kizuna.stix.search_text import display_name
from kizuna.stix.timestamps import format_timestamp, parse_timestamp
from kizuna.store.base import Collection, Store
from kizuna.store.ops_alerts import AlertRow

T = TypeVar("T")

STATE_KEY = "ops:alerts:"
_CHUNK = 1000  # objects judged per transaction when catching up
_ID_BATCH = 1000  # ids per visibility read: one read (and one egress record) per thousand alerts
log = logging.getLogger("kizuna.ops")


def _load_state(store: Store, slug: str) -> dict[str, Any] | None:
    raw = store.get_setting(STATE_KEY + slug)
    return orjson.loads(raw) if raw else None


def _save_state(store: Store, slug: str, watch: list[Any], through: dict[str, int],
                seq: dict[str, int] | None = None) -> None:
    """Advance the watermark (and the highest ``seq`` judged per role, which tells a version moved by a
    fuller form from a new one); never back past what a concurrent writer recorded for the same watchlist."""
    seq = seq or {}
    current = _load_state(store, slug)
    if current is not None and current["watch"] == watch:
        through = {role: max(through.get(role, -1), current["through"].get(role, -1))
                   for role in {*through, *current["through"]}}
        kept = current.get("seq", {})
        seq = {role: max(seq.get(role, -1), kept.get(role, -1)) for role in {*seq, *kept}}
    store.set_setting(STATE_KEY + slug, orjson.dumps({"watch": watch, "through": through, "seq": seq}).decode())


_SKIPPED = frozenset(NOT_ACTIVITY)
_POINTING = frozenset(POINTERS)


def cache_mark(node: Node, operation: Operation, pks: dict[str, int] | None = None) -> list[Any]:
    """What the stored alerts and sums were built under: the watchlist's fingerprint, and the newest
    deletion in the intel and incidents collections (the sums cannot follow a deletion). ``pks``: the
    collections' keys by role, when the caller knows them."""
    pks = pks or _keys(node, operation)
    deleted = [node.store.newest_deletion(pks[role]) for role in ("intel", "incidents")]
    return [*watch_fingerprint(node, operation, pks["watchlist"]), *deleted]


def fingerprint_in(mark: list[Any]) -> list[Any]:
    """The watchlist's fingerprint, which a `cache_mark` begins with (the two deletions follow it)."""
    return mark[:-2]


def _keys(node: Node, operation: Operation) -> dict[str, int]:
    """The operation's collections' keys, by role."""
    return {role: node.find_collection(ref).pk for role, ref in operation.collections.items()}


def judge_batch(store: Store, watch: Watchlist, operation: Operation, role: str, collection_pk: int,
                arrived: Sequence[tuple[dict[str, Any], int]]) -> None:
    """Judge objects of one collection (each with its date_added) and replace their stored rows: the
    objects that point at others last, inheriting what they point at, in the batch or stored."""
    matched: dict[str, Hit] = {}
    rows: list[AlertRow] = []
    pointers: list[tuple[dict[str, Any], int]] = []
    # A first version (modified equal to created) has no rows of an earlier version to replace.
    replaced = [obj["id"] for obj, _ in arrived if "created" not in obj or obj.get("modified") != obj["created"]]

    def keep(obj: dict[str, Any], added: int, found: list[Hit]) -> None:
        hits = sorted(set(found), key=lambda h: (RULE_ORDER[h.rule], h.asset))
        matched.setdefault(obj["id"], hits[0])
        raised = obj.get("type") not in VALUE_TYPES  # a bare value is evidence, not an alert
        name = obj.get("name")
        modified = obj.get("modified")
        version = parse_timestamp(modified) if isinstance(modified, str) else added
        seen: set[str] = set()
        for hit in hits:
            if hit.asset in seen:  # one row per object and asset: the strongest rule
                continue
            seen.add(hit.asset)
            rows.append(AlertRow(operation.slug, obj["id"], hit.asset_id, hit.asset, RULE_ORDER[hit.rule], hit.rule,
                                 hit.value, hit.fuzzer, collection_pk, role, str(obj["type"]),
                                 name if isinstance(name, str) else None, obj.get("created_by_ref"), version, added,
                                 raised))

    for obj, added in arrived:
        kind = obj.get("type")
        if kind in _SKIPPED or obj.get(SHIFT_REPORT_MARK):
            continue
        if kind in _POINTING:
            pointers.append((obj, added))
            continue
        found = watch.hits(obj, matched)
        if found:  # most objects match nothing: nothing to sort or keep
            keep(obj, added, found)
    if pointers:
        here = {obj["id"] for obj, _ in arrived}
        pointing = [(obj, added, refs_of(obj)) for obj, added in pointers]
        wanted = {ref for _, _, refs in pointing for ref in refs if ref not in here and ref not in watch.names}
        stored: dict[str, AlertRow] = {}
        for row in store.ops_alert_matches(operation.slug, sorted(wanted)) if wanted else ():
            best = stored.get(row.stix_id)
            if best is None or (row.rule_rank, row.asset) < (best.rule_rank, best.asset):
                stored[row.stix_id] = row
        for ref, row in stored.items():
            matched.setdefault(ref, Hit(row.asset, row.asset_id, row.rule, row.matched, row.fuzzer))
        for obj, added, refs in pointing:
            # Only what they point at can make most pointers match (observed data also holds values).
            if matched.keys().isdisjoint(refs) and watch.names.keys().isdisjoint(refs) \
                    and obj["type"] != "observed-data":
                continue
            found = watch.hits(obj, matched)
            if found:
                keep(obj, added, found)
    store.replace_ops_alerts(operation.slug, replaced, rows)


class _Listener:
    """The ingest listener of one node: judges batches added to an operation's intel or incidents."""

    def __init__(self, node: Node) -> None:
        self.node = weakref.ref(node)
        self._index: tuple[str | None, dict[int, tuple[Operation, str, dict[str, int]]]] = ("", {})

    def _roles(self, node: Node) -> dict[int, tuple[Operation, str, dict[str, int]]]:
        """By collection key: the operation, the collection's role and the keys of all its collections."""
        raw = node.store.get_setting(INDEX_KEY)
        if raw != self._index[0]:
            roles: dict[int, tuple[Operation, str, dict[str, int]]] = {}
            for operation in load_all(node.store).values():
                pks = _keys(node, operation)
                for role in ("intel", "incidents"):
                    roles[pks[role]] = (operation, role, pks)
            self._index = (raw, roles)
        return self._index[1]

    def __call__(self, store: Store, collection_pk: int, added: list[tuple[dict[str, Any], int]]) -> None:
        node = self.node()
        if node is None:
            return
        try:
            found = self._roles(node).get(collection_pk)
            if found is None:
                return
            operation, role, pks = found
            mark = cache_mark(node, operation, pks)
            state = _load_state(store, operation.slug) or {"watch": mark, "through": {}}
            through = int(state["through"].get(role, -1))
            first, last = added[0][1], added[-1][1]  # oldest first
            if state["watch"] != mark or store.added_between(collection_pk, through, first, NOT_ACTIVITY):
                return  # judged later by refresh, from the watermark
            with store.atomic():  # the rows and the watermark together (in the ingest's transaction, if any)
                watch = watchlist_of(node, operation, fingerprint=fingerprint_in(mark))
                judge_batch(store, watch, operation, role, collection_pk, added)
                count_batch(store, operation, role, collection_pk, added, through if through >= 0 else None)
                _save_state(store, operation.slug, mark, {**state["through"], role: last},
                            {role: store.top_seq_between(collection_pk, first, last)})
        except Exception:  # never sink an ingest: the watermark stays, and the next read catches up
            log.exception("judging new objects against the watchlist failed; the next read judges them")


def watch_arrivals(node: Node) -> Node:
    """Judge the watchlist as objects arrive at ``node`` (once per node); returns the node."""
    if not any(isinstance(listener, _Listener) for listener in node.ingest_listeners):
        node.ingest_listeners.append(_Listener(node))
    return node


def refresh(node: Node, operation: Operation) -> None:
    """Judge and count what the stored alerts and sums lack: every object after the watermark, or all of
    them when the watchlist changed or an object was deleted since."""
    store = node.store
    watch_mark = cache_mark(node, operation)
    state = _load_state(store, operation.slug)
    if state is None or state["watch"] != watch_mark or _moved(node, operation, state):
        with store.atomic():
            store.clear_ops_alerts(operation.slug)
            store.clear_ops_sighted(operation.slug)
            state = {"watch": watch_mark, "through": {}, "seq": {}}
            store.set_setting(STATE_KEY + operation.slug, orjson.dumps(state).decode())  # from nothing
    watch: Watchlist | None = None
    for role in ("intel", "incidents"):
        collection = node.find_collection(operation.collections[role])
        through = state["through"].get(role)
        newest, _ = store.collection_change_stamp(collection.pk)
        if newest is None or (through is not None and newest <= through):
            continue
        watch = watch or watchlist_of(node, operation, fingerprint=fingerprint_in(watch_mark))
        chunk: list[tuple[dict[str, Any], int]] = []
        for added, obj in latest_objects(node, collection, added_after=through):
            chunk.append((obj, added))
            if len(chunk) == _CHUNK:
                _judge_chunk(node, watch, operation, role, collection.pk, chunk, watch_mark, through)
                chunk = []
        _judge_chunk(node, watch, operation, role, collection.pk, chunk, watch_mark, through)


def _moved(node: Node, operation: Operation, state: dict[str, Any]) -> bool:
    """Whether a version judged and counted before was since replaced in place by a fuller form (federation:
    a redacted copy, then the full version). Its row moved past the watermark with perhaps another producer
    or markings; like a deletion, the sums cannot follow it, so they are rebuilt."""
    seq = state.get("seq", {})
    return any(
        role in seq and role in state["through"] and node.store.moved_after(
            node.find_collection(operation.collections[role]).pk, int(state["through"][role]), int(seq[role]))
        for role in ("intel", "incidents"))


def _judge_chunk(node: Node, watch: Watchlist, operation: Operation, role: str, collection_pk: int,
                 chunk: list[tuple[dict[str, Any], int]], watch_mark: list[Any], counted_through: int | None) -> None:
    """Judge and count newest versions read after the watermark; ``counted_through`` is the watermark the
    catch-up started from (what was counted before the versions these replace)."""
    if chunk:
        with node.store.atomic():
            judge_batch(node.store, watch, operation, role, collection_pk, chunk)
            count_batch(node.store, operation, role, collection_pk, chunk, counted_through, newest_only=True)
            _save_state(node.store, operation.slug, watch_mark, {role: chunk[-1][1]},
                        {role: node.store.top_seq_between(collection_pk, chunk[0][1], chunk[-1][1])})


def alerts_of(node: Node, operation: Operation, since: int | None = None,
              principal: Principal = NODE_ADMIN) -> list[Alert]:
    """Alerts on objects added after ``since`` (µs; all when None), oldest first and the strongest rule
    first per object, on what ``principal`` may see (the console passes the signed-in token's)."""
    refresh(node, operation)
    rows = node.store.ops_alerts(operation.slug, since)
    assets = watchlist_of(node, operation).names
    every = set(assets)
    hidden = every - set(watchlist_of(node, operation, principal).names) if principal is not NODE_ADMIN else set()
    # Relationship alerts name the object they inherit from; that object must be visible too, and is shown by
    # its name.
    via = _names(node, operation, {r.matched for r in rows if r.rule == "relationship" and r.matched not in every},
                 principal)
    visible = _visible(node, operation, {r.stix_id for r in rows}, principal)
    names = {o.id: o.name for o in node.store.list_organisations()}
    return [Alert(r.asset, r.rule, r.stix_id, r.object_type, r.object_name,
                  names.get(r.producer, r.producer) if r.producer else None, r.matched, r.role,
                  format_timestamp(r.date_added), r.fuzzer,
                  (assets.get(r.matched) or via.get(r.matched)) if r.rule == "relationship" else None)
            for r in rows if r.stix_id in visible and r.asset_id not in hidden
            and (r.rule != "relationship" or r.matched in every or r.matched in via)]


def _by_id(node: Node, operation: Operation, ids: set[str],
           read: Callable[[Collection, tuple[str, ...]], Iterable[tuple[str, T]]]) -> dict[str, T]:
    """``read`` over the operation's intel and incidents collections for ``ids``, in batches, each id once."""
    wanted = sorted(ids)
    found: dict[str, T] = {}
    for role in ("intel", "incidents") if wanted else ():
        collection = node.find_collection(operation.collections[role])
        rest = [i for i in wanted if i not in found]
        for start in range(0, len(rest), _ID_BATCH):
            found.update(read(collection, tuple(rest[start:start + _ID_BATCH])))
    return found


def _names(node: Node, operation: Operation, ids: set[str], principal: Principal) -> dict[str, str | None]:
    """What each of ``ids`` the principal sees in the operation is called (read through the visibility check:
    a hidden object is absent)."""
    return _by_id(node, operation, ids, lambda collection, batch: (
        (obj["id"], display_name(obj)) for _, obj in latest_objects(node, collection, principal=principal, ids=batch)))


def _visible(node: Node, operation: Operation, ids: set[str], principal: Principal) -> set[str]:
    """Which of ``ids`` the principal sees in the operation (through the visibility check, without parsing)."""
    return set(_by_id(node, operation, ids, lambda collection, batch: (
        (stix_id, True) for stix_id in visible_ids(node, collection, batch, principal))))
