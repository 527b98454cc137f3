"""Incidents of an operation: STIX 2.1 ``incident`` objects in its incidents collection.

The incident's state is carried by the OASIS Incident Core Extension (a property extension,
``extension-definition--ef765651-680c-498d-9894-99799f2fa126``): ``determination`` (a closed
enumeration, ``suspected`` until known) and ``investigation_status`` (the open vocabulary ``new``,
``open``, ``closed``; Kizuna adds ``contained``, as an open vocabulary allows). Each change is a new
version of the incident, so partners and federation see the history. The team handling it is the
extension's ``contact-for`` relationship from the team's identity to the incident; a reassignment
revokes the previous one. Links are ``related-to`` relationships from the incident to an indicator,
sighting or asset, which also makes an incident that names a protected asset an alert. Incidents
written before the extension (``x_kizuna_status``, ``x_kizuna_assigned_to``) are still read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.reading import latest_objects, next_modified, stix_now, visible_ids
from kizuna.ops.records import Operation
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, oasis_id

INCIDENT_CORE = "extension-definition--ef765651-680c-498d-9894-99799f2fa126"
#: The operators' words for an incident's progress, and the extension's investigation status for each.
STATUSES = ("open", "investigating", "contained", "closed")
_INVESTIGATION = {"open": "new", "investigating": "open", "contained": "contained", "closed": "closed"}
_STATUS_OF = {value: key for key, value in _INVESTIGATION.items()}
#: incident-determination-enum of the Incident Core Extension (section 4.1).
DETERMINATIONS = ("suspected", "successful-attempt", "failed-attempt", "blocked", "low-value", "false-positive")
CONTACT_FOR = "contact-for"


def joint_markings(base: list[str], target: dict[str, Any]) -> list[str]:
    """The markings of what the operation publishes about ``target``: its own and the target's together, so
    only a reader who may see both sees it (an AMBER link to a RED indicator named the indicator to every
    partner); of the TLP levels, the strictest alone."""
    refs = list(dict.fromkeys([*base, *target.get("object_marking_refs", ())]))
    levels = [LEVEL_BY_ANY_ID[ref] for ref in refs if ref in LEVEL_BY_ANY_ID]
    if len(levels) < 2:
        return refs
    top = oasis_id(max(levels))
    return [ref for ref in refs if ref not in LEVEL_BY_ANY_ID] + [top]


def _base(node: Node, operation: Operation, kind: str) -> dict[str, Any]:
    home = node.store.get_setting("node_identity")
    now = stix_now()
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--{uuid.uuid4()}", "created": now, "modified": now,
            "object_marking_refs": operation.marking_refs,
            **({"created_by_ref": home} if home else {})}


def _store(node: Node, operation: Operation, objects: list[dict[str, Any]]) -> None:
    operation.require_open()
    report = node.import_objects(node.find_collection(operation.collections["incidents"]), objects)
    if report.failures:
        raise AdminError(f"refused: {report.failures[0].get('message')}")


def status_of(incident: dict[str, Any]) -> str:
    """The operators' word for the incident's progress (older incidents: their custom property)."""
    core = incident.get("extensions", {}).get(INCIDENT_CORE)
    value = core.get("investigation_status") if isinstance(core, dict) else None
    if isinstance(value, str):
        return _STATUS_OF.get(value, value)
    return str(incident.get("x_kizuna_status", "-"))


def determination_of(incident: dict[str, Any]) -> str | None:
    core = incident.get("extensions", {}).get(INCIDENT_CORE)
    value = core.get("determination") if isinstance(core, dict) else None
    return value if isinstance(value, str) else None


def contacts_of(objects: Iterable[dict[str, Any]], names: dict[str, str]) -> dict[str, str]:
    """Incident id -> the team handling it, from the newest unrevoked ``contact-for`` relationships."""
    newest: dict[str, tuple[str, str]] = {}
    for obj in objects:
        if obj.get("type") != "relationship" or obj.get("relationship_type") != CONTACT_FOR or obj.get("revoked"):
            continue
        target, source = obj.get("target_ref", ""), obj.get("source_ref", "")
        if target not in newest or obj.get("created", "") > newest[target][0]:
            newest[target] = (obj.get("created", ""), names.get(source, source))
    return {incident: team for incident, (_, team) in newest.items()}


def assigned_to(incident: dict[str, Any], contacts: dict[str, str]) -> str:
    return contacts.get(incident["id"]) or str(incident.get("x_kizuna_assigned_to", "-"))


def _team_identity(node: Node, operation: Operation, assign: str) -> str:
    for partner in operation.partners:
        if assign in (partner.organisation, partner.organisation_id):
            return partner.organisation_id
    org = node.store.get_organisation(assign)
    if org is None:
        raise AdminError(f"no organisation {assign!r} to assign the incident to")
    return org.id


def _contact_changes(node: Node, operation: Operation, incident_id: str, team: str) -> list[dict[str, Any]]:
    """A ``contact-for`` from ``team`` to the incident, and revoked versions of the ones it replaces."""
    collection = node.find_collection(operation.collections["incidents"])
    changes: list[dict[str, Any]] = []
    for _, rel in latest_objects(node, collection, ("relationship",)):
        if rel.get("relationship_type") == CONTACT_FOR and rel.get("target_ref") == incident_id \
                and not rel.get("revoked") and rel.get("source_ref") != team:
            changes.append({**rel, "modified": next_modified(rel["modified"]), "revoked": True})
    changes.append({**_base(node, operation, "relationship"), "relationship_type": CONTACT_FOR,
                    "source_ref": team, "target_ref": incident_id})
    return changes


def add_incident(node: Node, operation: Operation, name: str, description: str | None = None,
                 assign: str | None = None, determination: str = "suspected") -> dict[str, Any]:
    if not name.strip():
        raise AdminError("an incident needs a --name")
    _check_determination(determination)
    core = {"extension_type": "property-extension", "determination": determination,
            "investigation_status": _INVESTIGATION["open"]}
    incident = {**_base(node, operation, "incident"), "name": name.strip(), "extensions": {INCIDENT_CORE: core}}
    if description:
        incident["description"] = description
    team = _team_identity(node, operation, assign) if assign is not None else None
    _store(node, operation, [incident] + (_contact_changes(node, operation, incident["id"], team) if team else []))
    return incident


def _check_determination(value: str) -> None:
    if value not in DETERMINATIONS:
        raise AdminError(f"unknown determination {value!r}: use one of {', '.join(DETERMINATIONS)}")


def current_incident(node: Node, operation: Operation, incident_id: str) -> dict[str, Any]:
    collection = node.find_collection(operation.collections["incidents"])
    for _, obj in latest_objects(node, collection, ("incident",), ids=(incident_id,)):
        return obj
    raise AdminError(f"no incident {incident_id!r} in operation {operation.name!r}")


def update_incident(node: Node, operation: Operation, incident_id: str, status: str | None,
                    assign: str | None, determination: str | None = None) -> dict[str, Any]:
    """A new version with the new status or determination (an older incident moves to the extension),
    and a new ``contact-for`` when the team changes."""
    if status is None and assign is None and determination is None:
        raise AdminError("give --status, --determination and/or --assign")
    if status is not None and status not in STATUSES:
        raise AdminError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    if determination is not None:
        _check_determination(determination)
    team = _team_identity(node, operation, assign) if assign is not None else None
    previous = current_incident(node, operation, incident_id)
    objects: list[dict[str, Any]] = []
    if status is not None or determination is not None or INCIDENT_CORE not in previous.get("extensions", {}):
        incident = {k: v for k, v in previous.items() if k not in ("x_kizuna_status", "x_kizuna_assigned_to")}
        core = dict(previous.get("extensions", {}).get(INCIDENT_CORE) or {"extension_type": "property-extension"})
        old_status = status_of(previous)
        core["investigation_status"] = _INVESTIGATION.get(status or old_status, _INVESTIGATION["open"])
        core["determination"] = determination or core.get("determination", "suspected")
        incident["extensions"] = {**previous.get("extensions", {}), INCIDENT_CORE: core}
        incident["modified"] = next_modified(previous["modified"])
        objects.append(incident)
        if team is None and previous.get("x_kizuna_assigned_to"):  # carry an older assignment over
            team = _team_identity(node, operation, str(previous["x_kizuna_assigned_to"]))
    else:
        incident = previous
    if team is not None:
        objects += _contact_changes(node, operation, incident_id, team)
    _store(node, operation, objects)
    return incident


def link_incident(node: Node, operation: Operation, incident_id: str, targets: list[str]) -> list[dict[str, Any]]:
    current_incident(node, operation, incident_id)
    if not targets:
        raise AdminError("name at least one object to link")
    for target in targets:
        if "--" not in target:
            raise AdminError(f"{target!r} is not a STIX id")
        if target == incident_id:  # a related-to from the incident to itself is evidence of nothing
            raise AdminError(f"{target!r} is the incident itself: link it to other objects")
    # Each must be an object of the operation: a link to nothing would stand in the incident as evidence.
    wanted, found = tuple(dict.fromkeys(targets)), set[str]()
    for collection_id in operation.collections.values():
        found.update(visible_ids(node, node.find_collection(collection_id), wanted))
    missing = [target for target in wanted if target not in found]
    if missing:
        raise AdminError(f"no object {missing[0]!r} in the collections of {operation.name!r}")
    markings: dict[str, list[str]] = {}
    for collection_id in operation.collections.values():
        for _, obj in latest_objects(node, node.find_collection(collection_id), ids=wanted):
            markings[obj["id"]] = joint_markings(operation.marking_refs, obj)
    links = [{**_base(node, operation, "relationship"), "relationship_type": "related-to",
              "source_ref": incident_id, "target_ref": target,
              "object_marking_refs": markings.get(target, operation.marking_refs)} for target in targets]
    _store(node, operation, links)
    return links
