"""Declassification: a new version of an operation's object at a lower TLP, only with a named approval.

The object keeps its id and producer; only ``modified`` and the TLP marking change, so federation
carries the new version like any other update. The approval (who, from which level to which) is
an ``operation-declassified`` record in the hash-chained audit log, written after the version is
stored, so the chain names every re-marked object.
"""

from __future__ import annotations

from typing import Any

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.ops.reading import LEVEL_OF_MARKING, latest_objects, next_modified, tlp_level, tlp_of
from kizuna.ops.records import Operation
from kizuna.policy.tlp import TlpLevel, oasis_id, tlp2_marking_definition


def declassify(node: Node, operation: Operation, object_id: str, to: str, approved_by: str) -> dict[str, Any]:
    """Publish ``object_id`` again at TLP ``to``; returns what was done (for the CLI and the audit log)."""
    if not approved_by.strip():
        raise AdminError("--approved-by must name who approved the release (the producer's contact)")
    target = tlp_level(to)
    for role in ("intel", "incidents", "watchlist"):
        collection = node.find_collection(operation.collections[role])
        for _, obj in latest_objects(node, collection, ids=(object_id,)):
            current = tlp_of(obj)
            if current is None:
                raise AdminError(f"{object_id} carries no TLP marking; nothing to declassify")
            if target >= current:
                raise AdminError(f"{object_id} is TLP:{current.token.upper()}; --to must be a lower level")
            released = _remarked(obj, target)
            # Its translations are of its content: released with it, at the same level (they follow their object,
            # and so are not on the review list).
            translations = [_remarked(t, target, released.get("modified"))
                            for _, t in latest_objects(node, collection, types=("language-content",))
                            if t.get("object_ref") == object_id and (tlp_of(t) or target) > target]
            report = node.import_objects(collection, [tlp2_marking_definition(target), released, *translations])
            if report.failures:
                raise AdminError(f"the new version was refused: {report.failures[0].get('message')}")
            # An observable has no versions: its new stored form, at the lower level, is the release.
            done = {"operation": operation.slug, "id": object_id, "from": current.token, "to": target.token,
                    "previous": obj.get("modified"), "modified": released.get("modified"),
                    "translations": [t["id"] for t in translations],
                    "approved_by": approved_by.strip(), "producer": obj.get("created_by_ref")}
            node.audit.record("operation-declassified", NODE_ADMIN.key, done)
            return done
    raise AdminError(f"no object {object_id!r} in operation {operation.name!r}")


def _remarked(obj: dict[str, Any], target: TlpLevel, object_modified: str | None = None) -> dict[str, Any]:
    """``obj`` at TLP ``target``: a new version, or for an observable (no ``modified``) a new stored form; a
    translation names the released version of its object (``object_modified``)."""
    released = dict(obj)
    released["object_marking_refs"] = [m for m in obj.get("object_marking_refs", [])
                                       if m not in LEVEL_OF_MARKING] + [oasis_id(target)]
    if "modified" in obj:
        released["modified"] = next_modified(obj["modified"])
    if object_modified is not None and "object_modified" in obj:
        released["object_modified"] = object_modified
    return released
