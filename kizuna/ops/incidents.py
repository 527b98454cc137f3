"""Incidents of an operation: STIX 2.1 ``incident`` objects in its incidents collection.

Status and assignment are custom properties (``x_kizuna_status``, ``x_kizuna_assigned_to``) on the
incident; each change is a new version of it, so partners and federation see the history. Links are
``relationship`` objects (``related-to``) from the incident to an indicator, sighting or asset, which
also makes an incident that names a protected asset an alert.
"""

from __future__ import annotations

import uuid
from typing import Any

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.reading import latest_objects, stix_now
from kizuna.ops.records import Operation
from kizuna.policy.tlp import TlpLevel, oasis_id

STATUSES = ("open", "investigating", "contained", "closed")


def _base(node: Node, operation: Operation, kind: str) -> dict[str, Any]:
    home = node.store.get_setting("node_identity")
    now = stix_now()
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--{uuid.uuid4()}", "created": now, "modified": now,
            "object_marking_refs": [oasis_id(TlpLevel.from_token(operation.tlp_default) or TlpLevel.AMBER)],
            **({"created_by_ref": home} if home else {})}


def _store(node: Node, operation: Operation, objects: list[dict[str, Any]]) -> None:
    if operation.state != "open":
        raise AdminError(f"operation {operation.name!r} is closed")
    report = node.import_objects(node.find_collection(operation.collections["incidents"]), objects)
    if report.failures:
        raise AdminError(f"refused: {report.failures[0].get('message')}")


def _assign_and_store(node: Node, operation: Operation, incident: dict[str, Any], assign: str | None) -> None:
    """Record the team (a partner or any known organisation) on the incident, then store the version."""
    if assign is not None:
        if assign not in {p.organisation for p in operation.partners} and node.store.get_organisation(assign) is None:
            raise AdminError(f"no organisation {assign!r} to assign the incident to")
        incident["x_kizuna_assigned_to"] = assign
    _store(node, operation, [incident])


def add_incident(node: Node, operation: Operation, name: str, description: str | None = None,
                 assign: str | None = None) -> dict[str, Any]:
    if not name.strip():
        raise AdminError("an incident needs a --name")
    incident = {**_base(node, operation, "incident"), "name": name.strip(), "x_kizuna_status": "open"}
    if description:
        incident["description"] = description
    _assign_and_store(node, operation, incident, assign)
    return incident


def current_incident(node: Node, operation: Operation, incident_id: str) -> dict[str, Any]:
    collection = node.find_collection(operation.collections["incidents"])
    for _, obj in latest_objects(node, collection, ("incident",), ids=(incident_id,)):
        return obj
    raise AdminError(f"no incident {incident_id!r} in operation {operation.name!r}")


def update_incident(node: Node, operation: Operation, incident_id: str, status: str | None,
                    assign: str | None) -> dict[str, Any]:
    if status is None and assign is None:
        raise AdminError("give --status and/or --assign")
    if status is not None and status not in STATUSES:
        raise AdminError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    incident = dict(current_incident(node, operation, incident_id))
    now = stix_now()
    incident["modified"] = now if now > incident["modified"] else incident["modified"]
    if status is not None:
        incident["x_kizuna_status"] = status
    _assign_and_store(node, operation, incident, assign)
    return incident


def link_incident(node: Node, operation: Operation, incident_id: str, targets: list[str]) -> list[dict[str, Any]]:
    current_incident(node, operation, incident_id)
    if not targets:
        raise AdminError("name at least one object to link")
    links = []
    for target in targets:
        if "--" not in target:
            raise AdminError(f"{target!r} is not a STIX id")
        links.append({**_base(node, operation, "relationship"), "relationship_type": "related-to",
                      "source_ref": incident_id, "target_ref": target})
    _store(node, operation, links)
    return links
