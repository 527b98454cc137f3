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
from dataclasses import dataclass
from typing import Any

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.alerts import watchlist_of
from kizuna.ops.assets import normalise_domain, sco_id
from kizuna.ops.reading import stamp, stix_now
from kizuna.ops.records import Operation, load_lookalikes
from kizuna.ops.watch import Hit
from kizuna.policy.tlp import TlpLevel, oasis_id


@dataclass
class LogHit:
    stix_type: str
    value: str
    hit: Hit
    count: int = 0
    first: float | None = None
    last: float | None = None


def _marking(operation: Operation) -> list[str]:
    return [oasis_id(TlpLevel.from_token(operation.tlp_default) or TlpLevel.AMBER)]


def record_log_hits(node: Node, operation: Operation, seen: Iterable[tuple[str, str, float | None]]) -> list[LogHit]:
    """Judge (type, value, epoch seconds) from local logs; store and return the ones that hit."""
    watch = watchlist_of(node, operation)
    hits: dict[tuple[str, str], LogHit] = {}
    for stix_type, value, when in seen:
        key = (stix_type, str(value).lower() if stix_type == "domain-name" else str(value))
        found = hits.get(key)
        if found is None:
            hit = watch.value(stix_type, key[1])
            if hit is None:
                continue
            found = hits[key] = LogHit(stix_type, key[1], hit)
        found.count += 1
        if when is not None:
            found.first = when if found.first is None else min(found.first, when)
            found.last = when if found.last is None else max(found.last, when)
    if hits:
        home = node.store.get_setting("node_identity")
        now = stix_now()
        objects: list[dict[str, Any]] = []
        for found in hits.values():
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
    return sorted(hits.values(), key=lambda h: (-h.count, h.value))


def promote(node: Node, operation: Operation, domain: str) -> dict[str, Any]:
    """An indicator for a watched lookalike, in the intel collection, by the node's own identity."""
    name = normalise_domain(domain)
    watch = load_lookalikes(node.store, operation.slug)
    if name not in watch:
        raise AdminError(f"{name} is not in the lookalike watch set of {operation.name!r}")
    protected, fuzzer = watch[name]
    home = node.store.get_setting("node_identity")
    now = stix_now()
    indicator = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
        "modified": now, "valid_from": now, "name": f"Lookalike of {protected}: {name}",
        "description": f"{name} imitates the protected domain {protected} ({fuzzer}); operation {operation.name}.",
        "indicator_types": ["malicious-activity"], "pattern_type": "stix",
        "pattern": f"[domain-name:value = '{name}']", "object_marking_refs": _marking(operation),
        **({"created_by_ref": home} if home else {}),
    }
    report = node.import_objects(node.find_collection(operation.collections["intel"]), [indicator])
    if report.failures:
        raise AdminError(f"the indicator was refused: {report.failures[0].get('message')}")
    return indicator
