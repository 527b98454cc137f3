"""MISP attribute comments that STIX has no place for, carried through a Kizuna extension.

misp-stix writes the comment of a ``to_ids`` attribute as its indicator's description, but an attribute
without ``to_ids`` becomes an observed-data, which has no description, and the attributes of a MISP object
become one STIX object between them: their comments were dropped (98 of the losses of the 14 real CIRCL
events in the tests, the most common loss). Kizuna keeps each on the STIX object made of the attribute, or of
its MISP object, as a property extension (``extension-definition--c55df225-…``, "Kizuna MISP comments":
``{"comments": {"<attribute uuid>": "<comment>"}}``), and a MISP export writes each back on its attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kizuna.formats.misp_event_fields import kizuna_property_extension
from kizuna.policy.releasability import kizuna_identity
from kizuna.stix.vocab import SDO_TYPES

MISP_COMMENTS_EXTENSION_ID: Final = "extension-definition--c55df225-d984-42df-9746-7dca14569d04"
#: Which STIX object made of a record carries its comments, best first (misp-stix names each with the uuid).
_PREFERRED: Final = ("indicator", "observed-data", "x-misp-attribute", "x-misp-object")


def misp_comments_extension_definition() -> dict[str, Any]:
    """The extension-definition every object carrying MISP comments names (stored with the import)."""
    return kizuna_property_extension(
        MISP_COMMENTS_EXTENSION_ID, "Kizuna MISP comments",
        "The comments of MISP attributes that the STIX made of them has no property for (an observed-data has no "
        "description; the attributes of a MISP object share one STIX object), so that a MISP export gives them "
        "back.",
        "Property extension on the STIX object made of a MISP attribute or object. Properties: extension_type = "
        "\"property-extension\" (required); comments (required): an object whose keys are MISP attribute uuids and "
        "whose values are those attributes' comments.",
    )


def _carrier(by_uuid: Mapping[str, list[dict[str, Any]]], record_uuid: str) -> dict[str, Any] | None:
    made = [o for o in by_uuid.get(record_uuid, ()) if o["type"] in SDO_TYPES or o["type"].startswith("x-misp-")]
    made.sort(key=lambda o: _PREFERRED.index(o["type"]) if o["type"] in _PREFERRED else len(_PREFERRED))
    return made[0] if made else None


def _comments(event: Mapping[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(uuid of the record whose STIX object carries it, attribute uuid, comment) of every commented attribute."""
    for attribute in event.get("Attribute") or ():
        if isinstance(attribute, Mapping) and attribute.get("comment"):
            yield str(attribute.get("uuid")), str(attribute.get("uuid")), str(attribute["comment"])
    for misp_object in event.get("Object") or ():
        for attribute in (misp_object.get("Attribute") or ()) if isinstance(misp_object, Mapping) else ():
            if isinstance(attribute, Mapping) and attribute.get("comment"):
                yield str(misp_object.get("uuid")), str(attribute.get("uuid")), str(attribute["comment"])


def carry(produced: list[dict[str, Any]], event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Put on ``produced`` (misp-stix's objects of ``event``, changed in place) each attribute comment that none
    of them holds as its description; returns the objects to store beside them (the extension-definition and
    its publisher), or none."""
    by_uuid: dict[str, list[dict[str, Any]]] = {}
    for obj in produced:
        by_uuid.setdefault(str(obj["id"]).partition("--")[2], []).append(obj)
    carried = False
    for record_uuid, attribute_uuid, comment in _comments(event):
        carrier = _carrier(by_uuid, record_uuid)
        if carrier is None or carrier.get("description") == comment:
            continue
        extensions = carrier.setdefault("extensions", {})
        entry = extensions.setdefault(MISP_COMMENTS_EXTENSION_ID, {"extension_type": "property-extension",
                                                                   "comments": {}})
        entry["comments"][attribute_uuid] = comment
        carried = True
    return [kizuna_identity(), misp_comments_extension_definition()] if carried else []


def restore_comments(records: Iterable[dict[str, Any]], objects: Iterable[Mapping[str, Any]]) -> None:
    """Write back, on the MISP attributes (``records``) of an export, each comment the STIX ``objects`` carry for
    them, where the attribute has none."""
    comments: dict[str, str] = {}
    for obj in objects:
        entry = (obj.get("extensions") or {}).get(MISP_COMMENTS_EXTENSION_ID)
        if isinstance(entry, Mapping) and isinstance(entry.get("comments"), Mapping):
            comments.update({str(k): v for k, v in entry["comments"].items() if isinstance(v, str)})
    if not comments:
        return
    for record in records:
        comment = comments.get(str(record.get("uuid")))
        if comment is not None and not record.get("comment"):
            record["comment"] = comment
