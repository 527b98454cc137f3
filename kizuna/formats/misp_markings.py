"""MISP sharing rules as Kizuna markings: ``tlp:`` tags, distribution levels and sharing groups.

MISP decides who receives an attribute from three things: the event's and the attribute's ``tlp:`` tags,
the distribution level of each (0 your organisation, 1 this community, 2 connected communities, 3 all,
4 a sharing group, 5 inherit the event's) and, for level 4, the organisations of the sharing group.
An attribute reaches a reader only if the event does too. Kizuna expresses the same thing with markings
that every read path enforces: the event's markings go on every object made from the event, an
attribute's own markings are added to the objects made from that attribute, and "all must permit".
Mapping (docs/formats.md, "MISP"):

- ``tlp:*`` tags -> the OASIS TLP 2.0 marking of that level (``tlp:white`` is TLP:CLEAR); a ``tlp:`` tag of no
  TLP 2.0 level (``tlp:ex:chr``, ``tlp:unclear``) -> TLP:RED, reported as a loss (it fails closed);
- distribution 0 -> REL TO the owning organisation (``identity--<Org uuid>``);
- distribution 4 -> REL TO every organisation of the sharing group (and its owner), when the document
  describes the group; otherwise REL TO the owning organisation, and the narrowing is reported;
- distribution 1 and 2 -> no marking: Kizuna has no hop-counted sharing, partner agreements and TLP
  govern; the level is reported as a loss so nobody believes it is enforced;
- distribution 3 and 5 (on the event, 5 means nothing) -> no marking.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kizuna.formats.base import Loss
from kizuna.policy.releasability import build_rel_to_marking
from kizuna.policy.tlp import TLP2_IDS, misp_tag_level, misp_tag_restriction, tlp2_marking_definition

YOUR_ORGANISATION, THIS_COMMUNITY, CONNECTED, ALL_COMMUNITIES, SHARING_GROUP, INHERIT = range(6)
_LEVEL_NAMES = {
    YOUR_ORGANISATION: "your organisation only", THIS_COMMUNITY: "this community only",
    CONNECTED: "connected communities", ALL_COMMUNITIES: "all communities",
    SHARING_GROUP: "sharing group", INHERIT: "inherit event",
}


class DistributionError(ValueError):
    """A distribution that cannot be enforced from what the document says (e.g. no owner uuid)."""


def distribution_of(record: Mapping[str, Any], default: int) -> int:
    """The distribution level of an event or attribute; absent means ``default``."""
    raw = record.get("distribution")
    if raw is None or raw == "":
        return default
    try:
        level = int(raw)
    except (TypeError, ValueError):
        raise DistributionError(f"distribution {raw!r} is not a MISP distribution level (0-5)") from None
    if level not in _LEVEL_NAMES:
        raise DistributionError(f"distribution {raw!r} is not a MISP distribution level (0-5)")
    return level


def org_identity(org: object) -> str | None:
    """``identity--<uuid>`` for a MISP organisation record (the id misp-stix gives its identity)."""
    if not isinstance(org, Mapping):
        return None
    try:
        return f"identity--{uuid.UUID(str(org.get('uuid', '')))}"
    except ValueError:
        return None


@dataclass
class MarkingPlan:
    """The markings one event needs: refs for the whole event, per attribute/object uuid, and objects."""

    event_refs: list[str] = field(default_factory=list)
    by_uuid: dict[str, list[str]] = field(default_factory=dict)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    losses: list[Loss] = field(default_factory=list)

    def add_definition(self, marking: dict[str, Any]) -> str:
        self.definitions.setdefault(marking["id"], marking)
        return str(marking["id"])


def _tlp_refs(tags: object, plan: MarkingPlan, ref: str) -> list[str]:
    refs: list[str] = []
    for tag in tags if isinstance(tags, list) else ():
        name = tag.get("name") if isinstance(tag, Mapping) else None
        if not isinstance(name, str):
            continue
        level = misp_tag_restriction(name)
        if level is not None and misp_tag_level(name) is None:  # failed closed (misp_tag_restriction): say so
            plan.losses.append(Loss(ref, "Tag", name, "not a TLP 2.0 level Kizuna can enforce: marked TLP:RED "
                                    "so it is not shared; tag it with a TLP 2.0 level (tlp:amber, …) to share it"))
        if level is not None and TLP2_IDS[level] not in refs:
            refs.append(plan.add_definition(tlp2_marking_definition(level)))
    return refs


def _sharing_group_members(group: object) -> list[str]:
    if not isinstance(group, Mapping):
        return []
    members = [org_identity(group.get("Organisation"))]
    for entry in group.get("SharingGroupOrg") or ():
        if isinstance(entry, Mapping):
            members.append(org_identity(entry.get("Organisation")))
    return sorted({m for m in members if m})


def _distribution_refs(record: Mapping[str, Any], ref: str, level: int, owner: str | None,
                       plan: MarkingPlan) -> list[str]:
    if level in (ALL_COMMUNITIES, INHERIT):
        return []
    if level in (THIS_COMMUNITY, CONNECTED):
        plan.losses.append(Loss(ref, "distribution", level, f"'{_LEVEL_NAMES[level]}' has no Kizuna equivalent: "
                                "released under its TLP and the partner agreements, not limited by hops"))
        return []
    members: list[str] = []
    if level == SHARING_GROUP:
        members = _sharing_group_members(record.get("SharingGroup"))
        if not members:
            plan.losses.append(Loss(ref, "sharing_group_id", record.get("sharing_group_id"),
                                    "sharing group not described in the document: restricted to the owner"))
    if not members:
        if owner is None:
            raise DistributionError(f"{ref}: distribution '{_LEVEL_NAMES[level]}' but the event names no "
                                    "owning organisation uuid (Org/Orgc) to restrict it to")
        members = [owner]
    return [plan.add_definition(build_rel_to_marking(identities=members))]


def plan_markings(event: Mapping[str, Any]) -> MarkingPlan:
    """Work out the markings for an event and for each of its attributes and objects."""
    plan = MarkingPlan()
    owner = org_identity(event.get("Org")) or org_identity(event.get("Orgc"))
    event_ref = str(event.get("uuid"))
    event_level = distribution_of(event, ALL_COMMUNITIES)
    plan.event_refs = _tlp_refs(event.get("Tag"), plan, event_ref) + _distribution_refs(
        event, event_ref, event_level, owner, plan)
    records: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = [
        (a, None) for a in event.get("Attribute") or ()]
    for obj in event.get("Object") or ():
        records.append((obj, None))
        records.extend((a, obj) for a in obj.get("Attribute") or ())
    for record, parent in records:
        ref = str(record.get("uuid"))
        level = distribution_of(record, INHERIT)
        if level == event_level:
            level = INHERIT  # the event's markings already say it
        refs = _tlp_refs(record.get("Tag"), plan, ref) + _distribution_refs(record, ref, level, owner, plan)
        if refs:
            target = str(parent.get("uuid")) if parent is not None else ref
            merged = plan.by_uuid.setdefault(target, [])
            merged.extend(r for r in refs if r not in merged)
    return plan


def _uuid_of(stix_id: str) -> str:
    return stix_id.partition("--")[2]


def apply_markings(objects: list[dict[str, Any]], plan: MarkingPlan) -> list[dict[str, Any]]:
    """Put the event's markings on every object of the event and each record's markings on its objects.

    Objects made from one MISP attribute or object carry its uuid in their id; the observables an
    observed-data refers to inherit its markings. Identities and marking definitions stay unmarked.
    """
    extra: dict[str, list[str]] = {}
    for obj in objects:
        refs = plan.by_uuid.get(_uuid_of(obj["id"]))
        if refs:
            extra.setdefault(obj["id"], []).extend(refs)
            for ref in obj.get("object_refs") or () if obj["type"] == "observed-data" else ():
                extra.setdefault(ref, []).extend(refs)
    out = [dict(d) for d in plan.definitions.values()]
    for obj in objects:
        if obj["id"] in plan.definitions:
            continue  # already emitted once, first
        if obj["type"] in ("identity", "marking-definition", "extension-definition"):
            out.append(obj)
            continue
        refs = list(obj.get("object_marking_refs") or ())
        for ref in plan.event_refs + extra.get(obj["id"], []):
            if ref not in refs:
                refs.append(ref)
        out.append({**obj, "object_marking_refs": refs} if refs else obj)
    return out
