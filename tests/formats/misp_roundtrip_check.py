"""Compare a source MISP event with the event read back after MISP -> STIX -> MISP (PyMISP's loader)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kizuna.policy.tlp import misp_tag_level

FIELDS = ("value", "type", "category", "to_ids", "object_relation")


def _flag(value: object) -> bool:
    return value in (True, 1, "1", "true", "True")


def tag_set(record: Mapping[str, Any]) -> set[str]:
    """Tag names, TLP tags reduced to their level (tlp:white and tlp:clear are the same marking)."""
    names = set()
    for tag in record.get("Tag") or ():
        name = str(tag["name"])
        level = misp_tag_level(name)
        names.add(f"tlp-level:{int(level)}" if level is not None else name)
    for galaxy in record.get("Galaxy") or ():  # a galaxy tag may come back as the galaxy itself
        names.update(f'misp-galaxy:{galaxy["type"]}="{c["value"]}"' for c in galaxy.get("GalaxyCluster") or ())
    return names


def source_records(event: Mapping[str, Any]) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    for attribute in event.get("Attribute") or ():
        yield None, attribute
    for misp_object in event.get("Object") or ():
        for attribute in misp_object.get("Attribute") or ():
            yield str(misp_object["uuid"]), attribute


def differences(source: Mapping[str, Any], back: Mapping[str, Any],
                reported_values: set[str] = frozenset()) -> list[tuple[str, str]]:  # type: ignore[assignment]
    """(attribute uuid, field) for every field of the source that did not come back unchanged.

    A tag whose exact text is the value of a reported loss (a galaxy renamed on the way) counts as reported.
    """
    by_uuid = {str(a["uuid"]): a for _, a in source_records(back)}
    objects = {str(o["uuid"]): o for o in back.get("Object") or ()}
    event_tlp = {t for t in tag_set(back) if t.startswith("tlp-level:")}
    found: list[tuple[str, str]] = []
    used: set[int] = set()
    for parent, attribute in source_records(source):
        ref = str(attribute["uuid"])
        twin = by_uuid.get(ref)
        if twin is None and parent is not None and parent in objects:
            candidates = [a for a in objects[parent].get("Attribute") or () if id(a) not in used]
            twin = next((a for a in candidates if a.get("object_relation") == attribute.get("object_relation")
                         and str(a.get("value")) == str(attribute.get("value"))), None) or next(
                (a for a in candidates if str(a.get("value")) == str(attribute.get("value"))), None) or next(
                (a for a in candidates if a.get("object_relation") == attribute.get("object_relation")), None)
        if twin is None:
            found.append((ref, "attribute"))
            continue
        used.add(id(twin))
        for field in FIELDS:
            if field == "object_relation" and parent is None:
                continue
            if field == "to_ids":
                if _flag(attribute.get(field)) != _flag(twin.get(field)):
                    found.append((ref, field))
            elif str(attribute.get(field) or "") != str(twin.get(field) or ""):
                found.append((ref, field))
        # An attribute's own TLP may come back on its object or on the event (the strictest level there).
        kept = tag_set(twin) | event_tlp | (tag_set(objects[parent]) if parent in objects else set())
        if tag_set(attribute) - kept - reported_values:
            found.append((ref, "tag"))
    return found
