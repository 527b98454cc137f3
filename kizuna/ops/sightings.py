"""Local evidence for an operation: log hits on the watch set, and lookalikes promoted to indicators.

The CLI reads DNS, proxy and TLS logs with the same mappings as `kizuna match` (detect/mappings.py)
and hands the values here; ops does not import detect (the rooms at that level stay independent).
Each value that hits the watchlist is stored once per scan as a ``domain-name``/``url`` observable
with an ``observed-data`` (first and last seen, count) in the intel collection, by the node's own
identity under the operation's default marking, so the hit is an alert like any partner's and
reaches the partners under the same policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.alerts import watchlist_of
from kizuna.ops.assets import normalise_domain, sco_id
from kizuna.ops.logwatch import LogHit, LogWatch
from kizuna.ops.reading import stamp, stix_now
from kizuna.ops.records import Operation, load_lookalikes
from kizuna.store.base import VersionQuery

#: The namespace of promoted indicators' ids: one per (operation, lookalike domain).
_PROMOTED = uuid.UUID("4f5b6e0a-9c1d-4b7e-8a2f-3d6c5b4a1e90")


def _marking(operation: Operation) -> list[str]:
    return operation.marking_refs


def record_log_hits(node: Node, operation: Operation, seen: Iterable[tuple[str, str, float | None]]) -> list[LogHit]:
    """Judge (type, value, epoch seconds) from local logs; store and return the ones that hit."""
    watch = LogWatch(watchlist_of(node, operation))
    for stix_type, value, when in seen:
        watch.see(stix_type, str(value), when)
    return store_log_hits(node, operation, watch)


def store_log_hits(node: Node, operation: Operation, watch: LogWatch) -> list[LogHit]:
    """Store what a log watch found (an observable and its observed data per value) and return it."""
    hits = watch.found()
    if hits:
        operation.require_open()
        home = node.store.get_setting("node_identity")
        now = stix_now()
        objects: list[dict[str, Any]] = []
        for found in hits:
            sco = {"type": found.stix_type, "spec_version": "2.1", "id": sco_id(found.stix_type, found.value),
                   "value": found.value, "object_marking_refs": _marking(operation)}
            first = stamp(int(found.first * 1_000_000)) if found.first is not None else now
            last = stamp(int(found.last * 1_000_000)) if found.last is not None else now
            objects += [sco, {
                "type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{uuid.uuid4()}",
                "created": now, "modified": now, "first_observed": first, "last_observed": last,
                "number_observed": found.count, "object_refs": [sco["id"]],
                "object_marking_refs": _marking(operation), **({"created_by_ref": home} if home else {}),
            }]
        report = node.import_objects(node.find_collection(operation.collections["intel"]), objects)
        if report.failures:
            raise AdminError(f"a log hit was refused: {report.failures[0].get('message')}")
    return hits


def promote(node: Node, operation: Operation, domain: str) -> dict[str, Any]:
    """An indicator for a watched lookalike, in the intel collection, by the node's own identity."""
    operation.require_open()
    name = normalise_domain(domain)
    watch = load_lookalikes(node.store, operation.slug)
    if name not in watch:
        raise AdminError(f"{name} is not in the lookalike watch set of {operation.name!r}")
    protected, fuzzer = watch[name]
    home = node.store.get_setting("node_identity")
    # One indicator per operation and lookalike: promoted again, the one already shared is the answer.
    stix_id = f"indicator--{uuid.uuid5(_PROMOTED, f'{operation.slug}|{name}')}"
    intel = node.find_collection(operation.collections["intel"])
    held = node.store.query_versions(VersionQuery(intel.pk, ids=(stix_id,)))
    if held:
        found: dict[str, Any] = orjson.loads(held[-1].body)
        return found
    now = stix_now()
    indicator = {
        "type": "indicator", "spec_version": "2.1", "id": stix_id, "created": now,
        "modified": now, "valid_from": now, "name": f"Lookalike of {protected}: {name}",
        "description": f"{name} imitates the protected domain {protected} ({fuzzer}); operation {operation.name}.",
        "indicator_types": ["malicious-activity"], "pattern_type": "stix",
        "pattern": f"[domain-name:value = '{name}']", "object_marking_refs": _marking(operation),
        **({"created_by_ref": home} if home else {}),
    }
    report = node.import_objects(intel, [indicator])
    if report.failures:
        raise AdminError(f"the indicator was refused: {report.failures[0].get('message')}")
    return indicator
